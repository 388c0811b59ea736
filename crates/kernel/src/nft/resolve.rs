//! Turns a batch into the messages it really needs, given what the kernel
//! holds now: an "add chain" for a chain that is already there as asked is
//! dropped, "replace rules" becomes nothing or flush + add, "replace
//! elements" becomes the difference.
//!
//! Why bother: updating an existing chain or deleting anything queues work
//! the kernel frees after an RCU grace period, and it waits for that work
//! when the netlink socket is closed (`nft_rcv_nl_event`) — ~16 ms here,
//! paid by every plugin exec. Reading the state first costs a few µs.
//!
//! "add table" and "add set" go out as asked, even when the object exists:
//! the kernel then only checks that the existing set matches (`EEXIST` if
//! not) and queues nothing. Pruning them needs each set's definition,
//! which the plan does not read: a GETSET per set (or one dump of the
//! table's sets, parsed in `raw.rs`, not written). Measured (debug build, a
//! loaded 2-core VM): a 1-element commit took 50–80 µs, with the 7 objects
//! masquerade re-sends (its table and 6 sets) 130–210 µs, and with 6
//! GETSETs instead 430–510 µs.

use std::collections::HashSet;

use super::batch::{Batch, Msg, Op};
use super::objects::{Chain, Element, Policy, Set, Table};
use super::raw::{ChainInfo, Header, MsgWriter};
use super::rule::Rule;
use super::socket::{Socket, TableState};
use super::udata;
use crate::error::{OrMissing, Result};

/// Every commit goes through a plan; the entry points live here so that
/// the socket and the batch need not know the planner.
impl Socket {
    /// Applies `batch` as one transaction: everything or nothing. On failure
    /// the error names the first message the kernel refused (`what`) and
    /// carries its errno (`EEXIST` → `Kind::Exists`, `ENOENT` →
    /// `Kind::NotFound`).
    ///
    /// The batch is first planned against the kernel's state ([`Socket::plan`]):
    /// chains already in place are not re-sent and rule lists already
    /// current are not rewritten. If the commit then fails with `NotFound`
    /// (a concurrent commit removed what the plan relied on), it is planned
    /// and sent once more.
    pub fn commit(&self, batch: &Batch) -> Result<()> {
        let (first, read_state) = plan(self, batch)?;
        match self.commit_exact(&first) {
            Err(e) if e.is_not_found() && read_state => self.commit_exact(&plan(self, batch)?.0),
            r => r,
        }
    }

    /// The messages `commit` would send for `batch` now: for tests, and to
    /// see why a commit is (or is not) cheap.
    pub fn plan(&self, batch: &Batch) -> Result<Batch> {
        Ok(plan(self, batch)?.0)
    }
}

impl Batch {
    /// Applies the batch through a new socket in the calling thread's
    /// network namespace (see [`Socket::commit`]).
    pub fn commit(&self) -> Result<()> {
        self.check()?;
        if self.is_empty() {
            return Ok(());
        }
        Socket::open()?.commit(self)
    }
}

