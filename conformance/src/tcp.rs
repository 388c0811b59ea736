//! A TCP server and client run inside named namespaces by threads of the
//! test process itself (setns per thread), so traffic proofs need no
//! server or client program on the machine.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Moves the calling thread into the namespace `/run/netns/<name>`, or
/// the one at `name` when it is a path (`/proc/<pid>/ns/net`: a pod's
/// namespace that only its runtime's mount namespace has a name for).
fn enter(name: &str) -> std::io::Result<()> {
    let path = if name.starts_with('/') { name.to_string() } else { format!("/run/netns/{name}") };
    let f = std::fs::File::open(path)?;
    // SAFETY: setns on a valid fd; it changes only the calling thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A server answering every connection with `reply`, bound in a namespace,
/// until the returned guard is dropped.
pub struct Server {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Listens on `addr` (e.g. `[::]:80`) inside namespace `ns` (a name under /run/netns, or a path).
    pub fn start(ns: &str, addr: &str, reply: &str) -> std::io::Result<Server> {
        use std::sync::atomic::Ordering;
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ns_name, addr_s, reply, flag) = (ns.to_string(), addr.to_string(), reply.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let bound = enter(&ns_name).and_then(|_| TcpListener::bind(&addr_s)).and_then(|l| {
                l.set_nonblocking(true)?;
                Ok(l)
            });
            let listener = match bound {
                Ok(l) => {
                    let _ = tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            // Polled, so dropping the guard stops it without a connection.
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
                        let mut buf = [0u8; 4];
                        let _ = c.read(&mut buf);
                        let _ = c.write_all(reply.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        rx.recv().map_err(|_| std::io::Error::other("server thread died"))??;
        Ok(Server { stop, thread: Some(thread) })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn request_raw(ns: &str, addr: &str, payload: &[u8]) -> std::io::Result<String> {
    let (ns, addr, payload) = (ns.to_string(), addr.to_string(), payload.to_vec());
    std::thread::spawn(move || {
        enter(&ns)?;
        let sa: SocketAddr = addr.parse().map_err(std::io::Error::other)?;
        let mut c = TcpStream::connect_timeout(&sa, Duration::from_secs(2))?;
        c.set_read_timeout(Some(Duration::from_secs(2)))?;
        c.write_all(&payload)?;
        let mut out = String::new();
        c.read_to_string(&mut out)?;
        Ok(out)
    })
    .join()
    .map_err(|_| std::io::Error::other("client thread panicked"))?
}

/// Connects from namespace `ns` to `addr` (`1.2.3.4:80`, `[fd00::1]:80`)
/// and returns what the server said, or the error.
pub fn request(ns: &str, addr: &str) -> std::io::Result<String> {
    request_raw(ns, addr, b"GET ")
}
