//! Our table, `inet cnirs-firewall`: the per-container state is set
//! elements, owned by (network, container id, ifname) through their
//! comment; the rules are fixed and never grow with containers.
//!
//! ```text
//! set ctr4/ctr6     addresses admitted (every attachment)
//! set iso4/iso6     addresses with ingressPolicy same-bridge
//! set own4/own6     address . its bridge, for those
//! set <each>-claims the same keys . owner hash: who needs each element
//!                   (two networks may give one address; netcore::claims)
//! chain forward     hook forward, priority filter - 5:
//!     ip daddr @iso4 jump ingress4                        (same for v6)
//!     ip saddr @ctr4 goto admit
//!     ip daddr @ctr4 ct state established,related goto admit
//!     ip daddr @ctr4 ct status dnat goto admit            (published ports)
//! chain ingress4    ip daddr . iifname @own4 return; ct state established,related return;
//!                   ct status dnat return; drop
//! chain admit       meta mark set meta mark | MARK
//! chain unmark      hook forward, priority filter + 5: meta mark set meta mark & ~MARK
//! ```
//!
//! Why a mark: an `accept` here ends only this table's chain; a `drop`
//! policy in iptables-nft's `ip filter FORWARD` (Docker sets one) would
//! still drop the packet. So admission sets a mark bit that one rule in
//! that chain accepts ([`crate::forward`]), and the bit is cleared again
//! right after, so nothing later on the path sees it.

use cni::Error;
use kernel::nft::{
    priority, Batch, ChainType, CtState, DataType, Element, Family, Field, Hook, MarkOp, Rule, Set, Socket, Table,
    Value,
};
use netcore::claims::{self, Shared};
use netcore::owner::OwnerKey;
use std::collections::HashSet;
use std::net::IpAddr;

/// Our table; never the reference plugins' names.
pub const TABLE: &str = "cnirs-firewall";

/// The packet-mark bit that carries "admitted" from our table to the
/// iptables-nft FORWARD chain, set and cleared within the forward hook.
pub const MARK: u32 = 0x1000_0000;

/// `IPS_DST_NAT`: the connection was DNATed (a published port).
const CT_STATUS_DNAT: u32 = 0x20;

/// Every object of the table, by name.
pub struct Objects {
    /// The table.
    pub table: Table,
    /// Base chain, forward hook, before `filter`.
    pub forward: kernel::nft::Chain,
    /// Sets the mark; reached by `goto`.
    pub admit: kernel::nft::Chain,
    /// Base chain, forward hook, after `filter`: clears the mark.
    pub unmark: kernel::nft::Chain,
    /// same-bridge checks, per family.
    pub ingress: [kernel::nft::Chain; 2],
    /// Admitted addresses, per family.
    pub ctr: [Set; 2],
    /// same-bridge addresses, per family.
    pub iso: [Set; 2],
    /// same-bridge address . bridge, per family.
    pub own: [Set; 2],
}

/// Index of a family in the per-family arrays.
pub fn fam(ip: &IpAddr) -> usize {
    usize::from(ip.is_ipv6())
}

/// The objects (names checked).
pub fn objects() -> kernel::Result<Objects> {
    let t = Table::new(Family::Inet, TABLE)?;
    Ok(Objects {
        forward: t.base_chain("forward", Hook::Forward, ChainType::Filter, priority::FILTER - 5)?,
        admit: t.chain("admit")?,
        unmark: t.base_chain("unmark", Hook::Forward, ChainType::Filter, priority::FILTER + 5)?,
        ingress: [t.chain("ingress4")?, t.chain("ingress6")?],
        ctr: [t.set("ctr4", &[DataType::Ipv4Addr])?, t.set("ctr6", &[DataType::Ipv6Addr])?],
        iso: [t.set("iso4", &[DataType::Ipv4Addr])?, t.set("iso6", &[DataType::Ipv6Addr])?],
        own: [
            t.set("own4", &[DataType::Ipv4Addr, DataType::Ifname])?,
            t.set("own6", &[DataType::Ipv6Addr, DataType::Ifname])?,
        ],
        table: t,
    })
}

