//! Neighbour (ARP/NDP) entries and bridge FDB entries: the static state the
//! vxlan plugin programs for each remote node (ARP entry for the peer's VTEP
//! address, FDB entry "peer VTEP MAC is behind underlay IP").

use std::net::IpAddr;

use rtnetlink::packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{mac_to_string, Family, Handle, Mac};
use crate::error::Result;

/// One ARP/NDP entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neigh {
    /// ifindex of the link it belongs to.
    pub index: u32,
    /// The neighbour's IP.
    pub ip: IpAddr,
    /// Its link-layer address, when resolved.
    pub mac: Option<Mac>,
    /// `NUD_PERMANENT`: static, never expires.
    pub permanent: bool,
    /// Raw `NUD_*` state.
    pub state: u16,
}

/// One bridge forwarding entry (`bridge fdb`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    /// ifindex of the port / vxlan device.
    pub index: u32,
    /// The MAC address.
    pub mac: Mac,
    /// Remote underlay IP (vxlan), if any.
    pub dst: Option<IpAddr>,
    /// `NUD_PERMANENT`: static.
    pub permanent: bool,
    /// `NTF_SELF`: held by the device itself (vxlan), not by a bridge master.
    pub is_self: bool,
    /// Index of the bridge holding it (`NDA_MASTER`), if any.
    pub master: Option<u32>,
}

fn neigh_addr(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    }
}

fn ip_of(a: &NeighbourAddress) -> Option<IpAddr> {
    match a {
        NeighbourAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        NeighbourAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        // AF_BRIDGE (FDB) messages carry NDA_DST without telling its family.
        NeighbourAddress::Other(b) => match b.len() {
            4 => <[u8; 4]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            _ => None,
        },
        _ => None,
    }
}

/// An ARP/NDP entry message (pure, for tests).
pub(crate) fn neigh_msg(index: u32, ip: IpAddr, mac: Option<Mac>, permanent: bool) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = Family::of(&ip).af();
    m.header.ifindex = index;
    m.header.state = if permanent { NeighbourState::Permanent } else { NeighbourState::Reachable };
    m.attributes.push(NeighbourAttribute::Destination(neigh_addr(ip)));
    if let Some(mac) = mac {
        m.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    }
    m
}

/// A permanent `AF_BRIDGE` FDB message held by the device itself (`NTF_SELF`),
/// optionally pointing at a remote underlay IP (pure, for tests).
pub(crate) fn fdb_msg(index: u32, mac: Mac, dst: Option<IpAddr>) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = index;
    m.header.state = NeighbourState::Permanent;
    m.header.flags = NeighbourFlags::Own;
    m.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    if let Some(ip) = dst {
        m.attributes.push(NeighbourAttribute::Destination(neigh_addr(ip)));
    }
    m
}

fn read_mac(attrs: &[NeighbourAttribute]) -> Option<Mac> {
    attrs.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(b) => Mac::try_from(b.as_slice()).ok(),
        _ => None,
    })
}

fn read_dst(attrs: &[NeighbourAttribute]) -> Option<IpAddr> {
    attrs.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(d) => ip_of(d),
        _ => None,
    })
}

fn describe_fdb(mac: &Mac, dst: Option<IpAddr>, index: u32) -> String {
    match dst {
        Some(ip) => format!("FDB entry {} dst {ip} on link #{index}", mac_to_string(mac)),
        None => format!("FDB entry {} on link #{index}", mac_to_string(mac)),
    }
}

