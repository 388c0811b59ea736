//! How a request reaches the kernel. The [`Transport`] trait separates what to
//! send (decided by the pure message builders) from sending it, so the real
//! rtnetlink socket can be swapped for a recorder in unit tests without root.

use futures::StreamExt;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;

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

/// The real transport: one rtnetlink connection driven by a tokio
/// current-thread runtime owned by this value (plugins are single-threaded).
pub struct Rtnl {
    rt: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
}

impl Rtnl {
    /// Opens a NETLINK_ROUTE socket in the calling thread's current network
    /// namespace; the socket stays in that namespace for its whole life.
    pub fn new() -> std::io::Result<Rtnl> {
        phases::time("netlink-open", String::new, Rtnl::open)
    }

    fn open() -> std::io::Result<Rtnl> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
        let (mut conn, handle, _) = {
            let _ctx = rt.enter();
            rtnetlink::new_connection()?
        };
        // Strict checking makes the kernel honour the filters in dump
        // requests (addresses of one link, neighbours and FDB entries of one
        // device), so a dump costs the same with 10 or 1,000 containers.
        {
            use rtnetlink::sys::AsyncSocket;
            conn.socket_mut().socket_ref().set_netlink_get_strict_chk(true)?;
        }
        rt.spawn(conn);
        Ok(Rtnl { rt, handle })
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

impl Rtnl {
    fn send_all(&self, reqs: Vec<Request>) -> Vec<Result<Vec<RouteNetlinkMessage>, Fault>> {
        let mut handle = self.handle.clone();
        // Queued to the connection all at once; answered in order.
        let streams: Vec<_> = reqs
            .into_iter()
            .map(|req| {
                let mut msg = NetlinkMessage::from(req.msg);
                msg.header.flags = req.flags;
                handle.request(msg).map_err(|e| Fault::Other(e.to_string()))
            })
            .collect();
        self.rt.block_on(async move {
            let mut answers = Vec::with_capacity(streams.len());
            for stream in streams {
                answers.push(match stream {
                    Ok(replies) => collect(replies).await,
                    Err(f) => Err(f),
                });
            }
            answers
        })
    }
}

/// Every reply of one request; a kernel error becomes [`Fault::Errno`].
async fn collect(
    mut replies: impl futures::Stream<Item = NetlinkMessage<RouteNetlinkMessage>> + Unpin,
) -> Result<Vec<RouteNetlinkMessage>, Fault> {
    let mut out = Vec::new();
    let mut fault = None;
    while let Some(reply) = replies.next().await {
        match reply.payload {
            NetlinkPayload::InnerMessage(m) => out.push(m),
            NetlinkPayload::Error(e) => {
                if let Some(code) = e.code {
                    fault.get_or_insert(Fault::Errno(code.get().abs()));
                }
            }
            NetlinkPayload::Overrun(_) => {
                fault.get_or_insert(Fault::Other("netlink buffer overrun".into()));
            }
            _ => {}
        }
    }
    fault.map_or(Ok(out), Err)
}
