//! Running one plugin: find it in `CNI_PATH`, exec it with the `CNI_*`
//! environment and a config on stdin, and turn what it printed into a
//! result or an error, as libcni's `pkg/invoke` does.
//!
//! One runner for every caller, so they all follow the same rules: the
//! runtime (`cnitool`, libcni semantics), a plugin delegating to its IPAM
//! plugin (the Go reference's `pkg/ipam` is a thin layer over `invoke`
//! too), and the chaos test, whose kills are this runner's timeout at a
//! random moment. The rules, each the better of what the callers had:
//! stdout capped (a result is a few KiB), stderr capped and forwarded with
//! the plugin's name; an exec that meets a binary being replaced
//! (`ETXTBSY`) retried with growing waits; an optional deadline after
//! which the plugin is SIGKILLed; optionally dying with its caller
//! (`PR_SET_PDEATHSIG`), so a killed plugin's delegate cannot act after
//! the runtime's follow-up DEL; the caller's identity passed down
//! (`cni::caller`), so a delegate started after its caller died changes
//! nothing; and error objects parsed as leniently as Go's decoder does.

use cni::error::code;
use cni::{validate, CniResult, Error, Version};
use serde_json::Value;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Largest plugin stdout kept; a result is a few KiB.
const MAX_STDOUT: usize = 4 << 20;
/// Largest plugin stderr kept (the rest is read and dropped).
const MAX_STDERR: usize = 64 << 10;
/// How often exec is retried when the binary is still being written
/// (`ETXTBSY`): waits of 20, 40, 80, 160 and 320 ms.
const TEXT_BUSY_RETRIES: u32 = 5;
/// The code given to a failure the plugin did not describe with an error
/// object (empty or garbled stdout): the Go reference's "internal" code.
pub const UNTYPED_FAILURE: u32 = code::INTERNAL;

/// Finds `name` in `dirs`: the first regular, executable file. A name with
/// a path separator is refused before any lookup; `field` names where the
/// name came from (`type`, `ipam.type`) in that error.
pub fn find(field: &str, name: &str, dirs: &[PathBuf]) -> Result<PathBuf, Error> {
    validate::plugin_type(field, name)?;
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

/// One plugin execution.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The binary.
    pub plugin: &'a Path,
    /// Its config.
    pub stdin: &'a [u8],
    /// Variables added to (or replacing) the inherited environment.
    pub env: &'a [(String, String)],
    /// SIGKILL the plugin when it runs longer than this.
    pub timeout: Option<Duration>,
    /// The plugin dies when its caller dies (a delegate of a plugin the
    /// runtime killed must not go on writing state).
    pub die_with_parent: bool,
    /// A network namespace to enter between fork and exec (a runtime
    /// that lives in another namespace than its caller: tests).
    pub netns: Option<RawFd>,
}

