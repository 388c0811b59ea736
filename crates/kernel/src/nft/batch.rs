//! One transaction: the list of changes a plugin operation makes, applied
//! by the kernel all at once or not at all ([`Socket::commit`]).
//!
//! "add" means add-if-missing (`NLM_F_CREATE` without `NLM_F_EXCL`): safe
//! when 32 ADDs race to create the same table, chain or set, and when an
//! ADD is retried. "create" fails with `Kind::Exists` instead. "delete"
//! fails with `Kind::NotFound` when the object is missing; "destroy" (Linux
//! 6.3 or later) does not.

use super::objects::{Chain, ElemData, Element, Set, SetData, Table};
use super::raw::{Header, MsgWriter, RawElem};
use super::rule::Rule;
use super::types::{encode_key, increment_be};
use super::udata;
use crate::error::{Error, Kind, Result};

/// `NFT_MSG_DESTROY*` (Linux 6.3+; not in the libc crate): delete, and
/// succeed when the object is already gone.
const NFT_MSG_DESTROYTABLE: i32 = 26;
const NFT_MSG_DESTROYCHAIN: i32 = 27;
const NFT_MSG_DESTROYRULE: i32 = 28;
const NFT_MSG_DESTROYSET: i32 = 29;
const NFT_MSG_DESTROYSETELEM: i32 = 30;

const NLM_F_CREATE: u16 = libc::NLM_F_CREATE as u16;
const NLM_F_EXCL: u16 = libc::NLM_F_EXCL as u16;
const NLM_F_APPEND: u16 = libc::NLM_F_APPEND as u16;
const NLM_F_ACK: u16 = libc::NLM_F_ACK as u16;

/// How a message treats an object that is (or is not) there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Add,
    Create,
    Delete,
    Destroy,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Add => "adding",
            Op::Create => "creating",
            Op::Delete => "deleting",
            Op::Destroy => "destroying",
        }
    }

    /// The message type among (new, del, destroy) and the flags.
    fn header(self, new: i32, del: i32, destroy: i32) -> (i32, u16) {
        match self {
            Op::Add => (new, NLM_F_CREATE),
            Op::Create => (new, NLM_F_CREATE | NLM_F_EXCL),
            Op::Delete => (del, 0),
            Op::Destroy => (destroy, 0),
        }
    }
}

/// One message, or one intent resolved against the kernel's state at
/// commit ([`super::resolve`]).
#[derive(Debug, Clone)]
pub(super) enum Msg {
    Table(Op, Table),
    Chain(Op, Chain),
    FlushChain(Chain),
    Rule { insert: bool, rule: Rule, tag: Option<Vec<u8>> },
    ReplaceRules { chain: Chain, rules: Vec<Rule> },
    ReplaceElems { set: Set, elems: Vec<Element> },
    RuleRef { op: Op, chain: Chain, handle: u64 },
    Set(Op, Set, u32),
    Elems { op: Op, set: Set, elems: Vec<RawElem>, shown: String },
}

impl Msg {
    fn describe(&self) -> String {
        match self {
            Msg::Table(op, t) => format!("{} table {t}", op.verb()),
            Msg::Chain(op, c) => format!("{} {c}", op.verb()),
            Msg::FlushChain(c) => format!("flushing {c}"),
            Msg::Rule { rule, .. } => match rule.comment_text() {
                Some(c) => format!("adding rule {c:?} to {}", rule.chain()),
                None => format!("adding rule to {}", rule.chain()),
            },
            Msg::RuleRef { op, chain, handle } => format!("{} rule {handle} of {chain}", op.verb()),
            Msg::ReplaceRules { chain, .. } => format!("replacing the rules of {chain}"),
            Msg::ReplaceElems { set, .. } => format!("replacing the elements of {set}"),
            Msg::Set(op, s, _) => format!("{} {s}", op.verb()),
            Msg::Elems { op, set, shown, .. } => {
                let prep = if matches!(op, Op::Add | Op::Create) { "to" } else { "from" };
                format!("{} element {shown} {prep} {set}", op.verb())
            }
        }
    }

