//! The netfilter netlink bus (`NETLINK_NETFILTER`), shared by nf_tables
//! ([`crate::nft`]) and ctnetlink ([`crate::conntrack`]): one socket type
//! (bounded receive, sequence numbers, the kernel's errno back) and the
//! few header fields both read, so neither hand-rolls its own.
//!
//! A [`Socket`] belongs to the network namespace of the thread that opened
//! it, and keeps working there after the thread has left.

use std::cell::Cell;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{self, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};
use nix::sys::time::TimeVal;

use crate::error::{Error, Kind, Result};
use crate::nlsock::{open_bound, set_int};

/// `NLMSG_ERROR`: an error, or (errno 0) the ACK of a request.
pub const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
/// `NLMSG_DONE`: the end of a dump.
pub const NLMSG_DONE: u16 = libc::NLMSG_DONE as u16;
/// `NLM_F_REQUEST`: every message we send.
pub const NLM_F_REQUEST: u16 = libc::NLM_F_REQUEST as u16;
/// `NLM_F_ACK`: answer even on success.
pub const NLM_F_ACK: u16 = libc::NLM_F_ACK as u16;
/// `NLM_F_DUMP`: every object, not one.
pub const NLM_F_DUMP: u16 = libc::NLM_F_DUMP as u16;
/// `NLM_F_DUMP_INTR` (reply flag): the objects changed during the dump.
pub const NLM_F_DUMP_INTR: u16 = libc::NLM_F_DUMP_INTR as u16;
/// `NLA_F_NESTED`: an attribute that holds attributes.
pub const NLA_F_NESTED: u16 = libc::NLA_F_NESTED as u16;
/// The type bits of an attribute's type field.
const NLA_TYPE_MASK: u16 = libc::NLA_TYPE_MASK as u16;
/// `struct nlmsghdr`.
pub const HDR_LEN: usize = 16;
/// `struct nfgenmsg`, after the header of every netfilter message.
pub const NFGEN_LEN: usize = 4;

/// A receive that waits longer than this means something is badly wrong:
/// fail instead of hanging the plugin.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);
/// Batches larger than this get a send buffer to match.
const DEFAULT_SNDBUF: usize = 128 * 1024;

/// The fields of a netlink header we look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The whole message's length.
    pub len: u32,
    /// `(subsystem << 8) | message`, or `NLMSG_ERROR`/`NLMSG_DONE`.
    pub kind: u16,
    /// `NLM_F_*`.
    pub flags: u16,
    /// The sequence number of the request it answers.
    pub seq: u32,
}

/// The header of `msg`, if it is long enough to have one.
pub fn header(msg: &[u8]) -> Option<Header> {
    let b = msg.get(..HDR_LEN)?;
    Some(Header {
        len: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        kind: u16::from_ne_bytes([b[4], b[5]]),
        flags: u16::from_ne_bytes([b[6], b[7]]),
        seq: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
    })
}

/// The errno an `NLMSG_ERROR` (or `NLMSG_DONE`) carries, as a positive
/// number; 0 for an ACK.
pub fn errno(msg: &[u8]) -> i32 {
    msg.get(HDR_LEN..HDR_LEN + 4).map_or(0, |b| -i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// A netfilter message type as it appears in a header.
pub fn msg_type(subsys: u16, msg: u16) -> u16 {
    (subsys << 8) | msg
}

/// The messages of one received datagram, each with its header; stops at
/// a truncated or malformed one.
pub fn messages(mut buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let h = header(buf)?;
        let len = h.len as usize;
        if len < HDR_LEN || len > buf.len() {
            return None;
        }
        let msg = &buf[..len];
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
        Some(msg)
    })
}

/// Attributes of a netlink payload: (type without flags, payload); stops
/// at a truncated one.
pub fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
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

/// Appends one attribute (padded to 4 bytes).
pub fn push_attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// A request: header, `nfgenmsg` (family, version 0, resource id 0), and
/// the already-encoded attributes.
pub fn request(kind: u16, flags: u16, seq: u32, family: u8, attrs: &[u8]) -> Vec<u8> {
    let len = HDR_LEN + NFGEN_LEN + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[family, 0, 0, 0]);
    m.extend_from_slice(attrs);
    m
}

/// A `NETLINK_NETFILTER` socket in the calling thread's network namespace.
/// Not shared between threads; open one per operation.
pub struct Socket {
    // Taken out in `drop`, to time the close (see below).
    fd: std::mem::ManuallyDrop<OwnedFd>,
    seq: Cell<u32>,
}

impl Drop for Socket {
    /// Closes the socket, timed as phase `nfnl-close` under `make bench
    /// PROFILE=1`: after a commit that deleted something, the kernel makes
    /// the release of the last netfilter socket wait for the deferred
    /// destruction (an RCU grace period), and that wait lands here.
    fn drop(&mut self) {
        // SAFETY: the fd is taken exactly once, here, and never used after.
        let fd = unsafe { std::mem::ManuallyDrop::take(&mut self.fd) };
        phases::time("nfnl-close", String::new, || drop(fd));
    }
}

