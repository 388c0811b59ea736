//! How a request reaches the kernel. The [`Transport`] trait separates what to
//! send (decided by the pure message builders) from sending it, so the real
//! rtnetlink socket can be swapped for a recorder in unit tests without root.

use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTIPART};
use rtnetlink::packet_route::RouteNetlinkMessage;
use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, OwnedFd};

use crate::nlsock::{open_bound, set_int};
use nix::sys::socket::SockProtocol;

/// One rtnetlink request: the message and its `NLM_F_*` header flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The route-netlink message to send.
    pub msg: RouteNetlinkMessage,
    /// `NLM_F_REQUEST` plus `ACK`/`DUMP`/`CREATE`/`EXCL`/`REPLACE`/`APPEND`.
    pub flags: u16,
}

/// Why a request failed, before the caller names the object it was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The kernel answered with this (positive) errno.
    Errno(i32),
    /// The connection failed without an errno.
    Other(String),
}

/// Sends one request and collects every reply message; acks and `NLMSG_DONE`
/// are consumed, a kernel error becomes [`Fault::Errno`].
pub trait Transport {
    /// Sends `req` and waits for the whole answer.
    fn request(&self, req: Request) -> Result<Vec<RouteNetlinkMessage>, Fault>;

    /// Sends every request before waiting for any answer (the kernel runs
    /// them in order), so dependent steps cost one round trip; one answer
    /// per request, in order.
    fn requests(&self, reqs: Vec<Request>) -> Vec<Result<Vec<RouteNetlinkMessage>, Fault>> {
        reqs.into_iter().map(|r| self.request(r)).collect()
    }
}

/// The real transport: one blocking NETLINK_ROUTE socket. A plugin makes
/// a handful of requests and waits for each answer, so a plain socket does
/// what an async connection would, without a runtime to build per handle or
/// an event loop's extra system calls per request.
pub struct Rtnl {
    fd: OwnedFd,
    /// The sequence number of the last request sent.
    seq: Cell<u32>,
    /// Where answers are read, allocated once per socket.
    buf: RefCell<Vec<u8>>,
}

/// What is known of one request while its answer comes in.
struct Pending {
    seq: u32,
    /// An inner message without `NLM_F_MULTI` ends it only when no ack was asked for.
    acked: bool,
    answer: Result<Vec<RouteNetlinkMessage>, Fault>,
    done: bool,
}

/// `struct nlmsghdr`: length, type, flags, sequence number, port.
const NETLINK_HEADER_LEN: usize = 16;

/// Large enough for any message the kernel sends us in one datagram (a dump
/// part is at most 32 KiB).
const RECV_BUFFER: usize = 64 * 1024;

impl Rtnl {
    /// Opens a NETLINK_ROUTE socket in the calling thread's current network
    /// namespace; the socket stays in that namespace for its whole life.
    pub fn new() -> std::io::Result<Rtnl> {
        phases::time("netlink-open", String::new, Rtnl::open)
    }

    fn open() -> std::io::Result<Rtnl> {
        let fd = open_bound(SockProtocol::NetlinkRoute)?;
        // Strict checking makes the kernel honour the filters in dump
        // requests (addresses of one link, neighbours and FDB entries of one
        // device), so a dump costs the same with 10 or 1,000 containers.
        // Capped acks: an error does not echo the whole request back.
        for opt in [libc::NETLINK_GET_STRICT_CHK, libc::NETLINK_CAP_ACK] {
            set_int(&fd, libc::SOL_NETLINK, opt, 1)?;
        }
        Ok(Rtnl { fd, seq: Cell::new(0), buf: RefCell::new(vec![0u8; RECV_BUFFER]) })
    }

    fn send_all(&self, reqs: Vec<Request>) -> Vec<Result<Vec<RouteNetlinkMessage>, Fault>> {
        let mut pending: Vec<Pending> = Vec::with_capacity(reqs.len());
        let mut buf = self.buf.borrow_mut();
        for req in reqs {
            // A dump waits for the answers before it: the kernel runs one
            // dump per socket at a time.
            let dump = req.flags & NLM_F_DUMP == NLM_F_DUMP;
            if dump {
                self.receive(&mut pending, &mut buf);
            }
            let seq = self.seq.get().wrapping_add(1);
            self.seq.set(seq);
            let acked = req.flags & NLM_F_ACK == NLM_F_ACK;
            let mut msg = NetlinkMessage::from(req.msg);
            msg.header.flags = req.flags;
            msg.header.sequence_number = seq;
            msg.finalize();
            let mut bytes = vec![0u8; msg.buffer_len()];
            msg.serialize(&mut bytes);
            let sent = self.send(&bytes);
            let (answer, done) = match sent {
                Ok(()) => (Ok(Vec::new()), false),
                Err(e) => (Err(Fault::Other(format!("sending a netlink request: {e}"))), true),
            };
            pending.push(Pending { seq, acked, answer, done });
            if dump {
                self.receive(&mut pending, &mut buf);
            }
        }
        self.receive(&mut pending, &mut buf);
        pending.into_iter().map(|p| p.answer).collect()
    }

    fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        loop {
            // SAFETY: `bytes` is a valid buffer; the socket is connected to the kernel by default.
            let n = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
            if n >= 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Reads answers until every request in `pending` is done; a socket
    /// error ends every open one with it.
    fn receive(&self, pending: &mut [Pending], buf: &mut [u8]) {
        while pending.iter().any(|p| !p.done) {
            // SAFETY: `buf` is a valid writable buffer of its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_TRUNC) };
            let fault = if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                Some(Fault::Other(format!("reading a netlink answer: {e}")))
            } else if n as usize > buf.len() {
                Some(Fault::Other(format!("a netlink answer of {n} bytes overflowed the {} byte buffer", buf.len())))
            } else {
                None
            };
            if let Some(f) = fault {
                for p in pending.iter_mut().filter(|p| !p.done) {
                    p.answer = Err(f.clone());
                    p.done = true;
                }
                return;
            }
            dispatch(&buf[..n as usize], pending);
        }
    }
}

impl Transport for Rtnl {
    fn request(&self, req: Request) -> Result<Vec<RouteNetlinkMessage>, Fault> {
        self.requests(vec![req]).pop().unwrap_or_else(|| Err(Fault::Other("no answer".into())))
    }

    fn requests(&self, reqs: Vec<Request>) -> Vec<Result<Vec<RouteNetlinkMessage>, Fault>> {
        let n = reqs.len();
        phases::time("netlink", || format!("{n} requests"), || self.send_all(reqs))
    }
}

/// Hands every message of one datagram to the request with its sequence
/// number. A request ends with its ack or error, `NLMSG_DONE`, an overrun,
/// or (when no ack was asked for) an answer that is not part of a dump.
fn dispatch(mut data: &[u8], pending: &mut [Pending]) {
    while data.len() >= NETLINK_HEADER_LEN {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if len < NETLINK_HEADER_LEN || len > data.len() {
            return;
        }
        let one = &data[..len];
        // Messages are 4-byte aligned within a datagram.
        data = &data[len.next_multiple_of(4).min(data.len())..];
        let seq = u32::from_ne_bytes([one[8], one[9], one[10], one[11]]);
        let Some(p) = pending.iter_mut().find(|p| p.seq == seq && !p.done) else { continue };
        let msg = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(one) {
            Ok(msg) => msg,
            Err(e) => {
                // As an async connection does: a message we cannot read is
                // skipped, unless it is the one that would end the request.
                log::warn!("skipping a netlink message that does not parse: {e}");
                continue;
            }
        };
        let multi = msg.header.flags & NLM_F_MULTIPART == NLM_F_MULTIPART;
        match msg.payload {
            NetlinkPayload::InnerMessage(m) => {
                if let Ok(out) = &mut p.answer {
                    out.push(m);
                }
                p.done = !multi && !p.acked;
            }
            NetlinkPayload::Error(e) => {
                if let Some(code) = e.code {
                    p.answer = Err(Fault::Errno(code.get().abs()));
                }
                p.done = true;
            }
            NetlinkPayload::Overrun(_) => {
                p.answer = Err(Fault::Other("netlink buffer overrun".into()));
                p.done = true;
            }
            NetlinkPayload::Done(_) => p.done = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::{DoneMessage, ErrorMessage};
    use rtnetlink::packet_route::link::LinkMessage;
    use std::num::NonZeroI32;

    /// One datagram holding `msgs` (sequence number, flags, payload).
    fn datagram(msgs: Vec<(u32, u16, NetlinkPayload<RouteNetlinkMessage>)>) -> Vec<u8> {
        let mut out = Vec::new();
        for (seq, flags, payload) in msgs {
            let mut m = NetlinkMessage::new(Default::default(), payload);
            m.header.sequence_number = seq;
            m.header.flags = flags;
            m.finalize();
            let mut b = vec![0u8; m.buffer_len()];
            m.serialize(&mut b);
            b.resize(b.len().next_multiple_of(4), 0);
            out.extend(b);
        }
        out
    }

    fn link() -> NetlinkPayload<RouteNetlinkMessage> {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(LinkMessage::default()))
    }

    fn pending(seq: u32, acked: bool) -> Pending {
        Pending { seq, acked, answer: Ok(Vec::new()), done: false }
    }

    #[test]
    fn a_dump_ends_with_done_and_an_unacked_get_with_its_answer() {
        let mut p = [pending(1, false), pending(2, false)];
        dispatch(&datagram(vec![(1, NLM_F_MULTIPART, link()), (2, 0, link()), (1, NLM_F_MULTIPART, link())]), &mut p);
        assert!(!p[0].done && p[1].done);
        let done = NetlinkPayload::Done(DoneMessage::default());
        dispatch(&datagram(vec![(1, NLM_F_MULTIPART, done)]), &mut p);
        assert!(p[0].done);
        assert_eq!(p[0].answer.as_ref().map(Vec::len), Ok(2));
        assert_eq!(p[1].answer.as_ref().map(Vec::len), Ok(1));
    }

    #[test]
    fn an_acked_request_waits_for_the_ack_and_an_error_is_its_errno() {
        let mut p = [pending(7, true), pending(8, true)];
        dispatch(&datagram(vec![(7, 0, link())]), &mut p);
        assert!(!p[0].done, "an answer before the ack does not end an acked request");
        let ack = NetlinkPayload::Error(ErrorMessage::default());
        let mut nack = ErrorMessage::default();
        nack.code = NonZeroI32::new(-17);
        let nack = NetlinkPayload::Error(nack);
        // A message for a request we did not send is ignored.
        dispatch(&datagram(vec![(7, 0, ack), (99, 0, link()), (8, 0, nack)]), &mut p);
        assert!(p[0].done && p[1].done);
        assert_eq!(p[0].answer.as_ref().map(Vec::len), Ok(1));
        assert_eq!(p[1].answer, Err(Fault::Errno(17)));
    }
}
