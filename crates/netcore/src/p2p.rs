//! A container routed by the host through a veth pair of its own, with no
//! bridge (the ptp plugin). The container holds its address as /32 (/128)
//! and reaches everything through one gateway address, which every host
//! end of the network holds; the host reaches the container by a /32
//! (/128) route to its host end. So containers on one host talk to each
//! other through the host's routing table, and nothing is shared between
//! containers but that gateway address.
//!
//! Everything is found again from the attachment: the host end's name
//! ([`host_veth_name`]) and its MAC (the network's bits in the first four
//! bytes, [`host_mac`]), so DEL needs neither the container nor a cache
//! and GC tells this network's host ends from any other's.

use std::collections::HashSet;
use std::net::IpAddr;

use cni::result::{IpConfig, Route as CniRoute};
use cni::CniResult;
use ipnetwork::IpNetwork;

use crate::attach::{create_pair, disable_ipv6, find_veth_pair, Attached, VethAttach};
use crate::gateway::first_host;
use crate::ifconfig::{self, Options};
use crate::naming::{fnv1a64, host_veth_name};
use kernel::error::{Error, Result};
use kernel::netlink::{Family, Handle, Link, Mac, Route, RouteScope};
use kernel::netns::Netns;
use kernel::sysctl;

/// The MAC of a host end: locally administered unicast, the first four
/// bytes from the network (how GC recognises its own host ends), the last
/// two from the attachment.
pub fn host_mac(network: &str, container_id: &str, ifname: &str) -> Mac {
    let n = fnv1a64(&["p2p", network]).to_be_bytes();
    let a = fnv1a64(&[network, container_id, ifname]).to_be_bytes();
    [(n[0] & 0xfc) | 0x02, n[1], n[2], n[3], a[0], a[1]]
}

fn of_network(network: &str, mac: &Mac) -> bool {
    host_mac(network, "", "")[..4] == mac[..4]
}

/// One container address and the host-end address it goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    /// The container's address.
    pub address: IpAddr,
    /// The subnet IPAM gave it in (reached through the gateway).
    pub subnet: IpNetwork,
    /// The gateway: IPAM's, or the subnet's first address.
    pub gateway: IpAddr,
}

/// A single address as a network (/32 or /128).
fn host_net(ip: IpAddr) -> IpNetwork {
    IpNetwork::new(ip, if ip.is_ipv4() { 32 } else { 128 }).expect("full-length prefix")
}

/// The hops of an IPAM result. An address that is its own gateway is a
/// config error (code 7): nothing could route it.
pub fn hops(ips: &[IpConfig]) -> std::result::Result<Vec<Hop>, cni::Error> {
    ips.iter()
        .map(|ip| {
            let subnet = IpNetwork::new(ip.address.network(), ip.address.prefix()).unwrap_or(ip.address);
            let gateway = ip.gateway.unwrap_or_else(|| first_host(&subnet));
            if gateway == ip.address.ip() {
                return Err(cni::Error::invalid_config(format!(
                    "address {} is its own gateway: give the IPAM range a gateway other than the container's address",
                    ip.address
                )));
            }
            Ok(Hop { address: ip.address.ip(), subnet, gateway })
        })
        .collect()
}

/// The addresses as the container holds them: /32 (/128), with their
/// gateway, on interface `iface` of the result.
pub fn container_ips(hops: &[Hop], iface: usize) -> Vec<IpConfig> {
    hops.iter()
        .map(|h| IpConfig { interface: Some(iface), address: host_net(h.address), gateway: Some(h.gateway) })
        .collect()
}

/// ADD, host side: the pair (container end made in the container), each
/// gateway on the host end, a /32 (/128) route per container address to
/// it, and forwarding on. The pair is removed again on failure.
pub fn attach(host: &Handle, ctr: &Handle, a: &VethAttach<'_>, hops: &[Hop]) -> Result<Attached> {
    let veth = create(host, a)?;
    attach_created(host, ctr, a, veth, hops)
}

