//! Conntrack entries through ctnetlink (`NETLINK_NETFILTER`), without the
//! `conntrack` tool: list the entries of one protocol whose original
//! destination port is in a set, and delete them.
//!
//! portmap needs it after an ADD: a UDP flow that reached a host port
//! before the mapping existed keeps its un-NATed conntrack entry (the
//! client keeps sending, so it never times out) and would bypass the new
//! DNAT forever. The reference plugin deletes those entries too.
//!
//! The socket belongs to the network namespace of the calling thread.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::error::{Error, Result};

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const HDR: usize = 16;
const NFGEN: usize = 4;

/// One entry as much as deleting it needs: its original tuple (the raw
/// attribute, sent back as is) and its zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// The `CTA_TUPLE_ORIG` payload.
    tuple: Vec<u8>,
    /// The `CTA_ZONE` payload, if any.
    zone: Option<Vec<u8>>,
    /// Protocol number of the original tuple.
    pub proto: u8,
    /// Original destination port.
    pub dst_port: u16,
}

/// Attributes of a netlink payload: (type without flags, payload).
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((kind, &b[4..len]));
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    out
}

fn find(b: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(b).into_iter().find(|(k, _)| *k == kind).map(|(_, v)| v)
}

/// Reads one `IPCTNL_MSG_CT_NEW` message of a dump (after the netlink header).
fn parse_entry(body: &[u8]) -> Option<Entry> {
    let family = *body.first()?;
    let a = body.get(NFGEN..)?;
    let tuple = find(a, CTA_TUPLE_ORIG)?;
    let proto = find(tuple, CTA_TUPLE_PROTO)?;
    let num = *find(proto, CTA_PROTO_NUM)?.first()?;
    let port = find(proto, CTA_PROTO_DST_PORT).and_then(|p| p.get(..2)).map(|p| u16::from_be_bytes([p[0], p[1]]));
    Some(Entry {
        family,
        tuple: tuple.to_vec(),
        zone: find(a, CTA_ZONE).map(<[u8]>::to_vec),
        proto: num,
        dst_port: port.unwrap_or(0),
    })
}

fn push_attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// A ctnetlink request: header, nfgenmsg, attributes.
fn message(kind: u16, flags: u16, seq: u32, family: u8, attrs: &[u8]) -> Vec<u8> {
    let len = HDR + NFGEN + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | kind).to_ne_bytes());
    m.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[family, 0, 0, 0]);
    m.extend_from_slice(attrs);
    m
}

/// The delete request for `e`.
fn delete_message(e: &Entry, seq: u32) -> Vec<u8> {
    let mut a = Vec::new();
    push_attr(&mut a, CTA_TUPLE_ORIG | NLA_F_NESTED, &e.tuple);
    if let Some(z) = &e.zone {
        push_attr(&mut a, CTA_ZONE, z);
    }
    message(IPCTNL_MSG_CT_DELETE, NLM_F_ACK, seq, e.family, &a)
}

/// A ctnetlink socket in the calling thread's namespace.
struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    fn open() -> Result<Socket> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_NETFILTER) };
        if fd < 0 {
            return Err(Error::from_io("opening a ctnetlink socket", &io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval { tv_sec: Duration::from_secs(10).as_secs() as libc::time_t, tv_usec: 0 };
        // SAFETY: setsockopt with a properly sized timeval.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        Ok(Socket { fd, seq: 1 })
    }

    fn send(&self, m: &[u8], what: &str) -> Result<()> {
        // SAFETY: the kernel address is zeroed sockaddr_nl with the family set.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: m is a valid buffer; addr is a valid sockaddr_nl.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                m.as_ptr().cast(),
                m.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(Error::from_io(what, &io::Error::last_os_error()));
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8], what: &str) -> Result<usize> {
        // SAFETY: buf is a valid, writable buffer of its length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(Error::from_io(what, &io::Error::last_os_error()));
        }
        Ok(n as usize)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Sends one request and calls `each` for every reply message body of
    /// that sequence, until DONE or the ACK. Returns whether the dump was
    /// interrupted by a change (the caller may retry).
    fn exchange(&mut self, m: &[u8], seq: u32, what: &str, each: &mut dyn FnMut(u16, &[u8])) -> Result<bool> {
        self.send(m, what)?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut interrupted = false;
        loop {
            let n = self.recv(&mut buf, what)?;
            let mut b = &buf[..n];
            while b.len() >= HDR {
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                if len < HDR || len > b.len() {
                    break;
                }
                let kind = u16::from_ne_bytes([b[4], b[5]]);
                let flags = u16::from_ne_bytes([b[6], b[7]]);
                let mseq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                let body = &b[HDR..len];
                b = &b[len.next_multiple_of(4).min(b.len())..];
                if mseq != seq {
                    continue;
                }
                interrupted |= flags & NLM_F_DUMP_INTR != 0;
                match kind {
                    NLMSG_DONE => return Ok(interrupted),
                    NLMSG_ERROR => {
                        let errno = body.get(..4).map_or(0, |e| -i32::from_ne_bytes([e[0], e[1], e[2], e[3]]));
                        if errno != 0 {
                            return Err(Error::from_errno(what, errno));
                        }
                        return Ok(interrupted);
                    }
                    _ => each(kind, body),
                }
            }
        }
    }

    fn list(&mut self, family: u8) -> Result<Vec<Entry>> {
        let what = "listing conntrack entries";
        for _ in 0..3 {
            let seq = self.next_seq();
            let m = message(IPCTNL_MSG_CT_GET, NLM_F_DUMP, seq, family, &[]);
            let mut out = Vec::new();
            let interrupted = self.exchange(&m, seq, what, &mut |kind, body| {
                if kind == (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW {
                    out.extend(parse_entry(body));
                }
            })?;
            if !interrupted {
                return Ok(out);
            }
        }
        Err(Error::new(crate::Kind::Busy, what, "the table kept changing during the dump"))
    }
}

/// Entries of protocol `proto` (6 tcp, 17 udp, 132 sctp) whose original
/// destination port is one of `ports`, IPv4 and IPv6.
pub fn list_by_dst_port(proto: u8, ports: &[u16]) -> Result<Vec<Entry>> {
    let mut sock = Socket::open()?;
    let mut out = Vec::new();
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        out.extend(sock.list(family)?.into_iter().filter(|e| e.proto == proto && ports.contains(&e.dst_port)));
    }
    Ok(out)
}

