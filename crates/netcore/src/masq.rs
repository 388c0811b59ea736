//! Masquerade for container networks (`ipMasq`), shared by bridge and vxlan.
//!
//! One table, `inet cnirs-nat`. Its postrouting chain sends a packet by its
//! source address through one verdict map per family (`masq-src4`,
//! `masq-src6`): each container address is an element pointing at its
//! network's chain, owned by (network, container id, ifname). A network's
//! chain returns for destinations in its exempt set (its own subnets, or a
//! whole cluster CIDR, and multicast) and masquerades the rest. So an ADD
//! adds elements and a DEL deletes them: the rule count never grows with
//! containers, and lookup cost stays flat. Two networks may share a subnet
//! and so an address: each records a claim on it ([`crate::claims`]), and
//! the address stays masqueraded until the last claimant's DEL.

use crate::claims::{self, Shared};
use crate::owner::{OwnerKey, Stale};
use ipnetwork::IpNetwork;
use kernel::error::Result;
use kernel::nft::{
    priority, Batch, ChainType, DataType, Element, Field, Hook, IpFamily, Rule, Set, Socket, Table, Value,
};
use std::net::IpAddr;

/// Our NAT table; never the reference plugins' names.
pub const TABLE: &str = "cnirs-nat";

fn table() -> Result<Table> {
    Table::new(kernel::nft::Family::Inet, TABLE)
}

fn src_map(t: &Table, v4: bool) -> Result<Set> {
    if v4 {
        t.vmap("masq-src4", &[DataType::Ipv4Addr])
    } else {
        t.vmap("masq-src6", &[DataType::Ipv6Addr])
    }
}

fn exempt_set(t: &Table, network: &str, v4: bool) -> Result<Set> {
    let (name, ty) = if v4 { ("4", DataType::Ipv4Addr) } else { ("6", DataType::Ipv6Addr) };
    t.set(format!("masq-{network}-exempt{name}"), &[ty])?.interval()
}

fn value(ip: IpAddr) -> Value {
    match ip {
        IpAddr::V4(a) => Value::Ipv4(a),
        IpAddr::V6(a) => Value::Ipv6(a),
    }
}

/// Multicast is never masqueraded, as the reference plugin excludes it.
fn multicast(v4: bool) -> IpNetwork {
    if v4 {
        "224.0.0.0/4".parse().expect("literal")
    } else {
        "ff00::/8".parse().expect("literal")
    }
}

/// Adds to `batch` the table, the shared chains and maps, and this
/// network's chain and exempt sets (rewritten, so repeating it is harmless
/// and concurrent ADDs of one network converge).
pub fn ensure_network(batch: &mut Batch, network: &str, exempt: &[IpNetwork]) -> Result<()> {
    let t = table()?;
    let post = t.base_chain("postrouting", Hook::Postrouting, ChainType::Nat, priority::SRCNAT)?;
    let chain = t.chain(format!("masq-{network}"))?;
    batch.add_table(&t).add_chain(&post).add_chain(&chain);
    let maps = [src_map(&t, true)?, src_map(&t, false)?];
    for m in &maps {
        Shared::new(&t, m)?.declare(batch);
    }
    // Rewritten only where the kernel's copy differs: a flush would make
    // every ADD wait an RCU grace period (~16 ms) when its socket closes.
    batch.replace_rules(
        &post,
        [
            Rule::new(&post).nfproto(IpFamily::V4).vmap(&[Field::Ip4Saddr], &maps[0]),
            Rule::new(&post).nfproto(IpFamily::V6).vmap(&[Field::Ip6Saddr], &maps[1]),
        ],
    );
    let mut rules = Vec::new();
    for v4 in [true, false] {
        let set = exempt_set(&t, network, v4)?;
        let mut nets: Vec<IpNetwork> = exempt.iter().filter(|n| n.is_ipv4() == v4).copied().collect();
        nets.push(multicast(v4));
        batch.add_set(&set).replace_elements(&set, merge(nets).into_iter().map(Element::prefix));
        let (fam, field) = if v4 { (IpFamily::V4, Field::Ip4Daddr) } else { (IpFamily::V6, Field::Ip6Daddr) };
        rules.push(Rule::new(&chain).nfproto(fam).in_set(&[field], &set).ret());
    }
    rules.push(Rule::new(&chain).masquerade());
    batch.replace_rules(&chain, rules);
    Ok(())
}

