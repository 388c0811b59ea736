//! Routes: add the IPAM result's routes (gateway, metric, table, scope, MTU,
//! advmss, onlink for vxlan peers), list them for CHECK, delete them, and find
//! the default route's interface (macvlan's default master).

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric, RouteProtocol,
    RouteScope as NlScope, RouteType,
};
use rtnetlink::packet_route::RouteNetlinkMessage;

use super::{Family, Handle};
use crate::error::{Error, Kind, Result};

/// The main routing table, where routes go unless a `table` is given.
pub const TABLE_MAIN: u32 = 254;

/// How far the destination is (`scope` in CNI 1.1 routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteScope {
    /// Via a gateway, anywhere (0).
    Universe,
    /// Site (200).
    Site,
    /// Directly on the link (253).
    Link,
    /// On this host (254).
    Host,
    /// Nowhere (255); also the wildcard when deleting.
    Nowhere,
    /// Any other value.
    Other(u8),
}

impl From<u8> for RouteScope {
    fn from(v: u8) -> RouteScope {
        match NlScope::from(v) {
            NlScope::Universe => RouteScope::Universe,
            NlScope::Site => RouteScope::Site,
            NlScope::Link => RouteScope::Link,
            NlScope::Host => RouteScope::Host,
            NlScope::NoWhere => RouteScope::Nowhere,
            _ => RouteScope::Other(v),
        }
    }
}

impl From<RouteScope> for u8 {
    fn from(s: RouteScope) -> u8 {
        match s {
            RouteScope::Universe => NlScope::Universe.into(),
            RouteScope::Site => NlScope::Site.into(),
            RouteScope::Link => NlScope::Link.into(),
            RouteScope::Host => NlScope::Host.into(),
            RouteScope::Nowhere => NlScope::NoWhere.into(),
            RouteScope::Other(v) => v,
        }
    }
}

/// The route type; plugins add unicast routes, dumps also show local,
/// broadcast and multicast ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteKind {
    /// A gateway or direct route.
    #[default]
    Unicast,
    /// A local address.
    Local,
    /// A broadcast address.
    Broadcast,
    /// A multicast route.
    Multicast,
    /// Drop silently.
    Blackhole,
    /// Answer "unreachable".
    Unreachable,
    /// Answer "prohibited".
    Prohibit,
    /// Any other value.
    Other(u8),
}

impl RouteKind {
    fn from_nl(t: RouteType) -> RouteKind {
        match t {
            RouteType::Unicast => RouteKind::Unicast,
            RouteType::Local => RouteKind::Local,
            RouteType::Broadcast => RouteKind::Broadcast,
            RouteType::Multicast => RouteKind::Multicast,
            RouteType::BlackHole => RouteKind::Blackhole,
            RouteType::Unreachable => RouteKind::Unreachable,
            RouteType::Prohibit => RouteKind::Prohibit,
            other => RouteKind::Other(other.into()),
        }
    }

    fn to_nl(self) -> RouteType {
        match self {
            RouteKind::Unicast => RouteType::Unicast,
            RouteKind::Local => RouteType::Local,
            RouteKind::Broadcast => RouteType::Broadcast,
            RouteKind::Multicast => RouteType::Multicast,
            RouteKind::Blackhole => RouteType::BlackHole,
            RouteKind::Unreachable => RouteType::Unreachable,
            RouteKind::Prohibit => RouteType::Prohibit,
            RouteKind::Other(v) => RouteType::from(v),
        }
    }
}

/// A route to add or delete, or one read back from the kernel. Build one with
/// `Route { gw: Some(ip), ..Route::to(dst) }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination (`0.0.0.0/0` or `::/0` for a default route).
    pub dst: IpNetwork,
    /// Next-hop gateway; `None` for a route directly on `oif`.
    pub gw: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Metric (`priority`).
    pub priority: Option<u32>,
    /// Routing table; main when `None`.
    pub table: Option<u32>,
    /// Scope; when adding and `None`: link without a gateway, else universe.
    pub scope: Option<RouteScope>,
    /// Preferred source address.
    pub src: Option<IpAddr>,
    /// Path MTU metric.
    pub mtu: Option<u32>,
    /// TCP advertised MSS metric.
    pub advmss: Option<u32>,
    /// Treat the gateway as on-link even if no address covers it (vxlan peers).
    pub onlink: bool,
    /// Route type.
    pub kind: RouteKind,
}