impl Objects {
    /// Every set, with its claims: two networks' containers may have one
    /// address, and each must keep its admission until its own DEL.
    pub fn shared(&self) -> kernel::Result<Vec<Shared>> {
        self.ctr.iter().chain(&self.iso).chain(&self.own).map(|s| Shared::new(&self.table, s)).collect()
    }
}

/// Adds to `batch` the table, sets and chains, and the fixed rules of
/// every chain as [`Batch::replace_rules`]: rules already in place are
/// not rewritten (a repeated ADD deletes nothing, so it neither moves
/// rule handles nor pays a grace period), and concurrent ADDs converge.
pub fn ensure(batch: &mut Batch, o: &Objects) -> kernel::Result<()> {
    batch.add_table(&o.table);
    for s in o.shared()? {
        s.declare(batch);
    }
    batch.add_chain(&o.admit).add_chain(&o.unmark);
    for c in &o.ingress {
        batch.add_chain(c);
    }
    batch.add_chain(&o.forward);
    batch.replace_rules(&o.admit, [Rule::new(&o.admit).mark(MarkOp::Set(MARK)).comment(ADMIT_COMMENT)]);
    batch.replace_rules(&o.unmark, [Rule::new(&o.unmark).mark(MarkOp::Clear(MARK)).comment(UNMARK_COMMENT)]);
    let fields = [(Field::Ip4Saddr, Field::Ip4Daddr), (Field::Ip6Saddr, Field::Ip6Daddr)];
    let mut forward = Vec::new();
    for (i, (_, daddr)) in fields.into_iter().enumerate() {
        forward.push(Rule::new(&o.forward).in_set(&[daddr], &o.iso[i]).jump(&o.ingress[i]));
    }
    for (i, (saddr, daddr)) in fields.into_iter().enumerate() {
        forward.push(Rule::new(&o.forward).in_set(&[saddr], &o.ctr[i]).goto(&o.admit));
        forward.push(
            Rule::new(&o.forward)
                .in_set(&[daddr], &o.ctr[i])
                .ct_state(CtState::ESTABLISHED | CtState::RELATED)
                .goto(&o.admit),
        );
        forward.push(Rule::new(&o.forward).in_set(&[daddr], &o.ctr[i]).ct_status(CT_STATUS_DNAT).goto(&o.admit));
        let ingress = &o.ingress[i];
        batch.replace_rules(
            ingress,
            [
                Rule::new(ingress).in_set(&[daddr, Field::Iifname], &o.own[i]).ret(),
                Rule::new(ingress).ct_state(CtState::ESTABLISHED | CtState::RELATED).ret(),
                Rule::new(ingress).ct_status(CT_STATUS_DNAT).ret(),
                Rule::new(ingress).counter().drop().comment("ingressPolicy same-bridge"),
            ],
        );
    }
    batch.replace_rules(&o.forward, forward);
    Ok(())
}

/// The comment of the rule in `admit` that sets the mark.
const ADMIT_COMMENT: &str = "admitted by the CNI firewall plugin";
/// The comment of the rule in `unmark` that clears it.
const UNMARK_COMMENT: &str = "clear the admission mark";

/// Which of the mark chains (`admit`, `unmark`) have lost their rule.
fn missing_mark_rules(sock: &Socket, o: &Objects) -> kernel::Result<Vec<&'static str>> {
    let mut out = Vec::new();
    for (chain, c) in [("admit", &o.admit), ("unmark", &o.unmark)] {
        let rules = match sock.list_rules(c) {
            Ok(r) => r,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        if rules.is_empty() {
            out.push(chain);
        }
    }
    Ok(out)
}

fn value(ip: IpAddr) -> Value {
    Value::from(ip)
}

