//! ADD: check everything, then install the attachment's elements in one
//! nftables transaction, and print prevResult unchanged.
//!
//! A host port held by another container makes the kernel refuse the
//! whole transaction (EEXIST on an exclusive create), so nothing changes;
//! only then are the maps listed, to name the container that holds it.

use crate::config::{self, PortmapConf};
use crate::conntrack;
use crate::nft_maps::{self, describe_key, show_data, Layout, Plan};
use cni::error::code;
use cni::{CniResult, Context, Error};
use ipnetwork::IpNetwork;
use kernel::netlink::{Family, Handle, RouteKind};
use kernel::nft::{Batch, Element, Set, Socket};
use kernel::sysctl;
use netcore::owner::{container_of, OwnerKey};
use std::net::{IpAddr, Ipv4Addr};

/// Runs ADD.
pub fn add(ctx: &Context) -> Result<CniResult, Error> {
    let conf = config::load(ctx)?;
    let prev = ctx.require_prev_result()?;
    let mappings = config::mappings(ctx)?;
    if mappings.is_empty() {
        // Nothing to map: do not touch nftables at all (plugins#464).
        return Ok(prev);
    }
    let addrs = container_addrs(&prev, &ctx.ifname);
    if addrs.is_empty() {
        log::warn!("portmap: prevResult has no address for {}; no port is mapped", ctx.ifname);
        return Ok(prev);
    }
    let owner = OwnerKey::of(ctx);
    let layout = Layout::new()?;
    let plan = nft_maps::plan(&layout, &conf, &mappings, &addrs, &owner.key())?;
    if plan.is_empty() {
        log::info!("portmap: no mapping applies to the container's addresses");
        return Ok(prev);
    }
    if let Some(v4) = localhost_target(&conf, &plan, &addrs) {
        enable_route_localnet(v4)?;
    }
    install(&layout, &plan, &owner, &ctx.container_id)?;
    conntrack::flush_udp(&mappings);
    Ok(prev)
}

/// The container's first IPv4 and first IPv6 address on `ifname`, as the
/// reference picks them: addresses pointing at another interface, or at a
/// host-side one, are skipped; addresses without an interface count.
pub fn container_addrs(prev: &CniResult, ifname: &str) -> Vec<IpNetwork> {
    let mine = prev.ips.iter().filter(|ip| match ip.interface.and_then(|i| prev.interfaces.get(i)) {
        Some(itf) => itf.name == ifname && !itf.sandbox.is_empty(),
        None => true,
    });
    let mut out: Vec<IpNetwork> = Vec::new();
    for ip in mine {
        if !out.iter().any(|o| o.is_ipv4() == ip.address.is_ipv4()) {
            out.push(ip.address);
        }
    }
    out
}

/// The IPv4 address `127.0.0.1:hostPort` is forwarded to, when localhost
/// masquerade is on.
fn localhost_target(conf: &PortmapConf, plan: &Plan, addrs: &[IpNetwork]) -> Option<Ipv4Addr> {
    if !conf.snat {
        return None;
    }
    let v4 = addrs.iter().find_map(|a| match a.ip() {
        IpAddr::V4(v) => Some(v),
        _ => None,
    })?;
    plan.dnat.iter().any(|(s, _)| s.name().starts_with("hp4")).then_some(v4)
}

/// Lets `127.0.0.1:hostPort` reach the container: the kernel drops packets
/// with a loopback source on a real interface unless `route_localnet` is
/// on for it. Only the interface that routes to the container (the
/// bridge, ptp's host end) is changed, never a default-route uplink. The
/// kernel is asked which route it takes to the container (one lookup, the
/// same answer its forwarding gets, policy rules included) rather than the
/// routes listed: ptp adds one host route per container.
fn enable_route_localnet(cip: Ipv4Addr) -> Result<(), Error> {
    let h = Handle::new()?;
    let best =
        h.route_to(IpAddr::V4(cip))?.filter(|r| r.kind == RouteKind::Unicast && r.oif.is_some() && r.dst.prefix() > 0);
    let Some(oif) = best.and_then(|r| r.oif) else {
        log::info!("portmap: no interface route to {cip}; 127.0.0.1 mappings will not reach it");
        return Ok(());
    };
    let Some(link) = h.link_by_index(oif)? else {
        return Ok(());
    };
    let key = sysctl::conf_key(Family::V4, &link.name, "route_localnet");
    sysctl::ensure(&key, "1").map_err(|e| Error::from(e).context("portmap: enabling route_localnet"))?;
    Ok(())
}

/// Commits the table layout and the plan; on EEXIST finds who holds the
/// keys. Keys this owner already holds (a repeated ADD) are replaced.
fn install(layout: &Layout, plan: &Plan, owner: &OwnerKey, container: &str) -> Result<(), Error> {
    let sock = Socket::open()?;
    let mut b = Batch::new();
    layout.setup(&mut b);
    plan.apply(&mut b, &[]);
    let err = match sock.commit(&b) {
        Ok(()) => return Ok(()),
        Err(e) if e.is_exists() => e,
        Err(e) => return Err(e.into()),
    };
    let held = holders(&sock, plan)?;
    let others: Vec<&(Set, Element, Element)> =
        held.iter().filter(|(_, _, have)| !have.comment.as_deref().is_some_and(|c| owner.matches(c))).collect();
    if let Some((_, want, have)) = others.first() {
        let holder = have.comment.as_deref().map(container_of).unwrap_or_else(|| "unknown (no owner)".into());
        let details: Vec<String> = others
            .iter()
            .map(|(_, w, h)| {
                format!(
                    "{} -> {} held by {}",
                    describe_key(&w.key),
                    show_data(h),
                    h.comment.as_deref().unwrap_or("an element without owner")
                )
            })
            .collect();
        return Err(Error::new(
            code::CONFLICT,
            format!(
                "portmap: {} is already mapped for container {holder:?} (to {}); cannot map it for container {container:?}",
                describe_key(&want.key),
                show_data(have)
            ),
        )
        .with_details(details.join("; ")));
    }
    if held.is_empty() {
        return Err(err.into());
    }
    let replace: Vec<(Set, Element)> = held.into_iter().map(|(s, _, have)| (s, have)).collect();
    let mut b = Batch::new();
    layout.setup(&mut b);
    plan.apply(&mut b, &replace);
    sock.commit(&b).map_err(Error::from)
}

/// The elements already in the maps under the keys `plan` wants:
/// (map, wanted element, element found), one lookup per key.
fn holders(sock: &Socket, plan: &Plan) -> Result<Vec<(Set, Element, Element)>, Error> {
    let mut out = Vec::new();
    for (set, want) in &plan.dnat {
        if let Some(have) = sock.get_element(set, want)? {
            out.push((set.clone(), want.clone(), have));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_addresses_follow_the_reference() {
        let prev = CniResult::parse(
            &serde_json::json!({
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "cni0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
                "ips": [
                    {"interface": 0, "address": "10.88.0.1/16"},
                    {"interface": 2, "address": "10.88.0.2/16"},
                    {"interface": 2, "address": "10.88.0.3/16"},
                    {"address": "fd00::2/64"}
                ]
            }),
            cni::Version::V100,
        )
        .unwrap();
        let got: Vec<String> = container_addrs(&prev, "eth0").iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["10.88.0.2/16", "fd00::2/64"]);
        let got: Vec<String> = container_addrs(&prev, "eth1").iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["fd00::2/64"]);
    }
}
