//! DEL: release the lease, then move the device out of the container under
//! its original name and restore its MTU, alias and up/down state, all read
//! from the record in its alias. A device the kernel already returned to
//! the host (its namespace was destroyed) or that a killed DEL left in the
//! host half-restored is found there by the record and restored too. A
//! device that is gone (a veth dies with its namespace) is success.

use crate::saved::{fallback_name, tag, Saved};
use cni::{Command, Context, Error};
use kernel::netlink::Handle;
use kernel::netns::Netns;
use netcore::{ipam, sandbox};

/// Runs DEL: every step is tried; the first failure is reported after.
pub fn del(ctx: &Context) -> Result<(), Error> {
    let mut errors: Vec<Error> = Vec::new();
    if let Some(t) = ipam::configured(ctx)? {
        errors.extend(ipam::forward(ctx, &t, Command::Del).err());
    }
    let tag = tag(&ctx.conf.name, &ctx.container_id, &ctx.ifname);
    let host = Handle::new()?;
    if let Some(ns) = sandbox::open_for_del(ctx.netns.as_deref())? {
        errors.extend(from_container(&ns, &host, &ctx.ifname, &tag).err());
    }
    // Already in the host: returned by the kernel, or a DEL killed midway.
    match host.links() {
        Ok(links) => {
            for l in links {
                let Some(saved) = l.alias.as_deref().filter(|a| Saved::is_of(a, &tag)).and_then(Saved::decode) else {
                    continue;
                };
                errors.extend(restore_on_host(&host, &l.name, &saved).err().map(Error::from));
            }
        }
        Err(e) => errors.push(e.into()),
    }
    cni::error::first_of("DEL", errors)
}

/// Moves the attachment's device out of container `ns`, if it is there.
fn from_container(ns: &Netns, host: &Handle, ifname: &str, tag: &str) -> Result<(), Error> {
    let ctr = Handle::in_netns(ns)?;
    let link = match ctr.link_by_name(ifname)? {
        Some(l) => l,
        // An ADD killed between the move and the rename left it under its
        // host name: find it by the record.
        None => match ctr.links()?.into_iter().find(|l| l.alias.as_deref().is_some_and(|a| Saved::is_of(a, tag))) {
            Some(l) => l,
            None => return Ok(()),
        },
    };
    let alias = link.alias.clone().unwrap_or_default();
    let saved = match Saved::decode(&alias) {
        Some(s) if s.tag == tag => s,
        Some(_) => {
            log::warn!("DEL: {ifname:?} in {} belongs to another attachment; left alone", ns.path().display());
            return Ok(());
        }
        // The reference keeps only the original name in the alias: move
        // such a device out under that name, down, as the reference does.
        None if kernel::netlink::link::validate_ifname(&alias).is_ok() => {
            Saved { tag: tag.to_string(), name: alias.clone(), mtu: link.mtu, up: false, alias }
        }
        None => {
            log::warn!("DEL: {ifname:?} in {} was not moved there by host-device; left alone", ns.path().display());
            return Ok(());
        }
    };
    let host_ns = Netns::current()?;
    move_out(&ctr, &host_ns, host, link.index, &saved).map_err(Error::from)
}

/// Moves link `index` from the container (`ctr`) to the host, under its
/// original name, or a fallback naming the attachment when that name is
/// taken in the host; then restores its MTU, alias and state.
pub fn move_out(ctr: &Handle, host_ns: &Netns, host: &Handle, index: u32, saved: &Saved) -> kernel::Result<()> {
    ctr.set_down(index)?;
    let fallback = fallback_name(&saved.tag);
    let mut name = saved.name.clone();
    if ctr.rename(index, &name).is_err() {
        name = fallback.clone();
        ctr.rename(index, &name)?;
    }
    match ctr.move_to_netns(index, host_ns) {
        Err(e) if e.is_exists() && name != fallback => {
            log::warn!("{:?} is taken in the host: the device comes back as {fallback:?}", saved.name);
            ctr.rename(index, &fallback)?;
            ctr.move_to_netns(index, host_ns)?;
            name = fallback;
        }
        other => other?,
    }
    restore_on_host(host, &name, saved)
}

/// Restores the device called `name` in the host to its recorded state
/// (renamed back when its original name is free).
pub fn restore_on_host(host: &Handle, name: &str, saved: &Saved) -> kernel::Result<()> {
    let link = host.link(name)?;
    if link.name != saved.name {
        host.set_down(link.index)?;
        if host.link_by_name(&saved.name)?.is_none() {
            host.rename(link.index, &saved.name)?;
        } else {
            log::warn!("{:?} is taken in the host: the device stays {:?}", saved.name, link.name);
        }
    }
    if link.mtu != saved.mtu {
        host.set_mtu(link.index, saved.mtu)?;
    }
    host.set_alias(link.index, &saved.alias)?;
    if saved.up {
        host.set_up(link.index)?;
    } else {
        host.set_down(link.index)?;
    }
    Ok(())
}
