//! A Linux bridge as the containers' gateway, shared by the bridge and
//! vxlan plugins: which address the bridge holds per family, putting it
//! there (many concurrent ADDs race to), forwarding on the host, and the
//! result a container attached to such a bridge gets back. Kept in one
//! place so both plugins answer the same way for the same situation.

use crate::attach::Attached;
use cni::config::Dns;
use cni::result::{Interface, IpConfig, Route};
use cni::{CniResult, Error};
use ipnetwork::IpNetwork;
use kernel::netlink::{Family, Handle, Link};
use kernel::sysctl;
use std::net::IpAddr;

/// The first address of `net` (network + 1): the gateway host-local
/// reserves when its range names none.
pub fn first_host(net: &IpNetwork) -> IpAddr {
    match net {
        IpNetwork::V4(n) => IpAddr::V4((u32::from(n.network()).wrapping_add(1)).into()),
        IpNetwork::V6(n) => IpAddr::V6((u128::from(n.network()).wrapping_add(1)).into()),
    }
}

/// The gateway address to put on the bridge for one container address:
/// the IPAM gateway (or the subnet's first address) with the container's
/// prefix length.
pub fn gateway_net(ip: &IpConfig) -> Option<IpNetwork> {
    let gw = match ip.gateway {
        Some(g) => g,
        None => {
            let net = IpNetwork::new(ip.address.network(), ip.address.prefix()).ok()?;
            let first = first_host(&net);
            if first == ip.address.ip() {
                return None;
            }
            first
        }
    };
    IpNetwork::new(gw, ip.address.prefix()).ok()
}

fn overlaps(a: &IpNetwork, b: &IpNetwork) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