/// The first half of [`attach`]: only the pair, which needs no address
/// (so it can be made while the IPAM delegate runs). The caller removes it
/// when what follows fails before [`attach_created`].
pub fn create(host: &Handle, a: &VethAttach<'_>) -> Result<Link> {
    let mac = host_mac(a.owner.network(), a.owner.container_id(), a.owner.ifname());
    create_pair(host, a, None, Some(mac))
}

/// The second half of [`attach`], on the host end `veth` that [`create`]
/// made; the pair is removed again on failure.
pub fn attach_created(host: &Handle, ctr: &Handle, a: &VethAttach<'_>, veth: Link, hops: &[Hop]) -> Result<Attached> {
    let done = (|| {
        if hops.iter().any(|h| h.address.is_ipv6()) {
            // The host end's link-local address appears when the container
            // end comes up; while it is tentative (DAD, 1-2 s) the host
            // cannot solicit a container's address for forwarded packets,
            // and the first packets between containers are lost.
            sysctl::set(&sysctl::conf_key(Family::V6, &veth.name, "accept_dad"), "0")?;
        } else {
            // No IPv6 to route: without a link-local address and its routes
            // on every host end, the kernel's walks of the IPv6 routing
            // table on each link's up and removal stay as short with 1,000
            // containers as with one.
            disable_ipv6(&veth.name)?;
        }
        host.set_up(veth.index)?;
        for h in hops {
            let gw = host_net(h.gateway);
            let added =
                if gw.is_ipv6() { host.add_address_nodad(veth.index, gw) } else { host.add_address(veth.index, gw) };
            match added {
                Err(e) if !e.is_exists() => return Err(e),
                _ => {}
            }
            // Replace: a route of a container whose host end vanished
            // with an unclean kernel state must not block this one.
            host.replace_route(&Route {
                oif: Some(veth.index),
                scope: Some(RouteScope::Link),
                ..Route::to(host_net(h.address))
            })?;
            sysctl::ensure(sysctl::ip_forward_key(Family::of(&h.address)), "1")?;
        }
        let container = ctr.link(a.owner.ifname())?;
        Ok(Attached { host: veth.clone(), container })
    })();
    if done.is_err() {
        let _ = host.delete_link(veth.index);
    }
    done
}

/// ADD, container side, on link `index` called `ifname`: the addresses of
/// `result` (interface `iface`), link up, a link route to each gateway,
/// then each subnet and every route of `result` via its family's gateway.
/// Nothing is undone on failure: the caller deletes the pair.
pub fn configure_container(
    ns: &Netns,
    ctr: &Handle,
    index: u32,
    ifname: &str,
    result: &CniResult,
    iface: usize,
    hops: &[Hop],
) -> Result<()> {
    let addresses = CniResult { ips: result.ips.clone(), ..CniResult::default() };
    ifconfig::configure(ns, ctr, index, ifname, &addresses, iface, &Options::default())?;
    let ignore_exists = |r: Result<()>| match r {
        Err(e) if !e.is_exists() => Err(e),
        _ => Ok(()),
    };
    for h in hops {
        ignore_exists(ctr.add_route(&Route {
            oif: Some(index),
            scope: Some(RouteScope::Link),
            src: Some(h.address),
            ..Route::to(host_net(h.gateway))
        }))?;
    }
    let mut routes: Vec<CniRoute> = hops
        .iter()
        .filter(|h| h.subnet.prefix() < host_net(h.address).prefix())
        .map(|h| CniRoute::new(h.subnet, Some(h.gateway)))
        .collect();
    routes.extend(result.routes.iter().cloned());
    let routed = CniResult { ips: result.ips.clone(), routes, ..CniResult::default() };
    for r in ifconfig::plan(&routed, iface, index).routes {
        ignore_exists(ctr.add_route(&r))?;
    }
    Ok(())
}

