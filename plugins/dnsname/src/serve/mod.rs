//! `dnsname serve <network dir>`: the name server of one network, in the
//! host's namespace, on UDP and TCP port 53 of the network's gateway
//! addresses only. Started detached by the first ADD (own session, stdio
//! closed, stderr to `server.log`), it binds, loads every record, then
//! says "ready" on the pipe the ADD waits on. Record changes arrive over
//! its control socket (`update <file>` from ADD/DEL, `reload` from GC and
//! SIGHUP): the zone is swapped under a lock, the sockets stay open
//! (`status` answers its state as JSON, for `dnsname status <dir>`). When
//! the last record is gone it answers "bye" and exits. One server per
//! network: it holds an flock on `server.pid` while it runs.

mod answer;
mod sockets;
mod upstream;
pub mod zone;

use crate::store::NetDir;
use answer::Reply;
use hickory_proto::op::{Message, ResponseCode};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use upstream::Upstreams;
use zone::Zone;

/// The variable naming the fd the server writes "ready" (or an error) to.
pub const READY_FD_ENV: &str = "DNSNAME_READY_FD";
/// TCP connections served at once; more are closed at accept.
const MAX_TCP: usize = 64;
/// How long a TCP client may stay silent, and how long one connection may last.
const TCP_IDLE: Duration = Duration::from_secs(2);
/// See [`TCP_IDLE`].
const TCP_LIFETIME: Duration = Duration::from_secs(10);
/// Forwarded queries in flight at once; more get SERVFAIL.
const MAX_FORWARDS: usize = 256;

struct Shared {
    zone: RwLock<Zone>,
    upstreams: Upstreams,
    tcp_conns: AtomicUsize,
    forwards: AtomicUsize,
    /// The listening sockets' fds, closed by [`stop_listening`].
    listeners: Vec<i32>,
    /// Set when the server stops: the socket threads return.
    stopping: AtomicBool,
}

/// Counts one more user of `c` unless `max` are already counted; the
/// thread doing the work then holds a [`Slot`] that counts it down.
fn acquire(c: &AtomicUsize, max: usize) -> bool {
    if c.fetch_add(1, Ordering::SeqCst) >= max {
        c.fetch_sub(1, Ordering::SeqCst);
        return false;
    }
    true
}

/// One counted user (see [`acquire`]), released on drop.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs the server; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    cni::skel::init_logging();
    let Some(dir) = args.first() else {
        eprintln!("usage: dnsname serve <network records dir>");
        return 2;
    };
    let mut ready = std::env::var(READY_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        // SAFETY: the fd was handed to us by the ADD that spawned us.
        .map(|fd| unsafe { File::from_raw_fd(fd) });
    std::env::remove_var(READY_FD_ENV);
    let net = NetDir { dir: PathBuf::from(dir) };
    match start(&net) {
        Ok(run) => {
            if let Some(mut r) = ready.take() {
                let _ = r.write_all(b"ready\n");
            }
            run();
            0
        }
        Err(e) => {
            log::error!("{e}");
            if let Some(mut r) = ready.take() {
                let _ = writeln!(r, "error: {e}");
            }
            1
        }
    }
}