/// Puts `gw` on the bridge. An address already there is success (many
/// ADDs race here, and every ADD after the first lands here: one request,
/// no listing). When the address is new, another address of the family
/// that would conflict (IPv4: any other; IPv6: an overlapping prefix) is
/// an error, and `gw` is taken off again, unless `force`, which replaces
/// it instead, as the reference's `forceAddress`.
pub fn ensure_address(h: &Handle, bridge: &Link, gw: IpNetwork, force: bool) -> Result<(), Error> {
    // The gateway must answer at once; a tentative IPv6 address would drop
    // the containers' first packets for a second or two.
    let added = if gw.is_ipv6() { h.add_address_nodad(bridge.index, gw) } else { h.add_address(bridge.index, gw) };
    match added {
        Err(e) if e.is_exists() => return Ok(()),
        Err(e) => return Err(e.into()),
        Ok(()) => {}
    }
    let conflicting: Vec<IpNetwork> = h
        .addresses(bridge.index)?
        .into_iter()
        .map(|a| a.net)
        .filter(|n| *n != gw && n.is_ipv4() == gw.is_ipv4())
        .filter(|n| {
            n.is_ipv4() || (overlaps(n, &gw) && !matches!(n.ip(), IpAddr::V6(v6) if v6.is_unicast_link_local()))
        })
        .collect();
    let Some(first) = conflicting.first() else { return Ok(()) };
    if !force {
        let _ = h.del_address(bridge.index, gw);
        return Err(Error::plugin(format!(
            "bridge {:?} already has an IP address different from {gw}: {first}",
            bridge.name
        ))
        .with_details("set forceAddress to replace it"));
    }
    for n in &conflicting {
        match h.del_address(bridge.index, *n) {
            Err(e) if !e.is_not_found() => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

/// Turns forwarding on for the family (only ever on, never off: other
/// networks on the host may rely on it).
pub fn enable_forwarding(family: Family) -> Result<(), Error> {
    sysctl::ensure(sysctl::ip_forward_key(family), "1")?;
    Ok(())
}

/// For every address of a container: its gateway on the bridge, and
/// forwarding for its family (`isGateway`).
pub fn ensure_gateways(h: &Handle, bridge: &Link, ips: &[IpConfig], force: bool) -> Result<(), Error> {
    for ip in ips {
        if let Some(gw) = gateway_net(ip) {
            ensure_address(h, bridge, gw, force)?;
            enable_forwarding(Family::of(&gw.ip()))?;
        }
    }
    Ok(())
}

/// What the result of a container on a bridge depends on besides the
/// links and the lease.
#[derive(Debug, Clone, Copy)]
pub struct ResultSpec<'a> {
    /// The container's interface name.
    pub ifname: &'a str,
    /// The container's namespace path (`CNI_NETNS`).
    pub sandbox: &'a str,
    /// MTU of the container interface, when configured.
    pub mtu: Option<u32>,
    /// The bridge is the gateway: addresses without an IPAM gateway get
    /// the subnet's first address.
    pub is_gateway: bool,
    /// Add a default route per family via its gateway, unless IPAM gave one.
    pub is_default_gateway: bool,
    /// The config's `dns`, which replaces IPAM's when not empty.
    pub dns: Option<&'a Dns>,
}

/// The result: `[bridge, host veth, container]`, addresses on the
/// container interface (index 2), IPAM routes plus the default route
/// when the bridge is the default gateway.
pub fn bridge_result(br: &Link, attached: &Attached, lease: CniResult, spec: &ResultSpec<'_>) -> CniResult {
    let interfaces = vec![
        Interface { name: br.name.clone(), mac: br.mac_string(), ..Default::default() },
        Interface { name: attached.host.name.clone(), mac: attached.host.mac_string(), ..Default::default() },
        Interface {
            name: spec.ifname.to_string(),
            mac: attached.container.mac_string(),
            mtu: spec.mtu,
            sandbox: spec.sandbox.to_string(),
            ..Default::default()
        },
    ];
    let ips: Vec<IpConfig> = lease
        .ips
        .into_iter()
        .map(|ip| {
            let gateway =
                if spec.is_gateway { ip.gateway.or_else(|| gateway_net(&ip).map(|n| n.ip())) } else { ip.gateway };
            IpConfig { interface: Some(2), address: ip.address, gateway }
        })
        .collect();
    let mut routes = lease.routes;
    if spec.is_default_gateway {
        for v4 in [true, false] {
            let has_default = routes.iter().any(|r| r.dst.is_ipv4() == v4 && r.dst.prefix() == 0);
            let gw = ips.iter().find(|ip| ip.address.is_ipv4() == v4).and_then(|ip| ip.gateway);
            if let (false, Some(gw)) = (has_default, gw) {
                let dst = if v4 { "0.0.0.0/0" } else { "::/0" };
                routes.push(Route::new(dst.parse().expect("literal"), Some(gw)));
            }
        }
    }
    let dns = match spec.dns {
        Some(d) if !d.is_empty() => d.clone(),
        _ => lease.dns,
    };
    CniResult { interfaces, ips, routes, dns }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_defaults_to_the_first_address() {
        let ip = IpConfig { interface: Some(2), address: "10.88.0.5/24".parse().unwrap(), gateway: None };
        assert_eq!(gateway_net(&ip).unwrap().to_string(), "10.88.0.1/24");
        let ip = IpConfig {
            interface: Some(2),
            address: "fd00::5/64".parse().unwrap(),
            gateway: Some("fd00::fe".parse().unwrap()),
        };
        assert_eq!(gateway_net(&ip).unwrap().to_string(), "fd00::fe/64");
        let own = IpConfig { interface: Some(2), address: "10.88.0.1/24".parse().unwrap(), gateway: None };
        assert_eq!(gateway_net(&own), None, "the container holds the first address itself");
        assert_eq!(first_host(&"fd00:1::/64".parse().unwrap()).to_string(), "fd00:1::1");
    }

    #[test]
    fn overlap() {
        assert!(overlaps(&"fd00::1/64".parse().unwrap(), &"fd00::/48".parse().unwrap()));
        assert!(!overlaps(&"fd00::1/64".parse().unwrap(), &"fd01::/64".parse().unwrap()));
    }

    fn link(name: &str, index: u32) -> Link {
        Link { name: name.into(), index, mac: Some([2, 0, 0, 0, 0, index as u8]), ..Default::default() }
    }

    #[test]
    fn result_fills_gateways_and_default_routes() {
        let attached = Attached { host: link("veth0", 5), container: link("eth0", 2) };
        let lease = CniResult {
            ips: vec![
                IpConfig { interface: None, address: "10.1.0.5/24".parse().unwrap(), gateway: None },
                IpConfig {
                    interface: None,
                    address: "fd00:1::5/64".parse().unwrap(),
                    gateway: Some("fd00:1::fe".parse().unwrap()),
                },
            ],
            routes: vec![Route::new("::/0".parse().unwrap(), None)],
            ..Default::default()
        };
        let dns = Dns { nameservers: vec!["10.1.0.1".into()], ..Default::default() };
        let spec = ResultSpec {
            ifname: "eth0",
            sandbox: "/run/netns/c",
            mtu: Some(1450),
            is_gateway: true,
            is_default_gateway: true,
            dns: Some(&dns),
        };
        let r = bridge_result(&link("br0", 3), &attached, lease, &spec);
        let names: Vec<&str> = r.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["br0", "veth0", "eth0"]);
        assert_eq!((r.interfaces[2].sandbox.as_str(), r.interfaces[2].mtu), ("/run/netns/c", Some(1450)));
        assert!(r.ips.iter().all(|ip| ip.interface == Some(2)));
        assert_eq!(r.ips[0].gateway, Some("10.1.0.1".parse().unwrap()));
        assert_eq!(r.ips[1].gateway, Some("fd00:1::fe".parse().unwrap()));
        // IPAM's v6 default stays alone; the v4 default is added via the gateway.
        assert_eq!(r.routes.len(), 2);
        assert_eq!(r.routes[1].dst.to_string(), "0.0.0.0/0");
        assert_eq!(r.routes[1].gw, Some("10.1.0.1".parse().unwrap()));
        assert_eq!(r.dns, dns);
    }
}
