//! Rules from matchers that read like `nft`: `ip saddr @set`, `ip daddr !=
//! 10.0.0.0/8`, `dnat ip to meta l4proto . ip daddr . th dport map @m`. The
//! builder adds the protocol checks `nft` adds implicitly (e.g. `meta nfproto
//! ipv4` before `ip saddr` in an inet table) and lays concatenations out in
//! registers the way the kernel expects.

use std::ops::BitOr;

use ipnetwork::IpNetwork;

use super::expr::{CmpOp, CtKey, Expr, FibResult, MetaKey, NatKind, PayloadBase, Reg};
use super::names::check_comment;
use super::objects::{Chain, Family, Set, SetData, Verdict};
use super::types::{DataType, IpFamily, Value};
use crate::error::{Error, Kind};

/// `ARPHRD_ETHER`: what `meta iiftype` says for Ethernet-like devices.
const ARPHRD_ETHER: u16 = 1;
/// `RTN_LOCAL`: what `fib daddr type` says for an address of this host.
const RTN_LOCAL: u32 = 2;
/// `NFTA_FIB_F_DADDR`: look the destination address up.
const FIB_F_DADDR: u32 = 1 << 1;

/// A packet field a rule can compare or look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `meta l4proto` (inet_proto).
    L4proto,
    /// `ip saddr`.
    Ip4Saddr,
    /// `ip daddr`.
    Ip4Daddr,
    /// `ip6 saddr`.
    Ip6Saddr,
    /// `ip6 daddr`.
    Ip6Daddr,
    /// `th sport`: source port of TCP, UDP or SCTP (pair it with `L4proto`).
    ThSport,
    /// `th dport`: destination port of TCP, UDP or SCTP (pair it with `L4proto`).
    ThDport,
    /// `iifname`.
    Iifname,
    /// `oifname`.
    Oifname,
    /// `ether saddr`.
    EtherSaddr,
    /// `ether daddr`.
    EtherDaddr,
    /// `meta mark`.
    Mark,
}

impl Field {
    /// `ip saddr` or `ip6 saddr`.
    pub fn saddr(family: IpFamily) -> Field {
        match family {
            IpFamily::V4 => Field::Ip4Saddr,
            IpFamily::V6 => Field::Ip6Saddr,
        }
    }

    /// `ip daddr` or `ip6 daddr`.
    pub fn daddr(family: IpFamily) -> Field {
        match family {
            IpFamily::V4 => Field::Ip4Daddr,
            IpFamily::V6 => Field::Ip6Daddr,
        }
    }

    /// The type of the loaded value.
    pub fn data_type(self) -> DataType {
        match self {
            Field::L4proto => DataType::InetProto,
            Field::Ip4Saddr | Field::Ip4Daddr => DataType::Ipv4Addr,
            Field::Ip6Saddr | Field::Ip6Daddr => DataType::Ipv6Addr,
            Field::ThSport | Field::ThDport => DataType::InetService,
            Field::Iifname | Field::Oifname => DataType::Ifname,
            Field::EtherSaddr | Field::EtherDaddr => DataType::EtherAddr,
            Field::Mark => DataType::Mark,
        }
    }

    /// The IP version a field belongs to, if any.
    fn ip_family(self) -> Option<IpFamily> {
        match self {
            Field::Ip4Saddr | Field::Ip4Daddr => Some(IpFamily::V4),
            Field::Ip6Saddr | Field::Ip6Daddr => Some(IpFamily::V6),
            _ => None,
        }
    }

    /// The expression that loads this field into `dreg`.
    fn load(self, dreg: Reg) -> Expr {
        let payload = |base, offset, len| Expr::Payload { base, offset, len, dreg };
        let meta = |key| Expr::Meta { key, dreg };
        match self {
            Field::L4proto => meta(MetaKey::L4proto),
            Field::Ip4Saddr => payload(PayloadBase::Network, 12, 4),
            Field::Ip4Daddr => payload(PayloadBase::Network, 16, 4),
            Field::Ip6Saddr => payload(PayloadBase::Network, 8, 16),
            Field::Ip6Daddr => payload(PayloadBase::Network, 24, 16),
            Field::ThSport => payload(PayloadBase::Transport, 0, 2),
            Field::ThDport => payload(PayloadBase::Transport, 2, 2),
            Field::Iifname => meta(MetaKey::Iifname),
            Field::Oifname => meta(MetaKey::Oifname),
            Field::EtherSaddr => payload(PayloadBase::Link, 6, 6),
            Field::EtherDaddr => payload(PayloadBase::Link, 0, 6),
            Field::Mark => meta(MetaKey::Mark),
        }
    }
}

