//! CHECK: everything prevResult says ADD made is still there, and each
//! mismatch is reported precisely.

use crate::config;
use cni::{Command, Context, Error};
use netcore::attach::verify_veth;
use netcore::naming::attachment_key;
use netcore::netlink::Handle;
use netcore::{ipam, masq, sandbox};
use std::net::IpAddr;

fn drift(msg: String) -> Error {
    Error::plugin(msg)
}

/// Runs CHECK.
pub fn check(ctx: &Context) -> Result<(), Error> {
    let conf = config::load(ctx)?;
    let prev = ctx.require_prev_result()?;
    if let Some(t) = ipam::configured(ctx)? {
        ipam::forward(ctx, &t, Command::Check)?;
    }
    let host = Handle::new()?;
    let br =
        host.link_by_name(&conf.bridge)?.ok_or_else(|| drift(format!("bridge {:?} does not exist", conf.bridge)))?;
    if !br.is_kind("bridge") {
        return Err(drift(format!("{:?} is not a bridge", conf.bridge)));
    }
    if let Some(want) = prev.interfaces.iter().find(|i| i.name == conf.bridge && i.sandbox.is_empty()) {
        if !want.mac.is_empty() && want.mac != br.mac_string() {
            return Err(drift(format!(
                "bridge {:?} has MAC {}, prevResult says {}",
                br.name,
                br.mac_string(),
                want.mac
            )));
        }
    }
    if conf.promisc_mode && !br.promisc {
        return Err(drift(format!("bridge {:?} is not promiscuous (promiscMode)", br.name)));
    }
    let ns = sandbox::open_required(ctx.netns.as_deref())?;
    let ctr = Handle::in_netns(&ns)?;
    verify_veth(&host, &ctr, &br, (&ctx.conf.name, &ctx.container_id, &ctx.ifname), &prev)?;
    if conf.ip_masq {
        let ips: Vec<IpAddr> = prev.container_ips(&ctx.ifname).iter().map(|ip| ip.address.ip()).collect();
        let owner = attachment_key(&ctx.conf.name, &ctx.container_id, &ctx.ifname);
        if !ips.is_empty() && !masq::has_container(&owner, &ips)? {
            return Err(drift(format!("masquerade entries for {ips:?} are missing from table inet {}", masq::TABLE)));
        }
    }
    Ok(())
}
