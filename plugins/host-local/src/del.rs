//! DEL: releases every lease of (container id, ifname), an emptied one its
//! index entry lists included; succeeds when nothing is held. Legacy id-only leases are released when the pair holds
//! nothing, as the reference does.

use crate::config::{Config, Mode};
use crate::store::{Lease, Open, Owner, Store};
use cni::{Context, Error};

/// Runs DEL. It needs only the network name and `dataDir`, so a config
/// whose ranges no longer validate can still release its addresses.
pub fn del(ctx: &Context) -> Result<(), Error> {
    let conf = Config::load(ctx, Mode::Release)?;
    let Some(store) = Store::open(&conf.data_dir, &conf.network, Open::Existing)? else {
        return Ok(());
    };
    store.ensure_index()?;
    release(&store, &ctx.container_id, &ctx.ifname).map(|_| ())
}

/// Removes the leases of one index entry that `owns` accepts; the entry
/// itself goes only when every such lease is gone. Returns how many were
/// removed; a failed removal is reported after trying the others.
fn release_entry(
    store: &Store,
    cid: &str,
    ifname: Option<&str>,
    owns: &dyn Fn(&Owner) -> bool,
) -> Result<usize, Error> {
    let mut removed = 0;
    let mut first_error = None;
    for ip in store.candidates(cid, ifname)? {
        // A corrupt lease names nobody: it is not released (and is logged).
        // An emptied one is the attachment's whose entry lists it.
        let outcome = store.lease(ip).and_then(|lease| match lease {
            Some(Lease::Held(o)) if owns(&o) => store.remove_lease(ip).map(|()| 1),
            Some(Lease::Empty) => store.remove_lease(ip).map(|()| 1),
            Some(Lease::Corrupt(why)) => {
                log::warn!("{}", store.corrupt_error(ip, &why));
                Ok(0)
            }
            _ => Ok(0),
        });
        match outcome {
            Ok(n) => removed += n,
            Err(e) => {
                log::warn!("{e}");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => store.forget(cid, ifname).map(|()| removed),
    }
}

/// Releases what (container id, ifname) holds, falling back to the
/// container's legacy leases when the pair holds nothing.
pub fn release(store: &Store, cid: &str, ifname: &str) -> Result<usize, Error> {
    let removed = release_entry(store, cid, Some(ifname), &|o| o.is(cid, ifname))?;
    if removed > 0 {
        return Ok(removed);
    }
    release_entry(store, cid, None, &|o| o.is_legacy_of(cid))
}
