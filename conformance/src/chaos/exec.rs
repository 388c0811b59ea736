//! Plugin processes of the chaos run, through the suite's one runner
//! (`invoke`): each runs inside the lab's host namespace (entered between
//! fork and exec) and may be SIGKILLed at a planned moment, as a runtime's
//! timeout kills a plugin.

use runtime::{PluginExec, Runtime};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// When to kill: the `nth` plugin process this operation starts, `after`
/// it started.
#[derive(Debug, Clone, Copy)]
pub struct KillPlan {
    /// Which process of the operation (0 = the first plugin exec'd).
    pub nth: usize,
    /// How long after its start.
    pub after: Duration,
}

/// Runs plugins inside the host namespace (entered between fork and exec),
/// killing one at the planned moment.
#[derive(Debug)]
pub struct ChaosExec {
    netns: Arc<std::fs::File>,
    plan: Option<KillPlan>,
    started: AtomicUsize,
    /// Whether the planned kill landed (the process died of it).
    pub landed: AtomicBool,
    /// Set when the runtime "restarts": no further plugin is started, as a
    /// dead runtime starts none (the one running goes on).
    stopped: AtomicBool,
}

impl ChaosExec {
    /// Runs plugins in `netns`, killing as `plan` says.
    pub fn new(netns: Arc<std::fs::File>, plan: Option<KillPlan>) -> ChaosExec {
        ChaosExec {
            netns,
            plan,
            started: AtomicUsize::new(0),
            landed: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        }
    }
}

impl ChaosExec {
    /// The runtime dies: plugins already running go on, no new one starts.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }
}

impl PluginExec for ChaosExec {
    fn exec_plugin(&self, plugin: &Path, stdin: &[u8], env: &[(String, String)]) -> runtime::Result<Vec<u8>> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(runtime::Error::io(format!("the runtime died before it ran {}", plugin.display())));
        }
        let nth = self.started.fetch_add(1, Ordering::SeqCst);
        let kill_after = self.plan.filter(|p| p.nth == nth).map(|p| p.after);
        // The planned kill is the runner's deadline, at a random moment.
        let req = invoke::Request {
            timeout: kill_after,
            die_with_parent: false,
            netns: Some(self.netns.as_raw_fd()),
            ..invoke::Request::new(plugin, stdin, env)
        };
        let out = invoke::run(&req).map_err(|e| runtime::Error::io(format!("exec {}: {e}", plugin.display())))?;
        if out.timed_out {
            self.landed.store(true, Ordering::SeqCst);
            return Err(runtime::Error::new(
                invoke::UNTYPED_FAILURE,
                format!("{} killed by the chaos test", plugin.display()),
            ));
        }
        out.into_stdout(&req)
    }
}

/// A runtime whose plugins run inside the network namespace at `netns`
/// (entered between fork and exec), as a runtime running in that
/// namespace would run them.
pub fn runtime_in(netns: &str, plugin_path: Vec<PathBuf>, conf_dir: &Path, cache_dir: &Path) -> Runtime {
    let ns = Arc::new(std::fs::File::open(netns).expect("opening the namespace"));
    Runtime::new(plugin_path, conf_dir, cache_dir).with_exec(Arc::new(ChaosExec::new(ns, None)))
}
