//! Queries for other names go to the host's resolvers, read from a
//! resolv.conf (re-read whenever its size, inode or mtime change), from
//! the host's side: a loopback resolver such as systemd-resolved's
//! 127.0.0.53 works, because the server runs in the host's namespace.
//! Each upstream is tried in turn over UDP (over TCP when it truncates
//! and the client asked over TCP), 2 s each.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// How long one upstream gets to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Upstream servers used at most (glibc's MAXNS).
const MAX_UPSTREAMS: usize = 3;

type Stamp = (u64, u64, i64, i64);

/// The upstream servers of one resolv.conf.
pub struct Upstreams {
    path: PathBuf,
    own: Vec<IpAddr>,
    cache: Mutex<(Option<Stamp>, Vec<SocketAddr>)>,
}

/// The `nameserver` lines of a resolv.conf (port 53), at most
/// [`MAX_UPSTREAMS`], leaving out `own` addresses (never forward to
/// ourselves).
fn parse_resolv_conf(text: &str, own: &[IpAddr]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next() else { continue };
        // A scoped IPv6 address (fe80::1%eth0) is not reachable by name here.
        let Ok(ip) = addr.parse::<IpAddr>() else { continue };
        if own.contains(&ip) || out.len() >= MAX_UPSTREAMS {
            continue;
        }
        out.push(SocketAddr::new(ip, 53));
    }
    out
}

impl Upstreams {
    /// Upstreams from `path`, never one of `own`.
    pub fn new(path: PathBuf, own: Vec<IpAddr>) -> Upstreams {
        Upstreams { path, own, cache: Mutex::new((None, Vec::new())) }
    }

    /// The current servers, re-reading the file when it changed.
    pub fn servers(&self) -> Vec<SocketAddr> {
        let stamp = std::fs::metadata(&self.path).ok().map(|m| (m.ino(), m.size(), m.mtime(), m.mtime_nsec()));
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if c.0 != stamp || stamp.is_none() {
            let text = crate::store::read_small(&self.path).unwrap_or_default();
            let servers = parse_resolv_conf(&String::from_utf8_lossy(&text), &self.own);
            if c.1 != servers {
                log::info!("upstream servers from {}: {servers:?}", self.path.display());
            }
            *c = (stamp, servers);
        }
        c.1.clone()
    }

    /// Relays a query; `None` when no upstream answered.
    pub fn forward(&self, query: &[u8], over_tcp: bool) -> Option<Vec<u8>> {
        if query.len() < 12 {
            return None;
        }
        for server in self.servers() {
            match udp(server, query) {
                Ok(reply) if over_tcp && reply.len() > 2 && reply[2] & 0x02 != 0 => {
                    if let Ok(r) = tcp(server, query) {
                        return Some(r);
                    }
                    return Some(reply);
                }
                Ok(reply) => return Some(reply),
                Err(e) => log::warn!("upstream {server}: {e}"),
            }
        }
        None
    }
}

fn udp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local)?;
    sock.connect(server)?;
    sock.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    sock.send(query)?;
    let mut buf = vec![0u8; 65535];
    let deadline = std::time::Instant::now() + UPSTREAM_TIMEOUT;
    loop {
        let n = sock.recv(&mut buf)?;
        // Only the answer to this query (same id) counts.
        if n >= 12 && buf[..2] == query[..2] {
            buf.truncate(n);
            return Ok(buf);
        }
        if std::time::Instant::now() >= deadline {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
    }
}

fn tcp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&server, UPSTREAM_TIMEOUT)?;
    s.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    s.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    s.write_all(&framed)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_lines() {
        let own: Vec<IpAddr> = vec!["10.1.0.1".parse().unwrap()];
        let text = "# c\nsearch x\nnameserver 127.0.0.53\nnameserver 10.1.0.1\nnameserver fe80::1%eth0\n\
                    nameserver 2001:db8::1\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n";
        let got = parse_resolv_conf(text, &own);
        let want: Vec<SocketAddr> =
            vec!["127.0.0.53:53".parse().unwrap(), "[2001:db8::1]:53".parse().unwrap(), "1.1.1.1:53".parse().unwrap()];
        assert_eq!(got, want);
    }
}