    fn write(&self, w: &mut MsgWriter, seq: u32, ack: bool) -> Result<()> {
        let ack = if ack { NLM_F_ACK } else { 0 };
        let h = |(kind, flags): (i32, u16), family: u16| Header { kind: kind as u16, family, flags: flags | ack, seq };
        match self {
            Msg::Table(op, t) => {
                let hdr = op.header(libc::NFT_MSG_NEWTABLE, libc::NFT_MSG_DELTABLE, NFT_MSG_DESTROYTABLE);
                w.table(h(hdr, t.family().raw()), t)
            }
            Msg::Chain(op, c) => {
                let hdr = op.header(libc::NFT_MSG_NEWCHAIN, libc::NFT_MSG_DELCHAIN, NFT_MSG_DESTROYCHAIN);
                w.chain(h(hdr, c.table().family().raw()), c, matches!(op, Op::Add | Op::Create))
            }
            Msg::FlushChain(c) => w.rule_ref(h((libc::NFT_MSG_DELRULE, 0), c.table().family().raw()), c, None),
            Msg::Rule { insert, rule, tag } => {
                let flags = if *insert { NLM_F_CREATE } else { NLM_F_CREATE | NLM_F_APPEND };
                w.rule(h((libc::NFT_MSG_NEWRULE, flags), rule.chain().table().family().raw()), rule, tag.as_deref())
            }
            Msg::ReplaceRules { .. } | Msg::ReplaceElems { .. } => {
                Err(Error::new(Kind::Invalid, self.describe(), "must be resolved against the kernel first"))
            }
            Msg::RuleRef { op, chain, handle } => {
                let hdr = op.header(libc::NFT_MSG_NEWRULE, libc::NFT_MSG_DELRULE, NFT_MSG_DESTROYRULE);
                w.rule_ref(h(hdr, chain.table().family().raw()), chain, Some(*handle))
            }
            Msg::Set(op, s, id) => {
                let hdr = op.header(libc::NFT_MSG_NEWSET, libc::NFT_MSG_DELSET, NFT_MSG_DESTROYSET);
                w.set(h(hdr, s.table().family().raw()), s, *id, matches!(op, Op::Add | Op::Create))
            }
            Msg::Elems { op, set, elems, .. } => {
                let hdr = op.header(libc::NFT_MSG_NEWSETELEM, libc::NFT_MSG_DELSETELEM, NFT_MSG_DESTROYSETELEM);
                w.elems(h(hdr, set.table().family().raw()), set, elems)
            }
        }
    }
}

