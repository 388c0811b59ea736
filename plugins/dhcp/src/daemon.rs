//! `dhcp daemon`: keeps the leases. Listens on a unix socket (mode 0600,
//! or the one systemd passes by socket activation), serves one request per
//! connection on its own thread, keeps one thread per lease, and stores
//! every lease under the state directory so that a restarted daemon goes
//! on renewing (or releases) what it held. SIGTERM/SIGINT stop it without
//! releasing anything (a restart must not cost the containers their
//! addresses); SIGHUP is logged and ignored (nothing to reload).
//!
//! Flags, as the reference's (Go `flag` syntax, `-x v`, `-x=v`, `--x`):
//! `-socketpath`, `-pidfile`, `-hostprefix`, `-timeout` (acquisition
//! deadline), `-broadcast` (accepted: we always ask for broadcast replies
//! while the client has no address), `-resendmax` (the longest wait
//! between two failed renewals, default 62 s as the reference's); ours:
//! `-statedir`.

use crate::client::{self, Params};
use crate::config::DEFAULT_SOCKET;
use crate::lease::{Keeper, Lease};
use crate::proto::{Held, Op, Reply, ReplyError, Request, MAX_LINE};
use crate::record::{now_ms, Record, State};
use crate::store::Store;
use cni::error::code;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The daemon's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opts {
    /// Socket path (the reference's default).
    pub socket: String,
    /// PID file, if any.
    pub pidfile: Option<String>,
    /// Prefix of the host's root (daemon in a container).
    pub host_prefix: String,
    /// Where leases are stored.
    pub state_dir: PathBuf,
    /// Deadline of one acquisition.
    pub timeout: Duration,
    /// Longest wait between two failed renewal attempts.
    pub resend_max: Duration,
}

/// Parses a Go duration such as `10s`, `1m30s`, `500ms`.
fn duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u..];
        total += value * unit;
    }
    // A value beyond what a Duration holds is invalid, not a panic.
    Duration::try_from_secs_f64(total).ok()
}

/// Parses the flags after `daemon`.
pub fn parse(args: &[String]) -> Result<Opts, String> {
    let mut socket = String::new();
    let mut pidfile = None;
    let mut host_prefix = String::new();
    let mut state_dir = None;
    let mut timeout = Duration::from_secs(20);
    let mut resend_max = Duration::from_secs(62);
    let mut i = 0;
    while i < args.len() {
        let a = args[i].trim_start_matches('-');
        if !args[i].starts_with('-') || a.is_empty() {
            return Err(format!("unexpected argument {:?}", args[i]));
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (a, None),
        };
        if name == "broadcast" {
            i += 1;
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                args.get(i).cloned().ok_or_else(|| format!("flag needs an argument: -{name}"))?
            }
        };
        match name {
            "socketpath" => socket = value,
            "pidfile" => pidfile = Some(value).filter(|v| !v.is_empty()),
            "hostprefix" => host_prefix = value,
            "statedir" => state_dir = Some(PathBuf::from(value)),
            "timeout" => timeout = duration(&value).ok_or_else(|| format!("invalid value {value:?} for -timeout"))?,
            "resendmax" => {
                resend_max = duration(&value).ok_or_else(|| format!("invalid value {value:?} for -resendmax"))?
            }
            _ => return Err(format!("flag provided but not defined: -{name}")),
        }
        i += 1;
    }
    if socket.is_empty() {
        socket = DEFAULT_SOCKET.to_string();
    }
    if timeout.is_zero() {
        return Err("-timeout must be positive".into());
    }
    // Beside the socket, so two daemons on two sockets never share leases.
    let state_dir = state_dir.unwrap_or_else(|| PathBuf::from(format!("{host_prefix}{socket}.leases")));
    Ok(Opts { socket, pidfile, host_prefix, state_dir, timeout, resend_max })
}

type Key = (String, String, String);

/// The daemon's state.
struct Daemon {
    opts: Opts,
    store: Store,
    leases: Mutex<HashMap<Key, Arc<Lease>>>,
    /// One mutex per attachment being worked on: an ADD and a DEL (or two
    /// ADDs) of one attachment run one after the other.
    busy: Mutex<HashMap<Key, Arc<Mutex<()>>>>,
}

