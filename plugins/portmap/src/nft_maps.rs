//! The nftables layout of port mappings, in our own table `inet
//! cnirs-portmap` (never the reference's `cni_hostport`).
//!
//! ```text
//! chain prerouting  (nat, dstnat)  fib daddr type local jump hostports
//! chain output      (nat, dstnat)  fib daddr type local jump hostports
//! chain hostports                  per IP version, in this order:
//!     meta l4proto . ip daddr . th dport vmap @cond4        (attachments with conditionsV4)
//!     dnat ip to meta l4proto . ip daddr . th dport map @hp4     (hostIP given)
//!     meta l4proto . th dport vmap @cond4all
//!     dnat ip to meta l4proto . th dport map @hp4all             (every host address)
//! chain postrouting (nat, srcnat)
//!     ct status dnat ip daddr . meta l4proto . th dport vmap @masq4
//! chain masq-10.88.0.0_16          ip saddr 10.88.0.0/16 masquerade
//!                                  ip saddr 127.0.0.0/8 masquerade
//! chain masq-all                   masquerade
//! ```
//!
//! A mapping is one element of `hp4`/`hp4all` (and the `6` twins) whose
//! key is what the host is asked for (protocol, host address, host port)
//! and whose value is where it goes (container address and port). So an
//! ADD adds elements and a DEL deletes them: no rule list grows with the
//! number of containers, every lookup is one hash probe, and two mappings
//! of the same key cannot coexist (the kernel refuses the second one).
//!
//! `masq4`/`masq6` say which DNATed connections are masqueraded: one
//! element per container address and port, pointing at the chain of the
//! container's network (sources in that network, i.e. hairpin and the
//! bridge's other containers, and the host's `127.0.0.0/8`) or, with
//! `masqAll`, at `masq-all`. Every set is a hash, so adding or deleting an
//! element costs the same with ten elements or ten thousand (an interval
//! set would be rebuilt on each change). A network's chain is shared by
//! its containers and stays, like the base chains.
//!
//! An attachment with conditions gets a chain `pmc-<hash>` that the `cond`
//! vmaps jump to: it DNATs only when the conditions hold, and otherwise
//! accepts (no DNAT).
//!
//! Every element carries the owner comment `network/container/ifname`, so
//! DEL and GC find an attachment's elements without its mappings.

use crate::config::{HostIp, Mapping, PortmapConf};
use cni::Error;
use ipnetwork::IpNetwork;
use kernel::nft::{
    priority, Batch, ChainType, CmpOp, DataType, Element, Family, Field, Hook, IpFamily, Rule, Set, Table, Value,
};
use kernel::nft::{Chain, ElemData, Verdict};
use netcore::naming::fnv1a64;
use std::net::{IpAddr, Ipv4Addr};

/// Our table's name.
pub const TABLE: &str = "cnirs-portmap";

/// Start of the name of a network's masquerade chain.
const NETWORK_CHAIN_PREFIX: &str = "masq-";

/// `IPS_DST_NAT`: the connection's destination was translated.
const CT_STATUS_DNAT: u32 = 0x20;

/// The maps and sets of one IP version.
#[derive(Debug, Clone)]
pub struct FamilyMaps {
    /// `proto . host address . host port : container address . port`.
    pub hp: Set,
    /// `proto . host port : container address . port` (every host address).
    pub hp_all: Set,
    /// `proto . host address . host port : jump pmc-<owner>`.
    pub cond: Set,
    /// `proto . host port : jump pmc-<owner>`.
    pub cond_all: Set,
    /// `container address . proto . container port : jump masq-<net>`.
    pub masq: Set,
}

/// Every object of the table.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `inet cnirs-portmap`.
    pub table: Table,
    /// Prerouting DNAT (traffic from elsewhere).
    pub prerouting: Chain,
    /// Output DNAT (traffic from the host itself).
    pub output: Chain,
    /// Postrouting masquerade.
    pub postrouting: Chain,
    /// The lookups, shared by prerouting and output.
    pub hostports: Chain,
    /// Masquerade of every source (`masqAll`).
    pub masq_all: Chain,
    /// IPv4 maps.
    pub v4: FamilyMaps,
    /// IPv6 maps.
    pub v6: FamilyMaps,
}

