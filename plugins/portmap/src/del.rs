//! DEL and GC: remove elements by their owner comment, so neither needs
//! the container's namespace. Everything found goes in one transaction;
//! nothing found is success.
//!
//! DEL usually gets the mappings and prevResult back (libcni resends the
//! cached ones), so it looks up exactly the keys ADD could have made, one
//! lookup each, and deletes those its owner holds: the cost does not grow
//! with the number of containers. Without them it lists the maps.
//!
//! A network's masquerade chain goes with the last element that jumps to
//! it (the kernel counts the references), so chains do not pile up.

use crate::add::container_addrs;
use crate::config;
use crate::nft_maps::{self, Layout};
use cni::{Context, Error};
use kernel::nft::{Batch, Chain, Element, Set, Socket};
use netcore::owner::{OwnerKey, Stale};
use std::collections::BTreeSet;

/// Runs DEL: this attachment's mappings (every protocol, every map) and
/// its conditions chain. A DEL without mappings still cleans up.
pub fn del(ctx: &Context) -> Result<(), Error> {
    let owner = OwnerKey::of(ctx);
    // The previous release's key too, with its own conditions chain.
    let keys: Vec<String> = std::iter::once(owner.key()).chain(owner.legacy()).collect();
    let layout = Layout::new()?;
    let sock = Socket::open()?;
    if !sock.has_table(&layout.table)? {
        return Ok(());
    }
    let done = remove_owned(ctx, &layout, &sock, &owner, &keys);
    // Everything is deleted once the commits are acknowledged; the close
    // would only wait for the kernel to free the memory (an RCU grace
    // period, 5–20 ms here), so the kernel closes it in the background.
    sock.close_deferred();
    done
}

/// DEL's work on an open socket: looks up the keys ADD could have made
/// (or lists the maps) and deletes those `owner` holds, with its chains.
fn remove_owned(ctx: &Context, layout: &Layout, sock: &Socket, owner: &OwnerKey, keys: &[String]) -> Result<(), Error> {
    let Some(candidates) = candidates(ctx, layout, &owner.key()) else {
        return remove_listed(layout, sock, &|o| owner.matches(o), keys).map(drop);
    };
    let mut b = Batch::new();
    let mut network_chains = Vec::new();
    for (set, want) in &candidates {
        if let Some(have) = sock.get_element(set, want)? {
            if have.comment.as_deref().is_some_and(|c| owner.matches(c)) && have.key_end == want.key_end {
                network_chains.extend(layout.network_chain_of(set, &have));
                b.destroy_element(set, &have);
            }
        }
    }
    delete_owner_chains(layout, sock, &mut b, keys.iter().map(String::as_str))?;
    sock.commit(&b)?;
    delete_unused(sock, network_chains);
    Ok(())
}

/// Deletes the network masquerade chains in `chains` that nothing points
/// at any more, each in its own transaction after the elements are gone.
/// A concurrent ADD that points at one meanwhile makes the kernel refuse
/// (EBUSY), and a concurrent DEL may have deleted it (ENOENT): either is
/// fine, and neither fails the DEL.
fn delete_unused(sock: &Socket, chains: impl IntoIterator<Item = Chain>) {
    let mut seen = BTreeSet::new();
    for c in chains {
        if !seen.insert(c.name().to_string()) {
            continue;
        }
        match sock.chain_references(&c) {
            Ok(Some(0)) => {
                let mut b = Batch::new();
                b.delete_chain(&c);
                if let Err(e) = sock.commit(&b) {
                    log::debug!("portmap: {} is still in use or gone: {e}", c.name());
                }
            }
            Ok(_) => {}
            Err(e) => log::warn!("portmap: looking up {}: {e}", c.name()),
        }
    }
}

/// The keys to look up, when the request carries what ADD had; `None`
/// (list instead) when anything is missing or unreadable, since DEL must
/// not fail on a config ADD would have refused.
fn candidates(ctx: &Context, layout: &Layout, owner: &str) -> Option<Vec<(Set, Element)>> {
    let prev = ctx.prev_result().ok().flatten()?;
    let mappings = config::mappings(ctx).ok().filter(|m| !m.is_empty())?;
    let addrs = container_addrs(&prev, &ctx.ifname);
    if addrs.is_empty() {
        return None;
    }
    nft_maps::candidates(layout, &mappings, &addrs, owner).ok()
}

/// Runs GC: removes the elements of this network whose owner is not a
/// valid attachment. A missing list removes nothing.
pub fn gc(ctx: &Context) -> Result<(), Error> {
    let Some(valid) = ctx.valid_attachments()? else {
        return Ok(());
    };
    let net = &ctx.conf.name;
    let stale = Stale::new(net, &valid);
    let layout = Layout::new()?;
    let sock = Socket::open()?;
    if !sock.has_table(&layout.table)? {
        return Ok(());
    }
    let removed = remove_listed(&layout, &sock, &|o| stale.is_stale(o), &[]);
    sock.close_deferred();
    let n = removed?;
    if n > 0 {
        log::info!("portmap GC: removed {n} elements of network {net}");
    }
    Ok(())
}

/// Deletes the conditions chains of `owners` that exist; they go after
/// the vmap elements that jump to them in the same batch.
fn delete_owner_chains<'a>(
    layout: &Layout,
    sock: &Socket,
    b: &mut Batch,
    owners: impl IntoIterator<Item = &'a str>,
) -> Result<(), Error> {
    for o in owners {
        let chain = layout.owner_chain(o)?;
        if sock.has_chain(&chain)? {
            b.delete_chain(&chain);
        }
    }
    Ok(())
}

/// Lists every map and deletes the elements whose owner `pick` selects,
/// and those owners' conditions chains (and `owners`', even without
/// elements). Returns the number of elements removed.
fn remove_listed(
    layout: &Layout,
    sock: &Socket,
    pick: &dyn Fn(&str) -> bool,
    owners: &[String],
) -> Result<usize, Error> {
    let mut b = Batch::new();
    let mut chains: BTreeSet<String> = owners.iter().cloned().collect();
    let sets: Vec<Set> = layout.sets().into_iter().cloned().collect();
    let gone = netcore::owner::list_owned(sock, &sets, pick)?;
    let mut network_chains = Vec::new();
    for (set, e) in &gone {
        chains.extend(e.comment.clone());
        network_chains.extend(layout.network_chain_of(set, e));
        b.destroy_element(set, e);
    }
    delete_owner_chains(layout, sock, &mut b, chains.iter().map(String::as_str))?;
    sock.commit(&b)?;
    delete_unused(sock, network_chains);
    Ok(gone.len())
}