impl<'a> Request<'a> {
    /// `plugin` with `stdin` and `env`, no deadline, dying with its caller.
    pub fn new(plugin: &'a Path, stdin: &'a [u8], env: &'a [(String, String)]) -> Request<'a> {
        Request { plugin, stdin, env, timeout: None, die_with_parent: true, netns: None }
    }
}

/// What one execution produced.
#[derive(Debug)]
pub struct Output {
    /// How the process ended.
    pub status: ExitStatus,
    /// Its stdout, at most [`MAX_STDOUT`] bytes.
    pub stdout: Vec<u8>,
    /// Its stderr, at most [`MAX_STDERR`] bytes.
    pub stderr: Vec<u8>,
    /// Whether stdout held more than [`MAX_STDOUT`].
    pub stdout_overflow: bool,
    /// Whether the deadline killed it.
    pub timed_out: bool,
    /// From spawn to reaped.
    pub wall: Duration,
    /// Its peak resident set in KiB (the kernel's `ru_maxrss` after
    /// `wait4`), which the bench reports.
    pub max_rss_kib: u64,
}

impl Output {
    /// The plugin's stdout after a zero exit; any other end is the
    /// plugin's error object or one that says what happened. The plugin's
    /// stderr is forwarded to ours, each line tagged with its name.
    pub fn into_stdout(self, req: &Request) -> Result<Vec<u8>, Error> {
        let plugin = req.plugin;
        forward_stderr(plugin, &self.stderr);
        if self.timed_out {
            let limit = req.timeout.unwrap_or_default();
            return Err(Error::io(format!("plugin {} timed out after {limit:?} and was killed", plugin.display())));
        }
        if self.stdout_overflow {
            return Err(Error::decode(format!("plugin {} printed more than {MAX_STDOUT} bytes", plugin.display())));
        }
        if !self.status.success() {
            return Err(plugin_error(&describe_exit(&self.status), &self.stdout, &self.stderr));
        }
        Ok(self.stdout)
    }
}

/// Runs the plugin and collects what it printed; `Err` only when it could
/// not be started (after the `ETXTBSY` retries).
pub fn run(req: &Request) -> std::io::Result<Output> {
    spawn(req)?.wait()
}

/// Runs the plugin; see [`Output::into_stdout`].
pub fn run_plugin(req: &Request) -> Result<Vec<u8>, Error> {
    run(req).map_err(|e| Error::io(format!("failed to exec plugin {}: {e}", req.plugin.display())))?.into_stdout(req)
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
pub fn parse_result(stdout: &[u8], version: Version) -> Result<CniResult, Error> {
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

/// How a process ended, in Go's `exec.ExitError` wording.
fn describe_exit(status: &ExitStatus) -> String {
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

/// Reaps `pid` (our own child, which std's `Child` never waits for) and
/// returns its status and peak resident set in KiB.
fn wait4(pid: libc::pid_t) -> std::io::Result<(ExitStatus, u64)> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: wait4 writes only into the two locals we own.
        let (rc, usage) = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            let rc = libc::wait4(pid, &mut status, 0, &mut usage);
            (rc, usage)
        };
        if rc == pid {
            return Ok((ExitStatus::from_raw(status), u64::try_from(usage.ru_maxrss).unwrap_or(0)));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Blocks until `pid` has exited without reaping it, so the pid cannot be
/// reused while the deadline's watchdog may still signal it.
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

/// The read end of a pipe that already holds all of `input` and whose write
/// end is closed, when `input` fits in the pipe's buffer (the usual
/// config: a few KiB); `None` when it does not, and a thread feeds it.
fn prefilled_stdin(input: &[u8]) -> std::io::Result<Option<OwnedFd>> {
    if input.len() > 64 * 1024 {
        return Ok(None);
    }
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2(2) returns.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // A user over its pipe quota gets one-page pipes: the write could block.
    // SAFETY: F_GETPIPE_SZ takes no argument and only reads the pipe's size.
    let capacity = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
    if capacity < 0 || input.len() > capacity as usize {
        return Ok(None);
    }
    // An empty pipe with room for all of it: the write does not block.
    std::fs::File::from(write).write_all(input)?;
    Ok(Some(read))
}

/// Set (and signalled) once the plugin has exited, which stops the
/// deadline's watchdog.
type Done = (Mutex<bool>, Condvar);

/// A plugin that [`spawn`] started and nobody has waited for yet. Its
/// stdin is fed and its stderr drained by threads of their own, and the
/// deadline (if any) runs from the spawn, so the caller may do other work
/// meanwhile (a plugin overlapping its IPAM delegate with its link work)
/// and collect the result with [`Running::wait`]. Dropped without a wait,
/// the plugin is killed and reaped: it never outlives this value as a
/// zombie or as an orphan still acting.
pub struct Running {
    pid: libc::pid_t,
    plugin: PathBuf,
    timeout: Option<Duration>,
    stdout: Option<std::process::ChildStdout>,
    stdin: Option<std::thread::JoinHandle<()>>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    watchdog: Option<(Arc<Done>, std::thread::JoinHandle<()>)>,
    timed_out: Arc<AtomicBool>,
    started: Instant,
    spawned_ns: u64,
    reaped: bool,
}

/// Starts the plugin (with the `ETXTBSY` retries of [`run`]) and returns
/// at once; `Err` only when it could not be started. The exec happens in
/// the calling thread, which must outlive the plugin when
/// `die_with_parent` is set (the kernel's parent-death signal follows the
/// thread that forked): wait for it from the same thread.
pub fn spawn(req: &Request) -> std::io::Result<Running> {
    let mut attempt = 0;
    loop {
        match spawn_once(req) {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < TEXT_BUSY_RETRIES => {
                log::debug!("{}: text file busy, retrying", req.plugin.display());
                std::thread::sleep(Duration::from_millis(20 << attempt));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// [`spawn`] with the error as [`run_plugin`] words it; finish with
/// [`Running::wait_plugin`].
pub fn spawn_plugin(req: &Request) -> Result<Running, Error> {
    spawn(req).map_err(|e| Error::io(format!("failed to exec plugin {}: {e}", req.plugin.display())))
}

fn spawn_once(req: &Request) -> std::io::Result<Running> {
    let mut cmd = Command::new(req.plugin);
    // Our identity, which an IPAM delegate checks before it writes (see
    // `cni::caller`); never a stale one inherited from our own caller.
    match cni::caller::Identity::current() {
        Some(me) => cmd.env(cni::caller::CALLER_ENV, me.to_env()),
        None => cmd.env_remove(cni::caller::CALLER_ENV),
    };
    // A config that fits in a pipe is written before the spawn: the plugin
    // reads it at once, with no feeding thread to start and schedule.
    let prefilled = prefilled_stdin(req.stdin)?;
    let stdin_is_fed = prefilled.is_some();
    cmd.envs(req.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(prefilled.map_or_else(Stdio::piped, Stdio::from))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (die_with_parent, netns) = (req.die_with_parent, req.netns);
    // SAFETY: prctl(2) and setns(2) are async-signal-safe and touch only
    // the child; `netns` stays open in the caller until the exec is done
    // (`spawn` returns after it).
    unsafe {
        cmd.pre_exec(move || {
            if die_with_parent && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = netns {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let spawned_ns = if phases::enabled() { phases::now_ns() } else { 0 };
    let mut child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut cerr = child.stderr.take().expect("stderr is piped");
    let timed_out = Arc::new(AtomicBool::new(false));
    let stdin = match child.stdin.take() {
        Some(mut cin) if !stdin_is_fed => {
            let input = req.stdin.to_vec();
            // A plugin may exit without reading stdin (EPIPE): not our error.
            Some(std::thread::spawn(move || drop(cin.write_all(&input))))
        }
        _ => None,
    };
    let stderr = std::thread::spawn(move || read_capped(&mut cerr, MAX_STDERR).0);
    let watchdog = req.timeout.map(|limit| {
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let (d, t) = (Arc::clone(&done), Arc::clone(&timed_out));
        let thread = std::thread::spawn(move || {
            let guard = d.0.lock().unwrap_or_else(|p| p.into_inner());
            let (guard, _) = d.1.wait_timeout_while(guard, limit, |d| !*d).unwrap_or_else(|p| p.into_inner());
            if !*guard {
                t.store(true, Ordering::SeqCst);
                // SAFETY: plain kill(2); the child is not reaped before `done` is set.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        (done, thread)
    });
    Ok(Running {
        pid,
        plugin: req.plugin.to_path_buf(),
        timeout: req.timeout,
        stdout: Some(stdout),
        stdin,
        stderr: Some(stderr),
        watchdog,
        timed_out,
        started,
        spawned_ns,
        reaped: false,
    })
}

impl Running {
    /// The plugin's process id.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Reads its stdout to the end, waits for it to exit and reaps it.
    pub fn wait(mut self) -> std::io::Result<Output> {
        self.collect()
    }

    /// [`Running::wait`], then [`Output::into_stdout`].
    pub fn wait_plugin(self) -> Result<Vec<u8>, Error> {
        let (plugin, timeout) = (self.plugin.clone(), self.timeout);
        let req = Request { timeout, ..Request::new(&plugin, b"", &[]) };
        self.wait()
            .map_err(|e| Error::io(format!("failed to exec plugin {}: {e}", plugin.display())))?
            .into_stdout(&req)
    }

    fn collect(&mut self) -> std::io::Result<Output> {
        let waiting_ns = if self.spawned_ns != 0 { phases::now_ns() } else { 0 };
        let (stdout, stdout_overflow) = match self.stdout.take() {
            Some(mut out) => read_capped(&mut out, MAX_STDOUT),
            None => (Vec::new(), false),
        };
        if let Some((done, thread)) = self.watchdog.take() {
            wait_exited_keep_zombie(self.pid);
            *done.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
            done.1.notify_all();
            let _ = thread.join();
        }
        let stderr = self.stderr.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default();
        if let Some(t) = self.stdin.take() {
            let _ = t.join();
        }
        let (status, max_rss_kib) = wait4(self.pid)?;
        self.reaped = true;
        let wall = self.started.elapsed();
        if self.spawned_ns != 0 {
            let name = self.plugin.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
            let (end, detail) = (phases::now_ns(), format!("{} {name}", self.pid));
            phases::record("exec", self.spawned_ns, end, &detail);
            // The part of it the caller spent waiting (the rest overlapped
            // the caller's own work).
            phases::record("exec-wait", waiting_ns, end, &detail);
        }
        // A kill that raced a plugin already exiting on its own is no timeout.
        let timed_out = self.timed_out.load(Ordering::SeqCst) && status.signal() == Some(libc::SIGKILL);
        Ok(Output { status, stdout, stderr, stdout_overflow, timed_out, wall, max_rss_kib })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: plain kill(2) of our own child, not reaped yet.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.collect();
        }
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
        assert_eq!(find("type", "p", &dirs).unwrap(), want);
        assert_eq!(find("type", "../p", &dirs).unwrap_err().code, 7);
        let e = find("ipam.type", "a/p", &dirs).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("ipam.type"), "{e}");
        assert_eq!(find("type", "p", &[]).unwrap_err().code, 4);
        let e = find("type", "q", &dirs).unwrap_err();
        assert!(e.msg.starts_with("failed to find plugin \"q\" in path ["), "{e}");
        fs::create_dir(a.path().join("d")).unwrap();
        assert!(find("type", "d", &dirs[..1]).is_err());
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
    fn env_stdin_and_failures() {
        let d = tempfile::tempdir().unwrap();
        let ok = script(d.path(), "ok", "read -r line; printf '%s|%s' \"$CNI_COMMAND\" \"$line\"; echo log >&2");
        let env = vec![("CNI_COMMAND".to_string(), "ADD".to_string())];
        assert_eq!(run_plugin(&Request::new(&ok, b"{\"a\":1}\n", &env)).unwrap(), b"ADD|{\"a\":1}");

        let fail = script(d.path(), "fail", r#"echo '{"code": 11, "msg": "try later"}'; exit 1"#);
        let e = run_plugin(&Request::new(&fail, b"{}", &env)).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (11, "try later"));

        let quiet = script(d.path(), "quiet", "echo oops >&2; exit 3");
        let e = run_plugin(&Request::new(&quiet, b"{}", &env)).unwrap_err();
        assert_eq!(e.msg, "netplugin failed: \"oops\": exit status 3");

        // A plugin that ignores a large stdin must not deadlock us.
        let big = vec![b' '; 512 << 10];
        assert!(run_plugin(&Request::new(&quiet, &big, &env)).is_err());
        assert_eq!(run_plugin(&Request::new(&ok, &big, &env)).unwrap(), b"ADD|");

        let huge = script(d.path(), "huge", "head -c 5000000 /dev/zero");
        assert_eq!(run_plugin(&Request::new(&huge, b"", &env)).unwrap_err().code, 6);
    }

    #[test]
    fn a_config_that_fits_in_a_pipe_is_there_before_the_plugin_starts() {
        let d = tempfile::tempdir().unwrap();
        let count = script(d.path(), "count", "wc -c | tr -d ' \\n'");
        let env = vec![("CNI_COMMAND".to_string(), "ADD".to_string())];
        for len in [0, 1, 4096, 60 << 10, 64 << 10, (64 << 10) + 1, 300 << 10] {
            let input = vec![b'x'; len];
            let fed = prefilled_stdin(&input).unwrap().is_some();
            assert_eq!(fed, len <= 64 << 10, "{len} bytes");
            assert_eq!(run_plugin(&Request::new(&count, &input, &env)).unwrap(), len.to_string().as_bytes());
        }
    }

    #[test]
    fn spawn_runs_beside_the_caller_and_wait_collects() {
        let d = tempfile::tempdir().unwrap();
        let go = d.path().join("go");
        // The plugin waits for a file that the caller writes only after
        // spawn returned: a spawn that waited for the plugin would end in
        // the deadline's kill.
        let body = format!("read -r line; while [ ! -e {} ]; do sleep 0.01; done; printf '%s' \"$line\"", go.display());
        let waiting = script(d.path(), "waiting", &body);
        let req = Request { timeout: Some(Duration::from_secs(20)), ..Request::new(&waiting, b"hello\n", &[]) };
        let running = spawn_plugin(&req).unwrap();
        fs::write(&go, "").unwrap();
        assert_eq!(running.wait_plugin().unwrap(), b"hello");
        let fail = script(d.path(), "fail", r#"echo '{"code": 11, "msg": "try later"}'; exit 1"#);
        let e = spawn_plugin(&Request::new(&fail, b"{}", &[])).unwrap().wait_plugin().unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (11, "try later"));
        let slow = script(d.path(), "slow", "exec sleep 30");
        let req = Request { timeout: Some(Duration::from_millis(200)), ..Request::new(&slow, b"", &[]) };
        let e = spawn_plugin(&req).unwrap().wait_plugin().unwrap_err();
        assert!(e.msg.contains("timed out"), "{e}");
    }

    #[test]
    fn a_dropped_running_plugin_is_killed_and_reaped() {
        let d = tempfile::tempdir().unwrap();
        let slow = script(d.path(), "slow", "exec sleep 30");
        let running = spawn(&Request::new(&slow, b"", &[])).unwrap();
        let pid = running.pid();
        drop(running);
        // Reaped: no such process any more (not even a zombie).
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn timeout_kills() {
        let d = tempfile::tempdir().unwrap();
        let slow = script(d.path(), "slow", "exec sleep 30");
        let req = Request { timeout: Some(Duration::from_millis(200)), ..Request::new(&slow, b"{}", &[]) };
        let e = run_plugin(&req).unwrap_err();
        assert!(e.msg.contains("timed out"), "{e}");
        let fast = script(d.path(), "fast", "echo '{}'");
        let req = Request { timeout: Some(Duration::from_millis(2000)), ..Request::new(&fast, b"{}", &[]) };
        assert_eq!(run_plugin(&req).unwrap(), b"{}\n");
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
        let out = run_plugin(&Request::new(&p, b"", &[])).unwrap();
        // It ran only after the writer closed, so at least one retry happened.
        assert!(started.elapsed() >= Duration::from_millis(100));
        closer.join().unwrap();
        assert_eq!(out, b"done\n");
    }
}
