//! Putting an IPAM result on a container interface, and checking it later.
//!
//! Every plugin that makes a container interface and delegates IPAM (bridge,
//! macvlan, ...) ends ADD the same way: addresses on, link up, routes in, as
//! the reference `ipam.ConfigureIface` does; and its CHECK verifies the same
//! things as the reference `ValidateExpectedInterfaceIPs` and
//! `ValidateExpectedRoute`. Both live here so the plugins agree.
//!
//! Differences from the reference, on purpose: IPv6 duplicate address
//! detection is off unless asked for (it made every ADD wait 1–2 s,
//! plugins#680), and an address or route that is already there is success,
//! so a retried step does not fail.

use std::net::IpAddr;
use std::time::Duration;

use cni::CniResult;
use ipnetwork::IpNetwork;

use kernel::error::{Error, Result};
use kernel::netlink::route::TABLE_MAIN;
use kernel::netlink::{Family, Handle, Route, RouteScope};
use kernel::netns::Netns;
use kernel::sysctl;

/// What to do besides addresses and routes; the defaults are the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Run IPv6 duplicate address detection and wait for it to settle before
    /// adding routes (the reference's behaviour, opt-in: `enabledad`). When
    /// off, `accept_dad=0` makes the addresses usable at once.
    pub dad: bool,
    /// How long to wait for DAD before giving up (try again, code 11).
    pub dad_timeout: Duration,
    /// Set `arp_notify` on the interface (through netlink), so bringing it
    /// up announces its IPv4 addresses (gratuitous ARP).
    pub announce: bool,
    /// Also set `ndisc_notify` (a sysctl) when there are IPv6 addresses, so
    /// they are announced (unsolicited NA): on an underlay (macvlan)
    /// neighbours and switches learn the new MAC at once.
    pub announce_v6: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { dad: false, dad_timeout: Duration::from_secs(10), announce: false, announce_v6: false }
    }
}

/// The kernel work for one interface, decided from a result without touching
/// the kernel (so it is unit-tested without root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Addresses to add, in result order.
    pub addresses: Vec<IpNetwork>,
    /// Routes to add, each through the interface; a route without a gateway
    /// goes via the first gateway of its family, or directly on the link.
    pub routes: Vec<Route>,
    /// Whether an IPv6 address is among them (IPv6 must then be enabled).
    pub v6: bool,
    /// Whether an IPv6 address has a gateway (routes via it need DAD done).
    pub v6_gateway: bool,
}

/// Plans the configuration of the interface at position `iface` of
/// `result.interfaces` (ifindex `index`): the addresses whose `interface` is
/// `iface`, and every route of the result.
pub fn plan(result: &CniResult, iface: usize, index: u32) -> Plan {
    let mut plan = Plan { addresses: Vec::new(), routes: Vec::new(), v6: false, v6_gateway: false };
    let (mut gw4, mut gw6): (Option<IpAddr>, Option<IpAddr>) = (None, None);
    for ip in result.ips.iter().filter(|ip| ip.interface == Some(iface)) {
        plan.addresses.push(ip.address);
        let v6 = ip.address.is_ipv6();
        plan.v6 |= v6;
        if let Some(gw) = ip.gateway {
            plan.v6_gateway |= v6;
            let slot = if gw.is_ipv4() { &mut gw4 } else { &mut gw6 };
            slot.get_or_insert(gw);
        }
    }
    for r in &result.routes {
        let family_gw = if r.dst.is_ipv4() { gw4 } else { gw6 };
        plan.routes.push(Route {
            gw: r.gw.or(family_gw),
            oif: Some(index),
            priority: r.priority,
            table: r.table,
            scope: r.scope.map(RouteScope::from),
            mtu: r.mtu,
            advmss: r.advmss,
            ..Route::to(r.dst)
        });
    }
    plan
}

