//! The owner of what an attachment leaves in shared kernel state (nftables
//! element comments, the host veth's alias): built, parsed back and matched
//! here only, so "does this belong to network N" has one answer for every
//! plugin, and DEL and GC never take another network's state for their own.
//!
//! The key is `network/container id/ifname` when that fits 120 bytes (an
//! nftables comment holds 127): readable in `nft list`, and parsed back
//! exactly, since neither a network name nor a container id contains '/'.
//! Longer, it is `{network:.40}/#{H(network)}.{H(network, id, ifname)}`
//! (75 bytes): the hash of the whole network name is its own field, so two
//! networks whose names share their first 40 bytes never match each other's
//! keys (H is 64-bit FNV-1a; network names are the operator's own).
//!
//! The previous release wrote long keys as `{network:.40}/#{H(network, id,
//! ifname)}`. Those are still read: DEL matches its own exactly (the hash
//! covers the whole name); GC claims one only when its network prefix is
//! shorter than 40 bytes (then it is the whole name). A 40-byte prefix may
//! be any network that starts with it, so GC leaves those alone
//! ([`Belongs::Unsure`]): a leak it logs, never another network's loss.

use crate::naming::{fnv1a64, host_veth_name, veth_name_of_hash};
use kernel::nft::{Batch, Element, Set, Socket};
use kernel::Result;
use std::collections::HashSet;

/// Longest key written readable; longer ones are hashed.
const READABLE_MAX: usize = 120;
/// How much of the network name a hashed key keeps, for people reading it.
const NET_PREFIX: usize = 40;

/// The identity of one attachment, (network, container id, ifname), the
/// unit DEL removes and GC keeps or drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerKey {
    network: String,
    container_id: String,
    ifname: String,
}

/// Whether a key belongs to a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Belongs {
    /// It is this network's, certainly.
    Yes,
    /// It is another network's, or not a key at all.
    No,
    /// A previous release's hashed key whose 40-byte network prefix this
    /// network shares: it may be this network's or another's.
    Unsure,
}

fn net_hash(network: &str) -> u64 {
    fnv1a64(&["network", network])
}

fn prefix(network: &str) -> &str {
    &network[..network.len().min(NET_PREFIX)]
}

impl OwnerKey {
    /// The key of one attachment.
    pub fn new(network: &str, container_id: &str, ifname: &str) -> OwnerKey {
        OwnerKey { network: network.into(), container_id: container_id.into(), ifname: ifname.into() }
    }

    /// The key of the attachment a CNI call is about.
    pub fn of(ctx: &cni::Context) -> OwnerKey {
        OwnerKey::new(&ctx.conf.name, &ctx.container_id, &ctx.ifname)
    }

    /// The key of one of a GC's valid attachments.
    pub fn valid(network: &str, a: &cni::config::Attachment) -> OwnerKey {
        OwnerKey::new(network, &a.container_id, &a.ifname)
    }

    /// The interface name in the container.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The network.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// The container id.
    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    /// The string written as the owner (element comment, veth alias).
    pub fn key(&self) -> String {
        let key = self.readable();
        if key.len() <= READABLE_MAX {
            key
        } else {
            format!("{}/#{:016x}.{:016x}", prefix(&self.network), net_hash(&self.network), self.hash())
        }
    }

    /// The key the previous release wrote, where it differs from [`Self::key`].
    pub fn legacy(&self) -> Option<String> {
        (self.readable().len() > READABLE_MAX).then(|| format!("{}/#{:016x}", prefix(&self.network), self.hash()))
    }

    fn readable(&self) -> String {
        format!("{}/{}/{}", self.network, self.container_id, self.ifname)
    }

    /// Whether `owner` (as read back) is this attachment's, in the current
    /// or the previous release's form: what DEL and CHECK match.
    pub fn matches(&self, owner: &str) -> bool {
        owner == self.key() || self.legacy().is_some_and(|l| l == owner)
    }

    /// The name of the host end of this attachment's veth.
    pub fn host_veth(&self) -> String {
        host_veth_name(&self.network, &self.container_id, &self.ifname)
    }

    fn hash(&self) -> u64 {
        fnv1a64(&[&self.network, &self.container_id, &self.ifname])
    }

