//! CHECK: the shapers ADD made are still there with the configured rate,
//! bucket, default class and subnet filters; the ifb exists, is ours and
//! up, and the host end still redirects to it. Each mismatch is named.

use crate::config;
use crate::host::{host_end, ifb_name};
use cni::{Context, Error};
use kernel::netlink::tc::{Shaper, Side};
use kernel::netlink::Handle;
use netcore::owner::OwnerKey;

/// Runs CHECK.
pub fn check(ctx: &Context) -> Result<(), Error> {
    let conf = config::load(ctx)?;
    let prev = ctx.require_prev_result()?;
    if conf.is_empty() {
        return Ok(());
    }
    let host = Handle::new()?;
    let dev = host_end(ctx, &host, &prev)?;
    let shaper = |l: &config::Limit, side| Shaper {
        rate: l.rate_bytes(),
        burst: l.burst_bytes(),
        subnets: conf.subnets.clone(),
        only_listed: conf.only_listed,
        side,
    };
    if let Some(l) = &conf.ingress {
        if let Some(why) = shaper(l, Side::Source).diff(&host.shaper_state(dev.index)?) {
            return Err(Error::plugin(format!("bandwidth: ingress shaping on {:?}: {why}", dev.name)));
        }
    }
    let Some(l) = &conf.egress else { return Ok(()) };
    let owner = OwnerKey::of(ctx);
    let name = ifb_name(&owner);
    let ifb = host
        .link_by_name(&name)?
        .ok_or_else(|| Error::plugin(format!("bandwidth: egress shaping: ifb {name:?} is missing")))?;
    if !ifb.is_kind("ifb") || !ifb.alias.as_deref().is_some_and(|a| owner.matches(a)) {
        return Err(Error::plugin(format!("bandwidth: egress shaping: {name:?} is not this attachment's ifb")));
    }
    if !ifb.up {
        return Err(Error::plugin(format!("bandwidth: egress shaping: ifb {name:?} is down")));
    }
    if let Some(why) = shaper(l, Side::Destination).diff(&host.shaper_state(ifb.index)?) {
        return Err(Error::plugin(format!("bandwidth: egress shaping on ifb {name:?}: {why}")));
    }
    if !host.ingress_redirects(dev.index)?.contains(&ifb.index) {
        return Err(Error::plugin(format!(
            "bandwidth: egress shaping: {:?} no longer redirects what it receives to ifb {name:?}",
            dev.name
        )));
    }
    Ok(())
}