/// Conntrack states for [`Rule::ct_state`]; combine with `|`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CtState(pub u32);

impl CtState {
    /// `established`.
    pub const ESTABLISHED: CtState = CtState(2);
    /// `related`.
    pub const RELATED: CtState = CtState(4);
}

impl BitOr for CtState {
    type Output = CtState;
    fn bitor(self, o: CtState) -> CtState {
        CtState(self.0 | o.0)
    }
}

/// What [`Rule::mark`] does to the packet mark: a mark bit is how one
/// table tells another what it decided (an `accept` in our table cannot
/// override a `drop` in another table on the same hook, but a rule there
/// can match a bit we set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkOp {
    /// `meta mark set meta mark | bits`.
    Set(u32),
    /// `meta mark set meta mark & ~bits`.
    Clear(u32),
}

impl MarkOp {
    /// The (mask, xor) pair of the bitwise step: `mark = (mark & mask) ^ xor`.
    fn mask_xor(self) -> (u32, u32) {
        match self {
            MarkOp::Set(bits) => (!bits, bits),
            MarkOp::Clear(bits) => (!bits, 0),
        }
    }
}

/// Checks `nft` adds implicitly before loading a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Dep {
    Ip(IpFamily),
    Ether,
}

/// A rule being built for one chain. Mistakes (a set of another table, a
/// value of the wrong type) are kept and reported by `Batch::commit`, so
/// the builder chains without `?` at every step.
#[derive(Debug, Clone)]
pub struct Rule {
    chain: Chain,
    exprs: Vec<Expr>,
    comment: Option<String>,
    deps: Vec<Dep>,
    error: Option<Error>,
}

impl Rule {
    /// An empty rule (matches everything, does nothing) for `chain`.
    pub fn new(chain: &Chain) -> Rule {
        Rule { chain: chain.clone(), exprs: Vec::new(), comment: None, deps: Vec::new(), error: None }
    }

    /// The chain it belongs to.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The expressions so far.
    pub fn exprs(&self) -> &[Expr] {
        &self.exprs
    }

