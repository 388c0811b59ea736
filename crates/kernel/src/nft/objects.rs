//! Plain descriptions of what a batch creates or removes: tables, chains,
//! sets and maps, and set elements. Names are checked when an object is
//! made, so a batch holds nothing the kernel could misread.

use std::fmt;

use ipnetwork::IpNetwork;

use super::names::{check_comment, check_name};
use super::types::{display_values, DataType, Value};
use crate::error::{Error, Kind, Result};

/// A table's address family: which packets its base chains see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `ip`: IPv4 only.
    Ip,
    /// `ip6`: IPv6 only.
    Ip6,
    /// `inet`: IPv4 and IPv6 in one table (what the plugins use).
    Inet,
    /// `bridge`: frames crossing a Linux bridge (macspoofchk).
    Bridge,
    /// `netdev`: ingress/egress of one device.
    Netdev,
    /// `arp`.
    Arp,
}

impl Family {
    /// The `NFPROTO_*` number sent to the kernel.
    pub fn raw(self) -> u16 {
        (match self {
            Family::Ip => libc::NFPROTO_IPV4,
            Family::Ip6 => libc::NFPROTO_IPV6,
            Family::Inet => libc::NFPROTO_INET,
            Family::Bridge => libc::NFPROTO_BRIDGE,
            Family::Netdev => libc::NFPROTO_NETDEV,
            Family::Arp => libc::NFPROTO_ARP,
        }) as u16
    }

    /// The keyword `nft` uses.
    pub fn name(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Inet => "inet",
            Family::Bridge => "bridge",
            Family::Netdev => "netdev",
            Family::Arp => "arp",
        }
    }
}

/// A table: the namespace for chains and sets. Ours are named `cnirs-*`,
/// never like the reference plugins' tables.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Table {
    family: Family,
    name: String,
}

impl Table {
    /// Describes table `name` of `family`; `Kind::Invalid` for a bad name.
    pub fn new(family: Family, name: impl Into<String>) -> Result<Table> {
        let name = name.into();
        check_name("table", &name)?;
        Ok(Table { family, name })
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A regular chain of this table (reached by jump/goto only).
    pub fn chain(&self, name: impl Into<String>) -> Result<Chain> {
        let name = name.into();
        check_name("chain", &name)?;
        Ok(Chain { table: self.clone(), name, base: None })
    }

    /// A base chain: attached to `hook` at `priority` (see [`priority`]).
    pub fn base_chain(&self, name: impl Into<String>, hook: Hook, kind: ChainType, priority: i32) -> Result<Chain> {
        let mut c = self.chain(name)?;
        c.base = Some(BaseChain { hook, kind, priority, policy: None, device: None });
        Ok(c)
    }

    /// A named set with a (possibly concatenated) key, e.g.
    /// `[DataType::Ipv4Addr]` or `[DataType::Ifname, DataType::EtherAddr]`.
    pub fn set(&self, name: impl Into<String>, key: &[DataType]) -> Result<Set> {
        let name = name.into();
        check_name("set", &name)?;
        check_types(&format!("key of set {name}"), key)?;
        Ok(Set { table: self.clone(), name, key: key.to_vec(), data: None, interval: false })
    }

    /// A named map from `key` to values of `data`, e.g. `inet_proto .
    /// ipv4_addr . inet_service : ipv4_addr . inet_service` for DNAT.
    pub fn map(&self, name: impl Into<String>, key: &[DataType], data: &[DataType]) -> Result<Set> {
        let mut s = self.set(name, key)?;
        check_types(&format!("data of map {}", s.name), data)?;
        s.data = Some(SetData::Values(data.to_vec()));
        Ok(s)
    }

    /// A named verdict map: `key : verdict` (accept, drop, jump chain, ...).
    pub fn vmap(&self, name: impl Into<String>, key: &[DataType]) -> Result<Set> {
        let mut s = self.set(name, key)?;
        s.data = Some(SetData::Verdict);
        Ok(s)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.family.name(), self.name)
    }
}

/// The kernel takes keys and values of at most 64 bytes (16 registers).
fn check_types(what: &str, types: &[DataType]) -> Result<()> {
    if types.is_empty() || DataType::key_len(types) > 64 {
        return Err(Error::new(Kind::Invalid, what.to_string(), "must have 1 to 64 bytes of fields"));
    }
    Ok(())
}

