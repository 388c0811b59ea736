//! DEL: put back what ADD replaced, from the state file, then remove the
//! file. Idempotent: no file, no namespace or no interface means nothing
//! to restore. A value the kernel refuses to take back is logged and DEL
//! still succeeds, as the reference, so a container can always be removed.

use crate::config;
use crate::link::{self, Target};
use crate::state::Store;
use cni::{Context, Error};
use kernel::netlink::Handle;
use netcore::sandbox;

/// Runs DEL.
pub fn del(ctx: &Context) -> Result<(), Error> {
    let store = Store::new(&config::data_dir(ctx)?, &ctx.conf.name)?;
    let saved = match store.load(&ctx.container_id, &ctx.ifname) {
        Ok(Some(s)) => s,
        Ok(None) => return Ok(()),
        Err(e) if e.code == cni::error::code::DECODE => {
            log::warn!("{e}; removing it");
            return store.remove(&ctx.container_id, &ctx.ifname);
        }
        Err(e) => return Err(e),
    };
    if let Some(ns) = sandbox::open_for_del(ctx.netns.as_deref())? {
        let handle = Handle::in_netns(&ns)?;
        let mut saved = saved;
        let index = match handle.link_by_name(&ctx.ifname)? {
            Some(l) => l.index,
            None => {
                // The interface is gone: only namespace-wide sysctls remain.
                saved = crate::state::Saved { sysctl: saved.sysctl, ..Default::default() };
                0
            }
        };
        let target = Target { ns: &ns, handle: &handle, index, ifname: &ctx.ifname };
        for e in link::restore(&target, &saved) {
            log::warn!("DEL: could not restore: {e}");
        }
    }
    store.remove(&ctx.container_id, &ctx.ifname)
}