/// Takes the PID file lock (waiting up to 2 s for a server that is
/// exiting), and writes our pid.
fn pid_lock(net: &NetDir) -> Result<File, String> {
    let path = net.pid_file();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    let deadline = Instant::now() + Duration::from_secs(2);
    // SAFETY: flock on a file we own.
    while unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        if Instant::now() >= deadline {
            let mut other = String::new();
            let _ = f.read_to_string(&mut other);
            return Err(format!("a dnsname server for this network already runs (pid {})", other.trim()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f.set_len(0).map_err(|e| e.to_string())?;
    writeln!(f, "{}", std::process::id()).map_err(|e| e.to_string())?;
    Ok(f)
}

type Run = Box<dyn FnOnce()>;

/// The lowest fd number the PID file lock is moved to.
const PID_FD_MIN: i32 = 200;
/// The lowest fd number the inotify fd is moved to (above the lock).
const INOTIFY_FD_MIN: i32 = 300;

/// `f` duplicated to the lowest free fd ≥ `min` (the original closed);
/// `f` itself when that fails.
fn raise_fd(f: File, min: i32) -> File {
    // SAFETY: fcntl on a valid fd; the new fd is owned by the File made from it.
    let fd = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if fd < 0 {
        return f;
    }
    // SAFETY: fd was just made and nothing else owns it.
    unsafe { File::from_raw_fd(fd) }
}

fn start(net: &NetDir) -> Result<Run, String> {
    let conf = net.load_server_conf().map_err(|e| e.msg)?;
    block_signals();
    let pid_file = pid_lock(net)?;
    if conf.gateways.is_empty() {
        return Err(format!("network {}: no gateway address to listen on", conf.network));
    }
    let mut udps = Vec::new();
    let mut tcps = Vec::new();
    for gw in &conf.gateways {
        udps.push(sockets::udp(*gw)?);
        tcps.push(sockets::tcp(*gw)?);
    }
    // Watched before the records are read, so no change falls in between.
    let watcher = watch(&net.records()).map(|f| raise_fd(f, INOTIFY_FD_MIN));
    let mut zone = Zone::new(&conf.domain, conf.subnets.clone());
    zone.replace_all(net.all().map_err(|e| e.msg)?);
    if zone.is_empty() {
        return Err(format!("network {}: no records to serve", conf.network));
    }
    let sock_path = net.socket();
    let _ = std::fs::remove_file(&sock_path);
    let ctl = UnixListener::bind(&sock_path).map_err(|e| format!("binding {}: {e}", sock_path.display()))?;
    std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
    log::info!(
        "serving network {} on {:?} port 53 ({} names, domain {}); upstreams from {}",
        conf.network,
        conf.gateways,
        zone.name_count(),
        conf.domain,
        conf.resolv_conf.display()
    );
    let shared = Arc::new(Shared {
        zone: RwLock::new(zone),
        upstreams: Upstreams::new(conf.resolv_conf.clone(), conf.gateways.clone()),
        tcp_conns: AtomicUsize::new(0),
        forwards: AtomicUsize::new(0),
        listeners: udps.iter().map(|u| u.as_raw_fd()).chain(tcps.iter().map(|t| t.as_raw_fd())).collect(),
        stopping: AtomicBool::new(false),
    });
    for u in udps {
        let s = shared.clone();
        std::thread::spawn(move || serve_udp(&s, u));
    }
    for t in tcps {
        let s = shared.clone();
        std::thread::spawn(move || serve_tcp(&s, t));
    }
    {
        let (s, n) = (shared.clone(), net.clone());
        std::thread::spawn(move || signals(&s, &n));
    }
    // When killed, the kernel closes fds in increasing order: the sockets,
    // then the PID file lock, then the inotify fd.
    let pid_file = raise_fd(pid_file, PID_FD_MIN);
    match watcher {
        Ok(fd) => {
            let (s, n) = (shared.clone(), net.clone());
            std::thread::spawn(move || watch_records(&s, &n, fd));
        }
        Err(e) => log::warn!("not watching {}: {e}", net.records().display()),
    }
    let net = net.clone();
    Ok(Box::new(move || {
        control(&shared, &net, ctl, &pid_file);
        drop(pid_file);
    }))
}

fn block_signals() {
    // SAFETY: building a signal set and masking it for this thread and
    // the threads it spawns; the signal thread takes them with sigwait.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGHUP, libc::SIGTERM, libc::SIGINT, libc::SIGPIPE] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// SIGHUP: reload every record; SIGTERM/SIGINT: remove the control
/// socket and exit (the records stay; the next ADD or CHECK restarts us).
fn signals(shared: &Shared, net: &NetDir) {
    loop {
        let mut sig = 0;
        // SAFETY: waiting on the set blocked in block_signals.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [libc::SIGHUP, libc::SIGTERM, libc::SIGINT, libc::SIGPIPE] {
                libc::sigaddset(&mut set, s);
            }
            libc::sigwait(&set, &mut sig);
        }
        match sig {
            libc::SIGHUP => {
                reload(shared, net);
            }
            libc::SIGTERM | libc::SIGINT => {
                log::info!("stopping on signal {sig}");
                let _ = std::fs::remove_file(net.socket());
                std::process::exit(0);
            }
            _ => {}
        }
    }
}

/// An inotify fd watching the records directory for files written
/// (renamed in) or removed.
fn watch(dir: &std::path::Path) -> std::io::Result<File> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: inotify_init1 returns a new fd or -1.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is new and ours.
    let f = unsafe { File::from_raw_fd(fd) };
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let mask = libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO | libc::IN_MOVED_FROM | libc::IN_DELETE | libc::IN_DONT_FOLLOW;
    // SAFETY: a valid fd and C string.
    if unsafe { libc::inotify_add_watch(fd, path.as_ptr(), mask) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}

/// Applies changes made to the records directory by anyone (an operator,
/// a tool): the plugin's own changes also come over the control socket,
/// which is what makes a name resolvable the moment ADD returns.
fn watch_records(shared: &Shared, net: &NetDir, mut fd: File) {
    const HEAD: usize = std::mem::size_of::<libc::inotify_event>();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match fd.read(&mut buf) {
            Ok(n) if n >= HEAD => n,
            Ok(_) => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let mut off = 0;
        while off + HEAD <= n {
            // SAFETY: the kernel wrote whole events; read_unaligned copes with any offset.
            let ev: libc::inotify_event = unsafe { std::ptr::read_unaligned(buf[off..].as_ptr() as *const _) };
            let name_bytes = &buf[off + HEAD..(off + HEAD + ev.len as usize).min(n)];
            off += HEAD + ev.len as usize;
            if ev.mask & libc::IN_IGNORED != 0 {
                // The directory itself went away (after the last record).
                return;
            }
            let name = String::from_utf8_lossy(name_bytes).trim_end_matches('\0').to_string();
            if !crate::store::is_record_file(&name) {
                continue;
            }
            let mut z = shared.zone.write().unwrap_or_else(|e| e.into_inner());
            let rec = net.load_file(&name);
            log::debug!("inotify: {name} {}", if rec.is_some() { "written" } else { "removed" });
            z.set(&name, rec);
        }
    }
}

fn reload(shared: &Shared, net: &NetDir) -> bool {
    let mut z = shared.zone.write().unwrap_or_else(|e| e.into_inner());
    match net.all() {
        Ok(all) => z.replace_all(all),
        Err(e) => log::warn!("reload: {e}"),
    }
    log::info!("reloaded: {} names", z.name_count());
    z.is_empty()
}

/// The control socket: one line per connection, one line back.
/// Closes the listening sockets now, whichever thread waits on them:
/// shutdown wakes a blocked `recvfrom`/`accept` (a TCP listener stops
/// listening at once), and the fd is replaced by /dev/null, so the socket
/// goes as soon as that call returns, even while a forwarding thread still
/// holds the number. The socket threads see `stopping` and return.
fn stop_listening(shared: &Shared) {
    shared.stopping.store(true, Ordering::SeqCst);
    let devnull = File::open("/dev/null").ok();
    for fd in &shared.listeners {
        // SAFETY: fds of our own listening sockets; dup2 swaps the table
        // entry atomically, so the number never names another file.
        unsafe {
            libc::shutdown(*fd, libc::SHUT_RDWR);
            if let Some(n) = &devnull {
                libc::dup2(n.as_raw_fd(), *fd);
            }
        }
    }
}

fn control(shared: &Shared, net: &NetDir, ctl: UnixListener, pid_file: &File) {
    for conn in ctl.incoming() {
        let Ok(conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
        let mut line = String::new();
        if BufReader::new((&conn).take(4096)).read_line(&mut line).is_err() {
            continue;
        }
        let empty = match line.trim_end().split_once(' ') {
            None if line.trim_end() == "ping" => {
                let _ = writeln!(&conn, "ok {}", std::process::id());
                continue;
            }
            None if line.trim_end() == "status" => {
                let z = shared.zone.read().unwrap_or_else(|e| e.into_inner());
                let status = serde_json::json!({
                    "running": true,
                    "pid": std::process::id(),
                    "dir": net.dir.display().to_string(),
                    "records": z.record_count(),
                    "names": z.name_count(),
                    "tcpConnections": shared.tcp_conns.load(Ordering::SeqCst),
                    "forwardsInFlight": shared.forwards.load(Ordering::SeqCst),
                });
                let _ = writeln!(&conn, "{status}");
                continue;
            }
            None if line.trim_end() == "reload" => reload(shared, net),
            Some(("update", file)) if crate::store::is_record_file(file) && !file.contains('/') => {
                let mut z = shared.zone.write().unwrap_or_else(|e| e.into_inner());
                // Read under the lock, so the last update applied is the newest state.
                let rec = net.load_file(file);
                log::info!("{} {file}", if rec.is_some() { "record" } else { "removed" });
                z.set(file, rec);
                z.is_empty()
            }
            _ => {
                let _ = writeln!(&conn, "error: unknown request");
                continue;
            }
        };
        if empty {
            log::info!("last record gone: exiting");
            // In this order: no socket listens once DEL sees the PID file
            // unlocked (the rest of the exit, the kernel's inotify teardown
            // among it, takes ~20 ms that nobody needs to wait for).
            let _ = std::fs::remove_file(net.socket());
            stop_listening(shared);
            // SAFETY: unlocking our own lock file.
            unsafe { libc::flock(pid_file.as_raw_fd(), libc::LOCK_UN) };
            let _ = writeln!(&conn, "bye");
            std::process::exit(0);
        }
        let _ = writeln!(&conn, "ok");
    }
}

fn allowed(shared: &Shared, ip: &IpAddr) -> bool {
    shared.zone.read().unwrap_or_else(|e| e.into_inner()).on_network(ip)
}

/// Answers one query; `None` means forward it.
fn local(shared: &Shared, req: &Message) -> Option<Message> {
    let z = shared.zone.read().unwrap_or_else(|e| e.into_inner());
    match answer::respond(&z, req) {
        Reply::Answer(m) => Some(*m),
        Reply::Forward => None,
    }
}

fn serve_udp(shared: &Arc<Shared>, sock: UdpSocket) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 4096];
    loop {
        let got = sock.recv_from(&mut buf);
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok((n, from)) = got else { continue };
        if !allowed(shared, &from.ip()) {
            continue;
        }
        // Malformed packets are dropped; the loop goes on.
        let Ok(req) = Message::from_vec(&buf[..n]) else { continue };
        if let Some(m) = local(shared, &req) {
            if let Some(bytes) = answer::encode(&m, answer::udp_limit(&req)) {
                let _ = sock.send_to(&bytes, from);
            }
            continue;
        }
        if !acquire(&shared.forwards, MAX_FORWARDS) {
            if let Some(b) = answer::encode(&answer::error(&req, ResponseCode::ServFail), answer::UDP_PLAIN_MAX) {
                let _ = sock.send_to(&b, from);
            }
            continue;
        }
        let (s, sock, query) = (shared.clone(), sock.clone(), buf[..n].to_vec());
        std::thread::spawn(move || {
            let _slot = Slot(&s.forwards);
            let reply = s
                .upstreams
                .forward(&query, false)
                .or_else(|| answer::encode(&answer::error(&req, ResponseCode::ServFail), answer::UDP_PLAIN_MAX));
            if let Some(r) = reply {
                let _ = sock.send_to(&r, from);
            }
        });
    }
}

fn serve_tcp(shared: &Arc<Shared>, listener: TcpListener) {
    for conn in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else {
            // Out of fds or memory: wait a little instead of spinning.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let Ok(peer) = conn.peer_addr() else { continue };
        if !allowed(shared, &peer.ip()) {
            continue;
        }
        let s = shared.clone();
        if !acquire(&s.tcp_conns, MAX_TCP) {
            log::warn!("{MAX_TCP} TCP connections open: closing the one from {peer}");
            continue;
        }
        std::thread::spawn(move || {
            let _slot = Slot(&s.tcp_conns);
            tcp_conn(&s, conn, peer);
        });
    }
}

/// Serves queries on one connection until the client closes it, stays
/// silent for [`TCP_IDLE`], sends a bad frame, or [`TCP_LIFETIME`] ends.
fn tcp_conn(shared: &Shared, mut conn: TcpStream, peer: SocketAddr) {
    let end = Instant::now() + TCP_LIFETIME;
    let _ = conn.set_write_timeout(Some(TCP_IDLE));
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() || conn.set_read_timeout(Some(left.min(TCP_IDLE))).is_err() {
            return;
        }
        let mut len = [0u8; 2];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        if conn.read_exact(&mut msg).is_err() {
            return;
        }
        let Ok(req) = Message::from_vec(&msg) else {
            log::debug!("malformed query over TCP from {peer}");
            return;
        };
        let reply = match local(shared, &req) {
            Some(m) => answer::encode(&m, u16::MAX as usize),
            None => shared
                .upstreams
                .forward(&msg, true)
                .or_else(|| answer::encode(&answer::error(&req, ResponseCode::ServFail), u16::MAX as usize)),
        };
        let Some(r) = reply else { return };
        let mut framed = (r.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&r);
        if conn.write_all(&framed).is_err() {
            return;
        }
    }
}

