//! The host side of the overlay, made to match the config and the peer
//! table: the VTEP, the local bridge with this subnet's gateway, and for
//! every remote host the three static entries of flannel's vxlan backend:
//!
//! 1. neighbour `<peer subnet network address> lladdr <peer VTEP MAC>` (permanent),
//! 2. FDB `<peer VTEP MAC> dst <peer underlay IP>` (permanent, on the VTEP),
//! 3. route `<peer subnet> via <peer subnet network address> dev <VTEP> onlink`,
//!
//! added in that order (so the kernel never has to resolve anything) and
//! removed in the reverse one. The VTEP's MAC is derived from its underlay
//! address ([`vtep_mac`]), so every host computes its peers' MACs and no
//! MAC has to be exchanged. Learning is off and there is no all-zero
//! (flood) FDB entry: nothing is learned or flooded.
//!
//! Reconciling reads the current neighbours, FDB entries and routes once
//! (one dump each) and writes only the difference, so an ADD on a host
//! with a hundred peers costs about what it costs with one, and a stale
//! peer's entries go away on the next ADD or `vxlan reconcile`. An ADD
//! whose peer table is the one last applied to the VTEP skips the peers
//! altogether ([`crate::applied`]); `vxlan reconcile` always compares.

use crate::applied::Applied;
use crate::config::VxConf;
use crate::peers::{Peer, Table};
use crate::underlay::Underlay;
use cni::Error;
use ipnetwork::IpNetwork;
use kernel::netlink::route::TABLE_MAIN;
use kernel::netlink::{
    mac_to_string, AddrScope, Family, FdbEntry, Handle, Link, Mac, Neigh, Route, RouteKind, VxlanInfo, VxlanSpec,
};
use kernel::sysctl;
use netcore::attach::{ensure_bridge, BridgeOptions};
use netcore::gateway;
use netcore::naming::fnv1a64;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

/// The VTEP MAC of the host whose underlay address is `ip`: locally
/// administered unicast; for IPv4 `02:76` followed by the address itself
/// (so distinct hosts never share one), for IPv6 a hash of it.
pub fn vtep_mac(ip: IpAddr) -> Mac {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            [0x02, 0x76, o[0], o[1], o[2], o[3]]
        }
        IpAddr::V6(v6) => {
            let h = fnv1a64(&["vxlan-vtep", &v6.to_string()]).to_be_bytes();
            [(h[0] & 0xfc) | 0x02, h[1], h[2], h[3], h[4], h[5]]
        }
    }
}

/// The next hop of a subnet on its host's VTEP: the subnet's network
/// address, which that host's VTEP holds as a /32 (/128).
fn next_hop(subnet: &IpNetwork) -> IpAddr {
    subnet.network()
}

/// What the peer table asks for on the VTEP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Neighbour entries: next hop -> peer VTEP MAC.
    pub neighs: BTreeMap<IpAddr, Mac>,
    /// FDB entries: (peer VTEP MAC, peer underlay IP).
    pub fdb: BTreeSet<(Mac, IpAddr)>,
    /// Routes: peer subnet -> next hop.
    pub routes: BTreeMap<IpNetwork, IpAddr>,
}

/// The entries for `peers` (pure).
fn desired(peers: &[Peer]) -> Desired {
    let mut d = Desired::default();
    for p in peers {
        let mac = vtep_mac(p.underlay);
        d.fdb.insert((mac, p.underlay));
        for s in &p.subnets {
            d.neighs.insert(next_hop(s), mac);
            d.routes.insert(*s, next_hop(s));
        }
    }
    d
}

/// What the kernel holds on the VTEP (one dump each).
#[derive(Debug, Clone, Default)]
pub struct Current {
    /// Neighbour entries of the VTEP.
    pub neighs: Vec<Neigh>,
    /// FDB entries held by the VTEP itself.
    pub fdb: Vec<FdbEntry>,
    /// Main-table unicast routes through the VTEP that have a gateway.
    pub routes: Vec<Route>,
}

/// Reads [`Current`] for the VTEP `index`.
pub fn current(h: &Handle, index: u32) -> Result<Current, Error> {
    let mut routes = h.routes(Family::V4)?;
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        routes.extend(h.routes(Family::V6)?);
    }
    routes.retain(|r| {
        r.oif == Some(index) && r.table_or_main() == TABLE_MAIN && r.kind == RouteKind::Unicast && r.gw.is_some()
    });
    let fdb = h.fdb(index)?.into_iter().filter(|f| f.is_self && f.master.is_none()).collect();
    Ok(Current { neighs: h.neighs(index)?, fdb, routes })
}

