//! DEL: release the IP first, always (also when the namespace is gone), then
//! remove the link. Reads nothing but `ipam` from the config and never looks
//! at the master, so it works after the master is gone (plugins#953).

use cni::{Command, Context, Error};
use kernel::netlink::Handle;
use netcore::{ipam, sandbox};

/// Runs DEL; idempotent.
pub fn del(ctx: &Context) -> Result<(), Error> {
    if let Some(t) = ipam::configured(ctx)? {
        ipam::forward(ctx, &t, Command::Del)?;
    }
    let Some(ns) = sandbox::open_for_del(ctx.netns.as_deref())? else {
        return Ok(());
    };
    let h = Handle::in_netns(&ns)?;
    match h.link_by_name(&ctx.ifname)? {
        Some(l) if l.is_kind("macvlan") => match h.delete_link(l.index) {
            // Gone meanwhile (e.g. with its master): nothing left to do.
            Err(e) if !e.is_not_found() => Err(e.into()),
            _ => Ok(()),
        },
        Some(l) => {
            // Not ours: another plugin's interface has this name now.
            log::warn!("DEL: {:?} in {} is a {:?}, not a macvlan; left alone", l.name, ns.path().display(), l.kind);
            Ok(())
        }
        None => Ok(()),
    }
}