/// `dnsname status <network dir>`: the running server's state as JSON on
/// stdout (exit 0), or `{"running": false}` (exit 1).
pub fn status_main(args: &[String]) -> i32 {
    let Some(dir) = args.first() else {
        eprintln!("usage: dnsname status <network records dir>");
        return 2;
    };
    let net = NetDir { dir: PathBuf::from(dir) };
    match request(&net, "status") {
        Ok(Some(line)) => {
            println!("{line}");
            0
        }
        Ok(None) => {
            println!("{}", serde_json::json!({"running": false, "dir": dir}));
            1
        }
        Err(e) => {
            println!("{}", serde_json::json!({"running": false, "dir": dir, "error": e.to_string()}));
            1
        }
    }
}

/// Client side of the control socket: sends one line, returns the reply
/// line, or `None` when no server listens (no socket, or refused).
pub fn request(net: &NetDir, line: &str) -> Result<Option<String>, std::io::Error> {
    let conn = match UnixStream::connect(net.socket()) {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    writeln!(&conn, "{line}")?;
    let mut reply = String::new();
    BufReader::new(&conn).read_line(&mut reply)?;
    if reply.is_empty() {
        // Accepted, then gone: the server died while answering.
        return Ok(None);
    }
    Ok(Some(reply.trim_end().to_string()))
}
