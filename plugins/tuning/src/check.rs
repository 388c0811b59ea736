//! CHECK: every configured option still holds in the container.

use crate::config::{self, KNOWN_ARGS};
use crate::link::{self, Target};
use cni::{Context, Error};
use kernel::netlink::Handle;
use netcore::sandbox;

/// Runs CHECK.
pub fn check(ctx: &Context) -> Result<(), Error> {
    ctx.args.check_known(KNOWN_ARGS)?;
    let conf = config::load(ctx)?;
    ctx.require_prev_result()?;
    let ns = sandbox::open_required(ctx.netns.as_deref())?;
    let handle = Handle::in_netns(&ns)?;
    let link = handle
        .link_by_name(&ctx.ifname)?
        .ok_or_else(|| Error::plugin(format!("tuning: interface {:?} is missing in the container", ctx.ifname)))?;
    let target = Target { ns: &ns, handle: &handle, index: link.index, ifname: &ctx.ifname };
    let drift = link::drift(&target, &link, &conf);
    if drift.is_empty() {
        Ok(())
    } else {
        Err(Error::plugin(format!("tuning: {}", drift.join("; "))))
    }
}
