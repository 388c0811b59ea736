//! GC: state files of attachments the runtime no longer knows are
//! removed (their namespaces are gone, so there is nothing to restore).

use crate::config;
use crate::state::Store;
use cni::{Context, Error};
use std::collections::HashSet;

/// Runs GC; a config without a valid-attachments list removes nothing.
pub fn gc(ctx: &Context) -> Result<(), Error> {
    let Some(valid) = ctx.valid_attachments()? else {
        return Ok(());
    };
    let live: HashSet<(String, String)> = valid.into_iter().map(|a| (a.container_id, a.ifname)).collect();
    let store = Store::new(&config::data_dir(ctx)?, &ctx.conf.name)?;
    store.sweep_stale_temps();
    let mut first = None;
    for (cid, ifname) in store.attachments()? {
        if !live.contains(&(cid.clone(), ifname.clone())) {
            if let Err(e) = store.remove(&cid, &ifname) {
                log::warn!("GC: {e}");
                first.get_or_insert(e);
            }
        }
    }
    first.map_or(Ok(()), Err)
}
