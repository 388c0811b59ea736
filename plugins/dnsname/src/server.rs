//! The plugin's side of the network's server: tell it a record changed,
//! start it when it is not running (and wait until it answers), wait for
//! it to be gone after its last record. The caller holds the network lock.

use crate::serve;
use crate::store::NetDir;
use cni::Error;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long an ADD waits for a new server to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long DEL waits for a server that said "bye" to be gone.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// What the server said to a change.
#[derive(Debug, PartialEq, Eq)]
pub enum Told {
    /// It applied it and runs on.
    Applied,
    /// It had no record left and exited.
    Stopped,
    /// No server runs.
    NotRunning,
}

fn server_error(net: &NetDir, what: String) -> Error {
    Error::plugin(format!("dnsname: the name server of {}: {what}", net.dir.display()))
}

/// Sends `line` (`update <file>` or `reload`) to the running server.
pub fn tell(net: &NetDir, line: &str) -> Result<Told, Error> {
    match serve::request(net, line) {
        Ok(None) => Ok(Told::NotRunning),
        Ok(Some(r)) if r == "ok" => Ok(Told::Applied),
        Ok(Some(r)) if r == "bye" => {
            wait_gone(net);
            Ok(Told::Stopped)
        }
        Ok(Some(r)) => Err(server_error(net, format!("unexpected reply {r:?}"))),
        Err(e) => Err(server_error(net, format!("no reply: {e}"))),
    }
}

/// Whether a server answers on the control socket.
pub fn alive(net: &NetDir) -> Result<bool, Error> {
    match serve::request(net, "ping") {
        Ok(r) => Ok(r.is_some_and(|r| r.starts_with("ok"))),
        Err(e) => Err(server_error(net, format!("no reply: {e}"))),
    }
}

/// Waits until no process holds the PID file lock (the server is gone).
fn wait_gone(net: &NetDir) {
    let Ok(f) = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(net.pid_file()) else {
        return;
    };
    let end = Instant::now() + STOP_TIMEOUT;
    // SAFETY: flock on a file we opened.
    while unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        if Instant::now() >= end {
            log::warn!("dnsname: the server of {} said bye but still runs", net.dir.display());
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts `dnsname serve <dir>` detached (own session, stdio closed,
/// stderr to `server.log`) and waits until it says it is ready (its
/// sockets bound and every record loaded) or why it could not start.
pub fn start(net: &NetDir) -> Result<(), Error> {
    let exe = std::env::current_exe().map_err(|e| server_error(net, format!("finding our own binary: {e}")))?;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds, owned right after.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(server_error(net, format!("pipe: {}", std::io::Error::last_os_error())));
    }
    // SAFETY: both fds were just created and are ours.
    let (mut ready, write) = unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(net.log_file())
        .map_err(|e| server_error(net, format!("opening {}: {e}", net.log_file().display())))?;
    let wfd = write.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .arg(&net.dir)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .env(serve::READY_FD_ENV, wfd.to_string());
    if std::env::var_os("CNI_LOG_LEVEL").is_none() && std::env::var_os("RUST_LOG").is_none() {
        cmd.env("CNI_LOG_LEVEL", "info");
    }
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The server keeps the write end across exec (it is CLOEXEC here).
            if libc::fcntl(wfd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| server_error(net, format!("starting: {e}")))?;
    drop(write);
    let said = read_until_eof(&mut ready, START_TIMEOUT);
    let said = said.trim();
    if said == "ready" {
        return Ok(());
    }
    if said.is_empty() {
        // Silent: it died, or hangs; end it (we started it, by its pid).
        let _ = child.kill();
        let _ = child.wait();
        return Err(server_error(
            net,
            format!("did not start within {START_TIMEOUT:?}; see {}", net.log_file().display()),
        ));
    }
    let _ = child.wait();
    Err(server_error(net, said.strip_prefix("error: ").unwrap_or(said).to_string()))
}

/// Everything written to `f` until its writer closes it, or `timeout`.
fn read_until_eof(f: &mut File, timeout: Duration) -> String {
    let end = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if r < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if r == 0 {
            break;
        }
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > 4096 || out.ends_with(b"ready\n") {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
