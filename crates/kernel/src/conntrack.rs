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

use crate::error::{Error, Kind, Result};
use crate::nfnetlink::{
    self, attrs, push_attr, request, HDR_LEN, NFGEN_LEN, NLA_F_NESTED, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_DUMP_INTR,
};

const NFNL_SUBSYS_CTNETLINK: u16 = libc::NFNL_SUBSYS_CTNETLINK as u16;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_ZONE: u16 = 18;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;

/// One entry as much as deleting it needs: its original tuple (the raw
/// attribute, sent back as is) and its zone.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
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

fn find(b: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(b).into_iter().find(|(k, _)| *k == kind).map(|(_, v)| v)
}

/// Reads one `IPCTNL_MSG_CT_NEW` message of a dump (after the netlink header).
fn parse_entry(body: &[u8]) -> Option<Entry> {
    let family = *body.first()?;
    let a = body.get(NFGEN_LEN..)?;
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

/// A ctnetlink request.
fn message(kind: u16, flags: u16, seq: u32, family: u8, attrs: &[u8]) -> Vec<u8> {
    request(nfnetlink::msg_type(NFNL_SUBSYS_CTNETLINK, kind), flags, seq, family, attrs)
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
    sock: nfnetlink::Socket,
}

impl Socket {
    fn open() -> Result<Socket> {
        Ok(Socket { sock: nfnetlink::Socket::open()? })
    }

    fn next_seq(&self) -> u32 {
        self.sock.seqs(1)
    }

    /// Sends one request and calls `each` for every reply message body of
    /// that sequence, until DONE or the ACK. Returns whether the dump was
    /// interrupted by a change (the caller may retry).
    fn exchange(&self, m: &[u8], seq: u32, what: &str, each: &mut dyn FnMut(u16, &[u8])) -> Result<bool> {
        self.sock.send(m, what)?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut interrupted = false;
        loop {
            let data = self.sock.recv(&mut buf, what)?;
            for msg in nfnetlink::messages(data) {
                let Some(h) = nfnetlink::header(msg) else { continue };
                if h.seq != seq {
                    continue;
                }
                interrupted |= h.flags & NLM_F_DUMP_INTR != 0;
                match h.kind {
                    NLMSG_DONE => return Ok(interrupted),
                    NLMSG_ERROR => {
                        let errno = nfnetlink::errno(msg);
                        if errno != 0 {
                            return Err(Error::from_errno(what, errno));
                        }
                        return Ok(interrupted);
                    }
                    kind => each(kind, &msg[HDR_LEN..]),
                }
            }
        }
    }

    fn list(&self, family: u8) -> Result<Vec<Entry>> {
        let what = "listing conntrack entries";
        for _ in 0..3 {
            let seq = self.next_seq();
            let m = message(IPCTNL_MSG_CT_GET, NLM_F_DUMP, seq, family, &[]);
            let mut out = Vec::new();
            let interrupted = self.exchange(&m, seq, what, &mut |kind, body| {
                if kind == nfnetlink::msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW) {
                    out.extend(parse_entry(body));
                }
            })?;
            if !interrupted {
                return Ok(out);
            }
        }
        Err(Error::new(Kind::Busy, what, "the table kept changing during the dump"))
    }
}

/// Entries of protocol `proto` (6 tcp, 17 udp, 132 sctp) whose original
/// destination port is one of `ports`, IPv4 and IPv6.
fn list_by_dst_port(proto: u8, ports: &[u16]) -> Result<Vec<Entry>> {
    let sock = Socket::open()?;
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
    let sock = Socket::open()?;
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
        let a = attrs(&m[HDR_LEN + NFGEN_LEN..]);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0], (CTA_TUPLE_ORIG, &e.tuple[..]));
    }
}