/// The writes that turn [`Current`] into [`Desired`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Neighbour entries to add or replace.
    pub neigh_set: Vec<(IpAddr, Mac)>,
    /// Permanent neighbour entries no peer needs.
    pub neigh_del: Vec<IpAddr>,
    /// FDB entries to add.
    pub fdb_set: Vec<(Mac, IpAddr)>,
    /// FDB entries no peer needs (with their destination, if any).
    pub fdb_del: Vec<(Mac, Option<IpAddr>)>,
    /// Routes to add or replace: (subnet, next hop).
    pub route_set: Vec<(IpNetwork, IpAddr)>,
    /// Routes no peer needs.
    pub route_del: Vec<Route>,
}

impl Plan {
    /// Number of entries written.
    pub fn added(&self) -> usize {
        self.neigh_set.len() + self.fdb_set.len() + self.route_set.len()
    }

    /// Number of entries removed.
    pub fn removed(&self) -> usize {
        self.neigh_del.len() + self.fdb_del.len() + self.route_del.len()
    }
}

fn norm(n: &IpNetwork) -> IpNetwork {
    IpNetwork::new(n.network(), n.prefix()).unwrap_or(*n)
}

/// The difference (pure). Every lookup is a hash probe, so thousands of
/// peers cost thousands of steps, not millions.
pub fn plan(d: &Desired, c: &Current) -> Plan {
    let mut p = Plan::default();
    let have_neighs: HashSet<(IpAddr, Mac)> =
        c.neighs.iter().filter(|n| n.permanent).filter_map(|n| n.mac.map(|m| (n.ip, m))).collect();
    for (ip, mac) in &d.neighs {
        if !have_neighs.contains(&(*ip, *mac)) {
            p.neigh_set.push((*ip, *mac));
        }
    }
    let mut deleted = HashSet::new();
    for n in &c.neighs {
        if n.permanent && !d.neighs.contains_key(&n.ip) && deleted.insert(n.ip) {
            p.neigh_del.push(n.ip);
        }
    }
    let have_fdb: HashSet<(Mac, IpAddr)> = c.fdb.iter().filter_map(|f| f.dst.map(|dst| (f.mac, dst))).collect();
    for (mac, dst) in &d.fdb {
        if !have_fdb.contains(&(*mac, *dst)) {
            p.fdb_set.push((*mac, *dst));
        }
    }
    for f in &c.fdb {
        let wanted = f.dst.is_some_and(|dst| d.fdb.contains(&(f.mac, dst)));
        // A static entry without a destination is the device's own; any
        // entry with one (including an all-zero flood entry) that no
        // peer needs goes.
        let own = f.dst.is_none() && f.mac != [0; 6];
        if !wanted && !own {
            p.fdb_del.push((f.mac, f.dst));
        }
    }
    let have_routes: HashSet<(IpNetwork, IpAddr)> =
        c.routes.iter().filter_map(|r| r.gw.map(|gw| (norm(&r.dst), gw))).collect();
    for (dst, gw) in &d.routes {
        if !have_routes.contains(&(*dst, *gw)) {
            p.route_set.push((*dst, *gw));
        }
    }
    for r in &c.routes {
        // A route to a peer subnet with another next hop is replaced above.
        if !d.routes.contains_key(&norm(&r.dst)) {
            p.route_del.push(r.clone());
        }
    }
    p
}

/// A route to a peer subnet through the VTEP.
fn peer_route(index: u32, dst: IpNetwork, gw: IpAddr) -> Route {
    Route { gw: Some(gw), oif: Some(index), onlink: true, ..Route::to(dst) }
}