fn addr_type(f: IpFamily) -> DataType {
    match f {
        IpFamily::V4 => DataType::Ipv4Addr,
        IpFamily::V6 => DataType::Ipv6Addr,
    }
}

fn family_maps(t: &Table, f: IpFamily) -> kernel::Result<FamilyMaps> {
    use DataType::{InetProto, InetService};
    let n = if f == IpFamily::V4 { "4" } else { "6" };
    let a = addr_type(f);
    Ok(FamilyMaps {
        hp: t.map(format!("hp{n}"), &[InetProto, a, InetService], &[a, InetService])?,
        hp_all: t.map(format!("hp{n}all"), &[InetProto, InetService], &[a, InetService])?,
        cond: t.vmap(format!("cond{n}"), &[InetProto, a, InetService])?,
        cond_all: t.vmap(format!("cond{n}all"), &[InetProto, InetService])?,
        masq: t.vmap(format!("masq{n}"), &[a, InetProto, InetService])?,
    })
}

impl Layout {
    /// The objects, by name only (nothing is sent to the kernel).
    pub fn new() -> Result<Layout, Error> {
        Ok(Layout::build()?)
    }

    fn build() -> kernel::Result<Layout> {
        let t = Table::new(Family::Inet, TABLE)?;
        Ok(Layout {
            prerouting: t.base_chain("prerouting", Hook::Prerouting, ChainType::Nat, priority::DSTNAT)?,
            output: t.base_chain("output", Hook::Output, ChainType::Nat, priority::DSTNAT)?,
            postrouting: t.base_chain("postrouting", Hook::Postrouting, ChainType::Nat, priority::SRCNAT)?,
            hostports: t.chain("hostports")?,
            masq_all: t.chain("masq-all")?,
            v4: family_maps(&t, IpFamily::V4)?,
            v6: family_maps(&t, IpFamily::V6)?,
            table: t,
        })
    }

    /// The maps of one IP version.
    pub fn maps(&self, f: IpFamily) -> &FamilyMaps {
        match f {
            IpFamily::V4 => &self.v4,
            IpFamily::V6 => &self.v6,
        }
    }

    /// Every set and map, in the order DEL deletes from them (verdict maps
    /// before the chains they point at are removed).
    pub fn sets(&self) -> Vec<&Set> {
        let mut out = Vec::new();
        for m in [&self.v4, &self.v6] {
            out.extend([&m.hp, &m.hp_all, &m.cond, &m.cond_all, &m.masq]);
        }
        out
    }

    /// The rules of `hostports`, in order.
    pub fn hostports_rules(&self) -> Vec<Rule> {
        let mut out = Vec::new();
        for f in [IpFamily::V4, IpFamily::V6] {
            let m = self.maps(f);
            let specific = [Field::L4proto, Field::daddr(f), Field::ThDport];
            let all = [Field::L4proto, Field::ThDport];
            out.push(Rule::new(&self.hostports).vmap(&specific, &m.cond));
            out.push(Rule::new(&self.hostports).dnat_map(&specific, &m.hp));
            out.push(Rule::new(&self.hostports).nfproto(f).vmap(&all, &m.cond_all));
            out.push(Rule::new(&self.hostports).nfproto(f).dnat_map(&all, &m.hp_all));
        }
        out
    }

    /// Adds the table, chains, maps and fixed rules to `b`. The fixed rules
    /// are replaced as a whole (a digest comparison at commit leaves them
    /// alone when they are current), so running it on every ADD deletes
    /// nothing in the common case, concurrent ADDs converge, and a damaged
    /// table heals.
    pub fn setup(&self, b: &mut Batch) {
        b.add_table(&self.table);
        for c in [&self.prerouting, &self.output, &self.postrouting, &self.hostports, &self.masq_all] {
            b.add_chain(c);
        }
        for s in self.sets() {
            b.add_set(s);
        }
        for c in [&self.prerouting, &self.output] {
            b.replace_rules(c, [Rule::new(c).fib_daddr_local().jump(&self.hostports)]);
        }
        b.replace_rules(&self.hostports, self.hostports_rules());
        b.replace_rules(&self.masq_all, [Rule::new(&self.masq_all).masquerade()]);
        b.replace_rules(&self.postrouting, self.postrouting_rules());
    }

