//! CHECK: everything prevResult says ADD made is still there (IPAM's
//! lease, the pair, the addresses and routes on both sides, the
//! masquerade elements), each mismatch reported precisely.

use crate::config;
use cni::{Command, Context, Error};
use kernel::netlink::Handle;
use netcore::owner::OwnerKey;
use netcore::{ipam, masq, p2p, sandbox};

/// Runs CHECK.
pub fn check(ctx: &Context) -> Result<(), Error> {
    let conf = config::load(ctx)?;
    let prev = ctx.require_prev_result()?;
    ipam::forward_configured(ctx, Command::Check)?;
    let host = Handle::new()?;
    let ns = sandbox::open_required(ctx.netns.as_deref())?;
    let ctr = Handle::in_netns(&ns)?;
    p2p::verify(&host, &ctr, (&ctx.conf.name, &ctx.container_id, &ctx.ifname), &prev)?;
    if conf.ip_masq {
        masq::check_container(&OwnerKey::of(ctx), &prev, &ctx.ifname)?;
    }
    Ok(())
}
