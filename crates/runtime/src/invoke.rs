//! Running one plugin: find it in `CNI_PATH`, exec it with the `CNI_*`
//! environment and a config on stdin, and turn what it printed into a
//! result or an error, as libcni's `pkg/invoke` does.
//!
//! The [`PluginExec`] trait is the seam between the chain logic and the
//! processes: [`ProcessExec`] runs real binaries, tests can record requests
//! and answer them without a process.

use cni::error::code;
use cni::{validate, CniResult, Error, Version};
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Largest plugin stdout kept; a result is a few KiB.
pub const MAX_STDOUT: usize = 4 << 20;
/// Largest plugin stderr kept (the rest is read and dropped).
pub const MAX_STDERR: usize = 64 << 10;
/// How often exec is retried when the binary is still being written
/// (`ETXTBSY`), as libcni retries.
pub const TEXT_BUSY_RETRIES: u32 = 5;
/// The code given to a failure the plugin did not describe with an error
/// object (empty or garbled stdout): the Go reference's "internal" code.
pub const UNTYPED_FAILURE: u32 = code::INTERNAL;

/// How plugins are found and run. `Send + Sync` so one runtime can serve
/// concurrent operations.
pub trait PluginExec: Send + Sync + std::fmt::Debug {
    /// The binary for plugin `name` in `dirs`.
    fn find_plugin(&self, name: &str, dirs: &[PathBuf]) -> crate::Result<PathBuf>;
    /// Runs `plugin` with `stdin` and the `env` pairs added to the inherited
    /// environment. `Ok` is the plugin's stdout after a zero exit; a failure
    /// is the plugin's error object, or one built from its stderr.
    fn exec_plugin(&self, plugin: &Path, stdin: &[u8], env: &[(String, String)]) -> crate::Result<Vec<u8>>;
}

/// Finds `name` in `dirs`: the first regular, executable file. A name with
/// a path separator is refused before any lookup.
pub fn find_in_path(name: &str, dirs: &[PathBuf]) -> crate::Result<PathBuf> {
    validate::plugin_type("type", name)?;
    if dirs.is_empty() {
        return Err(Error::invalid_env(format!("CNI_PATH is empty: cannot find plugin {name:?}")));
    }
    for dir in dirs {
        let path = dir.join(name);
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(path);
            }
        }
    }
    let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(Error::invalid_config(format!("failed to find plugin {name:?} in path [{}]", shown.join(" "))))
}

/// The error for a plugin that exited non-zero: its own error object when
/// stdout holds one, else a message built from stderr (libcni's wording).
pub fn plugin_error(exit: &str, stdout: &[u8], stderr: &[u8]) -> Error {
    let out = String::from_utf8_lossy(stdout);
    if out.trim().is_empty() {
        let err = String::from_utf8_lossy(stderr);
        let err = err.trim();
        return if err.is_empty() {
            Error::new(UNTYPED_FAILURE, format!("netplugin failed with no error message: {exit}"))
        } else {
            Error::new(UNTYPED_FAILURE, format!("netplugin failed: {err:?}: {exit}"))
        };
    }
    // Lenient as Go's decoder: every field of the error object is optional.
    match serde_json::from_slice::<Value>(stdout) {
        Ok(Value::Object(obj)) => {
            let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            let code = obj.get("code").and_then(Value::as_u64).and_then(|c| u32::try_from(c).ok()).unwrap_or(0);
            Error::new(code, text("msg")).with_details(text("details"))
        }
        Ok(_) => Error::new(
            UNTYPED_FAILURE,
            format!("netplugin failed but error parsing its diagnostic message {:?}: not an object", out.trim()),
        ),
        Err(perr) => Error::new(
            UNTYPED_FAILURE,
            format!("netplugin failed but error parsing its diagnostic message {:?}: {perr}", out.trim()),
        ),
    }
}