    /// The rules of `postrouting`: DNATed connections to a mapped container
    /// port go to the chain `masq4`/`masq6` name.
    pub fn postrouting_rules(&self) -> Vec<Rule> {
        [IpFamily::V4, IpFamily::V6]
            .into_iter()
            .map(|f| {
                let fields = [Field::daddr(f), Field::L4proto, Field::ThDport];
                Rule::new(&self.postrouting).ct_status(CT_STATUS_DNAT).vmap(&fields, &self.maps(f).masq)
            })
            .collect()
    }

    /// The chain masquerading sources of `net` (and, for IPv4, the host's
    /// localhost) towards its containers: `masq-10.88.0.0_16`. Shared by
    /// the network's containers; the DEL that removes the last element
    /// jumping to it deletes it ([`Layout::network_chain_of`] finds it).
    fn network_chain(&self, net: IpNetwork) -> Result<(Chain, Vec<Rule>), Error> {
        let name = format!("{NETWORK_CHAIN_PREFIX}{}_{}", net.network().to_string().replace(':', "-"), net.prefix());
        let c = self.table.chain(name)?;
        let f = IpFamily::of(&net.ip());
        let mut rules = vec![Rule::new(&c).prefix(Field::saddr(f), net, CmpOp::Eq).masquerade()];
        if f == IpFamily::V4 && !overlaps(net, loopback4()) {
            rules.push(Rule::new(&c).prefix(Field::saddr(f), loopback4(), CmpOp::Eq).masquerade());
        }
        Ok((c, rules))
    }

    /// The network chain a masquerade element of `set` jumps to, if it is
    /// one (not `masq-all`, which stays like the base chains).
    pub fn network_chain_of(&self, set: &Set, e: &Element) -> Option<Chain> {
        if set.name() != self.v4.masq.name() && set.name() != self.v6.masq.name() {
            return None;
        }
        match &e.data {
            Some(ElemData::Verdict(Verdict::Jump(name)))
                if name.starts_with(NETWORK_CHAIN_PREFIX) && name != self.masq_all.name() =>
            {
                self.table.chain(name.clone()).ok()
            }
            _ => None,
        }
    }

    /// The conditions vmap keyed like DNAT map `set`.
    fn cond_twin(&self, set: &Set) -> Option<&Set> {
        [&self.v4, &self.v6].into_iter().find_map(|m| {
            if set.name() == m.hp.name() {
                Some(&m.cond)
            } else if set.name() == m.hp_all.name() {
                Some(&m.cond_all)
            } else {
                None
            }
        })
    }

    /// The chain holding the conditions of `owner`'s mappings.
    pub fn owner_chain(&self, owner: &str) -> Result<Chain, Error> {
        Ok(self.table.chain(format!("pmc-{:016x}", fnv1a64(&[owner])))?)
    }
}

/// Every element `owner` may hold for `mappings` towards `addrs`, whatever
/// `snat`, `masqAll` and the conditions were at ADD: what a DEL that got
/// the mappings back looks up, key by key, instead of listing the maps.
pub fn candidates(
    layout: &Layout,
    mappings: &[Mapping],
    addrs: &[IpNetwork],
    owner: &str,
) -> Result<Vec<(Set, Element)>, Error> {
    let conf = PortmapConf { snat: true, masq_all: false, conditions_v4: Vec::new(), conditions_v6: Vec::new() };
    let p = plan(layout, &conf, mappings, addrs, owner)?;
    let mut out = Vec::new();
    for (set, e) in &p.dnat {
        if let Some(twin) = layout.cond_twin(set) {
            out.push((twin.clone(), Element::new(e.key.clone())));
        }
    }
    out.extend(p.dnat);
    out.extend(p.masq);
    Ok(out)
}

/// What one attachment puts in the table.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// DNAT elements of `hp*` (created exclusively: a taken key is a conflict).
    pub dnat: Vec<(Set, Element)>,
    /// Verdict elements of `cond*` for attachments with conditions.
    pub cond: Vec<(Set, Element)>,
    /// Masquerade elements of `masq*`.
    pub masq: Vec<(Set, Element)>,
    /// The network chains the masquerade elements jump to.
    pub masq_chains: Vec<(Chain, Vec<Rule>)>,
    /// The conditions chain and its rules, when there are conditions.
    pub chain: Option<(Chain, Vec<Rule>)>,
}