/// Netfilter hook a base chain attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// Before routing (DNAT).
    Prerouting,
    /// Local delivery.
    Input,
    /// Forwarded traffic (firewall).
    Forward,
    /// Locally generated traffic (DNAT of host-originated connections).
    Output,
    /// After routing (masquerade).
    Postrouting,
    /// Device ingress (netdev, or inet with a device).
    Ingress,
}

impl Hook {
    /// The hook number for a table of `family`.
    pub fn raw(self, family: Family) -> u32 {
        (match self {
            Hook::Prerouting => libc::NF_INET_PRE_ROUTING,
            Hook::Input => libc::NF_INET_LOCAL_IN,
            Hook::Forward => libc::NF_INET_FORWARD,
            Hook::Output => libc::NF_INET_LOCAL_OUT,
            Hook::Postrouting => libc::NF_INET_POST_ROUTING,
            Hook::Ingress if family == Family::Netdev => libc::NF_NETDEV_INGRESS,
            Hook::Ingress => libc::NF_INET_INGRESS,
        }) as u32
    }
}

/// What a base chain may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainType {
    /// Accept/drop.
    Filter,
    /// Address translation (only the first packet of a connection is seen).
    Nat,
    /// Rerouting after mark changes (output hook).
    Route,
}

impl ChainType {
    /// The type name the kernel knows.
    pub fn name(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
        }
    }
}

/// What a base chain does with packets no rule decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Let them pass (the default).
    Accept,
    /// Drop them.
    Drop,
}

/// Standard chain priorities (as `nft` names them), so our chains run in
/// the usual order relative to other tables.
pub mod priority {
    /// `dstnat`: prerouting/output NAT.
    pub const DSTNAT: i32 = -100;
    /// `filter`.
    pub const FILTER: i32 = 0;
    /// `srcnat`: postrouting NAT.
    pub const SRCNAT: i32 = 100;
    /// `filter` in a bridge table.
    pub const BRIDGE_FILTER: i32 = -200;
    /// `dstnat` in a bridge table.
    pub const BRIDGE_DSTNAT: i32 = -300;
}

/// The hook part of a base chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BaseChain {
    /// The hook.
    pub hook: Hook,
    /// filter, nat or route.
    pub kind: ChainType,
    /// Lower runs first.
    pub priority: i32,
    /// Default verdict; `None` leaves the kernel default (accept).
    pub policy: Option<Policy>,
    /// The device, for netdev ingress chains.
    pub device: Option<String>,
}

/// A chain: a base chain (with a hook) or a regular one (jump/goto target).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Chain {
    table: Table,
    name: String,
    base: Option<BaseChain>,
}

impl Chain {
    /// The table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hook part, for base chains.
    pub fn base(&self) -> Option<&BaseChain> {
        self.base.as_ref()
    }

    /// Sets the default verdict of a base chain (e.g. a forward chain that
    /// drops what the firewall did not admit). No effect on regular chains.
    pub fn with_policy(mut self, policy: Policy) -> Chain {
        if let Some(b) = self.base.as_mut() {
            b.policy = Some(policy);
        }
        self
    }

    /// A jump to this chain (comes back at its end).
    pub fn jump(&self) -> Verdict {
        Verdict::Jump(self.name.clone())
    }

    /// A goto to this chain (does not come back).
    pub fn goto(&self) -> Verdict {
        Verdict::Goto(self.name.clone())
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "chain {} {}", self.table, self.name)
    }
}

/// What a map maps to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SetData {
    /// Typed values (e.g. `ipv4_addr . inet_service` for DNAT).
    Values(Vec<DataType>),
    /// Verdicts.
    Verdict,
}

/// A named set or map. Elements are added and removed per container;
/// lookups cost the same with one element or ten thousand.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Set {
    table: Table,
    name: String,
    key: Vec<DataType>,
    data: Option<SetData>,
    interval: bool,
}