impl Handle {
    fn neighbour_dump(&self, family: AddressFamily, index: u32, what: &str) -> Result<Vec<NeighbourMessage>> {
        let mut m = NeighbourMessage::default();
        m.header.family = family;
        // With strict checking (see transport) the kernel dumps only this
        // device: the FDB filter is the header's index, the neighbour
        // filter an NDA_IFINDEX attribute.
        if family == AddressFamily::Bridge {
            m.header.ifindex = index;
        } else {
            m.attributes.push(NeighbourAttribute::IfIndex(index));
        }
        let replies = self.dump(RouteNetlinkMessage::GetNeighbour(m), || what.to_string())?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewNeighbour(m) => Some(m),
                _ => None,
            })
            .collect())
    }

    /// Adds an ARP/NDP entry; `Kind::Exists` when one for `ip` is already there.
    pub fn add_neigh(&self, index: u32, ip: IpAddr, mac: Mac, permanent: bool) -> Result<()> {
        let msg = RouteNetlinkMessage::NewNeighbour(neigh_msg(index, ip, Some(mac), permanent));
        self.ack(msg, NLM_F_CREATE | NLM_F_EXCL, || {
            format!("adding neighbour {ip} lladdr {} on link #{index}", mac_to_string(&mac))
        })
    }

    /// Adds or replaces an ARP/NDP entry: idempotent, for reconciling peers.
    pub fn replace_neigh(&self, index: u32, ip: IpAddr, mac: Mac, permanent: bool) -> Result<()> {
        let msg = RouteNetlinkMessage::NewNeighbour(neigh_msg(index, ip, Some(mac), permanent));
        self.ack(msg, NLM_F_CREATE | NLM_F_REPLACE, || {
            format!("setting neighbour {ip} lladdr {} on link #{index}", mac_to_string(&mac))
        })
    }

    /// Deletes the ARP/NDP entry for `ip`; `Kind::NotFound` when missing.
    pub fn del_neigh(&self, index: u32, ip: IpAddr) -> Result<()> {
        let msg = RouteNetlinkMessage::DelNeighbour(neigh_msg(index, ip, None, false));
        self.ack(msg, 0, || format!("deleting neighbour {ip} on link #{index}"))
    }

    /// The ARP and NDP entries of link `index`.
    pub fn neighs(&self, index: u32) -> Result<Vec<Neigh>> {
        let msgs = self.neighbour_dump(AddressFamily::Unspec, index, "listing neighbours")?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.ifindex == index)
            .filter_map(|m| {
                let state = u16::from(m.header.state);
                Some(Neigh {
                    index: m.header.ifindex,
                    ip: read_dst(&m.attributes)?,
                    mac: read_mac(&m.attributes),
                    permanent: m.header.state == NeighbourState::Permanent,
                    state,
                })
            })
            .collect())
    }

    /// Adds or replaces a permanent FDB entry on a vxlan device (`NTF_SELF`):
    /// frames for `mac` are sent to underlay `dst`. Idempotent.
    pub fn add_fdb(&self, index: u32, mac: Mac, dst: Option<IpAddr>) -> Result<()> {
        let msg = RouteNetlinkMessage::NewNeighbour(fdb_msg(index, mac, dst));
        self.ack(msg, NLM_F_CREATE | NLM_F_REPLACE, || format!("adding {}", describe_fdb(&mac, dst, index)))
    }

    /// Appends one more destination for `mac` (e.g. flooding the all-zero MAC
    /// to several VTEPs), keeping the existing ones.
    pub fn append_fdb(&self, index: u32, mac: Mac, dst: IpAddr) -> Result<()> {
        let msg = RouteNetlinkMessage::NewNeighbour(fdb_msg(index, mac, Some(dst)));
        self.ack(msg, NLM_F_CREATE | NLM_F_APPEND, || format!("appending {}", describe_fdb(&mac, Some(dst), index)))
    }

    /// Deletes an FDB entry (with `dst`, only that destination); `Kind::NotFound` when missing.
    pub fn del_fdb(&self, index: u32, mac: Mac, dst: Option<IpAddr>) -> Result<()> {
        let msg = RouteNetlinkMessage::DelNeighbour(fdb_msg(index, mac, dst));
        self.ack(msg, 0, || format!("deleting {}", describe_fdb(&mac, dst, index)))
    }

    /// The FDB entries of link `index` (a vxlan device or a bridge port).
    pub fn fdb(&self, index: u32) -> Result<Vec<FdbEntry>> {
        let msgs = self.neighbour_dump(AddressFamily::Bridge, index, "listing FDB entries")?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.ifindex == index)
            .filter_map(|m| {
                Some(FdbEntry {
                    index: m.header.ifindex,
                    mac: read_mac(&m.attributes)?,
                    dst: read_dst(&m.attributes),
                    permanent: m.header.state == NeighbourState::Permanent,
                    is_self: m.header.flags.contains(NeighbourFlags::Own),
                    master: m.attributes.iter().find_map(|a| match a {
                        NeighbourAttribute::Controller(i) => Some(*i),
                        _ => None,
                    }),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::fake::Recorder;
    use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST};
    use std::net::Ipv4Addr;

    const MAC: Mac = [0x0a, 0x58, 0, 0, 0, 1];

    #[test]
    fn fdb_entry_is_bridge_family_self_permanent() {
        let rec = Recorder::new();
        rec.handle().add_fdb(4, MAC, Some("192.0.2.7".parse().unwrap())).unwrap();
        let req = &rec.requests()[0];
        assert_eq!(req.flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
        let RouteNetlinkMessage::NewNeighbour(m) = &req.msg else { panic!() };
        assert_eq!(m.header.family, AddressFamily::Bridge);
        assert_eq!(m.header.state, NeighbourState::Permanent);
        assert_eq!(m.header.flags, NeighbourFlags::Own);
        assert_eq!(
            m.attributes,
            vec![
                NeighbourAttribute::LinkLayerAddress(MAC.to_vec()),
                NeighbourAttribute::Destination(NeighbourAddress::Inet(Ipv4Addr::new(192, 0, 2, 7))),
            ]
        );
    }

    #[test]
    fn permanent_arp_entry() {
        let m = neigh_msg(4, "10.244.3.0".parse().unwrap(), Some(MAC), true);
        assert_eq!(m.header.family, AddressFamily::Inet);
        assert_eq!(m.header.state, NeighbourState::Permanent);
        assert_eq!(m.attributes.len(), 2);
    }

    #[test]
    fn listing_filters_by_link() {
        let rec = Recorder::new();
        let a = neigh_msg(4, "10.244.3.0".parse().unwrap(), Some(MAC), true);
        let b = neigh_msg(5, "10.244.4.0".parse().unwrap(), Some(MAC), false);
        rec.reply(Ok(vec![RouteNetlinkMessage::NewNeighbour(a), RouteNetlinkMessage::NewNeighbour(b)]));
        let got = rec.handle().neighs(4).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].ip, "10.244.3.0".parse::<IpAddr>().unwrap());
        assert_eq!(got[0].mac, Some(MAC));
        assert!(got[0].permanent);
    }

    #[test]
    fn dumps_for_one_device_ask_the_kernel_to_filter() {
        let rec = Recorder::new();
        rec.reply(Ok(vec![]));
        rec.reply(Ok(vec![]));
        let h = rec.handle();
        h.fdb(4).unwrap();
        h.neighs(5).unwrap();
        let reqs = rec.requests();
        match (&reqs[0].msg, &reqs[1].msg) {
            (RouteNetlinkMessage::GetNeighbour(f), RouteNetlinkMessage::GetNeighbour(n)) => {
                assert_eq!(f.header.ifindex, 4, "FDB: the bridge-port filter is the header's index");
                assert_eq!(n.header.ifindex, 0, "strict checking refuses an index in the header");
                assert!(n.attributes.contains(&NeighbourAttribute::IfIndex(5)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fdb_dump_reads_untyped_destinations() {
        let rec = Recorder::new();
        let mut m = fdb_msg(4, MAC, None);
        m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Other(vec![192, 0, 2, 7])));
        rec.reply(Ok(vec![RouteNetlinkMessage::NewNeighbour(m)]));
        let got = rec.handle().fdb(4).unwrap();
        assert_eq!(got[0].dst, Some("192.0.2.7".parse().unwrap()));
        assert!(got[0].is_self && got[0].permanent);
    }

    #[test]
    fn delete_error_names_the_entry() {
        let rec = Recorder::new();
        rec.fail(libc::ENOENT);
        let e = rec.handle().del_fdb(4, MAC, None).unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(e.what, "deleting FDB entry 0a:58:00:00:00:01 on link #4");
    }
}
