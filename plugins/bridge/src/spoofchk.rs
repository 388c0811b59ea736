//! MAC spoof check (`"macspoofchk": true`): a container may only send
//! frames with its own source MAC into the bridge, so it can't pose as
//! another container or poison the bridge's FDB and its neighbours' ARP
//! caches.
//!
//! Table `bridge cnirs-spoofchk`, one base chain on the bridge prerouting
//! hook (priority -300, before any bridge filter or NAT), two rules:
//!
//! ```text
//! iifname . ether saddr @allowed accept
//! iifname @ports counter drop
//! ```
//!
//! `ports` holds the protected host veths, `allowed` the (host veth,
//! container MAC) pairs. Both lookups are hash lookups, so the cost is the
//! same for one container or ten thousand, and an ADD or DEL only adds or
//! removes two elements, each commented with the attachment key so DEL
//! (also without the container's namespace), GC and CHECK find them by
//! owner. Ports that are not in `ports` (other networks, the bridge's own
//! traffic) pass untouched.

use kernel::netlink::Mac;
use kernel::nft::{
    priority, Batch, ChainType, DataType, Element, Family, Field, Hook, Rule, Set, Socket, Table, Value,
};
use kernel::Result;
use netcore::owner::{self, OwnerKey, Stale};
use std::collections::HashSet;

/// Our table; never a reference plugin's name.
pub const TABLE: &str = "cnirs-spoofchk";
/// The set of protected host ports.
pub const PORTS: &str = "ports";
/// The set of allowed (host port . source MAC) pairs.
const ALLOWED: &str = "allowed";
/// -300: ahead of the bridge `filter` priority (-200), so a spoofed frame
/// is dropped before any other bridge chain (or FDB learning) sees it.
const PRIORITY: i32 = priority::BRIDGE_DSTNAT;

fn table() -> Result<Table> {
    Table::new(Family::Bridge, TABLE)
}

fn sets(t: &Table) -> Result<(Set, Set)> {
    Ok((t.set(PORTS, &[DataType::Ifname])?, t.set(ALLOWED, &[DataType::Ifname, DataType::EtherAddr])?))
}

fn port_elem(port: &str) -> Element {
    Element::new([Value::Ifname(port.to_string())])
}

fn allowed_elem(port: &str, mac: Mac) -> Element {
    Element::new([Value::Ifname(port.to_string()), Value::Ether(mac)])
}

/// Adds to `batch` the table, chain, sets and rules (made to match, so
/// every ADD may repeat it and concurrent ADDs converge), and the two elements
/// that protect host port `port` of the container with MAC `mac`.
pub fn add(batch: &mut Batch, owner: &OwnerKey, port: &str, mac: Mac) -> Result<()> {
    let t = table()?;
    let chain = t.base_chain("prerouting", Hook::Prerouting, ChainType::Filter, PRIORITY)?;
    let (ports, allowed) = sets(&t)?;
    batch.add_table(&t).add_chain(&chain).add_set(&ports).add_set(&allowed);
    // Only written when they differ from the kernel's (no flush on every
    // ADD: deleting rules costs an RCU grace period when the socket closes).
    batch.replace_rules(
        &chain,
        [
            Rule::new(&chain).in_set(&[Field::Iifname, Field::EtherSaddr], &allowed).accept(),
            Rule::new(&chain).in_set(&[Field::Iifname], &ports).counter().drop(),
        ],
    );
    let key = owner.key();
    batch.add_element(&ports, port_elem(port).comment(key.as_str()));
    batch.add_element(&allowed, allowed_elem(port, mac).comment(key));
    Ok(())
}

fn all_sets() -> Result<Vec<Set>> {
    let (ports, allowed) = sets(&table()?)?;
    Ok(vec![ports, allowed])
}

/// Adds to `batch` the removal of the elements of attachment `owner`; none
/// is success, so DEL is idempotent and needs neither the namespace nor
/// the MAC.
pub fn del_into(sock: &Socket, batch: &mut Batch, owner: &OwnerKey) -> Result<usize> {
    owner::remove_owned_into(sock, batch, &all_sets()?, &|c| owner.matches(c))
}

/// GC: removes the elements that `stale` selects; returns their owners.
pub fn gc(stale: &Stale) -> Result<Vec<String>> {
    let sock = Socket::open()?;
    let gone = owner::list_owned(&sock, &all_sets()?, &|c| stale.is_stale(c))?;
    let mut batch = Batch::new();
    for (set, e) in &gone {
        batch.destroy_element(set, e);
    }
    if !batch.is_empty() {
        sock.commit(&batch)?;
    }
    Ok(gone.into_iter().filter_map(|(_, e)| e.comment).collect())
}

/// CHECK: what is missing for `owner` (port `port`, MAC `mac`), in words;
/// `None` when the port is protected and the MAC allowed.
pub fn missing(owner: &OwnerKey, port: &str, mac: Mac) -> Result<Option<String>> {
    let sock = Socket::open()?;
    let t = table()?;
    let chain = t.base_chain("prerouting", Hook::Prerouting, ChainType::Filter, PRIORITY)?;
    if !sock.has_table(&t)? || !sock.has_chain(&chain)? {
        return Ok(Some(format!("table bridge {TABLE} or its prerouting chain is missing")));
    }
    if sock.list_rules(&chain)?.len() < 2 {
        return Ok(Some(format!("the rules of chain bridge {TABLE} prerouting are missing")));
    }
    let have: HashSet<Vec<Value>> =
        owner::list_owned(&sock, &all_sets()?, &|c| owner.matches(c))?.into_iter().map(|(_, e)| e.key).collect();
    if !have.contains(&port_elem(port).key) {
        return Ok(Some(format!("host port {port:?} is not in set bridge {TABLE} {PORTS}")));
    }
    let pair = allowed_elem(port, mac);
    if !have.contains(&pair.key) {
        return Ok(Some(format!("{pair} is not in set bridge {TABLE} {ALLOWED}")));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_one_batch_with_two_owned_elements() {
        let mut b = Batch::new();
        add(&mut b, &OwnerKey::new("net", "c1", "eth0"), "veth0123456789a", [2, 0, 0, 0, 0, 1]).unwrap();
        // table, chain, 2 sets, the chain's rules, 2 elements
        assert_eq!(b.len(), 7);
        assert_eq!(allowed_elem("veth0", [2, 0, 0, 0, 0, 1]).to_string(), "\"veth0\" . 02:00:00:00:00:01");
    }

    #[test]
    fn bad_port_names_are_refused() {
        let mut b = Batch::new();
        add(&mut b, &OwnerKey::new("net", "c1", "eth0"), "a/b", [2, 0, 0, 0, 0, 1]).unwrap();
        assert!(b.commit().is_err(), "an invalid ifname is kept as the batch's error");
    }
}