/// The messages to send for `batch`, and whether any of them depends on
/// what was read (a commit that then fails with `NotFound` raced with
/// another one, and is worth planning again).
pub(super) fn plan(sock: &Socket, batch: &Batch) -> Result<(Batch, bool)> {
    batch.check()?;
    let mut out = Batch::new();
    let mut read_state = false;
    let mut tables = Tables::default();
    for m in batch.msgs() {
        match m {
            Msg::Chain(Op::Add, c) => {
                read_state = true;
                let current = match tables.state(sock, batch, c)? {
                    Some(state) => state.chain(c).cloned(),
                    None => sock.chain_info(c)?,
                };
                if !chain_is_current(c, current.as_ref()) {
                    out.push(m.clone());
                }
            }
            Msg::ReplaceRules { chain, rules } => {
                read_state = true;
                let current = match tables.state(sock, batch, chain)? {
                    Some(state) => state.rule_udata(chain).map(<[_]>::to_vec),
                    None => sock.rule_udata(chain).or_missing()?,
                };
                let digest = digest(rules)?;
                if current.as_deref().is_some_and(|cur| rules_match(cur, digest, rules.len())) {
                    continue;
                }
                // Flush even a chain that looks empty or missing: a concurrent
                // ADD may fill it before this batch is applied. Flushing an
                // empty chain deletes nothing and costs nothing.
                out.push(Msg::FlushChain(chain.clone()));
                for (i, r) in rules.iter().enumerate() {
                    out.push(Msg::Rule { insert: false, rule: r.clone(), tag: Some(tag(digest, i)) });
                }
            }
            Msg::ReplaceElems { set, elems } => {
                let current = sock.list_elements(set).or_missing()?.unwrap_or_default();
                let wanted: Vec<Element> = elems.iter().map(|e| normalize(set, e)).collect();
                let (del, add) = diff(&current, &wanted);
                read_state = true;
                for e in del {
                    out.delete_element(set, e);
                }
                for e in add {
                    out.add_element(set, e.clone());
                }
            }
            m => {
                out.push(m.clone());
            }
        }
    }
    Ok((out, read_state))
}

/// The tables whose chains a plan reads from one [`TableState`] each: those
/// with two or more chains to look at in the batch (a lookup and a listing
/// per chain cost ~50 µs each; portmap's layout has six chains).
#[derive(Default)]
struct Tables {
    read: Vec<(Table, Option<TableState>)>,
}

impl Tables {
    /// The state of `c`'s table, read on first use; `None` when the batch
    /// looks at fewer than two of its chains (then one lookup is cheaper).
    fn state(&mut self, sock: &Socket, batch: &Batch, c: &Chain) -> Result<Option<&TableState>> {
        let t = c.table();
        if let Some(i) = self.read.iter().position(|(have, _)| have == t) {
            return Ok(self.read[i].1.as_ref());
        }
        let looked_at: HashSet<&str> = batch
            .msgs()
            .iter()
            .filter_map(|m| match m {
                Msg::Chain(Op::Add, c) | Msg::ReplaceRules { chain: c, .. } if c.table() == t => Some(c.name()),
                _ => None,
            })
            .collect();
        let state = if looked_at.len() >= 2 { Some(sock.table_state(t)?) } else { None };
        self.read.push((t.clone(), state));
        Ok(self.read.last().and_then(|(_, s)| s.as_ref()))
    }
}

/// Whether an "add" of `want` would change nothing: the chain exists, with
/// the same hook, priority and type, and the policy asked for (if any).
fn chain_is_current(want: &Chain, have: Option<&ChainInfo>) -> bool {
    let Some(have) = have else { return false };
    let Some(base) = want.base() else { return have.hooknum.is_none() };
    let policy = base.policy.map(|p| match p {
        Policy::Accept => libc::NF_ACCEPT as u32,
        Policy::Drop => libc::NF_DROP as u32,
    });
    have.hooknum == Some(base.hook.raw(want.table().family()))
        && have.prio == Some(base.priority)
        && have.kind.as_deref() == Some(base.kind.name())
        && (policy.is_none() || have.policy == policy)
        && (base.device.is_none() || have.device == base.device)
}