/// Applies `p` to the VTEP `index`: removals first (routes, FDB,
/// neighbours), then additions (neighbours, FDB, routes). Something
/// already gone when removing is success.
fn apply(h: &Handle, index: u32, p: &Plan) -> Result<(), Error> {
    let gone_ok = |r: kernel::Result<()>| match r {
        Err(e) if !e.is_not_found() => Err(Error::from(e)),
        _ => Ok(()),
    };
    for r in &p.route_del {
        let del = Route { gw: r.gw, oif: Some(index), table: Some(TABLE_MAIN), ..Route::to(r.dst) };
        gone_ok(h.del_route(&del))?;
    }
    for (mac, dst) in &p.fdb_del {
        gone_ok(h.del_fdb(index, *mac, *dst))?;
    }
    for ip in &p.neigh_del {
        gone_ok(h.del_neigh(index, *ip))?;
    }
    for (ip, mac) in &p.neigh_set {
        h.replace_neigh(index, *ip, *mac, true)?;
    }
    for (mac, dst) in &p.fdb_set {
        h.add_fdb(index, *mac, Some(*dst))?;
    }
    for (dst, gw) in &p.route_set {
        h.replace_route(&peer_route(index, *dst, *gw))?;
    }
    Ok(())
}

/// What the VTEP's driver must report for this config.
fn want_info(conf: &VxConf, ul: &Underlay) -> VxlanInfo {
    VxlanInfo { vni: conf.vni, local: Some(ul.ip), port: conf.port, learning: false, underlay: Some(ul.link.index) }
}

/// The VTEP, created when missing and recreated when its VNI, port,
/// local address, underlay link or learning differ (its MAC and MTU are
/// corrected in place); `true` when it was (re)created here.
fn ensure_vtep(h: &Handle, conf: &VxConf, ul: &Underlay) -> Result<(Link, bool), Error> {
    let mac = vtep_mac(ul.ip);
    let want = want_info(conf, ul);
    let spec = VxlanSpec {
        name: &conf.vtep,
        vni: conf.vni,
        local: Some(ul.ip),
        port: Some(conf.port),
        underlay: Some(ul.link.index),
        learning: false,
        mac: Some(mac),
        mtu: Some(ul.mtu),
        up: true,
    };
    for _ in 0..3 {
        match h.link_by_name(&conf.vtep)? {
            None => match h.create_vxlan(&spec) {
                Ok(l) => return Ok((l, true)),
                Err(e) if e.is_exists() => continue,
                Err(e) => return Err(e.into()),
            },
            Some(l) if !l.is_kind("vxlan") => {
                let kind = l.kind.unwrap_or_else(|| "device without a driver kind".into());
                return Err(Error::plugin(format!("a link called {:?} exists and is a {kind}, not a VTEP", conf.vtep))
                    .with_details("the vxlan plugin names its VTEP vxlan.<vni>; remove or rename that link"));
            }
            Some(l) if l.vxlan.as_ref() != Some(&want) => {
                log::info!("recreating VTEP {:?}: it has {:?}, the config asks for {want:?}", l.name, l.vxlan);
                match h.delete_link(l.index) {
                    Err(e) if !e.is_not_found() => return Err(e.into()),
                    _ => continue,
                }
            }
            Some(mut l) => {
                if l.mac != Some(mac) {
                    h.set_mac(l.index, mac)?;
                    l.mac = Some(mac);
                }
                if l.mtu != ul.mtu {
                    h.set_mtu(l.index, ul.mtu)?;
                    l.mtu = ul.mtu;
                }
                if !l.up {
                    h.set_up(l.index)?;
                    l.up = true;
                }
                return Ok((l, false));
            }
        }
    }
    Err(Error::try_again(format!("VTEP {:?} keeps changing under us", conf.vtep)))
}