impl Socket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Socket> {
        let what = "opening a netfilter netlink socket";
        let fd = open_bound(SockProtocol::NetlinkNetFilter).map_err(|e| Error::from_errno(what, e as i32))?;
        // Errors then echo only the failing header, not the whole message.
        let _ = set_int(&fd, libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, 1);
        socket::setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &TimeVal::from(libc::timeval { tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t, tv_usec: 0 }),
        )
        .map_err(|e| Error::from_errno("setting the netlink receive timeout", e as i32))?;
        // Sequence numbers from the clock: replies to an earlier process's
        // requests on a recycled port id are not taken for ours.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(1);
        Ok(Socket { fd: std::mem::ManuallyDrop::new(fd), seq: Cell::new(now.max(1)) })
    }

    /// Closes the socket without making the caller wait for the kernel's
    /// RCU grace period (`nfnl-close` under `make bench PROFILE=1`).
    ///
    /// Why the close waits: releasing any netfilter netlink socket runs
    /// nf_tables' `NETLINK_URELEASE` notifier, which flushes the namespace's
    /// pending destroy work (`flush_work`), and that work starts with
    /// `synchronize_rcu()` whenever a commit deleted or replaced something.
    /// The deletion itself is complete when the commit is acknowledged:
    /// the objects are unlinked and invisible to lookups and listings; only
    /// their memory waits for the grace period. So the wait is not ours.
    ///
    /// How: the socket is handed, in flight, to a Unix socket pair that is
    /// then closed while it holds itself (an unreachable cycle). The
    /// kernel's Unix garbage collector (a work item in recent kernels, 6.18
    /// here) frees the cycle and with it the last reference to this socket, so
    /// the release and its flush run there, after the grace period has
    /// mostly passed on its own; no process of ours outlives the caller.
    /// Older kernels whose collector runs in the closing task bring the
    /// wait back (nothing else changes); any failure falls back to a plain close.
    pub fn close_deferred(self) {
        let mut me = std::mem::ManuallyDrop::new(self);
        // SAFETY: `me` is never dropped, so the fd is taken exactly once.
        let fd = unsafe { std::mem::ManuallyDrop::take(&mut me.fd) };
        phases::time("nfnl-close", String::new, || {
            if let Err(e) = hand_to_unix_gc(fd) {
                log::debug!("netfilter socket: closed in place ({e})");
            }
        });
    }

    /// Reserves `n` consecutive sequence numbers and returns the first.
    pub fn seqs(&self, n: u32) -> u32 {
        let first = self.seq.get();
        self.seq.set(first.wrapping_add(n).max(1));
        first
    }

    /// Sends `bytes` (one or more messages) to the kernel in one datagram,
    /// which is what makes an nf_tables batch one transaction.
    pub fn send(&self, bytes: &[u8], what: &str) -> Result<()> {
        if bytes.len() > DEFAULT_SNDBUF {
            let size = bytes.len() + 64 * 1024;
            if socket::setsockopt(&*self.fd, sockopt::SndBufForce, &size).is_err() {
                let _ = socket::setsockopt(&*self.fd, sockopt::SndBuf, &size);
            }
        }
        let sent = socket::sendto(self.fd.as_raw_fd(), bytes, &NetlinkAddr::new(0, 0), MsgFlags::empty())
            .map_err(|e| Error::from_errno(what, e as i32))?;
        if sent != bytes.len() {
            return Err(Error::other(what, "the kernel took only part of the message"));
        }
        Ok(())
    }

    /// Receives one datagram (one or more messages) into `buf`; a kernel
    /// that does not answer within the timeout is `Kind::Busy`.
    pub fn recv<'a>(&self, buf: &'a mut [u8], what: &str) -> Result<&'a [u8]> {
        match socket::recv(self.fd.as_raw_fd(), buf, MsgFlags::empty()) {
            Ok(n) => Ok(&buf[..n]),
            Err(nix::errno::Errno::EAGAIN) => Err(Error::new(Kind::Busy, what, "no reply from the kernel")),
            Err(e) => Err(Error::from_errno(what, e as i32)),
        }
    }
}

/// Queues `fd` and one end of a fresh Unix socket pair on that same end,
/// then closes `fd`, that end, and the other end, in this order: the
/// collector may run as soon as the cycle is unreachable, and whichever
/// reference to `fd` goes last does the release, so ours must go first;
/// the other end's release then schedules the collector. On an error `fd`
/// is closed in place.
fn hand_to_unix_gc(fd: OwnedFd) -> nix::Result<()> {
    let (a, b) = socket::socketpair(AddressFamily::Unix, SockType::Datagram, None, SockFlag::SOCK_CLOEXEC)?;
    let fds = [b.as_raw_fd(), fd.as_raw_fd()];
    let cmsg = [socket::ControlMessage::ScmRights(&fds)];
    socket::sendmsg::<()>(a.as_raw_fd(), &[std::io::IoSlice::new(&[0])], &cmsg, MsgFlags::empty(), None)?;
    drop(fd);
    drop(b);
    drop(a);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_back() {
        let mut a = Vec::new();
        push_attr(&mut a, 3, &[1, 2, 3]);
        push_attr(&mut a, 4 | NLA_F_NESTED, &[9; 4]);
        let m = request(msg_type(1, 2), NLM_F_ACK, 77, 2, &a);
        let mut two = m.clone();
        two.extend_from_slice(&m);
        let msgs: Vec<&[u8]> = messages(&two).collect();
        assert_eq!(msgs.len(), 2);
        let h = header(msgs[1]).unwrap();
        assert_eq!((h.len as usize, h.kind, h.flags, h.seq), (m.len(), 0x0102, NLM_F_ACK | NLM_F_REQUEST, 77));
        assert_eq!(attrs(&msgs[0][HDR_LEN + NFGEN_LEN..]), vec![(3, &[1, 2, 3][..]), (4, &[9; 4][..])]);
    }

    #[test]
    fn errors_and_truncation() {
        let mut m = vec![0u8; 36];
        m[..4].copy_from_slice(&36u32.to_ne_bytes());
        m[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        assert_eq!(errno(&m), libc::EEXIST);
        assert_eq!(messages(&m[..20]).count(), 0, "a message longer than the datagram is dropped");
        assert!(attrs(&[8, 0, 1, 0, 1]).is_empty());
        assert_eq!(attrs(&[5, 0, 1, 0, 9, 0, 0, 0]), vec![(1, &[9][..])]);
    }
}
