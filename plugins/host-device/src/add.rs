//! ADD: find the host device, take the IPAM lease (so an IPAM failure
//! changes nothing), record the device's state in its alias, move it into
//! the container, rename it to `CNI_IFNAME`, then addresses, up, routes.
//! A failure after the move puts the device back as DEL would.

use crate::config;
use crate::device::{self, Sysfs};
use crate::saved::{self, Saved};
use cni::error::code;
use cni::{CniResult, Context, Error};
use kernel::netlink::Handle;
use kernel::netns::Netns;
use netcore::{ifconfig, ipam, sandbox};

/// Runs ADD.
pub fn add(ctx: &Context) -> Result<CniResult, Error> {
    let sel = config::load(ctx)?;
    let ipam_type = ipam::configured(ctx)?;
    cni::result::require_printable(ctx.version, ipam_type.is_some())?;
    let ns = sandbox::open_required(ctx.netns.as_deref())?;
    let ctr = Handle::in_netns(&ns)?;
    if ctr.link_by_name(&ctx.ifname)?.is_some() {
        return Err(Error::new(
            code::CONFLICT,
            format!("container interface name provided ({}) already exists", ctx.ifname),
        ));
    }
    let host = Handle::new()?;
    let dev = device::resolve(&host, &sel, &Sysfs::real())?;
    if ctr.link_by_name(&dev.name)?.is_some() {
        return Err(Error::new(
            code::CONFLICT,
            format!(
                "the container already has a link called {:?}: host device {:?} cannot move there",
                dev.name, dev.name
            ),
        ));
    }
    let lease = match &ipam_type {
        Some(t) => Some(ipam::Lease::acquire(ctx, t)?),
        None => None,
    };
    let tag = saved::tag(&ctx.conf.name, &ctx.container_id, &ctx.ifname);
    // A device the kernel gave back from a destroyed namespace, not yet
    // DELed, still carries its true original state: keep that.
    let saved = match dev.alias.as_deref().and_then(Saved::decode) {
        Some(old) => {
            log::warn!(
                "{:?} still carries the record of an earlier attachment: restoring to {:?} later",
                dev.name,
                old.name
            );
            Saved { tag, ..old }
        }
        None => Saved::of(&dev, &tag),
    };
    let moved = (|| -> kernel::Result<()> {
        host.set_down(dev.index)?;
        host.set_alias(dev.index, &saved.encode())?;
        host.move_to_netns(dev.index, &ns)
    })();
    if let Err(e) = moved {
        if let Err(undo) = crate::del::restore_on_host(&host, &dev.name, &saved) {
            log::warn!("restoring {:?} after a failed move: {undo}", dev.name);
        }
        return Err(e.into());
    }
    let configured = configure(ctx, &ns, &ctr, &dev.name, lease.as_ref());
    match configured {
        Ok(result) => {
            if let Some(l) = lease {
                l.keep();
            }
            Ok(result)
        }
        Err(e) => {
            let host_ns = Netns::current()?;
            let index = ctr.link_by_name(&ctx.ifname)?.or(ctr.link_by_name(&dev.name)?).map(|l| l.index);
            if let Some(i) = index {
                if let Err(undo) = crate::del::move_out(&ctr, &host_ns, &host, i, &saved) {
                    log::warn!("moving {:?} back after a failed ADD: {undo}", dev.name);
                }
            }
            Err(e)
        }
    }
}

/// In the container: rename, addresses, up, routes; builds the result.
fn configure(
    ctx: &Context,
    ns: &Netns,
    ctr: &Handle,
    moved_as: &str,
    lease: Option<&ipam::Lease<'_>>,
) -> Result<CniResult, Error> {
    let link = ctr.link(moved_as)?;
    ctr.rename(link.index, &ctx.ifname)?;
    let sandbox = ns.path().display().to_string();
    let mut result = CniResult::container_only(&ctx.ifname, link.mac_string(), sandbox, ctx.conf.dns.as_ref());
    let Some(lease) = lease else {
        ctr.set_up(link.index)?;
        return Ok(result);
    };
    result.take_lease(lease.result(), 0);
    let opts = ifconfig::Options { announce: true, ..Default::default() };
    ifconfig::configure(ns, ctr, link.index, &ctx.ifname, &result, 0, &opts)?;
    Ok(result)
}
