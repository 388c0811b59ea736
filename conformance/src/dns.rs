//! DNS from inside a namespace, for the dnsname tests and scene: a client
//! (UDP and TCP) run by a thread of the test process that entered the
//! namespace (setns per thread), and a tiny upstream resolver the test
//! runs in a namespace of its own. Messages are hickory-proto's; nothing
//! here parses DNS by hand.

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use hickory_proto::op::ResponseCode as Rcode;
pub use hickory_proto::rr::RecordType as Type;

/// How long a query waits for its answer.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Moves the calling thread into `/run/netns/<ns>`.
fn enter(ns: &str) -> std::io::Result<()> {
    let f = std::fs::File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: setns on a valid fd; it changes only the calling thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a thread inside namespace `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter(&ns).expect("entering the namespace");
        f()
    })
    .join()
    .expect("DNS thread")
}

fn request(name: &str, t: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("a DNS name"), t));
    m
}

/// Asks `server` (port 53) over UDP from namespace `ns`; `None` when no
/// answer came within [`TIMEOUT`].
pub fn query(ns: &str, server: &str, name: &str, t: RecordType) -> Option<Message> {
    let to = SocketAddr::new(server.parse().expect("server address"), 53);
    let req = request(name, t);
    in_ns(ns, move || {
        let local: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().unwrap();
        let sock = UdpSocket::bind(local).ok()?;
        sock.set_read_timeout(Some(TIMEOUT)).ok()?;
        sock.send_to(&req.to_vec().ok()?, to).ok()?;
        let mut buf = vec![0u8; 65535];
        loop {
            let (n, from) = sock.recv_from(&mut buf).ok()?;
            let m = Message::from_vec(&buf[..n]).ok()?;
            if from == to && m.metadata.id == req.metadata.id {
                return Some(m);
            }
        }
    })
}

/// Asks `server` (port 53) over TCP from namespace `ns`.
pub fn query_tcp(ns: &str, server: &str, name: &str, t: RecordType) -> Option<Message> {
    let to = SocketAddr::new(server.parse().expect("server address"), 53);
    let req = request(name, t);
    in_ns(ns, move || {
        let mut s = TcpStream::connect_timeout(&to, TIMEOUT).ok()?;
        s.set_read_timeout(Some(TIMEOUT)).ok()?;
        let body = req.to_vec().ok()?;
        let mut framed = (body.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&body);
        s.write_all(&framed).ok()?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).ok()?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).ok()?;
        Message::from_vec(&buf).ok()
    })
}

/// Sends raw bytes over UDP to `server:53` from `ns` (malformed queries).
pub fn send_raw(ns: &str, server: &str, bytes: Vec<u8>) {
    let to = SocketAddr::new(server.parse().expect("server address"), 53);
    in_ns(ns, move || {
        let local: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().unwrap();
        let sock = UdpSocket::bind(local).expect("udp socket");
        let _ = sock.send_to(&bytes, to);
    })
}

/// Opens TCP connections to `server:53` from `ns` and keeps them (idle,
/// or after `first` bytes) until the returned sockets are dropped.
pub fn hold_tcp(ns: &str, server: &str, count: usize, first: Vec<u8>) -> Vec<TcpStream> {
    let to = SocketAddr::new(server.parse().expect("server address"), 53);
    in_ns(ns, move || {
        (0..count)
            .filter_map(|_| {
                let mut s = TcpStream::connect_timeout(&to, TIMEOUT).ok()?;
                let _ = s.write_all(&first);
                Some(s)
            })
            .collect()
    })
}

/// The answer's A/AAAA/PTR data as text, in order.
pub fn answers(m: &Message) -> Vec<String> {
    m.answers.iter().map(|r| r.data.to_string()).collect()
}

/// The response code.
pub fn rcode(m: &Message) -> ResponseCode {
    m.metadata.response_code
}

/// The reverse name of an address (`2.0.91.10.in-addr.arpa.`).
pub fn arpa(ip: &str) -> String {
    Name::from(ip.parse::<std::net::IpAddr>().expect("an address")).to_ascii()
}

/// A tiny upstream resolver on UDP `0.0.0.0:53` of a namespace: answers
/// A for the names it was given, NXDOMAIN for the rest, and remembers
/// every name asked. Stops when dropped.
pub struct Upstream {
    stop: Arc<AtomicBool>,
    /// Every name asked, in order.
    pub asked: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    /// Starts the resolver in `ns` with `names` (`"example.test."` → address).
    pub fn start(ns: &str, names: &[(&str, Ipv4Addr)]) -> Upstream {
        let stop = Arc::new(AtomicBool::new(false));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let names: Vec<(String, Ipv4Addr)> = names.iter().map(|(n, a)| (n.to_ascii_lowercase(), *a)).collect();
        let (ns, flag, log) = (ns.to_string(), stop.clone(), asked.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            enter(&ns).expect("entering the upstream namespace");
            let sock = UdpSocket::bind("0.0.0.0:53").expect("upstream on :53");
            sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
            tx.send(()).unwrap();
            let mut buf = vec![0u8; 4096];
            while !flag.load(Ordering::SeqCst) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                let Ok(req) = Message::from_vec(&buf[..n]) else { continue };
                let Some(q) = req.queries.first().cloned() else { continue };
                let qname = q.name().to_ascii().to_ascii_lowercase();
                log.lock().unwrap().push(qname.clone());
                let mut m = Message::response(req.metadata.id, req.metadata.op_code);
                m.metadata.recursion_available = true;
                m.queries = req.queries.clone();
                match names.iter().find(|(n, _)| *n == qname) {
                    Some((_, a)) if q.query_type() == RecordType::A => {
                        m.answers.push(Record::from_rdata(q.name().clone(), 60, RData::A(A(*a))));
                    }
                    Some(_) => {}
                    None => m.metadata.response_code = ResponseCode::NXDomain,
                }
                let _ = sock.send_to(&m.to_vec().unwrap(), from);
            }
        });
        rx.recv_timeout(Duration::from_secs(5)).expect("upstream started");
        Upstream { stop, asked, thread: Some(thread) }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
