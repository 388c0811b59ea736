//! What the plugin and the daemon say over the unix socket: one JSON
//! request line, one JSON reply line, then the connection closes. Only our
//! plugin talks to our daemon, so this is ours (the reference speaks Go's
//! net/rpc); the socket path and its default are the reference's.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// The largest line either side accepts.
pub const MAX_LINE: u64 = 1 << 20;

/// What the plugin asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Acquire (or return the held) lease of an attachment.
    Add,
    /// Release an attachment's lease.
    Del,
    /// Report an attachment's lease and whether it is being kept.
    Check,
    /// Release the leases of a network's attachments not in `valid`.
    Gc,
    /// Answer, to prove the daemon is there.
    Status,
    /// Every lease the daemon keeps (`dhcp status`).
    List,
}

/// One request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Request {
    /// The operation (None only in a malformed request).
    pub op: Option<Op>,
    /// The network's name.
    #[serde(default)]
    pub network: String,
    /// `CNI_CONTAINERID`.
    #[serde(default)]
    pub container_id: String,
    /// `CNI_IFNAME`.
    #[serde(default)]
    pub ifname: String,
    /// `CNI_NETNS`, absolute; empty when the runtime sent none.
    #[serde(default)]
    pub netns: String,
    /// Parameter request list.
    #[serde(default)]
    pub request: Vec<u8>,
    /// Options to send: (code, value).
    #[serde(default)]
    pub provide: Vec<(u8, Vec<u8>)>,
    /// GC: the network's live attachments (container id, ifname).
    #[serde(default)]
    pub valid: Vec<(String, String)>,
}

/// A route from the lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRoute {
    /// Destination network address.
    pub dst: Ipv4Addr,
    /// Destination prefix length.
    pub prefix: u8,
    /// Next hop; None for an on-link route (option 121 router 0.0.0.0).
    pub gw: Option<Ipv4Addr>,
}

/// What a server granted with a lease: the address and the options a
/// result is made of. One declaration for the DHCPACK as read, the record
/// on disk and the daemon's answer (flattened into both: their JSON keeps
/// these as top-level fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// The leased address.
    pub address: Ipv4Addr,
    /// Its prefix length (option 1).
    pub prefix: u8,
    /// The server that granted (or last renewed) it: option 54, else the sender.
    pub server: Ipv4Addr,
    /// The router (option 3), unless option 121 is present (RFC 3442).
    pub gateway: Option<Ipv4Addr>,
    /// Routes: option 121, else option 33 and a default via the router.
    pub routes: Vec<LeaseRoute>,
    /// Name servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// Domain (option 15).
    pub domain: String,
}

/// What the daemon knows of one lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseView {
    /// What was granted.
    #[serde(flatten)]
    pub terms: Terms,
    /// `bound`, `renewing`, `rebinding` or `lost`.
    pub state: String,
    /// Why the last renewal failed, while it has not succeeded since.
    pub problem: Option<String>,
    /// Seconds until the lease expires (0 once expired).
    pub expires_in: u64,
}

/// An error as the daemon reports it; the plugin prints it as a CNI error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyError {
    /// CNI error code.
    pub code: u32,
    /// Message.
    pub msg: String,
    /// Details.
    #[serde(default)]
    pub details: String,
}

/// One reply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    /// Set when the request failed.
    pub error: Option<ReplyError>,
    /// The lease, for ADD and CHECK.
    pub lease: Option<LeaseView>,
    /// LIST: every lease, with its attachment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leases: Vec<Held>,
}

/// A lease and the attachment holding it (`dhcp status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Network name.
    pub network: String,
    /// Container id.
    pub container_id: String,
    /// Interface in the container.
    pub ifname: String,
    /// The container's namespace.
    pub netns: String,
    /// Renewals so far.
    pub renewals: u64,
    /// The lease.
    pub lease: LeaseView,
}

/// Sends `req` to the daemon at `socket` and waits up to `timeout` for its
/// reply. The error says whether the daemon could not be reached at all.
pub fn call(socket: &str, req: &Request, timeout: Duration) -> Result<Reply, CallError> {
    let mut stream = UnixStream::connect(socket).map_err(CallError::Connect)?;
    stream.set_read_timeout(Some(timeout)).map_err(CallError::Io)?;
    stream.set_write_timeout(Some(timeout)).map_err(CallError::Io)?;
    let mut line = serde_json::to_vec(req).map_err(|e| CallError::Io(std::io::Error::other(e)))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(CallError::Io)?;
    let mut reply = String::new();
    BufReader::new(std::io::Read::take(&stream, MAX_LINE)).read_line(&mut reply).map_err(CallError::Io)?;
    if reply.is_empty() {
        return Err(CallError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the daemon closed the connection",
        )));
    }
    serde_json::from_str(&reply).map_err(|e| CallError::Io(std::io::Error::other(format!("unreadable reply: {e}"))))
}

/// Why [`call`] failed.
#[derive(Debug)]
pub enum CallError {
    /// Nobody listens at the socket (the daemon is not running).
    Connect(std::io::Error),
    /// The daemon was reached but the exchange failed.
    Io(std::io::Error),
}
