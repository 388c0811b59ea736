//! Plugin processes of the chaos run: each runs inside the lab's host
//! namespace (entered between fork and exec) and may be SIGKILLed at a
//! planned moment, as a runtime's timeout kills a plugin.

use runtime::{PluginExec, Runtime};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
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
}

impl ChaosExec {
    /// Runs plugins in `netns`, killing as `plan` says.
    pub fn new(netns: Arc<std::fs::File>, plan: Option<KillPlan>) -> ChaosExec {
        ChaosExec { netns, plan, started: AtomicUsize::new(0), landed: AtomicBool::new(false) }
    }
}

/// Blocks until `pid` has exited, without reaping it (so the pid cannot be
/// reused while the killer may still signal it).
fn wait_exited(pid: libc::pid_t) {
    loop {
        // SAFETY: waitid writes only into the zeroed siginfo we own.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT)
        };
        if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

impl PluginExec for ChaosExec {
    fn find_plugin(&self, name: &str, dirs: &[PathBuf]) -> runtime::Result<PathBuf> {
        runtime::invoke::find_in_path(name, dirs)
    }

    fn exec_plugin(&self, plugin: &Path, stdin: &[u8], env: &[(String, String)]) -> runtime::Result<Vec<u8>> {
        let nth = self.started.fetch_add(1, Ordering::SeqCst);
        let kill_after = self.plan.filter(|p| p.nth == nth).map(|p| p.after);
        let fd = self.netns.as_raw_fd();
        let mut cmd = Command::new(plugin);
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: setns(2) is async-signal-safe; `fd` stays open in the
        // parent for the whole call.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| runtime::Error::io(format!("exec {}: {e}", plugin.display())))?;
        let pid = child.id() as libc::pid_t;
        let mut cin = child.stdin.take().expect("piped");
        let mut cout = child.stdout.take().expect("piped");
        let mut cerr = child.stderr.take().expect("piped");
        let done = (Mutex::new(false), Condvar::new());
        let (stdout, stderr) = std::thread::scope(|s| {
            s.spawn(move || {
                let _ = cin.write_all(stdin);
            });
            let err = s.spawn(move || {
                let mut b = Vec::new();
                let _ = cerr.read_to_end(&mut b);
                b
            });
            if let Some(after) = kill_after {
                let done = &done;
                s.spawn(move || {
                    let guard = done.0.lock().unwrap_or_else(|p| p.into_inner());
                    let (guard, _) =
                        done.1.wait_timeout_while(guard, after, |d| !*d).unwrap_or_else(|p| p.into_inner());
                    if !*guard {
                        // SAFETY: kill(2) of our child, not yet reaped (see below).
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                });
            }
            let mut out = Vec::new();
            let _ = cout.read_to_end(&mut out);
            wait_exited(pid);
            *done.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
            done.1.notify_all();
            (out, err.join().unwrap_or_default())
        });
        let status = child.wait().map_err(|e| runtime::Error::io(format!("wait {}: {e}", plugin.display())))?;
        if status.signal() == Some(libc::SIGKILL) {
            self.landed.store(true, Ordering::SeqCst);
            return Err(runtime::Error::new(
                runtime::invoke::UNTYPED_FAILURE,
                format!("{} killed by the chaos test", plugin.display()),
            ));
        }
        if !status.success() {
            let exit = status.code().map(|c| format!("exit status {c}")).unwrap_or_else(|| format!("{status}"));
            return Err(runtime::invoke::plugin_error(&exit, &stdout, &stderr));
        }
        Ok(stdout)
    }
}

/// A runtime whose plugins run inside the network namespace at `netns`
/// (entered between fork and exec), as a runtime running in that
/// namespace would run them.
pub fn runtime_in(netns: &str, plugin_path: Vec<PathBuf>, conf_dir: &Path, cache_dir: &Path) -> Runtime {
    let ns = Arc::new(std::fs::File::open(netns).expect("opening the namespace"));
    Runtime::new(plugin_path, conf_dir, cache_dir).with_exec(Arc::new(ChaosExec::new(ns, None)))
}