/// A list of changes committed as one nftables transaction. Building never
/// fails: the first mistake (a value of the wrong type, a bad comment) is
/// kept and returned by `commit`, before anything reaches the kernel.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    msgs: Vec<Msg>,
    error: Option<Error>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// The number of messages.
    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    /// Whether there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    pub(super) fn push(&mut self, m: Msg) -> &mut Batch {
        self.msgs.push(m);
        self
    }

    /// The messages and intents, in order.
    pub(super) fn msgs(&self) -> &[Msg] {
        &self.msgs
    }

    fn keep_error(&mut self, e: Error) -> &mut Batch {
        self.error.get_or_insert(e);
        self
    }

    /// Adds the table if it is missing.
    pub fn add_table(&mut self, t: &Table) -> &mut Batch {
        self.push(Msg::Table(Op::Add, t.clone()))
    }

    /// Creates the table; `Kind::Exists` if it is there.
    pub fn create_table(&mut self, t: &Table) -> &mut Batch {
        self.push(Msg::Table(Op::Create, t.clone()))
    }

    /// Deletes the table with everything in it (slow: 12-16 ms; prefer
    /// deleting elements on per-container paths).
    pub fn delete_table(&mut self, t: &Table) -> &mut Batch {
        self.push(Msg::Table(Op::Delete, t.clone()))
    }

    /// Deletes the table if it exists (Linux 6.3+).
    pub fn destroy_table(&mut self, t: &Table) -> &mut Batch {
        self.push(Msg::Table(Op::Destroy, t.clone()))
    }

    /// Adds the chain if it is missing (a base chain with its hook; an
    /// existing base chain keeps its rules, its policy is updated).
    pub fn add_chain(&mut self, c: &Chain) -> &mut Batch {
        self.push(Msg::Chain(Op::Add, c.clone()))
    }

    /// Removes every rule of the chain. "add chain, flush chain, add rules"
    /// in one batch leaves exactly those rules, however often it runs.
    pub fn flush_chain(&mut self, c: &Chain) -> &mut Batch {
        self.push(Msg::FlushChain(c.clone()))
    }

    /// Deletes the chain and its rules; `Kind::Busy` while a rule jumps to it.
    pub fn delete_chain(&mut self, c: &Chain) -> &mut Batch {
        self.push(Msg::Chain(Op::Delete, c.clone()))
    }

    /// Deletes the chain if it exists (Linux 6.3+).
    pub fn destroy_chain(&mut self, c: &Chain) -> &mut Batch {
        self.push(Msg::Chain(Op::Destroy, c.clone()))
    }

    /// Appends the rule to its chain.
    pub fn add_rule(&mut self, r: Rule) -> &mut Batch {
        if let Some(e) = r.error() {
            return self.keep_error(e.clone());
        }
        self.push(Msg::Rule { insert: false, rule: r, tag: None })
    }

    /// Puts the rule first in its chain.
    pub fn insert_rule(&mut self, r: Rule) -> &mut Batch {
        if let Some(e) = r.error() {
            return self.keep_error(e.clone());
        }
        self.push(Msg::Rule { insert: true, rule: r, tag: None })
    }

    /// Makes `chain` hold exactly `rules`, in order. At commit the chain's
    /// current rules are compared (through a digest stored with each rule)
    /// and left alone when they already match; otherwise the chain is
    /// flushed and the rules added, in the same transaction. Unlike an
    /// unconditional flush, a repeated ADD then deletes nothing, which
    /// spares the process an RCU grace period (~16 ms) when its socket
    /// closes.
    pub fn replace_rules(&mut self, chain: &Chain, rules: impl IntoIterator<Item = Rule>) -> &mut Batch {
        let rules: Vec<Rule> = rules.into_iter().collect();
        for r in &rules {
            if let Some(e) = r.error() {
                return self.keep_error(e.clone());
            }
            if r.chain() != chain {
                return self.keep_error(Error::new(
                    Kind::Invalid,
                    format!("replacing the rules of {chain}"),
                    format!("a rule belongs to {}", r.chain()),
                ));
            }
        }
        self.push(Msg::ReplaceRules { chain: chain.clone(), rules })
    }

    /// Makes `set` hold exactly `elems` (keys, values and comments): at
    /// commit, only the difference to the kernel's current elements is
    /// sent. For small sets derived from configuration (exempt CIDRs), not
    /// for per-container elements.
    pub fn replace_elements(&mut self, set: &Set, elems: impl IntoIterator<Item = Element>) -> &mut Batch {
        let elems: Vec<Element> = elems.into_iter().collect();
        for e in &elems {
            if let Err(err) = encode_element(set, e, false) {
                return self.keep_error(err);
            }
        }
        self.push(Msg::ReplaceElems { set: set.clone(), elems })
    }

    /// Deletes one rule by handle (see `Socket::list_rules`).
    pub fn delete_rule(&mut self, c: &Chain, handle: u64) -> &mut Batch {
        self.push(Msg::RuleRef { op: Op::Delete, chain: c.clone(), handle })
    }

    /// Deletes one rule by handle if it exists (Linux 6.3+).
    pub fn destroy_rule(&mut self, c: &Chain, handle: u64) -> &mut Batch {
        self.push(Msg::RuleRef { op: Op::Destroy, chain: c.clone(), handle })
    }

    /// Adds the set or map if it is missing; an existing one must have the
    /// same types and flags, else `Kind::Exists`.
    pub fn add_set(&mut self, s: &Set) -> &mut Batch {
        let id = self.msgs.len() as u32 + 1;
        self.push(Msg::Set(Op::Add, s.clone(), id))
    }

    /// Deletes the set if it exists (Linux 6.3+).
    pub fn destroy_set(&mut self, s: &Set) -> &mut Batch {
        self.push(Msg::Set(Op::Destroy, s.clone(), 0))
    }

    fn elem(&mut self, op: Op, s: &Set, e: &Element) -> &mut Batch {
        match encode_element(s, e, matches!(op, Op::Delete | Op::Destroy)) {
            Ok(elems) => self.push(Msg::Elems { op, set: s.clone(), elems, shown: e.to_string() }),
            Err(err) => self.keep_error(err),
        }
    }

    /// Adds the element if it is missing. Re-adding the same key is fine;
    /// the same key with a different map value fails with `Kind::Exists`
    /// (e.g. a host port already mapped to another container).
    pub fn add_element(&mut self, s: &Set, e: Element) -> &mut Batch {
        self.elem(Op::Add, s, &e)
    }

    /// Adds the element; `Kind::Exists` if the key is there at all.
    pub fn create_element(&mut self, s: &Set, e: Element) -> &mut Batch {
        self.elem(Op::Create, s, &e)
    }

    /// Deletes the element (only its key is used, so elements from
    /// `Socket::list_elements` can be passed back); `Kind::NotFound` if
    /// it is missing.
    pub fn delete_element(&mut self, s: &Set, e: &Element) -> &mut Batch {
        self.elem(Op::Delete, s, e)
    }

    /// Deletes the element if it exists (Linux 6.3+); the set itself must
    /// exist (a missing set is still `Kind::NotFound`).
    pub fn destroy_element(&mut self, s: &Set, e: &Element) -> &mut Batch {
        self.elem(Op::Destroy, s, e)
    }

    /// The first mistake made while building, if any.
    pub(crate) fn check(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The wire form: begin marker at `begin`, message `i` at `begin + 1 +
    /// i`, end marker last; only the last message asks for an ACK.
    pub(crate) fn encode(&self, begin: u32) -> Result<Vec<u8>> {
        self.check()?;
        let mut w = MsgWriter::new();
        w.batch_begin(begin);
        let n = self.msgs.len();
        for (i, m) in self.msgs.iter().enumerate() {
            m.write(&mut w, begin + 1 + i as u32, i + 1 == n)?;
        }
        w.batch_end(begin + 1 + n as u32);
        Ok(w.finish())
    }

    /// One line per message saying what it does (as errors name them), for
    /// logs and for tests of [`Socket::plan`].
    pub fn descriptions(&self) -> Vec<String> {
        self.msgs.iter().map(Msg::describe).collect()
    }

    /// What the message at offset `i` from the begin marker does, for errors.
    pub(crate) fn describe_at(&self, i: usize) -> String {
        match i.checked_sub(1).and_then(|i| self.msgs.get(i)) {
            Some(m) => m.describe(),
            None => "committing an nftables batch".to_string(),
        }
    }
}