/// An error object printed by a plugin that nevertheless exited 0: an
/// object with a numeric `code` and a `msg` and no result fields.
fn error_object(v: &Value) -> Option<Error> {
    let obj = v.as_object()?;
    if !obj.get("code").is_some_and(Value::is_u64) || !obj.get("msg").is_some_and(Value::is_string) {
        return None;
    }
    if ["interfaces", "ips", "ip4", "ip6", "routes"].iter().any(|k| obj.contains_key(*k)) {
        return None;
    }
    serde_json::from_value(v.clone()).ok()
}

/// Reads an ADD result: JSON in the version of the request. A result with
/// no `cniVersion` is taken as the request's version (as libcni does); one
/// of the other shape family (legacy vs. current) is refused.
pub fn parse_result(stdout: &[u8], version: Version) -> crate::Result<CniResult> {
    let v: Value = serde_json::from_slice(stdout).map_err(|e| {
        Error::decode(format!("failed to unmarshal raw result: {e}"))
            .with_details(format!("result: {:?}", String::from_utf8_lossy(stdout)))
    })?;
    if let Some(e) = error_object(&v) {
        return Err(e);
    }
    if !v.is_object() {
        return Err(Error::decode("failed to unmarshal raw result: not a JSON object"));
    }
    CniResult::parse(&v, version)
}

/// Runs real plugin binaries as child processes.
#[derive(Debug, Clone, Default)]
pub struct ProcessExec {
    /// Kill a plugin that runs longer than this (`None`: wait forever, as
    /// libcni without a context deadline).
    pub timeout: Option<Duration>,
}

struct Raw {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    stdout_overflow: bool,
    timed_out: bool,
}

/// Reads `r` to the end, keeping at most `cap` bytes; true when more came.
fn read_capped(r: &mut dyn Read, cap: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut overflow = false;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                overflow |= n > room;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    (kept, overflow)
}