    /// The attachment a readable key names; `None` for a hashed key or
    /// something that is no key.
    pub fn parse(owner: &str) -> Option<OwnerKey> {
        let mut parts = owner.splitn(3, '/');
        let (net, id, ifname) = (parts.next()?, parts.next()?, parts.next()?);
        if !cni::validate::is_valid_id(net) || !cni::validate::is_valid_id(id) || ifname.is_empty() {
            return None;
        }
        Some(OwnerKey::new(net, id, ifname))
    }
}

/// The host veth of the attachment `owner` names, in any key format: a
/// hashed key carries the hash the veth's name is made of. How GC proves
/// that a veth without an alias (made by the previous release) is the one
/// of an owner it found in its network's own state.
pub fn host_veth_of(owner: &str) -> Option<String> {
    if let Some(k) = OwnerKey::parse(owner) {
        return Some(k.host_veth());
    }
    let (_, hashes) = owner.split_once("/#")?;
    let attachment = hashes.rsplit('.').next()?;
    if attachment.len() != 16 {
        return None;
    }
    let h = u64::from_str_radix(attachment, 16).ok()?;
    Some(veth_name_of_hash(h))
}

/// The container an owner names, for messages: its id when the key is
/// readable, the key itself when it was hashed.
pub fn container_of(owner: &str) -> String {
    OwnerKey::parse(owner).map_or_else(|| owner.to_string(), |k| k.container_id)
}

impl std::fmt::Display for OwnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// Whether `owner` (a key read back from the kernel) belongs to `network`.
pub fn belongs(owner: &str, network: &str) -> Belongs {
    if let Some(k) = OwnerKey::parse(owner) {
        return if k.network == network { Belongs::Yes } else { Belongs::No };
    }
    let Some((net, hashes)) = owner.split_once("/#") else { return Belongs::No };
    let hex = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
    match hashes.split_once('.') {
        // Current hashed form: the whole name's hash decides.
        Some((nh, kh)) if hex(nh) && hex(kh) => {
            if net == prefix(network) && u64::from_str_radix(nh, 16).ok() == Some(net_hash(network)) {
                Belongs::Yes
            } else {
                Belongs::No
            }
        }
        // Previous release: only the name's first 40 bytes are known.
        None if hex(hashes) => {
            if net == network && net.len() < NET_PREFIX {
                Belongs::Yes
            } else if net.len() == NET_PREFIX && network.starts_with(net) {
                Belongs::Unsure
            } else {
                Belongs::No
            }
        }
        _ => Belongs::No,
    }
}

/// What a GC of one network may remove: owners that surely belong to the
/// network and are not one of its valid attachments.
#[derive(Debug, Clone)]
pub struct Stale {
    network: String,
    keep: HashSet<String>,
}

impl Stale {
    /// The GC of `network` with `valid` attachments still running.
    pub fn new(network: &str, valid: &[cni::config::Attachment]) -> Stale {
        let mut keep = HashSet::new();
        for a in valid {
            let k = OwnerKey::valid(network, a);
            keep.extend(k.legacy());
            keep.insert(k.key());
        }
        Stale { network: network.into(), keep }
    }

    /// The network being collected.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// Whether the state owned by `owner` is to be removed.
    pub fn is_stale(&self, owner: &str) -> bool {
        if self.keep.contains(owner) {
            return false;
        }
        match belongs(owner, &self.network) {
            Belongs::Yes => true,
            Belongs::No => false,
            Belongs::Unsure => {
                log::warn!(
                    "GC of {:?}: leaving {owner:?}, a previous release's key that may be another network's \
                     (DEL of its attachment removes it)",
                    self.network
                );
                false
            }
        }
    }
}