impl Set {
    /// Makes the set hold ranges and prefixes ([`Element::range`],
    /// [`Element::prefix`]). A single-field key must be an address, port,
    /// protocol or MAC (numbers compared big-endian).
    pub fn interval(mut self) -> Result<Set> {
        if let [one] = self.key[..] {
            if !one.is_big_endian() {
                return Err(Error::new(
                    Kind::Invalid,
                    format!("interval {self}"),
                    format!("{} has no ranges", one.name()),
                ));
            }
        }
        self.interval = true;
        Ok(self)
    }

    /// The table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The name (what rules refer to as `@name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key fields.
    pub fn key(&self) -> &[DataType] {
        &self.key
    }

    /// The value type, for maps.
    pub fn data(&self) -> Option<&SetData> {
        self.data.as_ref()
    }

    /// Whether elements are ranges.
    pub fn is_interval(&self) -> bool {
        self.interval
    }

    /// "set" or "map", for messages.
    pub fn kind_name(&self) -> &'static str {
        if self.data.is_some() {
            "map"
        } else {
            "set"
        }
    }
}

impl fmt::Display for Set {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.kind_name(), self.table, self.name)
    }
}

/// A verdict: in a rule, or as the value of a verdict map.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Accept the packet (in this base chain).
    Accept,
    /// Drop the packet.
    Drop,
    /// Return to the calling chain.
    Return,
    /// Go on with the next rule.
    Continue,
    /// Jump to a chain of the same table and come back.
    Jump(String),
    /// Go to a chain of the same table without coming back.
    Goto(String),
}

impl Verdict {
    /// The verdict code and the target chain.
    pub fn raw(&self) -> (i32, Option<&str>) {
        match self {
            Verdict::Accept => (libc::NF_ACCEPT, None),
            Verdict::Drop => (libc::NF_DROP, None),
            Verdict::Return => (libc::NFT_RETURN, None),
            Verdict::Continue => (libc::NFT_CONTINUE, None),
            Verdict::Jump(c) => (libc::NFT_JUMP, Some(c)),
            Verdict::Goto(c) => (libc::NFT_GOTO, Some(c)),
        }
    }

    /// Reads a verdict back from the kernel's code and chain.
    pub fn from_raw(code: i32, chain: Option<String>) -> Option<Verdict> {
        Some(match code {
            libc::NF_ACCEPT => Verdict::Accept,
            libc::NF_DROP => Verdict::Drop,
            libc::NFT_RETURN => Verdict::Return,
            libc::NFT_CONTINUE => Verdict::Continue,
            libc::NFT_JUMP => Verdict::Jump(chain?),
            libc::NFT_GOTO => Verdict::Goto(chain?),
            _ => return None,
        })
    }

    /// Checks the target chain name.
    pub(crate) fn check(&self) -> Result<()> {
        match self.raw().1 {
            Some(chain) => check_name("chain", chain),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => write!(f, "accept"),
            Verdict::Drop => write!(f, "drop"),
            Verdict::Return => write!(f, "return"),
            Verdict::Continue => write!(f, "continue"),
            Verdict::Jump(c) => write!(f, "jump {c}"),
            Verdict::Goto(c) => write!(f, "goto {c}"),
        }
    }
}

/// The value an element of a map carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ElemData {
    /// Typed values, for maps of [`SetData::Values`].
    Values(Vec<Value>),
    /// A verdict, for verdict maps.
    Verdict(Verdict),
}

/// One set or map element, with the comment that names its owner (e.g.
/// network/container/ifname) so DEL and GC can find it without its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Element {
    /// The key (one value per key field).
    pub key: Vec<Value>,
    /// The inclusive end of a range, in interval sets.
    pub key_end: Option<Vec<Value>>,
    /// The value, in maps.
    pub data: Option<ElemData>,
    /// The owner comment.
    pub comment: Option<String>,
}

impl Element {
    /// An element with this key.
    pub fn new(key: impl IntoIterator<Item = Value>) -> Element {
        Element { key: key.into_iter().collect(), key_end: None, data: None, comment: None }
    }

    /// A range `start..=end` (interval sets only).
    pub fn range(start: impl IntoIterator<Item = Value>, end: impl IntoIterator<Item = Value>) -> Element {
        let mut e = Element::new(start);
        e.key_end = Some(end.into_iter().collect());
        e
    }

