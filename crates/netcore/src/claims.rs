//! Elements that two attachments may need at once. Two networks may use
//! one subnet, so two containers (on two bridges) may have one address; the
//! masquerade map and the firewall's admission sets are keyed by address,
//! and an nftables element has one key and one comment. Owned by whoever
//! came first, the second ADD failed (a map's value differs: EEXIST) or
//! silently relied on the first owner's element, which the first DEL then
//! took away.
//!
//! So each owner also records a claim, in a companion set that no rule
//! reads: `<set>-claims`, keyed by the element's key and a 64-bit hash of
//! the owner key (two `mark` fields), with the element's value and the
//! owner as comment. The element itself carries one claimant as owner. A
//! DEL or GC removes its claims and the elements its owners hold, and hands
//! an element still claimed by someone else over to that claimant (its
//! value and owner) in the same transaction, so traffic never sees a gap.
//! Elements written before claims existed have none: they are removed with
//! their owner, as before.

use crate::naming::fnv1a64;
use crate::owner::{self, OwnerKey};
use kernel::nft::{Batch, DataType, Element, Set, SetData, Socket, Table, Value};
use kernel::Result;
use std::collections::HashMap;

/// A set whose elements several owners may claim, with its claims set.
#[derive(Debug, Clone)]
pub struct Shared {
    set: Set,
    claims: Set,
}

impl Shared {
    /// `set` and its companion `<name>-claims` in the same table.
    pub fn new(table: &Table, set: &Set) -> Result<Shared> {
        let mut key = set.key().to_vec();
        key.extend([DataType::Mark, DataType::Mark]);
        let name = format!("{}-claims", set.name());
        let claims = match set.data() {
            None => table.set(name, &key)?,
            Some(SetData::Verdict) => table.vmap(name, &key)?,
            Some(SetData::Values(v)) => table.map(name, &key, v)?,
        };
        Ok(Shared { set: set.clone(), claims })
    }

    /// Adds both sets to `batch` (idempotent).
    pub fn declare(&self, batch: &mut Batch) {
        batch.add_set(&self.set).add_set(&self.claims);
    }
}

fn tag(owner: &str) -> [Value; 2] {
    let h = fnv1a64(&["claim", owner]);
    [Value::Mark((h >> 32) as u32), Value::Mark(h as u32)]
}

fn claim_of(e: &Element, owner: &str) -> Element {
    let mut c = Element::new(e.key.iter().cloned().chain(tag(owner)));
    c.data = e.data.clone();
    c.comment(owner)
}

/// The element a claim stands for: its key without the owner tag.
fn element_of(claim: &Element) -> Element {
    let n = claim.key.len().saturating_sub(2);
    let mut e = Element::new(claim.key[..n].iter().cloned());
    e.data = claim.data.clone();
    e.comment = claim.comment.clone();
    e
}

/// Adds to `batch` `owner`'s claim on `e`, and `e` itself owned by `owner`
/// unless it is there already. A map element is looked up first (one
/// request), since adding it with another value fails; a set element
/// without value is simply added (an existing one is kept as it is).
pub fn add(batch: &mut Batch, s: &Shared, e: Element, owner: &OwnerKey) -> Result<()> {
    let key = owner.key();
    batch.add_element(&s.claims, claim_of(&e, &key));
    let present = s.set.data().is_some() && Socket::open()?.get_element(&s.set, &e)?.is_some();
    if !present {
        batch.add_element(&s.set, e.comment(key));
    }
    Ok(())
}

fn list(sock: &Socket, set: &Set) -> Result<Vec<Element>> {
    match sock.list_elements(set) {
        Ok(v) => Ok(v),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Adds to `batch` the removal of the claims of the owners `pick` selects
/// and of the elements they hold; an element another owner still claims
/// is handed over to it instead. Returns the owners whose state went.
pub fn release_into(
    sock: &Socket,
    batch: &mut Batch,
    shared: &[Shared],
    pick: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>> {
    let mut gone = Vec::new();
    let Some(first) = shared.first() else { return Ok(gone) };
    if !sock.has_table(first.set.table())? {
        return Ok(gone);
    }
    for s in shared {
        let mut heirs: HashMap<Vec<Value>, Element> = HashMap::new();
        for c in list(sock, &s.claims)? {
            let Some(o) = c.comment.as_deref() else { continue };
            if pick(o) {
                gone.push(o.to_string());
                batch.destroy_element(&s.claims, &c);
            } else {
                let e = element_of(&c);
                heirs.entry(e.key.clone()).or_insert(e);
            }
        }
        for (_, e) in owner::list_owned(sock, std::slice::from_ref(&s.set), pick)? {
            gone.extend(e.comment.clone());
            batch.destroy_element(&s.set, &e);
            if let Some(heir) = heirs.remove(&e.key) {
                batch.add_element(&s.set, heir);
            }
        }
    }
    gone.sort();
    gone.dedup();
    Ok(gone)
}

/// Whether `owner` holds or claims an element under `key` in `s`, and the
/// element is there (CHECK).
pub fn has(sock: &Socket, s: &Shared, key: &[Value], owner: &OwnerKey) -> Result<bool> {
    let probe = Element::new(key.iter().cloned());
    let Some(have) = lookup(sock, &s.set, &probe)? else { return Ok(false) };
    if have.comment.as_deref().is_some_and(|c| owner.matches(c)) {
        return Ok(true);
    }
    let claim = Element::new(key.iter().cloned().chain(tag(&owner.key())));
    Ok(lookup(sock, &s.claims, &claim)?.is_some())
}

fn lookup(sock: &Socket, set: &Set, e: &Element) -> Result<Option<Element>> {
    match sock.get_element(set, e) {
        Ok(v) => Ok(v),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel::nft::Family;

    #[test]
    fn claims_extend_the_key_and_keep_the_value() {
        let t = Table::new(Family::Inet, "t").unwrap();
        let m = t.vmap("m4", &[DataType::Ipv4Addr]).unwrap();
        let s = Shared::new(&t, &m).unwrap();
        assert_eq!(s.claims.name(), "m4-claims");
        assert_eq!(s.claims.key(), &[DataType::Ipv4Addr, DataType::Mark, DataType::Mark]);
        assert_eq!(s.claims.data(), Some(&SetData::Verdict));
        let e = Element::new([Value::Ipv4("10.0.0.2".parse().unwrap())]);
        let c = claim_of(&e, "n/c/eth0");
        assert_eq!(c.key.len(), 3);
        assert_ne!(c.key, claim_of(&e, "n2/c/eth0").key);
        assert_eq!(element_of(&c).key, e.key);
        assert_eq!(element_of(&c).comment.as_deref(), Some("n/c/eth0"));
    }
}