fn err(code: u32, msg: impl Into<String>) -> Reply {
    Reply { error: Some(ReplyError { code, msg: msg.into(), details: String::new() }), ..Reply::default() }
}

/// The reference's client id: `<container id>/<network>/<ifname>`, at
/// most 254 octets, after the type octet 0.
pub fn client_id(container_id: &str, network: &str, ifname: &str) -> Vec<u8> {
    let mut id = format!("{container_id}/{network}/{ifname}").into_bytes();
    id.truncate(254);
    let mut out = vec![0u8];
    out.extend(id);
    out
}

impl Daemon {
    /// How this daemon keeps a lease.
    fn keeper(&self) -> Keeper {
        Keeper {
            store: self.store.clone(),
            host_prefix: self.opts.host_prefix.clone(),
            retry_max: self.opts.resend_max,
            renew: client::renew,
        }
    }

    fn lookup(&self, key: &Key) -> Option<Arc<Lease>> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    fn handle(&self, req: Request) -> Reply {
        let Some(op) = req.op else { return err(code::DECODE, "request without op") };
        for (what, v) in [("network", &req.network), ("container id", &req.container_id), ("ifname", &req.ifname)] {
            if v.contains('\0') || v.len() > 1024 {
                return err(code::INVALID_CONFIG, format!("invalid {what}"));
            }
        }
        let key = (req.network.clone(), req.container_id.clone(), req.ifname.clone());
        if matches!(op, Op::Add | Op::Del | Op::Check) {
            return self.exclusive(&key, || self.attachment(op, key.clone(), &req));
        }
        match op {
            Op::Gc => {
                let stale: Vec<Key> = self
                    .leases
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .keys()
                    .filter(|k| k.0 == req.network && !req.valid.iter().any(|(c, i)| *c == k.1 && *i == k.2))
                    .cloned()
                    .collect();
                for k in stale {
                    log::info!("{}/{}/{}: not a valid attachment, releasing", k.0, k.1, k.2);
                    self.exclusive(&k, || self.release(&k));
                }
                Reply::default()
            }
            Op::List => {
                let mut leases: Vec<Held> = self
                    .leases
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .values()
                    .map(|l| {
                        let r = l.record();
                        Held {
                            network: r.network.clone(),
                            container_id: r.container_id.clone(),
                            ifname: r.ifname.clone(),
                            netns: r.netns.clone(),
                            renewals: r.renewals,
                            lease: r.view(),
                        }
                    })
                    .collect();
                leases.sort_by(|a, b| {
                    (&a.network, &a.container_id, &a.ifname).cmp(&(&b.network, &b.container_id, &b.ifname))
                });
                Reply { leases, ..Reply::default() }
            }
            _ => Reply::default(),
        }
    }

    /// Runs `f` holding the mutex of attachment `key`.
    fn exclusive<T>(&self, key: &Key, f: impl FnOnce() -> T) -> T {
        let slot = Arc::clone(self.busy.lock().unwrap_or_else(|p| p.into_inner()).entry(key.clone()).or_default());
        let held = slot.lock().unwrap_or_else(|p| p.into_inner());
        let out = f();
        drop(held);
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map and we hold it (nobody waits): forget the slot.
        if Arc::strong_count(&slot) == 2 {
            busy.remove(key);
        }
        out
    }

    /// ADD, DEL or CHECK of one attachment, under its mutex.
    fn attachment(&self, op: Op, key: Key, req: &Request) -> Reply {
        match op {
            Op::Add => self.add(key, req),
            Op::Del => {
                self.release(&key);
                Reply::default()
            }
            _ => match self.lookup(&key) {
                Some(l) => Reply { lease: Some(l.record().view()), ..Reply::default() },
                None => err(
                    code::PLUGIN,
                    format!(
                        "the dhcp daemon holds no lease for container {} interface {} on network {}",
                        req.container_id, req.ifname, req.network
                    ),
                ),
            },
        }
    }

