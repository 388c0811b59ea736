//! DEL and GC: remove elements by their owner comment, so neither needs
//! the mappings, the container's addresses or its namespace. Everything
//! found goes in one transaction; nothing found is success.

use crate::nft_maps::{owned_by_network, Layout};
use cni::{Context, Error};
use netcore::naming::attachment_key;
use netcore::nft::{Batch, Socket};
use std::collections::{BTreeSet, HashSet};

/// Runs DEL: this attachment's mappings (every protocol, every map) and
/// its conditions chain. The config's mappings are not needed: a runtime
/// that does not resend them still gets a clean host.
pub fn del(ctx: &Context) -> Result<(), Error> {
    let owner = attachment_key(&ctx.conf.name, &ctx.container_id, &ctx.ifname);
    remove(&|o| o == owner, Some(&owner)).map(drop)
}

/// Runs GC: removes the elements of this network whose owner is not a
/// valid attachment. A missing list removes nothing.
pub fn gc(ctx: &Context) -> Result<(), Error> {
    let Some(valid) = ctx.valid_attachments()? else {
        return Ok(());
    };
    let net = &ctx.conf.name;
    let keep: HashSet<String> = valid.iter().map(|a| attachment_key(net, &a.container_id, &a.ifname)).collect();
    let n = remove(&|o| owned_by_network(o, net) && !keep.contains(o), None)?;
    if n > 0 {
        log::info!("portmap GC: removed {n} elements of network {net}");
    }
    Ok(())
}

/// Deletes every element whose owner `pick` selects, and those owners'
/// conditions chains (and `owner`'s, even without elements). Returns the
/// number of elements removed.
fn remove(pick: &dyn Fn(&str) -> bool, owner: Option<&str>) -> Result<usize, Error> {
    let layout = Layout::new()?;
    let sock = Socket::open()?;
    if !sock.has_table(&layout.table)? {
        return Ok(0);
    }
    let mut b = Batch::new();
    let mut owners: BTreeSet<String> = owner.map(String::from).into_iter().collect();
    let mut n = 0;
    for set in layout.sets() {
        let elems = match sock.list_elements(set) {
            Ok(v) => v,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        for e in elems {
            if let Some(o) = e.comment.as_deref().filter(|o| pick(o)) {
                owners.insert(o.to_string());
                b.destroy_element(set, &e);
                n += 1;
            }
        }
    }
    // The conditions chains go after the vmap elements that jump to them.
    for o in &owners {
        let chain = layout.owner_chain(o)?;
        if sock.has_chain(&chain)? {
            b.delete_chain(&chain);
        }
    }
    sock.commit(&b)?;
    Ok(n)
}