/// Configures link `index` (called `ifname`) in namespace `ns`, through `h`,
/// a handle on that same namespace: sysctls, the addresses of
/// `result.interfaces[iface]`, link up, then the result's routes.
///
/// Nothing is undone on failure: the caller deletes the link it made.
pub fn configure(
    ns: &Netns,
    h: &Handle,
    index: u32,
    ifname: &str,
    result: &CniResult,
    iface: usize,
    opts: &Options,
) -> Result<()> {
    let plan = plan(result, iface, index);
    if opts.announce {
        // Best effort, as the reference: an announcement is an optimisation.
        let _ = h.enable_arp_notify(index);
    }
    if plan.v6 && opts.announce_v6 {
        let _ = ns.enter(|| sysctl::set(&sysctl::conf_key(Family::V6, ifname, "ndisc_notify"), "1"));
    }
    for a in &plan.addresses {
        match add_address(ns, h, index, ifname, *a, opts.dad) {
            Err(e) if !e.is_exists() => return Err(e),
            _ => {}
        }
    }
    h.set_up(index)?;
    if opts.dad && plan.v6_gateway {
        h.wait_dad(index, opts.dad_timeout)?;
    }
    for r in &plan.routes {
        match h.add_route(r) {
            // As the reference: a duplicate route means the first one wins.
            Err(e) if !e.is_exists() => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Adds one address. IPv6 without DAD (the default) goes with
/// `IFA_F_NODAD` rather than an `accept_dad` sysctl. A kernel refusing
/// IPv6 because a runtime disabled it in the namespace (EACCES) gets it
/// re-enabled on `lo` and the interface, then the address once more.
fn add_address(ns: &Netns, h: &Handle, index: u32, ifname: &str, a: IpNetwork, dad: bool) -> Result<()> {
    let add = || if a.is_ipv6() && !dad { h.add_address_nodad(index, a) } else { h.add_address(index, a) };
    match add() {
        Err(e) if a.is_ipv6() && e.errno == Some(libc::EACCES) => {
            ns.enter(|| -> Result<()> {
                for dev in ["lo", ifname] {
                    sysctl::set(&sysctl::conf_key(Family::V6, dev, "disable_ipv6"), "0")?;
                }
                Ok(())
            })??;
            add()
        }
        Err(e) if a.is_ipv6() && e.errno == Some(libc::EAFNOSUPPORT) => Err(Error::new(
            kernel::Kind::Unsupported,
            format!("adding IPv6 address {a} to {ifname:?}"),
            "IPv6 is disabled in this kernel",
        )),
        other => other,
    }
}

/// Checks that link `index` (called `ifname`, seen through `h`) holds every
/// address of `result` that belongs to `result.interfaces[iface]`, and that
/// every route of the result is in its table (CHECK). A mismatch is a CNI
/// error (code 100) naming what is missing.
pub fn verify(
    h: &Handle,
    index: u32,
    ifname: &str,
    result: &CniResult,
    iface: usize,
) -> std::result::Result<(), cni::Error> {
    let want: Vec<IpNetwork> =
        result.ips.iter().filter(|ip| ip.interface == Some(iface)).map(|ip| ip.address).collect();
    if !want.is_empty() {
        let have: Vec<IpNetwork> = h.addresses(index)?.into_iter().map(|a| a.net).collect();
        if let Some(missing) = want.iter().find(|w| !have.contains(w)) {
            return Err(cni::Error::plugin(format!(
                "address {missing} of the previous result is not on interface {ifname:?}"
            )));
        }
    }
    let mut dumps: [Option<Vec<Route>>; 2] = [None, None];
    for r in &result.routes {
        let family = Family::of(&r.dst.ip());
        let slot = &mut dumps[usize::from(family == Family::V6)];
        if slot.is_none() {
            *slot = Some(h.routes(family)?);
        }
        let routes = slot.as_deref().unwrap_or_default();
        if !routes.iter().any(|k| route_matches(k, r)) {
            let via = r.gw.map(|g| format!(" via {g}")).unwrap_or_default();
            return Err(cni::Error::plugin(format!(
                "route to {}{via} of the previous result is missing (interface {ifname:?})",
                r.dst
            )));
        }
    }
    Ok(())
}

/// Whether kernel route `k` is result route `r`: same destination network,
/// same gateway when `r` names one, same table.
fn route_matches(k: &Route, r: &cni::result::Route) -> bool {
    let norm = |n: &IpNetwork| IpNetwork::new(n.network(), n.prefix()).ok();
    norm(&k.dst) == norm(&r.dst)
        && r.gw.is_none_or(|gw| k.gw == Some(gw))
        && k.table_or_main() == r.table.unwrap_or(TABLE_MAIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::result::{Interface, IpConfig, Route as CniRoute};

    fn result() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface { name: "cni0".into(), ..Default::default() },
                Interface { name: "eth0".into(), sandbox: "/run/netns/c".into(), ..Default::default() },
            ],
            ips: vec![
                IpConfig {
                    interface: Some(1),
                    address: "10.1.0.5/24".parse().unwrap(),
                    gateway: Some("10.1.0.1".parse().unwrap()),
                },
                IpConfig { interface: Some(0), address: "10.1.0.1/24".parse().unwrap(), gateway: None },
                IpConfig {
                    interface: Some(1),
                    address: "fd00:1::5/64".parse().unwrap(),
                    gateway: Some("fd00:1::1".parse().unwrap()),
                },
            ],
            routes: vec![
                CniRoute::new("0.0.0.0/0".parse().unwrap(), None),
                CniRoute::new("fd00:9::/64".parse().unwrap(), Some("fd00:1::9".parse().unwrap())),
                CniRoute {
                    priority: Some(7),
                    table: Some(100),
                    scope: Some(253),
                    ..CniRoute::new("10.9.0.0/16".parse().unwrap(), None)
                },
            ],
            dns: Default::default(),
        }
    }

    #[test]
    fn plan_takes_this_interface_and_fills_gateways() {
        let p = plan(&result(), 1, 42);
        assert_eq!(p.addresses, vec!["10.1.0.5/24".parse::<IpNetwork>().unwrap(), "fd00:1::5/64".parse().unwrap()]);
        assert!(p.v6 && p.v6_gateway);
        assert_eq!(p.routes.len(), 3);
        assert!(p.routes.iter().all(|r| r.oif == Some(42)));
        assert_eq!(p.routes[0].gw, Some("10.1.0.1".parse().unwrap()), "v4 default via the v4 gateway");
        assert_eq!(p.routes[1].gw, Some("fd00:1::9".parse().unwrap()), "an explicit gateway wins");
        let r = &p.routes[2];
        assert_eq!((r.priority, r.table, r.scope), (Some(7), Some(100), Some(RouteScope::Link)));
    }

    #[test]
    fn plan_without_gateways_routes_on_link() {
        let mut res = result();
        for ip in &mut res.ips {
            ip.gateway = None;
        }
        res.ips.remove(2);
        let p = plan(&res, 1, 3);
        assert!(!p.v6 && !p.v6_gateway);
        assert_eq!(p.routes[0].gw, None);
        assert_eq!(p.routes[1].gw, Some("fd00:1::9".parse().unwrap()));
    }

    #[test]
    fn plan_of_an_interface_without_addresses() {
        let p = plan(&result(), 5, 3);
        assert!(p.addresses.is_empty());
        assert!(!p.v6);
    }

    #[test]
    fn route_matching() {
        let want = CniRoute::new("10.9.0.0/16".parse().unwrap(), Some("10.1.0.1".parse().unwrap()));
        let k = Route {
            gw: Some("10.1.0.1".parse().unwrap()),
            table: Some(254),
            ..Route::to("10.9.0.0/16".parse().unwrap())
        };
        assert!(route_matches(&k, &want));
        let other_gw = Route { gw: Some("10.1.0.2".parse().unwrap()), ..k.clone() };
        assert!(!route_matches(&other_gw, &want));
        let other_table = Route { table: Some(100), ..k.clone() };
        assert!(!route_matches(&other_table, &want));
        let any_gw = CniRoute::new("10.9.1.2/16".parse().unwrap(), None);
        assert!(route_matches(&other_gw, &any_gw), "host bits and a missing gateway don't matter");
    }
}
