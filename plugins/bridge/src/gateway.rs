//! The bridge as the containers' gateway: its address per family, and
//! forwarding on the host.

use cni::result::IpConfig;
use cni::Error;
use ipnetwork::IpNetwork;
use netcore::netlink::{Family, Handle, Link};
use netcore::sysctl;

/// The gateway address to put on the bridge for one container address:
/// the IPAM gateway (or the subnet's first address) with the container's
/// prefix length.
pub fn gateway_net(ip: &IpConfig) -> Option<IpNetwork> {
    let gw = match ip.gateway {
        Some(g) => g,
        None => {
            let net = IpNetwork::new(ip.address.network(), ip.address.prefix()).ok()?;
            let first = match net {
                IpNetwork::V4(n) => std::net::IpAddr::V4((u32::from(n.network()) + 1).into()),
                IpNetwork::V6(n) => std::net::IpAddr::V6((u128::from(n.network()) + 1).into()),
            };
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
/// ADDs race here). Another address of the family that would conflict
/// (IPv4: any other; IPv6: an overlapping prefix) is an error unless
/// `force`, which replaces it, as the reference's `forceAddress`.
pub fn ensure_address(h: &Handle, bridge: &Link, gw: IpNetwork, force: bool) -> Result<(), Error> {
    let existing = h.addresses(bridge.index)?;
    if existing.iter().any(|a| a.net == gw) {
        return Ok(());
    }
    for a in existing.iter().filter(|a| a.net.is_ipv4() == gw.is_ipv4()) {
        if a.net.is_ipv6()
            && (!overlaps(&a.net, &gw) || matches!(a.net.ip(), std::net::IpAddr::V6(v6) if v6.is_unicast_link_local()))
        {
            continue;
        }
        if !force {
            return Err(Error::plugin(format!(
                "bridge {:?} already has an IP address different from {gw}: {}",
                bridge.name, a.net
            ))
            .with_details("set forceAddress to replace it"));
        }
        match h.del_address(bridge.index, a.net) {
            Err(e) if !e.is_not_found() => return Err(e.into()),
            _ => {}
        }
    }
    if gw.is_ipv6() {
        // The gateway must answer at once; a tentative address would drop
        // the containers' first packets for a second or two.
        sysctl::ensure(&sysctl::conf_key(Family::V6, &bridge.name, "accept_dad"), "0")?;
    }
    match h.add_address(bridge.index, gw) {
        Err(e) if !e.is_exists() => Err(e.into()),
        _ => Ok(()),
    }
}

/// Turns forwarding on for the family (only ever on, never off: other
/// networks on the host may rely on it).
pub fn enable_forwarding(family: Family) -> Result<(), Error> {
    sysctl::ensure(sysctl::ip_forward_key(family), "1")?;
    Ok(())
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
    }

    #[test]
    fn overlap() {
        assert!(overlaps(&"fd00::1/64".parse().unwrap(), &"fd00::/48".parse().unwrap()));
        assert!(!overlaps(&"fd00::1/64".parse().unwrap(), &"fd01::/64".parse().unwrap()));
    }
}