    fn add(&self, key: Key, req: &Request) -> Reply {
        if let Some(l) = self.lookup(&key) {
            let rec = l.record();
            if rec.state != State::Lost && rec.netns == req.netns {
                return Reply { lease: Some(rec.view()), ..Reply::default() };
            }
            // Lost, or the same attachment in another namespace: start over.
            self.release(&key);
        }
        if req.netns.is_empty() {
            return err(code::INVALID_ENV, "CNI_NETNS is required to acquire a lease");
        }
        let mut provide = req.provide.clone();
        let client_id = match provide.iter().position(|(c, _)| *c == 61) {
            Some(i) => provide.remove(i).1,
            None => client_id(&req.container_id, &req.network, &req.ifname),
        };
        let params = Params { client_id, request: req.request.clone(), provide };
        let netns = format!("{}{}", self.opts.host_prefix, req.netns);
        let who = format!("{}/{}/{}", req.network, req.container_id, req.ifname);
        // A wrong namespace or interface is not worth waiting for a server.
        if let Err(e) = interface_exists(&netns, &req.ifname) {
            return Reply {
                error: Some(ReplyError { code: e.code, msg: e.msg, details: e.details }),
                ..Reply::default()
            };
        }
        let started = Instant::now();
        let deadline = started + self.opts.timeout;
        let (granted, _mac) = match client::acquire(Path::new(&netns), &req.ifname, &params, deadline) {
            Ok(g) => g,
            Err(e) => {
                log::warn!("{who}: no lease: {e}");
                return Reply {
                    error: Some(ReplyError {
                        code: code::TRY_AGAIN,
                        msg: format!("no DHCP lease for {} in {netns}: {e}", req.ifname),
                        details: format!("waited {:.1} s (daemon -timeout)", started.elapsed().as_secs_f64()),
                    }),
                    ..Reply::default()
                };
            }
        };
        let attachment = (req.network.as_str(), req.container_id.as_str(), req.ifname.as_str());
        let rec = Record::granted(attachment, &req.netns, &params, &granted, now_ms());
        if let Err(e) = self.store.save(&rec) {
            // Not kept across a restart means not kept: give it back.
            let _ = client::release(Path::new(&netns), &req.ifname, &params, rec.terms.address, rec.terms.server);
            return err(code::IO, format!("storing the lease in {}: {e}", self.opts.state_dir.display()));
        }
        log::info!(
            "{who}: acquired {}/{} from {} in {} ms, expires in {:?} s",
            rec.terms.address,
            rec.terms.prefix,
            rec.terms.server,
            started.elapsed().as_millis(),
            granted.lease
        );
        let view = rec.view();
        let lease = Lease::start(rec, self.keeper());
        self.leases.lock().unwrap_or_else(|p| p.into_inner()).insert(key, lease);
        Reply { lease: Some(view), ..Reply::default() }
    }

    /// Stops keeping the lease of `key`, sends DHCPRELEASE while the
    /// container still holds the address, and forgets it. With the
    /// container gone there is nobody to send from: the lease is
    /// forgotten and the server lets it expire.
    fn release(&self, key: &Key) {
        let Some(lease) = self.leases.lock().unwrap_or_else(|p| p.into_inner()).remove(key) else { return };
        let rec = lease.stop();
        let who = format!("{}/{}/{}", rec.network, rec.container_id, rec.ifname);
        if rec.state != State::Lost {
            let netns = format!("{}{}", self.opts.host_prefix, rec.netns);
            match client::release(Path::new(&netns), &rec.ifname, &rec.params(), rec.terms.address, rec.terms.server) {
                Ok(()) => log::info!("{who}: released {} to {}", rec.terms.address, rec.terms.server),
                Err(e) => log::info!("{who}: could not release {} ({e}); forgetting it", rec.terms.address),
            }
        }
        if let Err(e) = self.store.remove(&rec.network, &rec.container_id, &rec.ifname) {
            log::error!("{who}: removing its lease file: {e}");
        }
    }