impl Route {
    /// A unicast route to `dst` with nothing else set.
    pub fn to(dst: IpNetwork) -> Route {
        Route {
            dst,
            gw: None,
            oif: None,
            priority: None,
            table: None,
            scope: None,
            src: None,
            mtu: None,
            advmss: None,
            onlink: false,
            kind: RouteKind::Unicast,
        }
    }

    /// Whether this is a default route (`/0`).
    pub fn is_default(&self) -> bool {
        self.dst.prefix() == 0
    }

    /// The table, main when unset.
    pub fn table_or_main(&self) -> u32 {
        self.table.unwrap_or(TABLE_MAIN)
    }

    /// The family of the destination.
    pub fn family(&self) -> Family {
        Family::of(&self.dst.ip())
    }

    /// Reads an `RTM_NEWROUTE` reply; `None` for non-IP families.
    pub(crate) fn from_msg(m: &RouteMessage) -> Option<Route> {
        let family = match m.header.address_family {
            rtnetlink::packet_route::AddressFamily::Inet => Family::V4,
            rtnetlink::packet_route::AddressFamily::Inet6 => Family::V6,
            _ => return None,
        };
        let unspecified = match family {
            Family::V4 => IpAddr::from([0u8; 4]),
            Family::V6 => IpAddr::from([0u8; 16]),
        };
        let mut r = Route::to(IpNetwork::new(unspecified, 0).ok()?);
        r.kind = RouteKind::from_nl(m.header.kind);
        r.scope = Some(u8::from(m.header.scope).into());
        r.onlink = m.header.flags.contains(RouteFlags::Onlink);
        r.table = Some(u32::from(m.header.table));
        let mut dst = unspecified;
        for a in &m.attributes {
            match a {
                RouteAttribute::Destination(d) => dst = ip_of(d).unwrap_or(dst),
                RouteAttribute::Gateway(g) => r.gw = ip_of(g),
                RouteAttribute::PrefSource(s) => r.src = ip_of(s),
                RouteAttribute::Oif(i) => r.oif = Some(*i),
                RouteAttribute::Priority(p) => r.priority = Some(*p),
                RouteAttribute::Table(t) => r.table = Some(*t),
                RouteAttribute::Metrics(ms) => {
                    for metric in ms {
                        match metric {
                            RouteMetric::Mtu(v) => r.mtu = Some(*v),
                            RouteMetric::Advmss(v) => r.advmss = Some(*v),
                            _ => {}
                        }
                    }
                }
                RouteAttribute::MultiPath(hops) if r.oif.is_none() => {
                    if let Some(hop) = hops.first() {
                        r.oif = Some(hop.interface_index);
                        r.gw = r.gw.or_else(|| {
                            hop.attributes.iter().find_map(|a| match a {
                                RouteAttribute::Gateway(g) => ip_of(g),
                                _ => None,
                            })
                        });
                    }
                }
                _ => {}
            }
        }
        r.dst = IpNetwork::new(dst, m.header.destination_prefix_length).ok()?;
        Some(r)
    }
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Builds the route message (pure, for tests). Deletes use wildcards (type,
/// protocol, scope) for what the caller did not set, as `ip route del` does.
pub(crate) fn route_msg(r: &Route, delete: bool) -> Result<RouteMessage> {
    let family = r.family();
    let what = || format!("route to {}", r.dst);
    for ip in r.gw.iter().chain(r.src.iter()) {
        if Family::of(ip) != family {
            return Err(Error::new(
                Kind::Invalid,
                what(),
                format!("{ip} is not an {family} address like the destination"),
            ));
        }
    }
    let dst = IpNetwork::new(r.dst.network(), r.dst.prefix())
        .map_err(|e| Error::new(Kind::Invalid, what(), e.to_string()))?;
    let mut m = RouteMessage::default();
    m.header.address_family = family.af();
    m.header.destination_prefix_length = dst.prefix();
    let table = r.table_or_main();
    m.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    if table > 255 {
        m.attributes.push(RouteAttribute::Table(table));
    }
    if delete {
        m.header.protocol = RouteProtocol::Unspec;
        m.header.kind = if r.kind == RouteKind::Unicast { RouteType::Unspec } else { r.kind.to_nl() };
        m.header.scope = r.scope.map(u8::from).unwrap_or(u8::from(NlScope::NoWhere)).into();
    } else {
        m.header.protocol = RouteProtocol::Boot;
        m.header.kind = r.kind.to_nl();
        let default_scope = match r.kind {
            RouteKind::Local => RouteScope::Host,
            RouteKind::Unicast if r.gw.is_none() => RouteScope::Link,
            RouteKind::Broadcast | RouteKind::Multicast => RouteScope::Link,
            _ => RouteScope::Universe,
        };
        m.header.scope = u8::from(r.scope.unwrap_or(default_scope)).into();
    }
    if r.onlink {
        m.header.flags |= RouteFlags::Onlink;
    }
    if dst.prefix() > 0 {
        m.attributes.push(RouteAttribute::Destination(dst.ip().into()));
    }
    if let Some(gw) = r.gw {
        m.attributes.push(RouteAttribute::Gateway(gw.into()));
    }
    if let Some(src) = r.src {
        m.attributes.push(RouteAttribute::PrefSource(src.into()));
    }
    if let Some(oif) = r.oif {
        m.attributes.push(RouteAttribute::Oif(oif));
    }
    if let Some(p) = r.priority {
        m.attributes.push(RouteAttribute::Priority(p));
    }
    let mut metrics = Vec::new();
    metrics.extend(r.mtu.map(RouteMetric::Mtu));
    metrics.extend(r.advmss.map(RouteMetric::Advmss));
    if !metrics.is_empty() {
        m.attributes.push(RouteAttribute::Metrics(metrics));
    }
    Ok(m)
}

fn describe(r: &Route) -> String {
    let mut s = format!("route to {}", r.dst);
    if let Some(gw) = r.gw {
        s += &format!(" via {gw}");
    }
    if let Some(oif) = r.oif {
        s += &format!(" dev #{oif}");
    }
    if let Some(t) = r.table {
        s += &format!(" table {t}");
    }
    s
}

impl Handle {
    fn write_route(&self, r: &Route, flags: u16, verb: &str) -> Result<()> {
        let msg = RouteNetlinkMessage::NewRoute(route_msg(r, false)?);
        self.ack(msg, flags, || format!("{verb} {}", describe(r)))
    }

    /// Adds a route; `Kind::Exists` when an equal one is there.
    pub fn add_route(&self, r: &Route) -> Result<()> {
        self.write_route(r, NLM_F_CREATE | NLM_F_EXCL, "adding")
    }

    /// Adds the route or replaces the one with the same destination, table and metric.
    pub fn replace_route(&self, r: &Route) -> Result<()> {
        self.write_route(r, NLM_F_CREATE | NLM_F_REPLACE, "replacing")
    }

    /// Deletes the first route matching what is set in `r`; `Kind::NotFound`
    /// (ESRCH) when none matches.
    pub fn del_route(&self, r: &Route) -> Result<()> {
        let msg = RouteNetlinkMessage::DelRoute(route_msg(r, true)?);
        self.ack(msg, 0, || format!("deleting {}", describe(r)))
    }

    /// Every route of `family`, in every table (filter on [`Route::table`]).
    pub fn routes(&self, family: Family) -> Result<Vec<Route>> {
        let mut m = RouteMessage::default();
        m.header.address_family = family.af();
        let replies = self.dump(RouteNetlinkMessage::GetRoute(m), || format!("listing {family} routes"))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRoute(m) => Route::from_msg(m),
                _ => None,
            })
            .collect())
    }

    /// The route the kernel would pick for a packet from this host to `ip`
    /// (policy rules included), as it is in its table (`RTM_F_FIB_MATCH`:
    /// the matching prefix, not a /32 clone); `None` when nothing routes
    /// there. One request, whatever the size of the tables, where a dump
    /// grows with every container's host route.
    pub fn route_to(&self, ip: IpAddr) -> Result<Option<Route>> {
        let family = Family::of(&ip);
        let mut m = RouteMessage::default();
        m.header.address_family = family.af();
        m.header.destination_prefix_length = if ip.is_ipv4() { 32 } else { 128 };
        m.header.flags = RouteFlags::FibMatch;
        m.attributes.push(RouteAttribute::Destination(ip.into()));
        let replies = match self
            .send(RouteNetlinkMessage::GetRoute(m), NLM_F_REQUEST, || format!("looking up the route to {ip}"))
        {
            Ok(r) => r,
            Err(e) if matches!(e.errno, Some(libc::ENETUNREACH | libc::EHOSTUNREACH)) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(replies.iter().find_map(|r| match r {
            RouteNetlinkMessage::NewRoute(m) => Route::from_msg(m),
            _ => None,
        }))
    }

    /// The routes of `family` in the main table that leave through link `oif`.
    pub fn routes_via(&self, family: Family, oif: u32) -> Result<Vec<Route>> {
        let mut all = self.routes(family)?;
        all.retain(|r| r.oif == Some(oif) && r.table_or_main() == TABLE_MAIN);
        Ok(all)
    }

    /// The interface of the first default route in the main table, IPv4 first
    /// then IPv6: macvlan's master when the config names none.
    pub fn default_route_interface(&self) -> Result<Option<u32>> {
        for family in [Family::V4, Family::V6] {
            let found = self.routes(family)?.into_iter().find(|r| {
                r.is_default() && r.kind == RouteKind::Unicast && r.table_or_main() == TABLE_MAIN && r.oif.is_some()
            });
            if let Some(r) = found {
                return Ok(r.oif);
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::fake::Recorder;
    use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST};
    use std::net::Ipv4Addr;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn default_route_via_gateway() {
        let r = Route { gw: Some("10.0.0.1".parse().unwrap()), oif: Some(3), ..Route::to(net("0.0.0.0/0")) };
        let m = route_msg(&r, false).unwrap();
        assert_eq!(m.header.destination_prefix_length, 0);
        assert_eq!(m.header.table, 254);
        assert_eq!(m.header.scope, NlScope::Universe);
        assert_eq!(m.header.kind, RouteType::Unicast);
        assert_eq!(m.header.protocol, RouteProtocol::Boot);
        assert_eq!(
            m.attributes,
            vec![RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(10, 0, 0, 1))), RouteAttribute::Oif(3)]
        );
    }

    #[test]
    fn direct_route_is_link_scope_and_host_bits_are_cleared() {
        let r = Route { oif: Some(3), ..Route::to(net("10.1.2.3/24")) };
        let m = route_msg(&r, false).unwrap();
        assert_eq!(m.header.scope, NlScope::Link);
        assert_eq!(m.attributes[0], RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::new(10, 1, 2, 0))));
    }

    #[test]
    fn onlink_big_table_metrics() {
        let r = Route {
            gw: Some("10.244.3.0".parse().unwrap()),
            oif: Some(5),
            onlink: true,
            table: Some(1000),
            priority: Some(10),
            mtu: Some(1400),
            advmss: Some(1360),
            ..Route::to(net("10.244.3.0/24"))
        };
        let m = route_msg(&r, false).unwrap();
        assert!(m.header.flags.contains(RouteFlags::Onlink));
        assert_eq!(m.header.table, 0);
        assert!(m.attributes.contains(&RouteAttribute::Table(1000)));
        assert!(m.attributes.contains(&RouteAttribute::Priority(10)));
        assert!(m
            .attributes
            .contains(&RouteAttribute::Metrics(vec![RouteMetric::Mtu(1400), RouteMetric::Advmss(1360)])));
    }

    #[test]
    fn delete_uses_wildcards() {
        let m = route_msg(&Route::to(net("10.1.0.0/16")), true).unwrap();
        assert_eq!(m.header.scope, NlScope::NoWhere);
        assert_eq!(m.header.kind, RouteType::Unspec);
        assert_eq!(m.header.protocol, RouteProtocol::Unspec);
    }

    #[test]
    fn mixed_families_are_refused() {
        let r = Route { gw: Some("10.0.0.1".parse().unwrap()), ..Route::to(net("::/0")) };
        let e = route_msg(&r, false).unwrap_err();
        assert_eq!(e.kind, Kind::Invalid);
        assert!(e.to_string().contains("not an IPv6 address"), "{e}");
    }

    #[test]
    fn parse_back_and_find_default_interface() {
        let r = Route { gw: Some("10.0.0.1".parse().unwrap()), oif: Some(3), ..Route::to(net("0.0.0.0/0")) };
        let direct = Route { oif: Some(3), ..Route::to(net("10.0.0.0/24")) };
        let msgs: Vec<_> =
            [&direct, &r].iter().map(|r| RouteNetlinkMessage::NewRoute(route_msg(r, false).unwrap())).collect();
        let parsed = Route::from_msg(match &msgs[1] {
            RouteNetlinkMessage::NewRoute(m) => m,
            _ => unreachable!(),
        })
        .unwrap();
        assert_eq!((parsed.dst, parsed.gw, parsed.oif, parsed.table), (r.dst, r.gw, r.oif, Some(254)));
        let rec = Recorder::new();
        rec.reply(Ok(msgs));
        assert_eq!(rec.handle().default_route_interface().unwrap(), Some(3));
        assert_eq!(rec.requests().len(), 1);
    }

    #[test]
    fn route_to_asks_for_the_matching_entry_and_no_route_is_none() {
        let bridge_net = Route { oif: Some(7), ..Route::to(net("10.66.0.0/16")) };
        let rec = Recorder::new();
        rec.reply(Ok(vec![RouteNetlinkMessage::NewRoute(route_msg(&bridge_net, false).unwrap())]));
        rec.fail(libc::ENETUNREACH);
        rec.fail(libc::EPERM);
        let h = rec.handle();
        let found = h.route_to("10.66.0.5".parse().unwrap()).unwrap().unwrap();
        assert_eq!((found.dst, found.oif), (net("10.66.0.0/16"), Some(7)));
        assert_eq!(h.route_to("192.0.2.1".parse().unwrap()).unwrap(), None);
        assert!(h.route_to("192.0.2.1".parse().unwrap()).is_err(), "other errors are errors");
        let req = &rec.requests()[0];
        assert_eq!(req.flags, NLM_F_REQUEST, "one answer, no dump");
        let RouteNetlinkMessage::GetRoute(m) = &req.msg else { panic!("{:?}", req.msg) };
        assert_eq!(m.header.destination_prefix_length, 32);
        assert_eq!(m.header.flags, RouteFlags::FibMatch);
        assert_eq!(m.attributes, vec![RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::new(10, 66, 0, 5)))]);
    }

    #[test]
    fn add_flags_and_error_text() {
        let rec = Recorder::new();
        rec.fail(libc::EEXIST);
        let r = Route { gw: Some("10.0.0.1".parse().unwrap()), ..Route::to(net("0.0.0.0/0")) };
        let e = rec.handle().add_route(&r).unwrap_err();
        assert!(e.is_exists());
        assert_eq!(e.what, "adding route to 0.0.0.0/0 via 10.0.0.1");
        assert_eq!(rec.requests()[0].flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    }
}
