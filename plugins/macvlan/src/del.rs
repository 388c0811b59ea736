//! DEL: release the IP, always (also when the namespace is gone), and
//! remove the link, both at once when the delegate needs no interface
//! (host-local, static: its process runs while the kernel deletes the
//! link, which waits for RCU grace periods), else the release first. Reads
//! nothing but `ipam` from the config and never looks at the master, so it
//! works after the master is gone (plugins#953).

use cni::{Command, Context, Error};
use kernel::netlink::Handle;
use netcore::{ipam, sandbox};

/// Runs DEL; idempotent. Both halves are tried; the IPAM's error is
/// reported first, then the link's.
pub fn del(ctx: &Context) -> Result<(), Error> {
    let ipam_type = ipam::configured(ctx)?;
    let release = || ipam_type.as_deref().map_or(Ok(()), |t| ipam::forward(ctx, t, Command::Del));
    let (released, link) = if ipam::releases_beside(ipam_type.as_deref()) {
        std::thread::scope(|s| {
            // The delegate is forked by this thread, which lives until it is
            // reaped (its parent-death signal follows the forking thread).
            let released = s.spawn(release);
            let link = remove_link(ctx);
            let released = released
                .join()
                .unwrap_or_else(|_| Err(Error::plugin("releasing the address: the worker thread panicked")));
            (released, link)
        })
    } else {
        // The reference's order: dhcp sends its release from the leased
        // address, so the link must still be there.
        let released = release();
        (released, remove_link(ctx))
    };
    if let (Err(e), Err(_)) = (&link, &released) {
        // Reported only here: the IPAM's error is the one returned.
        log::warn!("DEL: {e}");
    }
    released.and(link)
}

/// Deletes the container's macvlan named `ifname`, if it is there and is
/// one.
fn remove_link(ctx: &Context) -> Result<(), Error> {
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