    /// Takes back the leases of a previous run.
    fn restore(&self) {
        for rec in self.store.load_all() {
            let who = format!("{}/{}/{}", rec.network, rec.container_id, rec.ifname);
            let netns = format!("{}{}", self.opts.host_prefix, rec.netns);
            if !kernel::netns::Netns::exists(&netns) {
                log::info!("{who}: container namespace {netns} is gone; forgetting {}", rec.terms.address);
                let _ = self.store.remove(&rec.network, &rec.container_id, &rec.ifname);
                continue;
            }
            log::info!("{who}: keeping {} ({:?}) from the previous run", rec.terms.address, rec.state);
            let key = (rec.network.clone(), rec.container_id.clone(), rec.ifname.clone());
            let lease = Lease::start(rec, self.keeper());
            self.leases.lock().unwrap_or_else(|p| p.into_inner()).insert(key, lease);
        }
    }
}

/// Checks that `netns` is a network namespace holding `ifname`.
fn interface_exists(netns: &str, ifname: &str) -> Result<(), cni::Error> {
    let ns = kernel::netns::Netns::open(netns).map_err(cni::Error::from)?;
    let name = std::ffi::CString::new(ifname).map_err(|_| cni::Error::invalid_env("CNI_IFNAME contains NUL"))?;
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    let index = ns.enter(|| unsafe { libc::if_nametoindex(name.as_ptr()) }).map_err(cni::Error::from)?;
    if index == 0 {
        return Err(cni::Error::new(code::PLUGIN, format!("no interface {ifname} in {netns}"))
            .with_details("the interface plugin creates it before it calls IPAM"));
    }
    Ok(())
}

/// Serves one connection: one request line, one reply line.
fn serve(d: &Daemon, stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut line = String::new();
    let reply = match BufReader::new(std::io::Read::take(&stream, MAX_LINE)).read_line(&mut line) {
        Ok(_) => match serde_json::from_str::<Request>(&line) {
            Ok(req) => d.handle(req),
            Err(e) => err(code::DECODE, format!("unreadable request: {e}")),
        },
        Err(e) => err(code::IO, format!("reading the request: {e}")),
    };
    let mut out = serde_json::to_vec(&reply).unwrap_or_default();
    out.push(b'\n');
    let _ = (&stream).write_all(&out);
}

/// The listening socket: systemd's (LISTEN_FDS=1) or a new one, mode 0600,
/// replacing a stale socket file but never a live daemon's.
fn listen(path: &str) -> Result<(UnixListener, bool), String> {
    let pid_ok = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let fds = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
    if pid_ok && fds > 0 {
        if fds > 1 {
            return Err(format!("too many ({fds}) sockets passed through socket activation"));
        }
        // SAFETY: systemd passes the listening socket as fd 3 (SD_LISTEN_FDS_START).
        return Ok((unsafe { UnixListener::from_raw_fd(3) }, false));
    }
    let p = Path::new(path);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    if p.exists() {
        if UnixStream::connect(p).is_ok() {
            return Err(format!("another dhcp daemon is listening on {path}"));
        }
        std::fs::remove_file(p).map_err(|e| format!("removing the stale socket {path}: {e}"))?;
    }
    // SAFETY: umask only changes the mode of files created meanwhile.
    let old = unsafe { libc::umask(0o177) };
    let l = UnixListener::bind(p);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let l = l.map_err(|e| format!("listening on {path}: {e}"))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).map_err(|e| format!("chmod {path}: {e}"))?;
    Ok((l, true))
}

/// `dhcp status [-socketpath P]`: prints the daemon's leases as JSON;
/// exit status 1 when the daemon cannot be reached.
pub fn status(args: &[String]) -> i32 {
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("dhcp status: {e}");
            return 2;
        }
    };
    let socket = format!("{}{}", opts.host_prefix, opts.socket);
    let req = Request { op: Some(Op::List), ..Request::default() };
    match crate::proto::call(&socket, &req, Duration::from_secs(10)) {
        Ok(reply) => {
            let v = serde_json::json!({"socket": socket, "leases": reply.leases});
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            0
        }
        Err(e) => {
            eprintln!("dhcp status: the daemon at {socket} does not answer: {e:?}");
            1
        }
    }
}

