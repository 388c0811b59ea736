//! rtnetlink behind a small synchronous facade: one [`Handle`] per namespace,
//! with one module per concern (links, link creation, bridge ports, bridge
//! VLANs, addresses, routes, neighbours and FDB, traffic control, ifb
//! devices). Each module keeps message building in pure
//! functions and sends through a [`Transport`], so it is unit-tested with
//! [`fake::Recorder`] and integration-tested in throwaway namespaces.

pub mod addr;
pub mod create;
pub mod fake;
pub mod ifb;
pub mod link;
pub mod neigh;
pub mod port;
pub mod route;
pub mod tc;
pub mod transport;
pub mod vlan;

use std::fmt;
use std::net::IpAddr;

use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::netns::Netns;

pub use addr::{AddrScope, Address};
pub use create::{BridgeSpec, MacvlanSpec, VethSpec, VxlanSpec};
pub use ifb::IfbSpec;
pub use link::{BridgePortInfo, Link, LinkId, MacvlanMode, VxlanInfo};
pub use neigh::{FdbEntry, Neigh};
pub use port::BridgePortFlags;
pub use route::{Route, RouteKind, RouteScope};
pub use transport::{Fault, Request, Transport};

/// A 48-bit Ethernet address, the only kind of link-layer address we set.
pub type Mac = [u8; 6];

/// Formats a MAC the way CNI results and `ip` print it (`0a:58:0a:f4:00:05`).
pub fn mac_to_string(mac: &Mac) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (or `-` separated), as config and CNI_ARGS give it.
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for byte in mac.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// An IP family, for requests that are per family (route dumps, forwarding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (`AF_INET`).
    V4,
    /// IPv6 (`AF_INET6`).
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    pub(crate) fn af(self) -> AddressFamily {
        match self {
            Family::V4 => AddressFamily::Inet,
            Family::V6 => AddressFamily::Inet6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// One rtnetlink connection bound to one network namespace. Every method is
/// synchronous and names the object (and namespace) in its errors.
pub struct Handle {
    tx: Box<dyn Transport>,
    ns: Option<String>,
}

impl Handle {
    /// A handle on the namespace the calling thread is in (the host, for a plugin).
    pub fn new() -> Result<Handle> {
        let tx = transport::Rtnl::new().map_err(|e| Error::from_io("opening a netlink socket", &e))?;
        Ok(Handle::with_transport(Box::new(tx), None))
    }

    /// A handle on `ns`: the socket is opened while the thread is briefly inside,
    /// and keeps talking to `ns` after the thread has switched back.
    pub fn in_netns(ns: &Netns) -> Result<Handle> {
        let path = ns.path().display().to_string();
        let tx = ns
            .enter(transport::Rtnl::new)?
            .map_err(|e| Error::from_io(format!("opening a netlink socket in netns {path}"), &e))?;
        Ok(Handle::with_transport(Box::new(tx), Some(path)))
    }

    /// A handle over any transport (a [`fake::Recorder`] in tests); `ns` is the
    /// namespace path quoted in error messages, `None` for the current one.
    pub fn with_transport(tx: Box<dyn Transport>, ns: Option<String>) -> Handle {
        Handle { tx, ns }
    }

    /// The namespace path this handle talks to, if it is not the caller's own.
    pub fn netns_path(&self) -> Option<&str> {
        self.ns.as_deref()
    }

    /// Sends a request and returns the replies; errors name `what` and the namespace.
    pub(crate) fn send(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.tx.request(Request { msg, flags }).map_err(|fault| {
            let what = match &self.ns {
                Some(ns) => format!("{} in netns {ns}", what()),
                None => what(),
            };
            match fault {
                Fault::Errno(n) => Error::from_errno(what, n),
                Fault::Other(cause) => Error::other(what, cause),
            }
        })
    }

    /// Sends a change and waits for the kernel's ack; `extra` adds `NLM_F_CREATE` and friends.
    pub(crate) fn ack(&self, msg: RouteNetlinkMessage, extra: u16, what: impl FnOnce() -> String) -> Result<()> {
        self.send(msg, NLM_F_REQUEST | NLM_F_ACK | extra, what).map(drop)
    }

    /// Dumps a table (links, addresses, routes, neighbours).
    pub(crate) fn dump(
        &self,
        msg: RouteNetlinkMessage,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.send(msg, NLM_F_REQUEST | NLM_F_DUMP, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let mac = parse_mac("0A:58:0a:f4:00:05").unwrap();
        assert_eq!(mac, [0x0a, 0x58, 0x0a, 0xf4, 0, 5]);
        assert_eq!(mac_to_string(&mac), "0a:58:0a:f4:00:05");
        assert_eq!(parse_mac("0a-58-0a-f4-00-05"), Some(mac));
        for bad in ["", "0a:58:0a:f4:00", "0a:58:0a:f4:00:05:06", "0a:58:0a:f4:00:5", "zz:58:0a:f4:00:05"] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn errors_name_the_object_and_the_namespace() {
        let rec = fake::Recorder::new();
        rec.fail(libc::ENODEV);
        let h = Handle::with_transport(Box::new(rec.clone()), Some("/run/netns/c1".into()));
        let e = h.ack(RouteNetlinkMessage::GetLink(Default::default()), 0, || "setting link \"eth0\" up".into());
        let e = e.unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(e.what, "setting link \"eth0\" up in netns /run/netns/c1");
        assert_eq!(rec.requests()[0].flags, NLM_F_REQUEST | NLM_F_ACK);
    }
}