/// Drops networks contained in another one: an interval set refuses
/// overlapping elements.
fn merge(mut nets: Vec<IpNetwork>) -> Vec<IpNetwork> {
    nets.sort_by_key(|n| n.prefix());
    let mut out: Vec<IpNetwork> = Vec::new();
    for n in nets {
        let n = IpNetwork::new(n.network(), n.prefix()).unwrap_or(n);
        if !out.iter().any(|o| o.contains(n.network())) {
            out.push(n);
        }
    }
    out
}

/// Adds to `batch` the elements that masquerade `ips` of one attachment.
/// An address another network's container also has (one subnet in two
/// networks) is claimed, and masqueraded by the chain of whichever network
/// holds it.
pub fn add_container(batch: &mut Batch, network: &str, owner: &OwnerKey, ips: &[IpAddr]) -> Result<()> {
    let t = table()?;
    let chain = t.chain(format!("masq-{network}"))?;
    for ip in ips {
        let map = Shared::new(&t, &src_map(&t, ip.is_ipv4())?)?;
        claims::add(batch, &map, Element::new([value(*ip)]).verdict(chain.goto()), owner)?;
    }
    Ok(())
}

fn maps() -> Result<Vec<Shared>> {
    let t = table()?;
    Ok(vec![Shared::new(&t, &src_map(&t, true)?)?, Shared::new(&t, &src_map(&t, false)?)?])
}

/// Adds to `batch` the removal of every element and claim of `owner`;
/// nothing to remove is success, so DEL stays idempotent and needs no
/// addresses. One batch for all of a DEL's nftables work: each socket that
/// deletes waits an RCU grace period when it closes.
pub fn del_container_into(sock: &Socket, batch: &mut Batch, owner: &OwnerKey) -> Result<usize> {
    Ok(claims::release_into(sock, batch, &maps()?, &|c| owner.matches(c))?.len())
}

/// CHECK of a plugin with `ipMasq` on (bridge, ptp, vxlan): every address
/// `prev` gives the container interface `ifname` is masqueraded for
/// `owner`; the error names the missing addresses and the table.
pub fn check_container(owner: &OwnerKey, prev: &cni::CniResult, ifname: &str) -> std::result::Result<(), cni::Error> {
    let ips: Vec<IpAddr> = prev.container_ips(ifname).iter().map(|ip| ip.address.ip()).collect();
    if !ips.is_empty() && !has_container(owner, &ips)? {
        return Err(cni::Error::plugin(format!("masquerade entries for {ips:?} are missing from table inet {TABLE}")));
    }
    Ok(())
}

/// Whether every address of `ips` is masqueraded for `owner`.
fn has_container(owner: &OwnerKey, ips: &[IpAddr]) -> Result<bool> {
    let sock = Socket::open()?;
    let maps = maps()?;
    for ip in ips {
        if !claims::has(&sock, &maps[usize::from(ip.is_ipv6())], &[value(*ip)], owner)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// GC: removes the elements and claims of the network that `stale`
/// selects, and returns their owners.
pub fn gc_network(stale: &Stale) -> Result<Vec<String>> {
    let sock = Socket::open()?;
    let mut batch = Batch::new();
    let gone = claims::release_into(&sock, &mut batch, &maps()?, &|c| stale.is_stale(c))?;
    if !batch.is_empty() {
        sock.commit(&batch)?;
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_drops_contained_networks() {
        let nets =
            vec!["10.0.0.0/24".parse().unwrap(), "10.0.0.0/8".parse().unwrap(), "192.168.1.7/24".parse().unwrap()];
        let m = merge(nets);
        assert_eq!(m.len(), 2);
        assert!(m.contains(&"10.0.0.0/8".parse().unwrap()));
        assert!(m.contains(&"192.168.1.0/24".parse().unwrap()));
    }

    #[test]
    fn batches_build() {
        let mut b = Batch::new();
        ensure_network(&mut b, "net1", &["10.88.0.0/16".parse().unwrap(), "fd00::/64".parse().unwrap()]).unwrap();
        assert!(b.len() > 10);
    }
}