/// `dhcp daemon [flags]`; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let _ = env_logger::Builder::new().parse_filters(&level).target(env_logger::Target::Stderr).try_init();
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("dhcp daemon: {e}");
            return 2;
        }
    };
    // Signals are taken by one thread: block them before any other starts.
    use nix::sys::signal::{SigSet, Signal};
    let mut sigs = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        sigs.add(s);
    }
    if let Err(e) = sigs.thread_block() {
        eprintln!("dhcp daemon: blocking signals: {e}");
        return 1;
    }
    if let Some(pf) = &opts.pidfile {
        if !Path::new(pf).is_absolute() {
            eprintln!("dhcp daemon: error writing pidfile {pf:?}: path not absolute");
            return 1;
        }
        if let Err(e) = std::fs::write(pf, std::process::id().to_string()) {
            eprintln!("dhcp daemon: error writing pidfile {pf:?}: {e}");
            return 1;
        }
    }
    let socket = format!("{}{}", opts.host_prefix, opts.socket);
    let store = match Store::open(&opts.state_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dhcp daemon: state directory {}: {e}", opts.state_dir.display());
            return 1;
        }
    };
    let (listener, own_socket) = match listen(&socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dhcp daemon: {e}");
            return 1;
        }
    };
    let daemon = Arc::new(Daemon {
        opts: opts.clone(),
        store,
        leases: Mutex::new(HashMap::new()),
        busy: Mutex::new(HashMap::new()),
    });
    daemon.restore();
    {
        let socket = socket.clone();
        let pidfile = opts.pidfile.clone();
        std::thread::spawn(move || loop {
            match sigs.wait() {
                Ok(Signal::SIGHUP) => log::info!("SIGHUP: nothing to reload"),
                Ok(s) => {
                    log::info!("{s}: stopping; leases stay stored and are kept by the next run");
                    if own_socket {
                        let _ = std::fs::remove_file(&socket);
                    }
                    if let Some(pf) = &pidfile {
                        let _ = std::fs::remove_file(pf);
                    }
                    std::process::exit(0);
                }
                Err(e) => log::error!("waiting for signals: {e}"),
            }
        });
    }
    log::info!("listening on {socket}, leases in {}", opts.state_dir.display());
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let d = Arc::clone(&daemon);
                if let Err(e) = std::thread::Builder::new().name("conn".into()).spawn(move || serve(&d, stream)) {
                    log::error!("spawning a connection thread: {e}");
                }
            }
            Err(e) => {
                log::error!("accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flags_as_go_parses_them() {
        let o = parse(&s(&["-socketpath", "/tmp/x.sock", "--timeout=3s", "-broadcast", "-pidfile=/tmp/p"])).unwrap();
        assert_eq!(o.socket, "/tmp/x.sock");
        assert_eq!(o.timeout, Duration::from_secs(3));
        assert_eq!(o.pidfile.as_deref(), Some("/tmp/p"));
        assert_eq!(o.state_dir, PathBuf::from("/tmp/x.sock.leases"));
        let d = parse(&[]).unwrap();
        assert_eq!(d.socket, DEFAULT_SOCKET);
        assert!(parse(&s(&["-nope", "1"])).unwrap_err().contains("-nope"));
        assert!(parse(&s(&["-timeout", "ten"])).is_err());
        assert_eq!(duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(duration("500ms"), Some(Duration::from_millis(500)));
    }

    #[test]
    fn a_duration_too_long_is_an_error_not_a_panic() {
        assert_eq!(duration("99999999999999999999999999999h"), None);
        let e = parse(&s(&["-timeout", "99999999999999999999999999999h"])).unwrap_err();
        assert!(e.contains("-timeout"), "{e}");
    }

    #[test]
    fn client_id_is_the_references() {
        assert_eq!(client_id("c1", "net", "eth0"), b"\0c1/net/eth0".to_vec());
        assert_eq!(client_id(&"x".repeat(300), "n", "e").len(), 255);
    }
}