/// CHECK of one attachment against the previous result: the container
/// interface is a veth with prevResult's MAC and addresses and routes, its
/// host end (found by name) is its peer on no bridge, holds every gateway
/// and has the route to every container address. Each mismatch is a CNI
/// error (code 100) saying what drifted.
pub fn verify(
    host: &Handle,
    ctr: &Handle,
    attachment: (&str, &str, &str),
    prev: &CniResult,
) -> std::result::Result<(), cni::Error> {
    let (network, container_id, ifname) = attachment;
    let drift = cni::Error::plugin;
    let host_end = host_veth_name(network, container_id, ifname);
    let (c, idx, h) = find_veth_pair(host, ctr, ifname, &host_end, prev)?;
    if h.link != Some(c.index) || h.master.is_some() {
        return Err(drift(format!("host end {host_end:?} is not the peer of {ifname:?} in the container")));
    }
    let held: Vec<IpNetwork> = host.addresses(h.index)?.into_iter().map(|a| a.net).collect();
    for ip in prev.ips.iter().filter(|ip| ip.interface == Some(idx)) {
        if let Some(gw) = ip.gateway.filter(|g| !held.contains(&host_net(*g))) {
            return Err(drift(format!("host end {host_end:?} does not hold gateway {gw}")));
        }
        let dst = host_net(ip.address.ip());
        let routes = host.routes(Family::of(&dst.ip()))?;
        if !routes.iter().any(|r| r.dst == dst && r.oif == Some(h.index)) {
            return Err(drift(format!("the host has no route to {dst} through {host_end:?}")));
        }
    }
    ifconfig::verify(ctr, c.index, ifname, prev, idx)
}

/// GC: deletes the host ends of `network` (our name pattern, a veth on no
/// bridge, the network's MAC) whose name is not in `live`; the first
/// failure is returned after trying the others.
pub fn remove_stale_veths(host: &Handle, network: &str, live: &HashSet<String>) -> Result<()> {
    let mut first: Option<Error> = None;
    for l in host.links()? {
        let ours = l.name.len() == 15 && l.name.starts_with("veth") && l.is_kind("veth") && l.master.is_none();
        if ours && l.mac.is_some_and(|m| of_network(network, &m)) && !live.contains(&l.name) {
            if let Err(e) = host.delete_link(l.index) {
                if !e.is_not_found() {
                    first.get_or_insert(e);
                }
            }
        }
    }
    first.map_or(Ok(()), Err)
}

/// GC's kernel half for a ptp network: the masquerade elements and host
/// ends no attachment in `valid` owns. Every failure is returned.
pub fn gc_network(network: &str, valid: &[cni::config::Attachment]) -> Vec<Error> {
    let stale = crate::owner::Stale::new(network, valid);
    let live: HashSet<String> = valid.iter().map(|a| host_veth_name(network, &a.container_id, &a.ifname)).collect();
    let mut errors: Vec<Error> = crate::masq::gc_network(&stale).err().into_iter().collect();
    errors.extend(Handle::new().and_then(|host| remove_stale_veths(&host, network, &live)).err());
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_macs_carry_the_network() {
        let a = host_mac("ptp", "c1", "eth0");
        assert_eq!(a[0] & 0x03, 0x02, "locally administered unicast");
        assert!(of_network("ptp", &a));
        assert!(of_network("ptp", &host_mac("ptp", "c2", "net1")));
        assert!(!of_network("ptp2", &a));
        assert_eq!(a, host_mac("ptp", "c1", "eth0"));
    }

    #[test]
    fn hops_default_the_gateway_and_refuse_a_self_gateway() {
        let ip = |a: &str, gw: Option<&str>| IpConfig {
            interface: None,
            address: a.parse().unwrap(),
            gateway: gw.map(|g| g.parse().unwrap()),
        };
        let h = hops(&[ip("10.1.0.5/24", None), ip("fd00::5/64", Some("fd00::fe"))]).unwrap();
        assert_eq!(h[0].gateway.to_string(), "10.1.0.1");
        assert_eq!(h[0].subnet.to_string(), "10.1.0.0/24");
        assert_eq!(h[1].gateway.to_string(), "fd00::fe");
        let c = container_ips(&h, 1);
        assert_eq!(c[0].address.to_string(), "10.1.0.5/32");
        assert_eq!(c[1].address.to_string(), "fd00::5/128");
        assert_eq!(hops(&[ip("10.1.0.1/24", None)]).unwrap_err().code, 7);
    }
}