/// The elements of `sets` whose owner comment `pick` selects; a missing
/// table or set holds none. Every "list what X owns" goes through here.
pub fn list_owned(sock: &Socket, sets: &[Set], pick: &dyn Fn(&str) -> bool) -> Result<Vec<(Set, Element)>> {
    let mut out = Vec::new();
    let Some(first) = sets.first() else { return Ok(out) };
    if !sock.has_table(first.table())? {
        return Ok(out);
    }
    for set in sets {
        let elems = match sock.list_elements(set) {
            Ok(e) => e,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        out.extend(elems.into_iter().filter(|e| e.comment.as_deref().is_some_and(pick)).map(|e| (set.clone(), e)));
    }
    Ok(out)
}

/// Adds to `batch` the removal of the elements of `sets` that `pick`
/// selects; how many.
pub fn remove_owned_into(sock: &Socket, batch: &mut Batch, sets: &[Set], pick: &dyn Fn(&str) -> bool) -> Result<usize> {
    let gone = list_owned(sock, sets, pick)?;
    for (set, e) in &gone {
        batch.destroy_element(set, e);
    }
    Ok(gone.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(id: &str) -> cni::config::Attachment {
        cni::config::Attachment { container_id: id.into(), ifname: "eth0".into() }
    }

    #[test]
    fn short_keys_are_readable_and_unchanged_from_the_previous_release() {
        let k = OwnerKey::new("n", "c", "eth0");
        assert_eq!(k.key(), "n/c/eth0");
        assert_eq!(k.legacy(), None);
        assert_eq!(belongs("n/c/eth0", "n"), Belongs::Yes);
        assert_eq!(belongs("n/c/eth0", "n2"), Belongs::No);
        assert_eq!(belongs("n2/c/eth0", "n"), Belongs::No);
        assert_eq!(OwnerKey::parse("n/c/eth0"), Some(k));
    }

    #[test]
    fn long_names_sharing_a_prefix_never_cross() {
        let common = "a".repeat(45);
        let (one, two) = (format!("{common}-one-xx"), format!("{common}-two-xx"));
        let id = "f".repeat(64);
        let k1 = OwnerKey::new(&one, &id, "eth0").key();
        let k2 = OwnerKey::new(&two, &id, "eth0").key();
        assert!(k1.len() <= 127, "fits an nftables comment");
        assert_ne!(k1, k2);
        assert_eq!(belongs(&k1, &one), Belongs::Yes);
        assert_eq!(belongs(&k1, &two), Belongs::No);
        assert_eq!(belongs(&k2, &one), Belongs::No);
    }

    #[test]
    fn previous_release_keys_are_read() {
        let long_net = "b".repeat(52);
        let k = OwnerKey::new(&long_net, &"1".repeat(64), "eth0");
        let old = k.legacy().unwrap();
        assert_eq!(old, format!("{}/#{:016x}", &long_net[..40], fnv1a64(&[&long_net, &"1".repeat(64), "eth0"])));
        assert!(k.matches(&old) && k.matches(&k.key()));
        assert!(!OwnerKey::new(&long_net, &"2".repeat(64), "eth0").matches(&old));
        // A 40-byte prefix could be any network starting with it.
        assert_eq!(belongs(&old, &long_net), Belongs::Unsure);
        assert_eq!(belongs(&old, &"c".repeat(52)), Belongs::No);
        // A shorter prefix is the whole name.
        let short = OwnerKey::new("net", &"9".repeat(130), "eth0");
        let old = short.legacy().unwrap();
        assert_eq!(belongs(&old, "net"), Belongs::Yes);
        assert_eq!(belongs(&old, "net2"), Belongs::No);
    }

    #[test]
    fn every_key_format_names_its_host_veth() {
        for k in [OwnerKey::new("n", "c", "eth0"), OwnerKey::new(&"l".repeat(60), &"9".repeat(64), "eth1")] {
            assert_eq!(host_veth_of(&k.key()).as_deref(), Some(k.host_veth().as_str()));
            if let Some(old) = k.legacy() {
                assert_eq!(host_veth_of(&old).as_deref(), Some(k.host_veth().as_str()));
            }
        }
        assert_eq!(host_veth_of("junk"), None);
    }

    #[test]
    fn gc_keeps_valid_and_unsure_owners() {
        let net = "d".repeat(52);
        let id = "e".repeat(64);
        let s = Stale::new(&net, &[att(&id)]);
        assert!(!s.is_stale(&OwnerKey::new(&net, &id, "eth0").key()));
        assert!(s.is_stale(&OwnerKey::new(&net, &"0".repeat(64), "eth0").key()));
        assert!(!s.is_stale(&OwnerKey::new(&net, &"0".repeat(64), "eth0").legacy().unwrap()));
        assert!(!s.is_stale(&OwnerKey::new("other", "x", "eth0").key()));
        assert!(!s.is_stale("not a key"));
    }
}