/// Adds to `batch` the elements of one attachment: its addresses, and
/// with same-bridge, the addresses again with the bridge they may be
/// reached from.
pub fn add_attachment(
    batch: &mut Batch,
    o: &Objects,
    owner: &OwnerKey,
    ips: &[IpAddr],
    bridge: Option<&str>,
) -> kernel::Result<()> {
    let shared = |s: &Set| Shared::new(&o.table, s);
    for ip in ips {
        let f = fam(ip);
        claims::add(batch, &shared(&o.ctr[f])?, Element::new([value(*ip)]), owner)?;
        if let Some(br) = bridge {
            claims::add(batch, &shared(&o.iso[f])?, Element::new([value(*ip)]), owner)?;
            let pair = Element::new([value(*ip), Value::Ifname(br.to_string())]);
            claims::add(batch, &shared(&o.own[f])?, pair, owner)?;
        }
    }
    Ok(())
}

/// Removes, in one transaction, the elements and claims of the owners
/// `pick` selects (an address another owner claims stays, handed over to
/// it); how many owners lost something.
pub fn release(sock: &Socket, o: &Objects, pick: &dyn Fn(&str) -> bool) -> kernel::Result<usize> {
    let mut batch = Batch::new();
    let gone = claims::release_into(sock, &mut batch, &o.shared()?, pick)?;
    if !batch.is_empty() {
        sock.commit(&batch)?;
    }
    Ok(gone.len())
}

/// What CHECK finds missing for one attachment (empty when all is there).
pub fn verify(sock: &Socket, o: &Objects, ips: &[IpAddr], bridge: Option<&str>) -> Result<Vec<String>, Error> {
    let mut problems = Vec::new();
    if !sock.has_table(&o.table)? {
        return Ok(vec![format!("table inet {TABLE} does not exist")]);
    }
    for c in [&o.forward, &o.admit, &o.unmark] {
        if !sock.has_chain(c)? {
            problems.push(format!("{c} does not exist"));
        }
    }
    for chain in missing_mark_rules(sock, o)? {
        problems.push(format!("chain inet {TABLE} {chain} has lost its mark rule"));
    }
    let keys = |set: &Set| -> Result<HashSet<Vec<Value>>, Error> {
        match sock.list_elements(set) {
            Ok(e) => Ok(e.into_iter().map(|e| e.key).collect()),
            Err(e) if e.is_not_found() => Ok(HashSet::new()),
            Err(e) => Err(e.into()),
        }
    };
    let ctr = [keys(&o.ctr[0])?, keys(&o.ctr[1])?];
    for ip in ips {
        if !ctr[fam(ip)].contains(&vec![value(*ip)]) {
            problems.push(format!("{ip} is not admitted (set {})", o.ctr[fam(ip)].name()));
        }
    }
    if let Some(br) = bridge {
        let own = [keys(&o.own[0])?, keys(&o.own[1])?];
        let iso = [keys(&o.iso[0])?, keys(&o.iso[1])?];
        for ip in ips {
            let f = fam(ip);
            if !iso[f].contains(&vec![value(*ip)]) || !own[f].contains(&vec![value(*ip), Value::Ifname(br.into())]) {
                problems.push(format!("the same-bridge policy of {ip} (bridge {br}) is missing"));
            }
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_build() {
        let o = objects().unwrap();
        let mut b = Batch::new();
        ensure(&mut b, &o).unwrap();
        add_attachment(
            &mut b,
            &o,
            &OwnerKey::new("net", "c1", "eth0"),
            &["10.88.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
            Some("cni-podman1"),
        )
        .unwrap();
        assert!(b.len() > 20);
        assert_eq!(fam(&"fd00::1".parse().unwrap()), 1);
    }

    #[test]
    fn the_mark_is_one_bit_outside_common_users() {
        assert_eq!(MARK.count_ones(), 1);
        // kube-proxy 0x4000/0x8000, portmap/netavark 0x2000, Tailscale 0xff0000.
        assert_eq!(MARK & (0x4000 | 0x8000 | 0x2000 | 0xff_0000), 0);
    }
}