/// Encodes an element for `s`: key (and range), value and comment, checked
/// against the set's types. A range in a single-field interval set becomes
/// a start element and an end marker one past the range, as the kernel
/// stores it. For deletes only the key matters.
pub(super) fn encode_element(s: &Set, e: &Element, delete: bool) -> Result<Vec<RawElem>> {
    let what = s.to_string();
    let key = encode_key(&what, s.key(), &e.key)?;
    let mut start = RawElem { key, ..RawElem::default() };
    if !delete {
        e.check_comment()?;
        start.udata = e.comment.as_deref().map(udata::encode_comment);
        match (s.data(), &e.data) {
            (Some(SetData::Values(types)), Some(ElemData::Values(v))) => {
                start.data = Some(encode_key(&what, types, v)?)
            }
            (Some(SetData::Verdict), Some(ElemData::Verdict(v))) => {
                v.check()?;
                start.verdict = Some((v.raw().0, v.raw().1.map(String::from)));
            }
            (None, None) => {}
            _ => return Err(Error::new(Kind::Invalid, format!("element {e} of {what}"), "value does not fit the set")),
        }
    }
    if !s.is_interval() {
        if e.key_end.is_some() {
            return Err(Error::new(Kind::Invalid, format!("element {e} of {what}"), "ranges need an interval set"));
        }
        return Ok(vec![start]);
    }
    let end = match &e.key_end {
        Some(end) => encode_key(&what, s.key(), end)?,
        None => start.key.clone(),
    };
    if s.key().len() > 1 {
        start.key_end = Some(end);
        return Ok(vec![start]);
    }
    if end < start.key {
        return Err(Error::new(Kind::Invalid, format!("element {e} of {what}"), "the range ends before it starts"));
    }
    let mut marker = end;
    if !increment_be(&mut marker) {
        // The range runs to the last address: no end marker.
        return Ok(vec![start]);
    }
    let end = RawElem { key: marker, flags: libc::NFT_SET_ELEM_INTERVAL_END as u32, ..RawElem::default() };
    Ok(vec![start, end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::{DataType, Family, Value, Verdict};
    use std::net::Ipv4Addr;

    fn table() -> Table {
        Table::new(Family::Inet, "t").unwrap()
    }

    #[test]
    fn errors_are_deferred_to_commit() {
        let s = table().set("s", &[DataType::Ipv4Addr]).unwrap();
        let mut b = Batch::new();
        b.add_set(&s).add_element(&s, Element::new([Value::Port(1)]));
        assert_eq!(b.len(), 1);
        let e = b.encode(1).unwrap_err();
        assert_eq!(e.kind, Kind::Invalid);
        let e = Batch::new()
            .add_element(&s, Element::new([Value::Ipv4(Ipv4Addr::LOCALHOST)]).comment("x\ny"))
            .commit()
            .unwrap_err();
        assert_eq!(e.kind, Kind::Invalid);
    }

    #[test]
    fn map_values_are_checked() {
        let t = table();
        let m = t.map("m", &[DataType::InetService], &[DataType::Ipv4Addr]).unwrap();
        assert!(encode_element(&m, &Element::new([Value::Port(80)]), false).is_err());
        assert!(encode_element(&m, &Element::new([Value::Port(80)]).data([Value::Port(1)]), false).is_err());
        let ok = encode_element(&m, &Element::new([Value::Port(80)]).data([Value::Ipv4([10, 0, 0, 1].into())]), false)
            .unwrap();
        assert_eq!(ok[0].data.as_deref(), Some(&[10, 0, 0, 1][..]));
        // Deletes need only the key.
        assert!(encode_element(&m, &Element::new([Value::Port(80)]), true).is_ok());
        let v = t.vmap("v", &[DataType::Ifname]).unwrap();
        let e = Element::new([Value::Ifname("eth0".into())]).verdict(Verdict::Jump("c".into()));
        assert_eq!(encode_element(&v, &e, false).unwrap()[0].verdict, Some((libc::NFT_JUMP, Some("c".into()))));
    }

    #[test]
    fn ranges() {
        let s = table().set("r", &[DataType::Ipv4Addr]).unwrap().interval().unwrap();
        let e = Element::prefix("10.1.0.0/16".parse().unwrap()).comment("net");
        let raw = encode_element(&s, &e, false).unwrap();
        assert_eq!(raw.len(), 2);
        assert_eq!(raw[1].key, [10, 2, 0, 0]);
        assert_eq!(raw[1].flags, 1);
        assert!(raw[1].udata.is_none());
        let all = encode_element(&s, &Element::prefix("0.0.0.0/0".parse().unwrap()), false).unwrap();
        assert_eq!(all.len(), 1);
        let back = Element::range([Value::Ipv4([10, 0, 0, 9].into())], [Value::Ipv4([10, 0, 0, 1].into())]);
        assert!(encode_element(&s, &back, false).is_err());
        let plain = table().set("p", &[DataType::Ipv4Addr]).unwrap();
        assert!(encode_element(&plain, &e, false).is_err());
        let c = table().set("c", &[DataType::InetProto, DataType::InetService]).unwrap().interval().unwrap();
        let r = encode_element(
            &c,
            &Element::range([Value::TCP, Value::Port(1000)], [Value::TCP, Value::Port(2000)]),
            false,
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].key_end.as_deref(), Some(&[6, 0, 0, 0, 0x07, 0xd0, 0, 0][..]));
    }

    #[test]
    fn descriptions_name_the_object() {
        let t = table();
        let m = t
            .map("hp4", &[DataType::InetProto, DataType::InetService], &[DataType::Ipv4Addr, DataType::InetService])
            .unwrap();
        let mut b = Batch::new();
        b.add_table(&t).add_element(
            &m,
            Element::new([Value::TCP, Value::Port(80)]).data([Value::Ipv4([10, 0, 0, 2].into()), Value::Port(8080)]),
        );
        assert_eq!(b.describe_at(0), "committing an nftables batch");
        assert_eq!(b.describe_at(1), "adding table inet t");
        assert_eq!(b.describe_at(2), "adding element tcp . 80 : 10.0.0.2 . 8080 to map inet t hp4");
        let wire = b.encode(100).unwrap();
        let mut buf = super::super::raw::AlignedBuf::new(wire.len());
        buf.bytes_mut()[..wire.len()].copy_from_slice(&wire);
        let flags: Vec<(u32, u16)> = crate::nfnetlink::messages(&buf.bytes()[..wire.len()])
            .map(|m| (u32::from_ne_bytes(m[8..12].try_into().unwrap()), u16::from_ne_bytes([m[6], m[7]]) & NLM_F_ACK))
            .collect();
        assert_eq!(flags, [(100, 0), (101, 0), (102, NLM_F_ACK), (103, 0)]);
    }
}