fn loopback4() -> IpNetwork {
    IpNetwork::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8).expect("literal")
}

fn overlaps(a: IpNetwork, b: IpNetwork) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

/// Whether a DNAT element's key is taken by a different target within one
/// request, which is a mistake in the request itself.
fn same_key_other_target(plan: &[(Set, Element)], set: &Set, e: &Element) -> Option<Element> {
    plan.iter().find(|(s, o)| s.name() == set.name() && o.key == e.key && o.data != e.data).map(|(_, o)| o.clone())
}

/// Describes a DNAT key for messages: `tcp port 8080 on 192.0.2.1`.
pub fn describe_key(key: &[Value]) -> String {
    match key {
        [p, a, port] => format!("{p} port {port} on {a}"),
        [p, port] => format!("{p} port {port} on every host address"),
        _ => netcore_display(key),
    }
}

fn netcore_display(key: &[Value]) -> String {
    key.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" . ")
}

/// Builds the elements for `mappings` towards the container's first
/// address of each IP version (`addrs`), owned by `owner`.
pub fn plan(
    layout: &Layout,
    conf: &PortmapConf,
    mappings: &[Mapping],
    addrs: &[IpNetwork],
    owner: &str,
) -> Result<Plan, Error> {
    let mut p = Plan::default();
    let chain = if conf.conditions_v4.is_empty() && conf.conditions_v6.is_empty() {
        None
    } else {
        Some(layout.owner_chain(owner)?)
    };
    for addr in addrs {
        check_container_addr(*addr)?;
        let f = IpFamily::of(&addr.ip());
        let m = layout.maps(f);
        let cip = Value::from(addr.ip());
        let conditional = !conf.conditions(f).is_empty();
        for map in mappings.iter().filter(|mp| mp.host_ip.applies_to(f)) {
            let proto = map.proto_value();
            let (set, vset, key) = match map.host_ip {
                HostIp::Addr(h) => (&m.hp, &m.cond, vec![proto.clone(), Value::from(h), Value::Port(map.host_port)]),
                _ => (&m.hp_all, &m.cond_all, vec![proto.clone(), Value::Port(map.host_port)]),
            };
            let e = Element::new(key.clone()).data([cip.clone(), Value::Port(map.container_port)]).comment(owner);
            if let Some(other) = same_key_other_target(&p.dnat, set, &e) {
                return Err(Error::invalid_config(format!(
                    "runtimeConfig.portMappings: {} is mapped twice, to {} and to {}",
                    describe_key(&key),
                    show_data(&other),
                    show_data(&e)
                )));
            }
            if p.dnat.iter().any(|(s, o)| s.name() == set.name() && o.key == e.key) {
                continue;
            }
            p.dnat.push((set.clone(), e));
            if conditional {
                let c = chain.as_ref().expect("a chain when there are conditions");
                p.cond.push((vset.clone(), Element::new(key).verdict(c.jump()).comment(owner)));
            }
            if conf.snat {
                let target = if conf.masq_all {
                    layout.masq_all.clone()
                } else {
                    let own = IpNetwork::new(addr.network(), addr.prefix()).unwrap_or(*addr);
                    let (c, rules) = layout.network_chain(own)?;
                    if !p.masq_chains.iter().any(|(have, _)| have.name() == c.name()) {
                        p.masq_chains.push((c.clone(), rules));
                    }
                    c
                };
                let e = Element::new([cip.clone(), proto.clone(), Value::Port(map.container_port)])
                    .verdict(target.jump())
                    .comment(owner);
                if !p.masq.iter().any(|(s, o)| s.name() == m.masq.name() && o.key == e.key) {
                    p.masq.push((m.masq.clone(), e));
                }
            }
        }
    }
    if let Some(c) = chain {
        let mut rules = Vec::new();
        for f in [IpFamily::V4, IpFamily::V6] {
            let conds = conf.conditions(f);
            if conds.is_empty() {
                continue;
            }
            let m = layout.maps(f);
            let with_conds = || conds.iter().fold(Rule::new(&c).nfproto(f), |r, cd| cd.apply(r));
            rules.push(with_conds().dnat_map(&[Field::L4proto, Field::daddr(f), Field::ThDport], &m.hp));
            rules.push(with_conds().dnat_map(&[Field::L4proto, Field::ThDport], &m.hp_all));
        }
        // Conditions not met: no DNAT, and no later lookup may do it either.
        rules.push(Rule::new(&c).accept());
        p.chain = Some((c, rules));
    }
    Ok(p)
}