/// The VTEP's own addresses: this host's subnet network address per
/// family as a /32 (/128), the source of host-to-pod traffic and the next
/// hop peers route to. Other global addresses go.
fn ensure_vtep_addresses(h: &Handle, conf: &VxConf, vtep: &Link) -> Result<(), Error> {
    let want: Vec<IpNetwork> = conf
        .subnets
        .iter()
        .map(|s| {
            let bits = if s.net.is_ipv4() { 32 } else { 128 };
            IpNetwork::new(next_hop(&s.net), bits).expect("full-length prefix")
        })
        .collect();
    if conf.subnet_of(false).is_some() {
        // Usable at once (no DAD: nothing is flooded, so no one would answer).
        for (leaf, value) in [("disable_ipv6", "0"), ("accept_dad", "0"), ("accept_ra", "0")] {
            sysctl::ensure(&sysctl::conf_key(Family::V6, &vtep.name, leaf), value)?;
        }
    }
    let have = h.addresses(vtep.index)?;
    for a in have.iter().filter(|a| a.scope == AddrScope::Global && !want.contains(&a.net)) {
        match h.del_address(vtep.index, a.net) {
            Err(e) if !e.is_not_found() => return Err(e.into()),
            _ => {}
        }
    }
    for net in want.iter().filter(|n| !have.iter().any(|a| a.net == **n)) {
        match h.add_address(vtep.index, *net) {
            Err(e) if !e.is_exists() => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

/// What [`ensure`] set up.
#[derive(Debug, Clone)]
pub struct HostSide {
    /// The VTEP.
    pub vtep: Link,
    /// The local bridge.
    pub bridge: Link,
    /// Entries written by this call.
    pub added: usize,
    /// Entries removed by this call.
    pub removed: usize,
}

/// Whether `table` is the one last applied to this namespace's existing
/// VTEP, so an ADD need not parse it (it was valid when applied).
pub fn table_applied(h: &Handle, conf: &VxConf, table: &Table<'_>) -> Result<bool, Error> {
    let Some(vtep) = h.link_by_name(&conf.vtep)? else { return Ok(false) };
    Ok(Applied::of(&vtep.name, vtep.index).is_some_and(|a| a.matches(&table.digest)))
}

/// The kernel's entries as they are after `d` was applied to the VTEP
/// `index` (what [`current`] would read then), without reading them.
fn assumed(d: &Desired, index: u32) -> Current {
    Current {
        neighs: d
            .neighs
            .iter()
            .map(|(ip, mac)| Neigh { index, ip: *ip, mac: Some(*mac), permanent: true, state: 0x80 })
            .collect(),
        fdb: d
            .fdb
            .iter()
            .map(|(mac, dst)| FdbEntry {
                index,
                mac: *mac,
                dst: Some(*dst),
                permanent: true,
                is_self: true,
                master: None,
            })
            .collect(),
        routes: d.routes.iter().map(|(dst, gw)| peer_route(index, *dst, *gw)).collect(),
    }
}

/// How [`ensure`] treats the peer entries.
pub enum Peers<'a> {
    /// Write only the difference between two peer sets, without reading
    /// the kernel's entries (the agent, on each change; its periodic
    /// [`Peers::Reconcile`] repairs whatever else changed): `table` is the
    /// file holding `after`, recorded as applied.
    Diff { table: &'a Table<'a>, before: &'a [Peer], after: &'a [Peer] },
    /// Compare every entry with the kernel and repair (`vxlan reconcile`):
    /// `table` parsed into the given peers.
    Reconcile(&'a Table<'a>, &'a [Peer]),
    /// Skip the entries when `table` is the one last applied to this VTEP
    /// (an ADD); `parsed` holds its peers when the caller already parsed it.
    IfChanged { table: &'a Table<'a>, parsed: Option<&'a [Peer]> },
}

/// Makes the host side match: VTEP, its addresses, the bridge with this
/// host's gateways, forwarding, and the peer entries (see [`Peers`]).
/// Idempotent; the caller holds [`crate::lock`].
pub fn ensure(h: &Handle, conf: &VxConf, ul: &Underlay, peers: Peers<'_>) -> Result<HostSide, Error> {
    let (vtep, created) = ensure_vtep(h, conf, ul)?;
    ensure_vtep_addresses(h, conf, &vtep)?;
    let (bridge, _) = ensure_bridge(h, &BridgeOptions { name: &conf.bridge, mtu: Some(ul.mtu), promisc: false })?;
    for s in &conf.subnets {
        gateway::ensure_address(h, &bridge, s.gateway_net(), false)?;
        gateway::enable_forwarding(Family::of(&s.gateway))?;
    }
    let applied = Applied::of(&vtep.name, vtep.index);
    let (list, digest) = match peers {
        Peers::Diff { table, before, after } if !created => {
            if let Some(a) = &applied {
                a.forget();
            }
            let p = plan(&desired(after), &assumed(&desired(before), vtep.index));
            apply(h, vtep.index, &p)?;
            if let Some(a) = &applied {
                a.record(&table.digest);
            }
            return Ok(HostSide { vtep, bridge, added: p.added(), removed: p.removed() });
        }
        Peers::Diff { table, after, .. } => (std::borrow::Cow::Borrowed(after), Some(table.digest.clone())),
        Peers::Reconcile(table, list) => (std::borrow::Cow::Borrowed(list), Some(table.digest.clone())),
        Peers::IfChanged { table, parsed } => {
            if !created && applied.as_ref().is_some_and(|a| a.matches(&table.digest)) {
                return Ok(HostSide { vtep, bridge, added: 0, removed: 0 });
            }
            let list = match parsed {
                Some(p) => std::borrow::Cow::Borrowed(p),
                None => std::borrow::Cow::Owned(table.parse()?),
            };
            (list, Some(table.digest.clone()))
        }
    };
    if let Some(a) = &applied {
        a.forget();
    }
    let p = plan(&desired(&list), &current(h, vtep.index)?);
    apply(h, vtep.index, &p)?;
    if let (Some(a), Some(d)) = (&applied, &digest) {
        a.record(d);
    }
    Ok(HostSide { vtep, bridge, added: p.added(), removed: p.removed() })
}

fn drift(msg: String) -> Error {
    Error::plugin(msg)
}

/// CHECK of the host side: the VTEP as configured, the bridge with this
/// host's gateways, and every peer's neighbour, FDB entry and route. The
/// first thing missing is named, with its peer.
pub fn verify(h: &Handle, conf: &VxConf, ul: &Underlay, peers: &[Peer]) -> Result<Link, Error> {
    let vtep = h.link_by_name(&conf.vtep)?.ok_or_else(|| drift(format!("VTEP {:?} is missing", conf.vtep)))?;
    let want = want_info(conf, ul);
    if !vtep.is_kind("vxlan") || vtep.vxlan.as_ref() != Some(&want) {
        return Err(drift(format!("VTEP {:?} is {:?}, the config asks for {want:?}", conf.vtep, vtep.vxlan)));
    }
    let mac = vtep_mac(ul.ip);
    if vtep.mac != Some(mac) {
        return Err(drift(format!(
            "VTEP {:?} has MAC {}, expected {} (derived from {})",
            conf.vtep,
            vtep.mac_string(),
            mac_to_string(&mac),
            ul.ip
        )));
    }
    if !vtep.up {
        return Err(drift(format!("VTEP {:?} is down", conf.vtep)));
    }
    let bridge = h.link_by_name(&conf.bridge)?.ok_or_else(|| drift(format!("bridge {:?} is missing", conf.bridge)))?;
    let addrs = h.addresses(bridge.index)?;
    for s in &conf.subnets {
        if !addrs.iter().any(|a| a.net == s.gateway_net()) {
            return Err(drift(format!("bridge {:?} lacks the gateway address {}", conf.bridge, s.gateway_net())));
        }
    }
    let cur = current(h, vtep.index)?;
    let fdb: HashSet<(Mac, IpAddr)> = cur.fdb.iter().filter_map(|f| f.dst.map(|d| (f.mac, d))).collect();
    let neighs: HashSet<(IpAddr, Mac)> =
        cur.neighs.iter().filter(|n| n.permanent).filter_map(|n| n.mac.map(|m| (n.ip, m))).collect();
    let routes: HashSet<(IpNetwork, IpAddr)> =
        cur.routes.iter().filter_map(|r| r.gw.map(|gw| (norm(&r.dst), gw))).collect();
    for p in peers {
        let pm = vtep_mac(p.underlay);
        if !fdb.contains(&(pm, p.underlay)) {
            return Err(drift(format!(
                "FDB entry {} dst {} for peer {} is missing on {:?}",
                mac_to_string(&pm),
                p.underlay,
                p.underlay,
                conf.vtep
            )));
        }
        for s in &p.subnets {
            let nh = next_hop(s);
            if !neighs.contains(&(nh, pm)) {
                return Err(drift(format!(
                    "neighbour {nh} lladdr {} for peer {} is missing on {:?}",
                    mac_to_string(&pm),
                    p.underlay,
                    conf.vtep
                )));
            }
            if !routes.contains(&(*s, nh)) {
                return Err(drift(format!(
                    "route to {s} via {nh} for peer {} is missing on {:?}",
                    p.underlay, conf.vtep
                )));
            }
        }
    }
    Ok(vtep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str, subnets: &[&str]) -> Peer {
        Peer { underlay: ip.parse().unwrap(), subnets: subnets.iter().map(|s| s.parse().unwrap()).collect() }
    }

    #[test]
    fn macs_are_local_unicast_and_distinct() {
        let a = vtep_mac("192.168.7.1".parse().unwrap());
        assert_eq!(a, [0x02, 0x76, 192, 168, 7, 1]);
        let b = vtep_mac("fd00::1".parse().unwrap());
        let c = vtep_mac("fd00::2".parse().unwrap());
        for m in [a, b, c] {
            assert_eq!(m[0] & 0x03, 0x02, "{m:?}");
        }
        assert_ne!(b, c);
        assert_eq!(b, vtep_mac("fd00::1".parse().unwrap()));
    }

    #[test]
    fn desired_entries_follow_flannel() {
        let d = desired(&[peer("192.168.7.2", &["10.244.2.0/24", "fd44:0:0:2::/64"])]);
        let mac = vtep_mac("192.168.7.2".parse().unwrap());
        assert_eq!(d.fdb.iter().collect::<Vec<_>>(), vec![&(mac, "192.168.7.2".parse().unwrap())]);
        assert_eq!(d.neighs.get(&"10.244.2.0".parse().unwrap()), Some(&mac));
        assert_eq!(d.neighs.get(&"fd44:0:0:2::".parse().unwrap()), Some(&mac));
        assert_eq!(d.routes.get(&"10.244.2.0/24".parse().unwrap()), Some(&"10.244.2.0".parse().unwrap()));
    }

    fn current_of(d: &Desired, index: u32) -> Current {
        assumed(d, index)
    }

    #[test]
    fn nothing_to_do_when_in_sync() {
        let peers: Vec<Peer> =
            (2..102).map(|i| peer(&format!("192.168.7.{i}"), &[&format!("10.244.{i}.0/24")])).collect();
        let d = desired(&peers);
        let p = plan(&d, &current_of(&d, 4));
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn adds_the_new_and_removes_the_stale() {
        let old = desired(&[peer("192.168.7.2", &["10.244.2.0/24"]), peer("192.168.7.3", &["10.244.3.0/24"])]);
        let mut cur = current_of(&old, 4);
        // a flood entry someone added, and a dynamic neighbour: the flood
        // entry goes, the dynamic neighbour stays.
        cur.fdb.push(FdbEntry {
            index: 4,
            mac: [0; 6],
            dst: Some("192.168.7.9".parse().unwrap()),
            permanent: true,
            is_self: true,
            master: None,
        });
        cur.neighs.push(Neigh {
            index: 4,
            ip: "10.244.9.9".parse().unwrap(),
            mac: None,
            permanent: false,
            state: 0x20,
        });
        let new = desired(&[peer("192.168.7.2", &["10.244.2.0/24"]), peer("192.168.7.4", &["10.244.4.0/24"])]);
        let p = plan(&new, &cur);
        let m4 = vtep_mac("192.168.7.4".parse().unwrap());
        let m3 = vtep_mac("192.168.7.3".parse().unwrap());
        assert_eq!(p.neigh_set, vec![("10.244.4.0".parse().unwrap(), m4)]);
        assert_eq!(p.fdb_set, vec![(m4, "192.168.7.4".parse().unwrap())]);
        assert_eq!(p.route_set, vec![("10.244.4.0/24".parse().unwrap(), "10.244.4.0".parse().unwrap())]);
        assert_eq!(p.neigh_del, vec!["10.244.3.0".parse::<IpAddr>().unwrap()]);
        assert_eq!(p.fdb_del.len(), 2);
        assert!(p.fdb_del.contains(&(m3, Some("192.168.7.3".parse().unwrap()))));
        assert!(p.fdb_del.contains(&([0; 6], Some("192.168.7.9".parse().unwrap()))));
        assert_eq!(p.route_del.len(), 1);
        assert_eq!(p.route_del[0].dst.to_string(), "10.244.3.0/24");
        assert_eq!((p.added(), p.removed()), (3, 4));
    }

    #[test]
    fn a_moved_peer_is_rewritten_not_deleted() {
        // The host with subnet .2 got a new underlay address.
        let old = desired(&[peer("192.168.7.2", &["10.244.2.0/24"])]);
        let new = desired(&[peer("192.168.7.20", &["10.244.2.0/24"])]);
        let p = plan(&new, &current_of(&old, 4));
        assert_eq!(p.neigh_set.len(), 1, "new MAC for the same next hop");
        assert!(p.neigh_del.is_empty());
        assert!(p.route_set.is_empty() && p.route_del.is_empty(), "the route itself is unchanged");
        assert_eq!(p.fdb_set.len(), 1);
        assert_eq!(p.fdb_del.len(), 1);
    }
}
