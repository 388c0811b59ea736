//! DEL and GC. DEL removes the attachment's ifb (found by name, and only
//! when its alias says it is this attachment's) and, when the host end
//! still exists, the qdiscs ADD put on it; it needs neither a valid config
//! nor the container: without the namespace the host end is taken from
//! prevResult (a veth without a sandbox), and without either only the ifb
//! is removed (the host end went with the container's veth). GC removes
//! ifbs of this network that no valid attachment owns.

use crate::host::{ifb_name, IFB_PREFIX};
use cni::{Context, Error};
use kernel::netlink::tc::{HTB_HANDLE, INGRESS, ROOT};
use kernel::netlink::{Handle, Link};
use netcore::owner::{OwnerKey, Stale};
use netcore::sandbox;

/// The host end, if it can still be found: the container interface's veth
/// peer when the namespace is there, else a sandbox-less veth of prevResult.
fn host_end_for_del(ctx: &Context, host: &Handle, ifb: Option<&str>) -> Result<Option<Link>, Error> {
    if let Some(ns) = sandbox::open_for_del(ctx.netns.as_deref())? {
        let ctr = Handle::in_netns(&ns)?;
        if let Some(peer) = ctr.link_by_name(&ctx.ifname)?.filter(|l| l.is_kind("veth")).and_then(|l| l.link) {
            return Ok(host.link_by_index(peer)?);
        }
        return Ok(None);
    }
    let Ok(Some(prev)) = ctx.prev_result() else { return Ok(None) };
    for i in prev.interfaces.iter().filter(|i| i.sandbox.is_empty() && Some(i.name.as_str()) != ifb) {
        if let Some(l) = host.link_by_name(&i.name)?.filter(|l| l.is_kind("veth")) {
            return Ok(Some(l));
        }
    }
    Ok(None)
}

/// Runs DEL: every step is tried; the first failure is reported after.
pub fn del(ctx: &Context) -> Result<(), Error> {
    let owner = OwnerKey::of(ctx);
    let host = Handle::new()?;
    let name = ifb_name(&owner);
    let ifb =
        host.link_by_name(&name)?.filter(|l| l.is_kind("ifb") && l.alias.as_deref().is_some_and(|a| owner.matches(a)));
    let mut errors: Vec<Error> = Vec::new();
    match host_end_for_del(ctx, &host, Some(&name)) {
        Ok(Some(dev)) => {
            let redirects = host.ingress_redirects(dev.index).unwrap_or_default();
            if ifb.as_ref().is_some_and(|i| redirects.contains(&i.index)) {
                errors.extend(host.delete_qdisc(dev.index, INGRESS).err().map(Error::from));
            }
            match host.shaper_state(dev.index) {
                Ok(st) if st.root_kind.as_deref() == Some("htb") && st.root_handle == HTB_HANDLE => {
                    errors.extend(host.delete_qdisc(dev.index, ROOT).err().map(Error::from));
                }
                Ok(_) => {}
                Err(e) => errors.push(e.into()),
            }
        }
        Ok(None) => {}
        Err(e) => errors.push(e),
    }
    if let Some(i) = ifb {
        match host.delete_link(i.index) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => errors.push(e.into()),
        }
    }
    cni::error::first_of("DEL", errors)
}

/// Runs GC: deletes this network's ifbs that no valid attachment owns. A
/// missing valid list removes nothing.
pub fn gc(ctx: &Context) -> Result<(), Error> {
    let Some(valid) = ctx.valid_attachments()? else {
        return Ok(());
    };
    let stale = Stale::new(&ctx.conf.name, &valid);
    let host = Handle::new()?;
    let mut first = None;
    for l in host.links()? {
        if !l.is_kind("ifb") || !l.name.starts_with(IFB_PREFIX) {
            continue;
        }
        let Some(alias) = l.alias.as_deref() else { continue };
        if !stale.is_stale(alias) {
            continue;
        }
        match host.delete_link(l.index) {
            Ok(()) => log::info!("GC: deleted ifb {:?} of {alias:?}", l.name),
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                log::warn!("GC: {e}");
                first.get_or_insert(Error::from(e));
            }
        }
    }
    first.map_or(Ok(()), Err)
}