    /// All addresses of a CIDR (interval sets only).
    pub fn prefix(net: IpNetwork) -> Element {
        match net {
            IpNetwork::V4(n) => Element::range([Value::Ipv4(n.network())], [Value::Ipv4(n.broadcast())]),
            IpNetwork::V6(n) => {
                let host_mask = u128::MAX.checked_shr(u32::from(n.prefix())).unwrap_or(0);
                let last = u128::from(n.network()) | host_mask;
                Element::range([Value::Ipv6(n.network())], [Value::Ipv6(last.into())])
            }
        }
    }

    /// Sets the map value.
    pub fn data(mut self, values: impl IntoIterator<Item = Value>) -> Element {
        self.data = Some(ElemData::Values(values.into_iter().collect()));
        self
    }

    /// Sets the verdict (verdict maps).
    pub fn verdict(mut self, verdict: Verdict) -> Element {
        self.data = Some(ElemData::Verdict(verdict));
        self
    }

    /// Sets the owner comment (checked when the batch is committed).
    pub fn comment(mut self, comment: impl Into<String>) -> Element {
        self.comment = Some(comment.into());
        self
    }

    /// Checks the comment.
    pub(crate) fn check_comment(&self) -> Result<()> {
        self.comment.as_deref().map_or(Ok(()), check_comment)
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", display_values(&self.key))?;
        if let Some(end) = &self.key_end {
            write!(f, "-{}", display_values(end))?;
        }
        match &self.data {
            Some(ElemData::Values(v)) => write!(f, " : {}", display_values(v))?,
            Some(ElemData::Verdict(v)) => write!(f, " : {v}")?,
            None => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_check_names() {
        let t = Table::new(Family::Inet, "cnirs-nat").unwrap();
        assert!(Table::new(Family::Inet, "bad name").is_err());
        assert!(t.chain("ok").is_ok());
        assert!(t.chain("no;").is_err());
        assert!(t.set("s", &[]).is_err());
        let m = t
            .map(
                "hp4",
                &[DataType::InetProto, DataType::Ipv4Addr, DataType::InetService],
                &[DataType::Ipv4Addr, DataType::InetService],
            )
            .unwrap();
        assert_eq!(m.to_string(), "map inet cnirs-nat hp4");
        assert!(t.set("m", &[DataType::Mark]).unwrap().interval().is_err());
        let c = t
            .base_chain("post", Hook::Postrouting, ChainType::Nat, priority::SRCNAT)
            .unwrap()
            .with_policy(Policy::Accept);
        assert_eq!(c.base().unwrap().policy, Some(Policy::Accept));
        assert_eq!(c.jump(), Verdict::Jump("post".into()));
    }

    #[test]
    fn hooks() {
        assert_eq!(Hook::Ingress.raw(Family::Netdev), 0);
        assert_eq!(Hook::Ingress.raw(Family::Inet), 5);
        assert_eq!(Hook::Postrouting.raw(Family::Bridge), 4);
    }

    #[test]
    fn prefixes() {
        let e = Element::prefix("10.1.0.0/16".parse().unwrap());
        assert_eq!(e.to_string(), "10.1.0.0-10.1.255.255");
        let e = Element::prefix("2001:db8::/32".parse().unwrap());
        assert_eq!(e.to_string(), "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
        let e = Element::prefix("::/0".parse().unwrap());
        assert_eq!(e.key_end.unwrap()[0], Value::Ipv6(std::net::Ipv6Addr::from(u128::MAX)));
        let e =
            Element::new([Value::TCP, Value::Port(80)]).data([Value::Ipv4([10, 0, 0, 2].into()), Value::Port(8080)]);
        assert_eq!(e.to_string(), "tcp . 80 : 10.0.0.2 . 8080");
    }

    #[test]
    fn verdicts_round_trip() {
        for v in [Verdict::Accept, Verdict::Drop, Verdict::Return, Verdict::Jump("x".into()), Verdict::Goto("y".into())]
        {
            let (code, chain) = v.raw();
            assert_eq!(Verdict::from_raw(code, chain.map(String::from)), Some(v.clone()));
        }
    }
}
