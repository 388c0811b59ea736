//! IP addresses on links: add the IPAM result, list what is there (with the
//! flags needed to wait for IPv6 DAD and to tell global from link-local),
//! and delete.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Family, Handle};
use crate::error::{Error, Kind, Result};

const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_TENTATIVE: u32 = 0x40;

/// How far an address is valid, as `ip addr` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrScope {
    /// Global (universe).
    Global,
    /// Site-local.
    Site,
    /// Link-local (`fe80::/10`, `169.254/16`).
    Link,
    /// Host (loopback).
    Host,
    /// Any other value.
    Other(u8),
}

impl From<AddressScope> for AddrScope {
    fn from(s: AddressScope) -> AddrScope {
        match s {
            AddressScope::Universe => AddrScope::Global,
            AddressScope::Site => AddrScope::Site,
            AddressScope::Link => AddrScope::Link,
            AddressScope::Host => AddrScope::Host,
            other => AddrScope::Other(u8::from(other)),
        }
    }
}

/// One address on one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// ifindex of the link holding it.
    pub index: u32,
    /// The address with its prefix length (`10.1.2.3/24`).
    pub net: IpNetwork,
    /// Its scope.
    pub scope: AddrScope,
    /// Raw `IFA_F_*` flags.
    pub flags: u32,
}

impl Address {
    /// IPv6 DAD is still running: the address can't be used as a source yet.
    pub fn is_tentative(&self) -> bool {
        self.flags & IFA_F_TENTATIVE != 0
    }

    /// IPv6 DAD found a duplicate.
    pub fn dad_failed(&self) -> bool {
        self.flags & IFA_F_DADFAILED != 0
    }

    /// The family of the address.
    pub fn family(&self) -> Family {
        Family::of(&self.net.ip())
    }

    /// Reads an `RTM_NEWADDR` reply; `None` for one without an IP.
    pub(crate) fn from_msg(m: &AddressMessage) -> Option<Address> {
        let mut local = None;
        let mut address = None;
        let mut flags = u32::from(m.header.flags.bits());
        for a in &m.attributes {
            match a {
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Address(ip) => address = Some(*ip),
                AddressAttribute::Flags(f) => flags = f.bits(),
                _ => {}
            }
        }
        // IPv4: IFA_LOCAL is our address (IFA_ADDRESS is the peer on point-to-point).
        let ip = local.or(address)?;
        let net = IpNetwork::new(ip, m.header.prefix_len).ok()?;
        Some(Address { index: m.header.index, net, scope: m.header.scope.into(), flags })
    }
}

/// The address message for `net` on link `index` (pure, for tests): local and
/// address, plus the broadcast address for IPv4 prefixes shorter than /31.
pub(crate) fn addr_msg(index: u32, net: &IpNetwork) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.index = index;
    m.header.prefix_len = net.prefix();
    let ip = net.ip();
    m.header.family = Family::of(&ip).af();
    m.attributes.push(AddressAttribute::Local(ip));
    m.attributes.push(AddressAttribute::Address(ip));
    if let (IpNetwork::V4(v4), true) = (net, net.prefix() < 31) {
        m.attributes.push(AddressAttribute::Broadcast(v4.broadcast()));
    }
    m
}

fn dump_msg(family: Option<Family>, index: u32) -> RouteNetlinkMessage {
    let mut m = AddressMessage::default();
    m.header.family = family.map(Family::af).unwrap_or(AddressFamily::Unspec);
    // With strict checking (see transport) the kernel dumps only this link.
    m.header.index = index;
    RouteNetlinkMessage::GetAddress(m)
}

impl Handle {
    /// Adds `net` to link `index`; `Kind::Exists` when it is already there.
    pub fn add_address(&self, index: u32, net: IpNetwork) -> Result<()> {
        let msg = RouteNetlinkMessage::NewAddress(addr_msg(index, &net));
        self.ack(msg, NLM_F_CREATE | NLM_F_EXCL, || format!("adding address {net} to link #{index}"))
    }

    /// Adds `net` to link `index` with `IFA_F_NODAD`: an IPv6 address that is
    /// usable at once, without duplicate address detection and without
    /// writing the `accept_dad` sysctl (a first `/proc/sys/net` access in a
    /// fresh namespace costs milliseconds). `Kind::Exists` when present.
    pub fn add_address_nodad(&self, index: u32, net: IpNetwork) -> Result<()> {
        let mut m = addr_msg(index, &net);
        m.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        let msg = RouteNetlinkMessage::NewAddress(m);
        self.ack(msg, NLM_F_CREATE | NLM_F_EXCL, || format!("adding address {net} (nodad) to link #{index}"))
    }

    /// Removes `net` from link `index`; `Kind::NotFound` when it is not there.
    pub fn del_address(&self, index: u32, net: IpNetwork) -> Result<()> {
        let msg = RouteNetlinkMessage::DelAddress(addr_msg(index, &net));
        self.ack(msg, 0, || format!("deleting address {net} from link #{index}"))
    }

    /// Every address of every link, optionally of one family.
    pub fn all_addresses(&self, family: Option<Family>) -> Result<Vec<Address>> {
        self.address_dump(family, 0)
    }

