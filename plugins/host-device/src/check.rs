//! CHECK: IPAM CHECK, then the container holds `CNI_IFNAME`, moved there by
//! this attachment (its alias record), with prevResult's addresses and
//! routes.

use crate::saved::{tag, Saved};
use cni::{Command, Context, Error};
use kernel::netlink::Handle;
use netcore::{ifconfig, ipam, sandbox};

/// Runs CHECK; prints nothing on success.
pub fn check(ctx: &Context) -> Result<(), Error> {
    crate::config::load(ctx)?;
    let prev = ctx.require_prev_result()?;
    ipam::forward_configured(ctx, Command::Check)?;
    let ns = sandbox::open_required(ctx.netns.as_deref())?;
    let ctr = Handle::in_netns(&ns)?;
    let netns = ns.path().display().to_string();
    let link = ctr
        .link_by_name(&ctx.ifname)?
        .ok_or_else(|| Error::plugin(format!("container interface {:?} not found in netns {netns}", ctx.ifname)))?;
    let tag = tag(&ctx.conf.name, &ctx.container_id, &ctx.ifname);
    if !link.alias.as_deref().is_some_and(|a| Saved::is_of(a, &tag)) {
        return Err(Error::plugin(format!(
            "container interface {:?} in netns {netns} was not moved there by this attachment",
            ctx.ifname
        )));
    }
    let idx = prev.interfaces.iter().position(|i| i.name == ctx.ifname).unwrap_or(0);
    ifconfig::verify(&ctr, link.index, &ctx.ifname, &prev, idx)
}