    /// The comment.
    pub fn comment_text(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// The first mistake made while building, if any.
    pub(crate) fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    fn fail(mut self, what: String, cause: impl Into<String>) -> Rule {
        if self.error.is_none() {
            self.error = Some(Error::new(Kind::Invalid, format!("rule in {}: {what}", self.chain), cause));
        }
        self
    }

    fn family(&self) -> Family {
        self.chain.table().family()
    }

    /// Appends a raw expression (for what no matcher covers).
    pub fn expr(mut self, e: Expr) -> Rule {
        self.exprs.push(e);
        self
    }

    /// Sets the comment (`nft` shows it; `Socket::list_rules` returns it).
    pub fn comment(mut self, comment: impl Into<String>) -> Rule {
        let comment = comment.into();
        if let Err(e) = check_comment(&comment) {
            return self.fail(e.what, e.cause);
        }
        self.comment = Some(comment);
        self
    }

    fn dep(mut self, dep: Dep) -> Rule {
        if self.deps.contains(&dep) {
            return self;
        }
        self.deps.push(dep);
        let family = self.family();
        match dep {
            Dep::Ip(ip) => match family {
                Family::Inet => self.expr(Expr::Meta { key: MetaKey::Nfproto, dreg: Reg::R1 }).expr(Expr::Cmp {
                    sreg: Reg::R1,
                    op: CmpOp::Eq,
                    data: vec![ip.nfproto()],
                }),
                Family::Bridge | Family::Netdev => self
                    .expr(Expr::Meta { key: MetaKey::Protocol, dreg: Reg::R1 })
                    .expr(Expr::Cmp { sreg: Reg::R1, op: CmpOp::Eq, data: ip.ethertype().to_be_bytes().to_vec() }),
                _ => self,
            },
            Dep::Ether => match family {
                Family::Inet | Family::Ip | Family::Ip6 => self
                    .expr(Expr::Meta { key: MetaKey::Iiftype, dreg: Reg::R1 })
                    .expr(Expr::Cmp { sreg: Reg::R1, op: CmpOp::Eq, data: ARPHRD_ETHER.to_ne_bytes().to_vec() }),
                _ => self,
            },
        }
    }

    /// Loads `fields` as one key starting at `R1` (a concatenation puts each
    /// field in its own 4-byte-aligned slot) and returns the key types.
    fn load(mut self, fields: &[Field]) -> (Rule, Vec<DataType>) {
        for f in fields {
            if let Some(ip) = f.ip_family() {
                self = self.dep(Dep::Ip(ip));
            }
            if matches!(f, Field::EtherSaddr | Field::EtherDaddr) {
                self = self.dep(Dep::Ether);
            }
        }
        let mut offset = 0;
        for f in fields {
            self.exprs.push(f.load(Reg::at_offset(offset)));
            offset += f.data_type().size().next_multiple_of(4);
        }
        let types = fields.iter().map(|f| f.data_type()).collect();
        (self, types)
    }

    /// `meta nfproto ipv4|ipv6`: only packets of this IP version (inet tables).
    /// Later matchers on fields of that version do not repeat the check.
    pub fn nfproto(mut self, ip: IpFamily) -> Rule {
        if self.family() == Family::Inet && !self.deps.contains(&Dep::Ip(ip)) {
            self.deps.push(Dep::Ip(ip));
        }
        self.expr(Expr::Meta { key: MetaKey::Nfproto, dreg: Reg::R1 }).expr(Expr::Cmp {
            sreg: Reg::R1,
            op: CmpOp::Eq,
            data: vec![ip.nfproto()],
        })
    }

    /// `<field> <op> <value>`, e.g. `iifname == "veth1"` or `th dport == 53`.
    pub fn cmp(self, field: Field, op: CmpOp, value: Value) -> Rule {
        if value.data_type() != field.data_type() {
            let what = format!("comparing {field:?} with {value}");
            return self.fail(what, format!("expected a value of type {}", field.data_type().name()));
        }
        let data = match value.encode() {
            Ok(d) => d,
            Err(e) => return self.fail(e.what, e.cause),
        };
        let (rule, _) = self.load(&[field]);
        rule.expr(Expr::Cmp { sreg: Reg::R1, op, data })
    }

    /// `ip saddr 10.0.0.0/8` (`op` Eq) or `ip daddr != 224.0.0.0/4` (`op` Neq).
    pub fn prefix(self, field: Field, net: IpNetwork, op: CmpOp) -> Rule {
        let ip = IpFamily::of(&net.ip());
        if field.ip_family() != Some(ip) {
            return self
                .fail(format!("matching {field:?} against {net}"), "field and prefix are of different IP versions");
        }
        let (bits, network) = match net {
            IpNetwork::V4(n) => (32, n.network().octets().to_vec()),
            IpNetwork::V6(n) => (128, n.network().octets().to_vec()),
        };
        let (rule, _) = self.load(&[field]);
        let prefix = u32::from(net.prefix());
        if prefix == 0 {
            // Every address matches /0: `==` is always true, `!=` never.
            return match op {
                CmpOp::Neq => rule.fail(format!("ip daddr != {net}"), "never matches"),
                _ => rule,
            };
        }
        let rule = if prefix < bits {
            let mask: Vec<u8> =
                (0..bits / 8).map(|i| ((0xff00u16 >> prefix.saturating_sub(i * 8).min(8)) & 0xff) as u8).collect();
            let xor = vec![0; mask.len()];
            rule.expr(Expr::Bitwise { sreg: Reg::R1, dreg: Reg::R1, mask, xor })
        } else {
            rule
        };
        rule.expr(Expr::Cmp { sreg: Reg::R1, op, data: network })
    }

    fn check_set(self, fields: &[Field], set: &Set, action: &str) -> Rule {
        let types: Vec<DataType> = fields.iter().map(|f| f.data_type()).collect();
        if set.table() != self.chain.table() {
            return self.fail(format!("{action} {set}"), "the set is in another table");
        }
        if types != set.key() {
            let cause = format!("the key is {}, the fields are {}", DataType::join(set.key()), DataType::join(&types));
            return self.fail(format!("{action} {set}"), cause);
        }
        self
    }

    fn lookup(self, fields: &[Field], set: &Set, invert: bool) -> Rule {
        let rule = self.check_set(fields, set, "looking up in");
        let (rule, _) = rule.load(fields);
        rule.expr(Expr::Lookup { sreg: Reg::R1, set: set.name().to_string(), dreg: None, invert })
    }

    /// `<fields> @set`: the (concatenated) fields are an element of `set`.
    pub fn in_set(self, fields: &[Field], set: &Set) -> Rule {
        self.lookup(fields, set, false)
    }

    /// `<fields> != @set`: the fields are not an element of `set`.
    pub fn not_in_set(self, fields: &[Field], set: &Set) -> Rule {
        if set.data().is_some() {
            return self.fail(format!("negated lookup in {set}"), "only sets, not maps, can be negated");
        }
        self.lookup(fields, set, true)
    }

    /// `ct state established,related`: any of `states`.
    pub fn ct_state(self, states: CtState) -> Rule {
        self.ct_bits(CtKey::State, states.0)
    }

    /// `ct status <bits>`: any of the status bits (e.g. 0x20 `dnat`).
    pub fn ct_status(self, bits: u32) -> Rule {
        self.ct_bits(CtKey::Status, bits)
    }

    fn ct_bits(self, key: CtKey, bits: u32) -> Rule {
        self.expr(Expr::Ct { key, dreg: Reg::R1 })
            .expr(Expr::Bitwise { sreg: Reg::R1, dreg: Reg::R1, mask: bits.to_ne_bytes().to_vec(), xor: vec![0; 4] })
            .expr(Expr::Cmp { sreg: Reg::R1, op: CmpOp::Neq, data: vec![0; 4] })
    }

    /// `fib daddr type local`: the destination is an address of this host
    /// (how port mappings on "all host addresses" avoid catching forwarded
    /// traffic).
    pub fn fib_daddr_local(self) -> Rule {
        self.expr(Expr::Fib { flags: FIB_F_DADDR, result: FibResult::AddrType, dreg: Reg::R1 }).expr(Expr::Cmp {
            sreg: Reg::R1,
            op: CmpOp::Eq,
            data: RTN_LOCAL.to_ne_bytes().to_vec(),
        })
    }

    /// `meta mark & bits == bits`: every bit of `bits` is set in the
    /// packet mark (iptables-nft prints it as `-m mark --mark bits/bits`).
    pub fn has_mark_bits(self, bits: u32) -> Rule {
        let b = bits.to_ne_bytes().to_vec();
        self.expr(Expr::Meta { key: MetaKey::Mark, dreg: Reg::R1 })
            .expr(Expr::Bitwise { sreg: Reg::R1, dreg: Reg::R1, mask: b.clone(), xor: vec![0; 4] })
            .expr(Expr::Cmp { sreg: Reg::R1, op: CmpOp::Eq, data: b })
    }

    /// `meta mark set meta mark | bits` (or `& ~bits`): sets or clears
    /// bits of the packet mark and keeps the others.
    pub fn mark(self, op: MarkOp) -> Rule {
        let (mask, xor) = op.mask_xor();
        self.expr(Expr::Meta { key: MetaKey::Mark, dreg: Reg::R1 })
            .expr(Expr::Bitwise {
                sreg: Reg::R1,
                dreg: Reg::R1,
                mask: mask.to_ne_bytes().to_vec(),
                xor: xor.to_ne_bytes().to_vec(),
            })
            .expr(Expr::MetaSet { key: MetaKey::Mark, sreg: Reg::R1 })
    }

    /// `counter`.
    pub fn counter(self) -> Rule {
        self.expr(Expr::Counter)
    }

    /// `masquerade`.
    pub fn masquerade(self) -> Rule {
        self.expr(Expr::Masquerade)
    }

    /// Ends the rule with a verdict.
    pub fn verdict(self, v: Verdict) -> Rule {
        if let Err(e) = v.check() {
            return self.fail(e.what, e.cause);
        }
        self.expr(Expr::Verdict(v))
    }

    /// `accept`.
    pub fn accept(self) -> Rule {
        self.verdict(Verdict::Accept)
    }

    /// `drop`.
    pub fn drop(self) -> Rule {
        self.verdict(Verdict::Drop)
    }

    /// `return`.
    pub fn ret(self) -> Rule {
        self.verdict(Verdict::Return)
    }

    /// `jump <chain>` (same table).
    pub fn jump(self, chain: &Chain) -> Rule {
        self.verdict(chain.jump())
    }

    /// `goto <chain>` (same table).
    pub fn goto(self, chain: &Chain) -> Rule {
        self.verdict(chain.goto())
    }

    /// `<fields> vmap @map`: the verdict stored for the key, if any.
    pub fn vmap(self, fields: &[Field], map: &Set) -> Rule {
        if map.data() != Some(&SetData::Verdict) {
            return self.fail(format!("vmap lookup in {map}"), "not a verdict map");
        }
        let rule = self.check_set(fields, map, "vmap lookup in");
        let (rule, _) = rule.load(fields);
        rule.expr(Expr::Lookup { sreg: Reg::R1, set: map.name().to_string(), dreg: Some(Reg::VERDICT), invert: false })
    }

    /// `dnat ip to <fields> map @map`: DNAT to the address (and port) the map
    /// holds for the key; packets whose key is absent go on unchanged. The
    /// map's values must be `ipv4_addr [. inet_service]` or the IPv6 pair.
    pub fn dnat_map(self, fields: &[Field], map: &Set) -> Rule {
        self.nat_map(NatKind::Dnat, fields, map)
    }

    fn nat_map(self, kind: NatKind, fields: &[Field], map: &Set) -> Rule {
        let what = format!("{kind:?} map lookup in {map}");
        let family = match map.data() {
            Some(SetData::Values(v)) => match v[..] {
                [DataType::Ipv4Addr] | [DataType::Ipv4Addr, DataType::InetService] => IpFamily::V4,
                [DataType::Ipv6Addr] | [DataType::Ipv6Addr, DataType::InetService] => IpFamily::V6,
                _ => return self.fail(what, "map values must be an address, optionally . inet_service"),
            },
            _ => return self.fail(what, "not a map of addresses"),
        };
        let has_port = matches!(map.data(), Some(SetData::Values(v)) if v.len() == 2);
        // `dnat ip to ...` only applies to packets of that IP version.
        let rule = self.dep(Dep::Ip(family)).check_set(fields, map, "nat map lookup in");
        let (rule, _) = rule.load(fields);
        let addr_len = match family {
            IpFamily::V4 => 4,
            IpFamily::V6 => 16,
        };
        rule.expr(Expr::Lookup { sreg: Reg::R1, set: map.name().to_string(), dreg: Some(Reg::R1), invert: false })
            .expr(Expr::Nat { kind, family, addr: Some(Reg::R1), port: has_port.then(|| Reg::at_offset(addr_len)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::{ChainType, Hook, Table};

    fn chain(family: Family) -> Chain {
        Table::new(family, "t").unwrap().base_chain("c", Hook::Prerouting, ChainType::Nat, -100).unwrap()
    }

    #[test]
    fn inet_ip_fields_get_an_nfproto_check_once() {
        let c = chain(Family::Inet);
        let s = c.table().set("s", &[DataType::Ipv4Addr]).unwrap();
        let r = Rule::new(&c).in_set(&[Field::Ip4Saddr], &s).prefix(
            Field::Ip4Daddr,
            "10.0.0.0/8".parse().unwrap(),
            CmpOp::Neq,
        );
        let nfproto = r.exprs().iter().filter(|e| matches!(e, Expr::Meta { key: MetaKey::Nfproto, .. })).count();
        assert_eq!(nfproto, 1);
        assert!(r.error().is_none());
        let explicit = Rule::new(&c).nfproto(IpFamily::V4).in_set(&[Field::Ip4Saddr], &s);
        assert_eq!(explicit.exprs().len(), 4);
        assert_eq!(r.exprs()[4], Expr::Payload { base: PayloadBase::Network, offset: 16, len: 4, dreg: Reg::R1 });
        assert_eq!(
            r.exprs()[5],
            Expr::Bitwise { sreg: Reg::R1, dreg: Reg::R1, mask: vec![255, 0, 0, 0], xor: vec![0; 4] }
        );
    }

    #[test]
    fn bridge_uses_ethertype_and_no_iiftype() {
        let c = chain(Family::Bridge);
        let r = Rule::new(&c).cmp(Field::Ip4Saddr, CmpOp::Eq, Value::Ipv4([1, 2, 3, 4].into()));
        assert_eq!(r.exprs()[0], Expr::Meta { key: MetaKey::Protocol, dreg: Reg::R1 });
        let s = c.table().set("ok", &[DataType::Ifname, DataType::EtherAddr]).unwrap();
        let r = Rule::new(&c).not_in_set(&[Field::Iifname, Field::EtherSaddr], &s).drop();
        assert_eq!(r.exprs()[1], Expr::Payload { base: PayloadBase::Link, offset: 6, len: 6, dreg: Reg::R2 });
        assert!(r.error().is_none());
    }

    #[test]
    fn prefix_masks() {
        let c = chain(Family::Ip6);
        let r = Rule::new(&c).prefix(Field::Ip6Daddr, "ff00::/8".parse().unwrap(), CmpOp::Neq);
        let Expr::Bitwise { mask, .. } = &r.exprs()[1] else { panic!() };
        assert_eq!(mask[..2], [0xff, 0]);
        let r = Rule::new(&chain(Family::Ip)).prefix(Field::Ip4Daddr, "10.1.2.0/23".parse().unwrap(), CmpOp::Eq);
        let Expr::Bitwise { mask, .. } = &r.exprs()[1] else { panic!() };
        assert_eq!(mask, &[255, 255, 254, 0]);
        let r = Rule::new(&c).prefix(Field::Ip6Daddr, "10.0.0.0/8".parse().unwrap(), CmpOp::Eq);
        assert!(r.error().is_some());
    }

    #[test]
    fn dnat_map_registers() {
        let c = chain(Family::Inet);
        let t = c.table();
        let key = [DataType::InetProto, DataType::Ipv6Addr, DataType::InetService];
        let m = t.map("hp6", &key, &[DataType::Ipv6Addr, DataType::InetService]).unwrap();
        let r = Rule::new(&c).dnat_map(&[Field::L4proto, Field::Ip6Daddr, Field::ThDport], &m);
        assert!(r.error().is_none(), "{:?}", r.error());
        let n = r.exprs().len();
        assert_eq!(
            r.exprs()[n - 3],
            Expr::Payload { base: PayloadBase::Transport, offset: 2, len: 2, dreg: Reg::r32(5) }
        );
        assert_eq!(
            r.exprs()[n - 1],
            Expr::Nat { kind: NatKind::Dnat, family: IpFamily::V6, addr: Some(Reg::R1), port: Some(Reg::R2) }
        );
    }

    #[test]
    fn mark_mask_and_xor() {
        assert_eq!(MarkOp::Set(0x1000_0000).mask_xor(), (0xefff_ffff, 0x1000_0000));
        assert_eq!(MarkOp::Clear(0x1000_0000).mask_xor(), (0xefff_ffff, 0));
        // (mark & mask) ^ xor sets or clears exactly the bits.
        let apply = |op: MarkOp, m: u32| {
            let (mask, xor) = op.mask_xor();
            (m & mask) ^ xor
        };
        assert_eq!(apply(MarkOp::Set(0x10), 0x2001), 0x2011);
        assert_eq!(apply(MarkOp::Set(0x10), 0x2011), 0x2011);
        assert_eq!(apply(MarkOp::Clear(0x10), 0x2011), 0x2001);
        assert_eq!(apply(MarkOp::Clear(0x10), 0x2001), 0x2001);
    }

    #[test]
    fn mistakes_are_kept() {
        let c = chain(Family::Inet);
        let other = Table::new(Family::Inet, "other").unwrap().set("s", &[DataType::Ipv4Addr]).unwrap();
        assert!(Rule::new(&c).in_set(&[Field::Ip4Saddr], &other).error().is_some());
        let s = c.table().set("s", &[DataType::Ipv4Addr]).unwrap();
        assert!(Rule::new(&c).in_set(&[Field::Ip6Saddr], &s).error().is_some());
        assert!(Rule::new(&c).cmp(Field::ThDport, CmpOp::Eq, Value::TCP).error().is_some());
        assert!(Rule::new(&c).comment("bad\"").error().is_some());
        assert!(Rule::new(&c).dnat_map(&[Field::Ip4Saddr], &s).error().is_some());
    }
}
