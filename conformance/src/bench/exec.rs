//! Plugin execution with a meter: every plugin process the runtime starts is
//! run and reaped here with `wait4`, so the bench learns its wall time and
//! its peak resident set (`ru_maxrss`) without a second tool around it.
//!
//! Both suites go through this one implementation, so whatever it costs
//! beyond a plain spawn is the same for ours and for the reference.

use runtime::invoke::{find_in_path, plugin_error};
use runtime::{Error, PluginExec};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One finished plugin process.
#[derive(Debug, Clone)]
pub struct ExecRecord {
    /// The binary's file name (the plugin type).
    pub plugin: String,
    /// `CNI_COMMAND` it ran.
    pub command: String,
    /// From spawn to reaped.
    pub wall: Duration,
    /// Peak resident set in KiB, of the process or of the largest child it
    /// waited for (the kernel's `ru_maxrss` after `wait4`).
    pub max_rss_kib: u64,
}

/// A [`PluginExec`] that runs real processes and records an
/// [`ExecRecord`] for each; the bench drains them after every operation.
#[derive(Debug, Default)]
pub struct MeteredExec {
    records: Mutex<Vec<ExecRecord>>,
}

impl MeteredExec {
    /// Removes and returns what was recorded since the last call.
    pub fn take(&self) -> Vec<ExecRecord> {
        std::mem::take(&mut *self.records.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Exit status and rusage of a reaped child.
struct Reaped {
    status: libc::c_int,
    max_rss_kib: u64,
}

/// Waits for `pid` and reaps it, returning its status and rusage.
fn wait4(pid: libc::pid_t) -> std::io::Result<Reaped> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: wait4 writes only into the two locals we own; the pid is
        // our own child, not reaped elsewhere (std's Child is never waited).
        let (rc, usage) = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            let rc = libc::wait4(pid, &mut status, 0, &mut usage);
            (rc, usage)
        };
        if rc == pid {
            return Ok(Reaped { status, max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0) });
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// `exit status N` / `signal: killed by signal N`, libcni's wording.
fn describe(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal: killed by signal {}", libc::WTERMSIG(status))
    } else {
        "unknown exit status".into()
    }
}

fn env_value<'a>(env: &'a [(String, String)], key: &str) -> &'a str {
    env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_default()
}

impl PluginExec for MeteredExec {
    fn find_plugin(&self, name: &str, dirs: &[PathBuf]) -> runtime::Result<PathBuf> {
        find_in_path(name, dirs)
    }

    fn exec_plugin(&self, plugin: &Path, stdin: &[u8], env: &[(String, String)]) -> runtime::Result<Vec<u8>> {
        let started = Instant::now();
        let mut child = Command::new(plugin)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(format!("failed to exec plugin {}: {e}", plugin.display())))?;
        let pid = child.id() as libc::pid_t;
        let mut cin = child.stdin.take().expect("stdin is piped");
        let mut cout = child.stdout.take().expect("stdout is piped");
        let mut cerr = child.stderr.take().expect("stderr is piped");
        let (stdout, stderr) = std::thread::scope(|s| {
            s.spawn(move || {
                // A plugin may exit without reading stdin: not our error.
                let _ = cin.write_all(stdin);
            });
            let err = s.spawn(move || {
                let mut v = Vec::new();
                let _ = cerr.read_to_end(&mut v);
                v
            });
            let mut out = Vec::new();
            let _ = cout.read_to_end(&mut out);
            (out, err.join().unwrap_or_default())
        });
        let reaped = wait4(pid).map_err(|e| Error::io(format!("waiting for plugin {}: {e}", plugin.display())))?;
        let wall = started.elapsed();
        self.records.lock().unwrap_or_else(|p| p.into_inner()).push(ExecRecord {
            plugin: plugin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            command: env_value(env, "CNI_COMMAND").to_string(),
            wall,
            max_rss_kib: reaped.max_rss_kib,
        });
        if libc::WIFEXITED(reaped.status) && libc::WEXITSTATUS(reaped.status) == 0 {
            return Ok(stdout);
        }
        let mut e = plugin_error(&describe(reaped.status), &stdout, &stderr);
        let log = String::from_utf8_lossy(&stderr);
        if !stdout.is_empty() && !log.trim().is_empty() {
            e.details = format!("{} (stderr: {})", e.details, log.trim());
        }
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn records_each_process_and_keeps_errors() {
        let d = std::env::temp_dir().join(format!("bench-exec-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let ok = script(&d, "ok", "read -r l; printf '%s' \"$CNI_COMMAND:$l\"");
        let bad = script(&d, "bad", r#"echo '{"code": 11, "msg": "later"}'; exit 1"#);
        let exec = MeteredExec::default();
        let env = vec![("CNI_COMMAND".to_string(), "ADD".to_string())];
        assert_eq!(exec.exec_plugin(&ok, b"{}\n", &env).unwrap(), b"ADD:{}");
        let e = exec.exec_plugin(&bad, b"{}", &env).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (11, "later"));
        let recs = exec.take();
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].plugin.as_str(), recs[0].command.as_str()), ("ok", "ADD"));
        assert!(recs[0].max_rss_kib > 0);
        assert!(exec.take().is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