/// Refuses a prevResult address that cannot be a container's: traffic
/// would be DNATed to it, and its network names a masquerade chain, so an
/// unspecified, loopback, multicast or broadcast address, or a network of
/// every address (`0.0.0.0/0`, `::/0`), is a mistake (or an attack) of the
/// plugin before us.
fn check_container_addr(addr: IpNetwork) -> Result<(), Error> {
    let ip = addr.ip();
    let why = if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        Some("is not a container address (unspecified, loopback or multicast)")
    } else if matches!(ip, IpAddr::V4(v) if v.is_broadcast()) {
        Some("is the broadcast address")
    } else if addr.prefix() == 0 {
        Some("has a prefix of 0 (a network of every address)")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::invalid_config(format!("portmap: prevResult.ips: {addr} {why}"))),
        None => Ok(()),
    }
}

/// `10.88.0.2:80` for a DNAT element's value.
pub fn show_data(e: &Element) -> String {
    match &e.data {
        Some(ElemData::Values(v)) => match v.as_slice() {
            [Value::Ipv6(a), Value::Port(p)] => format!("[{a}]:{p}"),
            [a, p] => format!("{a}:{p}"),
            other => netcore_display(other),
        },
        _ => "?".to_string(),
    }
}

impl Plan {
    /// Whether there is nothing to install.
    pub fn is_empty(&self) -> bool {
        self.dnat.is_empty()
    }