/// Deletes the entries [`list_by_dst_port`] finds; an entry that is gone
/// meanwhile is not an error. Returns how many were deleted.
pub fn delete_by_dst_port(proto: u8, ports: &[u16]) -> Result<usize> {
    if ports.is_empty() {
        return Ok(0);
    }
    let entries = list_by_dst_port(proto, ports)?;
    let mut sock = Socket::open()?;
    let mut n = 0;
    for e in &entries {
        let seq = sock.next_seq();
        match sock.exchange(&delete_message(e, seq), seq, "deleting a conntrack entry", &mut |_, _| {}) {
            Ok(_) => n += 1,
            Err(err) if err.is_not_found() => {}
            Err(err) => return Err(err),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(kind: u16, inner: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        push_attr(&mut v, kind | NLA_F_NESTED, inner);
        v
    }

    fn entry_body(proto: u8, dport: u16, zone: bool) -> Vec<u8> {
        let mut ip = Vec::new();
        push_attr(&mut ip, 1, &[10, 0, 0, 2]);
        push_attr(&mut ip, 2, &[10, 0, 0, 1]);
        let mut pr = Vec::new();
        push_attr(&mut pr, CTA_PROTO_NUM, &[proto]);
        push_attr(&mut pr, 2, &40000u16.to_be_bytes());
        push_attr(&mut pr, CTA_PROTO_DST_PORT, &dport.to_be_bytes());
        let mut tuple = nested(1, &ip);
        tuple.extend(nested(CTA_TUPLE_PROTO, &pr));
        let mut body = vec![libc::AF_INET as u8, 0, 0, 0];
        body.extend(nested(CTA_TUPLE_ORIG, &tuple));
        body.extend(nested(2, &tuple));
        if zone {
            push_attr(&mut body, CTA_ZONE, &7u16.to_be_bytes());
        }
        body
    }

    #[test]
    fn parses_the_original_tuple() {
        let e = parse_entry(&entry_body(17, 5353, true)).unwrap();
        assert_eq!((e.family, e.proto, e.dst_port), (libc::AF_INET as u8, 17, 5353));
        assert_eq!(e.zone.as_deref(), Some(&7u16.to_be_bytes()[..]));
        assert!(parse_entry(&[2, 0, 0, 0]).is_none());
        assert!(parse_entry(&[]).is_none());
    }

    #[test]
    fn delete_sends_the_tuple_back() {
        let e = parse_entry(&entry_body(17, 53, false)).unwrap();
        let m = delete_message(&e, 9);
        assert_eq!(u32::from_ne_bytes(m[..4].try_into().unwrap()) as usize, m.len());
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), (1 << 8) | IPCTNL_MSG_CT_DELETE);
        let a = attrs(&m[HDR + NFGEN..]);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0], (CTA_TUPLE_ORIG, &e.tuple[..]));
    }

    #[test]
    fn truncated_attributes_stop_parsing() {
        assert!(attrs(&[8, 0, 1, 0, 1]).is_empty());
        assert_eq!(attrs(&[5, 0, 1, 0, 9, 0, 0, 0]), vec![(1, &[9][..])]);
    }
}