/// Blocks until `pid` has exited without reaping it, so the pid cannot be
/// reused while a timeout watchdog may still signal it.
fn wait_exited_keep_zombie(pid: libc::pid_t) {
    loop {
        // SAFETY: waitid only writes into the zeroed siginfo we own.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT)
        };
        if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

impl ProcessExec {
    fn exec_once(&self, plugin: &Path, stdin: &[u8], env: &[(String, String)]) -> std::io::Result<Raw> {
        let mut cmd = Command::new(plugin);
        // Our identity, so that a plugin we run never trusts a stale one
        // inherited from our own environment (see `cni::caller`).
        match cni::caller::Identity::current() {
            Some(me) => cmd.env(cni::caller::CALLER_ENV, me.to_env()),
            None => cmd.env_remove(cni::caller::CALLER_ENV),
        };
        let mut child = cmd
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let pid = child.id() as libc::pid_t;
        let mut cin = child.stdin.take().expect("stdin is piped");
        let mut cout = child.stdout.take().expect("stdout is piped");
        let mut cerr = child.stderr.take().expect("stderr is piped");
        let done = (Mutex::new(false), Condvar::new());
        let timed_out = AtomicBool::new(false);

        let (stdout, stdout_overflow, stderr) = std::thread::scope(|s| {
            s.spawn(move || {
                // A plugin may exit without reading stdin (EPIPE): not our error.
                let _ = cin.write_all(stdin);
            });
            let err_reader = s.spawn(move || read_capped(&mut cerr, MAX_STDERR).0);
            if let Some(limit) = self.timeout {
                let (done, timed_out) = (&done, &timed_out);
                s.spawn(move || {
                    let guard = done.0.lock().unwrap_or_else(|p| p.into_inner());
                    let (guard, _) =
                        done.1.wait_timeout_while(guard, limit, |d| !*d).unwrap_or_else(|p| p.into_inner());
                    if !*guard {
                        timed_out.store(true, Ordering::SeqCst);
                        // SAFETY: plain kill(2); the child is not reaped before `done` is set.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                });
            }
            let (out, overflow) = read_capped(&mut cout, MAX_STDOUT);
            if self.timeout.is_some() {
                wait_exited_keep_zombie(pid);
                *done.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
                done.1.notify_all();
            }
            let err = err_reader.join().unwrap_or_default();
            (out, overflow, err)
        });
        let status = child.wait()?;
        Ok(Raw { status, stdout, stderr, stdout_overflow, timed_out: timed_out.load(Ordering::SeqCst) })
    }
}

fn describe_exit(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("signal: killed by signal {sig}"),
        _ => "unknown exit status".into(),
    }
}

fn forward_stderr(plugin: &Path, stderr: &[u8]) {
    if !stderr.is_empty() {
        let name = plugin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let text = String::from_utf8_lossy(stderr);
        eprint!("{}", text.lines().map(|l| format!("[{name}] {l}\n")).collect::<String>());
    }
}

impl PluginExec for ProcessExec {
    fn find_plugin(&self, name: &str, dirs: &[PathBuf]) -> crate::Result<PathBuf> {
        find_in_path(name, dirs)
    }

    fn exec_plugin(&self, plugin: &Path, stdin: &[u8], env: &[(String, String)]) -> crate::Result<Vec<u8>> {
        let mut attempt = 0;
        let raw = loop {
            match self.exec_once(plugin, stdin, env) {
                Ok(raw) => break raw,
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < TEXT_BUSY_RETRIES => {
                    log::debug!("{}: text file busy, retrying", plugin.display());
                    std::thread::sleep(Duration::from_millis(50 << attempt));
                    attempt += 1;
                }
                Err(e) => return Err(Error::io(format!("failed to exec plugin {}: {e}", plugin.display()))),
            }
        };
        if raw.timed_out {
            forward_stderr(plugin, &raw.stderr);
            let limit = self.timeout.unwrap_or_default();
            return Err(Error::io(format!("plugin {} timed out after {limit:?} and was killed", plugin.display())));
        }
        if raw.stdout_overflow {
            forward_stderr(plugin, &raw.stderr);
            return Err(Error::decode(format!("plugin {} printed more than {MAX_STDOUT} bytes", plugin.display())));
        }
        if !raw.status.success() {
            let out_empty = raw.stdout.iter().all(u8::is_ascii_whitespace);
            if !out_empty {
                // The error object carries the message; stderr is logging.
                forward_stderr(plugin, &raw.stderr);
            }
            return Err(plugin_error(&describe_exit(&raw.status), &raw.stdout, &raw.stderr));
        }
        forward_stderr(plugin, &raw.stderr);
        Ok(raw.stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fs;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn find_takes_first_executable_and_refuses_paths() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        fs::write(a.path().join("p"), "not executable").unwrap();
        let want = script(b.path(), "p", "exit 0");
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(find_in_path("p", &dirs).unwrap(), want);
        assert_eq!(find_in_path("../p", &dirs).unwrap_err().code, 7);
        assert_eq!(find_in_path("a/p", &dirs).unwrap_err().code, 7);
        assert_eq!(find_in_path("p", &[]).unwrap_err().code, 4);
        let e = find_in_path("q", &dirs).unwrap_err();
        assert!(e.msg.starts_with("failed to find plugin \"q\" in path ["), "{e}");
        fs::create_dir(a.path().join("d")).unwrap();
        assert!(find_in_path("d", &dirs[..1]).is_err());
    }

    #[test]
    fn error_object_from_stdout() {
        let e = plugin_error("exit status 1", br#"{"code": 7, "msg": "bad", "details": "why"}"#, b"log line");
        assert_eq!((e.code, e.msg.as_str(), e.details.as_str()), (7, "bad", "why"));
        let e = plugin_error("exit status 2", b"", b"boom\n");
        assert_eq!(e.msg, "netplugin failed: \"boom\": exit status 2");
        assert_eq!(e.code, UNTYPED_FAILURE);
        let e = plugin_error("exit status 2", b"", b"");
        assert_eq!(e.msg, "netplugin failed with no error message: exit status 2");
        let e = plugin_error("exit status 2", b"garbage", b"");
        assert!(e.msg.starts_with("netplugin failed but error parsing its diagnostic message \"garbage\""));
        let e = plugin_error("exit status 1", br#"{"code": 3}"#, b"");
        assert_eq!((e.code, e.msg.as_str()), (3, ""));
    }

    #[test]
    fn parse_result_rules() {
        let r = parse_result(br#"{"ips":[{"address":"10.0.0.2/24"}]}"#, Version::V100).unwrap();
        assert_eq!(r.ips.len(), 1);
        let e = parse_result(br#"{"cniVersion":"1.0.0","code":11,"msg":"later"}"#, Version::V100).unwrap_err();
        assert_eq!(e.code, 11);
        assert_eq!(parse_result(b"", Version::V100).unwrap_err().code, 6);
        assert_eq!(parse_result(b"null", Version::V100).unwrap_err().code, 6);
        let legacy = json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24"}}).to_string();
        assert!(parse_result(legacy.as_bytes(), Version::V100).is_err());
        assert!(parse_result(legacy.as_bytes(), Version::V020).is_ok());
    }

    #[test]
    fn process_exec_env_stdin_and_failures() {
        let d = tempfile::tempdir().unwrap();
        let ok = script(d.path(), "ok", "read -r line; printf '%s|%s' \"$CNI_COMMAND\" \"$line\"; echo log >&2");
        let env = vec![("CNI_COMMAND".to_string(), "ADD".to_string())];
        let out = ProcessExec::default().exec_plugin(&ok, b"{\"a\":1}\n", &env).unwrap();
        assert_eq!(out, b"ADD|{\"a\":1}");

        let fail = script(d.path(), "fail", r#"echo '{"code": 11, "msg": "try later"}'; exit 1"#);
        let e = ProcessExec::default().exec_plugin(&fail, b"{}", &env).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (11, "try later"));

        let quiet = script(d.path(), "quiet", "echo oops >&2; exit 3");
        let e = ProcessExec::default().exec_plugin(&quiet, b"{}", &env).unwrap_err();
        assert_eq!(e.msg, "netplugin failed: \"oops\": exit status 3");

        // A plugin that ignores a large stdin must not deadlock us.
        let big = vec![b' '; 512 << 10];
        assert!(ProcessExec::default().exec_plugin(&quiet, &big, &env).is_err());
        assert_eq!(ProcessExec::default().exec_plugin(&ok, &big, &env).unwrap(), b"ADD|");
    }

    #[test]
    fn timeout_kills() {
        let d = tempfile::tempdir().unwrap();
        let slow = script(d.path(), "slow", "exec sleep 30");
        let exec = ProcessExec { timeout: Some(Duration::from_millis(200)) };
        let e = exec.exec_plugin(&slow, b"{}", &[]).unwrap_err();
        assert!(e.msg.contains("timed out"), "{e}");
        let fast = script(d.path(), "fast", "echo '{}'");
        assert_eq!(exec.exec_plugin(&fast, b"{}", &[]).unwrap(), b"{}\n");
    }

    #[test]
    fn text_file_busy_is_retried() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("busy");
        let mut f = fs::File::create(&p).unwrap();
        f.write_all(b"#!/bin/sh\necho done\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        // Keep the file open for writing for a while: exec fails with ETXTBSY.
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(120));
            drop(f);
        });
        let started = std::time::Instant::now();
        let out = ProcessExec::default().exec_plugin(&p, b"", &[]).unwrap();
        // It ran only after the writer closed, so at least one retry happened.
        assert!(started.elapsed() >= Duration::from_millis(100));
        closer.join().unwrap();
        assert_eq!(out, b"done\n");
    }
}