    /// Adds the attachment's objects to `b`. DNAT elements are created
    /// exclusively, so a key held by anyone makes the commit fail with
    /// EEXIST (and nothing of the batch is applied); `replace` lists keys
    /// this owner already holds, deleted first (a repeated ADD).
    pub fn apply(&self, b: &mut Batch, replace: &[(Set, Element)]) {
        if let Some((c, rules)) = &self.chain {
            b.add_chain(c).replace_rules(c, rules.iter().cloned());
        }
        for (c, rules) in &self.masq_chains {
            b.add_chain(c).replace_rules(c, rules.iter().cloned());
        }
        for (s, e) in replace {
            b.destroy_element(s, e);
        }
        for (s, e) in &self.dnat {
            b.create_element(s, e.clone());
        }
        for (s, e) in &self.cond {
            b.add_element(s, e.clone());
        }
        for (s, e) in &self.masq {
            b.add_element(s, e.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions;

    fn conf(snat: bool, masq_all: bool, v4: &[&str]) -> PortmapConf {
        let list: Vec<String> = v4.iter().map(|s| s.to_string()).collect();
        PortmapConf {
            snat,
            masq_all,
            conditions_v4: conditions::parse("conditionsV4", IpFamily::V4, &list).unwrap(),
            conditions_v6: Vec::new(),
        }
    }

    fn m(proto: u8, host_ip: HostIp, hp: u16, cp: u16) -> Mapping {
        Mapping { proto, host_ip, host_port: hp, container_port: cp }
    }

    fn addrs() -> Vec<IpNetwork> {
        vec!["10.88.0.2/16".parse().unwrap(), "fd00:88::2/64".parse().unwrap()]
    }

    #[test]
    fn one_mapping_both_families() {
        let l = Layout::new().unwrap();
        let p = plan(&l, &conf(true, false, &[]), &[m(6, HostIp::Any, 8080, 80)], &addrs(), "n/c/eth0").unwrap();
        let shown: Vec<String> = p.dnat.iter().map(|(s, e)| format!("{} {e}", s.name())).collect();
        assert_eq!(shown, ["hp4all tcp . 8080 : 10.88.0.2 . 80", "hp6all tcp . 8080 : fd00:88::2 . 80"]);
        let masq: Vec<String> = p.masq.iter().map(|(s, e)| format!("{} {e}", s.name())).collect();
        assert_eq!(
            masq,
            [
                "masq4 10.88.0.2 . tcp . 80 : jump masq-10.88.0.0_16",
                "masq6 fd00:88::2 . tcp . 80 : jump masq-fd00-88--_64"
            ]
        );
        let chains: Vec<(&str, usize)> = p.masq_chains.iter().map(|(c, r)| (c.name(), r.len())).collect();
        assert_eq!(chains, [("masq-10.88.0.0_16", 2), ("masq-fd00-88--_64", 1)], "IPv4 adds localhost");
        assert!(p.chain.is_none() && p.cond.is_empty());
        assert!(p.dnat.iter().all(|(_, e)| e.comment.as_deref() == Some("n/c/eth0")));
    }

    #[test]
    fn host_ip_picks_the_family_and_the_specific_map() {
        let l = Layout::new().unwrap();
        let maps = [m(17, HostIp::Addr("192.0.2.1".parse().unwrap()), 53, 53), m(6, HostIp::AnyOf(IpFamily::V6), 1, 2)];
        let p = plan(&l, &conf(false, false, &[]), &maps, &addrs(), "o").unwrap();
        let shown: Vec<String> = p.dnat.iter().map(|(s, e)| format!("{} {e}", s.name())).collect();
        assert_eq!(shown, ["hp4 udp . 192.0.2.1 . 53 : 10.88.0.2 . 53", "hp6all tcp . 1 : fd00:88::2 . 2"]);
        assert!(p.masq.is_empty(), "snat false: no masquerade");
    }

    #[test]
    fn masq_all_and_duplicates() {
        let l = Layout::new().unwrap();
        let maps = [m(6, HostIp::Any, 8080, 80), m(6, HostIp::Any, 8081, 80)];
        let p = plan(&l, &conf(true, true, &[]), &maps, &addrs()[..1], "o").unwrap();
        assert_eq!(p.dnat.len(), 2);
        assert_eq!(p.masq.len(), 1, "one masquerade element per container port");
        assert_eq!(p.masq[0].1.to_string(), "10.88.0.2 . tcp . 80 : jump masq-all");
        assert!(p.masq_chains.is_empty());
        let clash = [m(6, HostIp::Any, 8080, 80), m(6, HostIp::Any, 8080, 81)];
        let e = plan(&l, &conf(true, false, &[]), &clash, &addrs(), "o").unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("tcp port 8080"), "{}", e.msg);
    }

    #[test]
    fn conditions_make_a_chain() {
        let l = Layout::new().unwrap();
        let p = plan(&l, &conf(true, false, &["ip saddr 192.0.2.0/24"]), &[m(6, HostIp::Any, 8080, 80)], &addrs(), "o")
            .unwrap();
        let (c, rules) = p.chain.as_ref().unwrap();
        assert!(c.name().starts_with("pmc-"));
        assert_eq!(rules.len(), 3);
        assert_eq!(p.cond.len(), 1, "only the IPv4 mapping is conditional");
        assert_eq!(p.cond[0].0.name(), "cond4all");
    }

    #[test]
    fn del_candidates_cover_every_option() {
        let l = Layout::new().unwrap();
        let c = candidates(&l, &[m(6, HostIp::Any, 8080, 80)], &addrs(), "o").unwrap();
        let names: Vec<&str> = c.iter().map(|(s, _)| s.name()).collect();
        assert_eq!(
            names,
            ["cond4all", "cond6all", "hp4all", "hp6all", "masq4", "masq6"],
            "DNAT keys, their conditions twins, and the masquerade keys"
        );
    }

    #[test]
    fn addresses_that_cannot_be_a_containers_are_refused() {
        for ok in ["10.88.0.2/16", "10.95.3.6/30", "192.0.2.7/32", "fd00::2/64"] {
            assert!(check_container_addr(ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for bad in ["0.0.0.0/0", "::/0", "10.1.2.3/0", "127.0.0.5/8", "224.0.0.1/4", "ff02::1/8", "255.255.255.255/32"]
        {
            let e = check_container_addr(bad.parse().unwrap()).unwrap_err();
            assert_eq!(e.code, 7, "{bad}");
            assert!(e.msg.contains("prevResult"), "{e:?}");
        }
    }
}
