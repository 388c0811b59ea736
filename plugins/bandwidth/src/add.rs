//! ADD: validate everything (config, then each burst against the host
//! end's MTU), then shape traffic into the container on the host end's
//! root and traffic out of it on an ifb fed by the host end's ingress.
//! Whatever was made is removed again when a later step fails.

use crate::config::{self, Limit};
use crate::host::{host_end, ifb_name};
use cni::result::Interface;
use cni::{CniResult, Context, Error};
use kernel::netlink::tc::{Shaper, Side, INGRESS, ROOT};
use kernel::netlink::{Handle, IfbSpec, Link};
use netcore::owner::OwnerKey;

fn shaper(l: &Limit, conf: &config::BwConf, side: Side) -> Shaper {
    Shaper {
        rate: l.rate_bytes(),
        burst: l.burst_bytes(),
        subnets: conf.subnets.clone(),
        only_listed: conf.only_listed,
        side,
    }
}

/// Runs ADD.
pub fn add(ctx: &Context) -> Result<CniResult, Error> {
    let conf = config::load(ctx)?;
    let mut result = ctx
        .require_prev_result()
        .map_err(|_| Error::invalid_config("bandwidth: must be called as a chained plugin (no prevResult)"))?;
    if conf.is_empty() {
        return Ok(result);
    }
    let host = Handle::new()?;
    let dev = host_end(ctx, &host, &result)?;
    for l in [conf.ingress, conf.egress].iter().flatten() {
        config::check_mtu(l, dev.mtu, &dev.name)?;
    }
    let owner = OwnerKey::of(ctx);
    let mut made = Made::default();
    match apply(&host, &dev, &conf, &owner, &mut made) {
        Ok(ifb) => {
            if let Some(ifb) = ifb {
                result.interfaces.push(Interface {
                    name: ifb.name.clone(),
                    mac: ifb.mac_string(),
                    ..Default::default()
                });
            }
            Ok(result)
        }
        Err(e) => {
            made.undo(&host, &dev);
            Err(e)
        }
    }
}

/// What ADD changed so far, to undo on failure.
#[derive(Default)]
struct Made {
    root: bool,
    ingress: bool,
    ifb: Option<u32>,
}

impl Made {
    fn undo(&self, host: &Handle, dev: &Link) {
        if self.ingress {
            let _ = host.delete_qdisc(dev.index, INGRESS);
        }
        if self.root {
            let _ = host.delete_qdisc(dev.index, ROOT);
        }
        if let Some(i) = self.ifb {
            let _ = host.delete_link(i);
        }
    }
}

fn apply(
    host: &Handle,
    dev: &Link,
    conf: &config::BwConf,
    owner: &OwnerKey,
    made: &mut Made,
) -> Result<Option<Link>, Error> {
    if let Some(l) = &conf.ingress {
        made.root = true;
        // Into the container: the host end sends it; the remote end is the source.
        host.install_shaper(dev.index, &dev.name, &shaper(l, conf, Side::Source))?;
    }
    let Some(l) = &conf.egress else { return Ok(None) };
    let name = ifb_name(owner);
    let alias = owner.key();
    // A repeated ADD finds its own ifb: start again from a fresh one.
    if let Some(old) = host.link_by_name(&name)? {
        if old.is_kind("ifb") && old.alias.as_deref().is_some_and(|a| owner.matches(a)) {
            host.delete_link(old.index)?;
        } else {
            return Err(Error::new(
                cni::error::code::CONFLICT,
                format!("bandwidth: a link named {name:?} already exists and is not this attachment's ifb"),
            ));
        }
    }
    // Down until its qdisc is in place: the kernel then skips one RCU
    // grace period (it waits for one when it swaps a running device's qdisc).
    let spec =
        IfbSpec { name: &name, mtu: Some(dev.mtu), txqlen: Some(dev.txqlen.max(1000)), alias: &alias, up: false };
    let ifb = host.create_ifb(&spec).map_err(|e| {
        let e: Error = e.into();
        if e.code == cni::error::code::UNSUPPORTED_KERNEL {
            Error::new(e.code, format!("bandwidth: cannot shape egress without an ifb device: {}", e.msg))
        } else {
            e
        }
    })?;
    made.ifb = Some(ifb.index);
    // Out of the container: the ifb sends it on; the remote end is the destination.
    host.install_shaper(ifb.index, &ifb.name, &shaper(l, conf, Side::Destination))?;
    host.set_up(ifb.index)?;
    made.ingress = true;
    host.redirect_ingress(dev.index, &dev.name, ifb.index)?;
    Ok(Some(ifb))
}