/// A digest of the rules as they are sent (expressions and comments), so
/// any change to what a plugin writes changes it. FNV-1a: this detects
/// drift, it is not a security boundary.
fn digest(rules: &[Rule]) -> Result<u64> {
    let mut w = MsgWriter::new();
    for r in rules {
        w.rule(Header { kind: libc::NFT_MSG_NEWRULE as u16, family: 0, flags: 0, seq: 0 }, r, None)?;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in w.finish().iter().chain(&(rules.len() as u64).to_le_bytes()) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok(h)
}

/// The userdata record marking rule `i` of a rule list with `digest`.
fn tag(digest: u64, i: usize) -> Vec<u8> {
    let mut v = digest.to_le_bytes().to_vec();
    v.extend_from_slice(&(i as u32).to_le_bytes());
    udata::encode_record(udata::DIGEST, &v)
}

/// Whether the chain's rules (their userdata, in order) are exactly the
/// `n` rules of the list with `digest`.
fn rules_match(current: &[Option<Vec<u8>>], digest: u64, n: usize) -> bool {
    current.len() == n
        && current.iter().enumerate().all(|(i, ud)| {
            let want = tag(digest, i);
            ud.as_deref().and_then(|b| udata::find_record(b, udata::DIGEST)) == Some(&want[2..])
        })
}

/// The form `Socket::list_elements` returns: single points of an interval
/// set as one-address ranges.
fn normalize(set: &Set, e: &Element) -> Element {
    let mut e = e.clone();
    if set.is_interval() && e.key_end.is_none() {
        e.key_end = Some(e.key.clone());
    }
    e
}

/// What to delete from `current` and add from `wanted` to turn one into
/// the other (an element whose value or comment changed is both).
fn diff<'a>(current: &'a [Element], wanted: &'a [Element]) -> (Vec<&'a Element>, Vec<&'a Element>) {
    let cur: HashSet<&Element> = current.iter().collect();
    let want: HashSet<&Element> = wanted.iter().collect();
    let del = current.iter().filter(|e| !want.contains(e)).collect();
    let mut seen = HashSet::new();
    let add = wanted.iter().filter(|e| !cur.contains(e) && seen.insert(*e)).collect();
    (del, add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::{priority, ChainType, DataType, Family, Hook, Table, Value};

    fn table() -> Table {
        Table::new(Family::Inet, "t").unwrap()
    }

    #[test]
    fn chains_compare_hook_priority_type_and_policy() {
        let c = table().base_chain("post", Hook::Postrouting, ChainType::Nat, priority::SRCNAT).unwrap();
        let have = ChainInfo {
            hooknum: Some(4),
            prio: Some(100),
            kind: Some("nat".into()),
            policy: Some(1),
            ..Default::default()
        };
        assert!(chain_is_current(&c, Some(&have)));
        assert!(!chain_is_current(&c, None));
        assert!(!chain_is_current(&c.clone().with_policy(Policy::Drop), Some(&have)));
        assert!(!chain_is_current(&c, Some(&ChainInfo { prio: Some(0), ..have.clone() })));
        let regular = table().chain("r").unwrap();
        assert!(chain_is_current(&regular, Some(&ChainInfo::default())));
        assert!(!chain_is_current(&regular, Some(&have)));
    }

    #[test]
    fn digests_follow_content_and_order() {
        let c = table().chain("c").unwrap();
        let a = Rule::new(&c).counter().accept();
        let b = Rule::new(&c).masquerade();
        let d1 = digest(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(d1, digest(&[a.clone(), b.clone()]).unwrap());
        assert_ne!(d1, digest(&[b.clone(), a.clone()]).unwrap());
        assert_ne!(d1, digest(&[a.clone(), b.clone().comment("x")]).unwrap());
        let tags: Vec<Option<Vec<u8>>> = (0..2).map(|i| Some(tag(d1, i))).collect();
        assert!(rules_match(&tags, d1, 2));
        assert!(!rules_match(&tags[..1], d1, 2));
        assert!(!rules_match(&[None, None], d1, 2));
    }

    #[test]
    fn element_diff() {
        let s = table().set("s", &[DataType::Ipv4Addr]).unwrap().interval().unwrap();
        let one = |last: u8, c: &str| normalize(&s, &Element::new([Value::Ipv4([10, 0, 0, last].into())]).comment(c));
        let current = vec![one(1, "a"), one(2, "b")];
        let wanted = vec![one(2, "b"), one(3, "c"), one(1, "changed")];
        let (del, add) = diff(&current, &wanted);
        assert_eq!(del, [&one(1, "a")]);
        assert_eq!(add, [&one(3, "c"), &one(1, "changed")]);
        assert_eq!(one(1, "a").key_end, Some(one(1, "a").key));
    }
}