    fn address_dump(&self, family: Option<Family>, index: u32) -> Result<Vec<Address>> {
        let replies = self.dump(dump_msg(family, index), || "listing addresses".into())?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewAddress(m) => Address::from_msg(m),
                _ => None,
            })
            .collect())
    }

    /// The addresses of link `index` (both families).
    pub fn addresses(&self, index: u32) -> Result<Vec<Address>> {
        let mut all = self.address_dump(None, index)?;
        // The kernel filtered already; this keeps a fake transport honest.
        all.retain(|a| a.index == index);
        Ok(all)
    }

    /// The IPs of link `index` (without prefix), e.g. to match a previous result.
    pub fn ips(&self, index: u32) -> Result<Vec<IpAddr>> {
        Ok(self.addresses(index)?.into_iter().map(|a| a.net.ip()).collect())
    }

    /// Waits until no IPv6 address of link `index` is tentative, so routes via
    /// a v6 gateway can be added and the container can send at once. Fails
    /// when DAD finds a duplicate or `timeout` passes.
    pub fn wait_dad(&self, index: u32, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let addrs = self.addresses(index)?;
            if let Some(a) = addrs.iter().find(|a| a.dad_failed()) {
                let what = format!("IPv6 address {} on link #{index}", a.net);
                return Err(Error::new(Kind::Other, what, "duplicate address detected (DAD failed)"));
            }
            if !addrs.iter().any(Address::is_tentative) {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                let what = format!("waiting for IPv6 DAD on link #{index}");
                return Err(Error::new(Kind::Busy, what, format!("addresses still tentative after {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::fake::Recorder;
    use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
    use rtnetlink::packet_route::address::AddressFlags;
    use std::net::Ipv4Addr;

    #[test]
    fn the_dump_for_one_link_asks_the_kernel_to_filter() {
        let rec = Recorder::new();
        rec.reply(Ok(vec![]));
        rec.handle().addresses(7).unwrap();
        match &rec.requests()[0].msg {
            RouteNetlinkMessage::GetAddress(m) => assert_eq!(m.header.index, 7),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nodad_addresses_carry_the_flag() {
        let rec = Recorder::new();
        rec.reply(Ok(vec![]));
        rec.handle().add_address_nodad(3, "fd00::2/64".parse().unwrap()).unwrap();
        match &rec.requests()[0].msg {
            RouteNetlinkMessage::NewAddress(m) => {
                assert!(m.attributes.contains(&AddressAttribute::Flags(AddressFlags::Nodad)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn v4_address_has_broadcast() {
        let m = addr_msg(3, &"10.1.2.3/24".parse().unwrap());
        assert_eq!((m.header.index, m.header.prefix_len, m.header.family), (3, 24, AddressFamily::Inet));
        assert!(m.attributes.contains(&AddressAttribute::Broadcast(Ipv4Addr::new(10, 1, 2, 255))));
        let m = addr_msg(3, &"10.1.2.3/32".parse().unwrap());
        assert!(!m.attributes.iter().any(|a| matches!(a, AddressAttribute::Broadcast(_))));
    }

    #[test]
    fn v6_address_has_no_broadcast() {
        let m = addr_msg(3, &"2001:db8::5/64".parse().unwrap());
        assert_eq!(m.header.family, AddressFamily::Inet6);
        assert_eq!(m.attributes.len(), 2);
    }

    #[test]
    fn add_is_exclusive_and_exists_is_reported() {
        let rec = Recorder::new();
        rec.fail(libc::EEXIST);
        let e = rec.handle().add_address(3, "10.1.2.3/24".parse().unwrap()).unwrap_err();
        assert!(e.is_exists());
        assert_eq!(e.what, "adding address 10.1.2.3/24 to link #3");
        assert_eq!(rec.requests()[0].flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    }

    #[test]
    fn dad_wait_polls_until_settled_and_reports_failure() {
        let tentative = |flags: AddressFlags| {
            let mut a = addr_msg(3, &"2001:db8::5/64".parse().unwrap());
            a.attributes.push(AddressAttribute::Flags(flags));
            Ok(vec![RouteNetlinkMessage::NewAddress(a)])
        };
        let rec = Recorder::new();
        rec.reply(tentative(AddressFlags::Tentative)).reply(tentative(AddressFlags::Permanent));
        rec.handle().wait_dad(3, Duration::from_secs(1)).unwrap();
        assert_eq!(rec.requests().len(), 2);

        let rec = Recorder::new();
        rec.reply(tentative(AddressFlags::Dadfailed | AddressFlags::Tentative));
        let e = rec.handle().wait_dad(3, Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("DAD failed"), "{e}");

        let rec = Recorder::new();
        rec.reply(tentative(AddressFlags::Tentative));
        let e = rec.handle().wait_dad(3, Duration::ZERO).unwrap_err();
        assert_eq!(e.kind, Kind::Busy);
    }

    #[test]
    fn list_filters_by_link_and_reads_flags() {
        let rec = Recorder::new();
        let mut a = addr_msg(3, &"fe80::1/64".parse().unwrap());
        a.header.scope = AddressScope::Link;
        a.attributes.push(AddressAttribute::Flags(AddressFlags::Tentative | AddressFlags::Permanent));
        let b = addr_msg(4, &"10.0.0.1/8".parse().unwrap());
        rec.reply(Ok(vec![RouteNetlinkMessage::NewAddress(a), RouteNetlinkMessage::NewAddress(b)]));
        let got = rec.handle().addresses(3).unwrap();
        assert_eq!(rec.requests()[0].flags, NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].net, "fe80::1/64".parse::<IpNetwork>().unwrap());
        assert_eq!(got[0].scope, AddrScope::Link);
        assert!(got[0].is_tentative() && !got[0].dad_failed());
    }
}
