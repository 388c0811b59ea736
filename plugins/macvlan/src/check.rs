//! CHECK: IPAM CHECK, then the interface of prevResult against the kernel:
//! same sandbox, a macvlan of the configured mode on the configured master,
//! the same MAC, and its addresses and routes.

use cni::{Command, Context, Error};
use kernel::netlink::Handle;
use netcore::{ifconfig, ipam, sandbox};

use crate::add::KNOWN_ARGS;
use crate::config::MacvlanConf;
use crate::master;

/// Runs CHECK; prints nothing on success.
pub fn check(ctx: &Context) -> Result<(), Error> {
    ctx.args.check_known(KNOWN_ARGS)?;
    let conf = MacvlanConf::load(ctx)?;
    ipam::forward_configured(ctx, Command::Check)?;
    let prev = ctx.require_prev_result()?;
    let netns = ctx.netns.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let idx = prev
        .interfaces
        .iter()
        .position(|i| i.name == ctx.ifname)
        .ok_or_else(|| Error::plugin(format!("interface {:?} is not in prevResult", ctx.ifname)))?;
    let intf = &prev.interfaces[idx];
    if intf.sandbox != netns {
        return Err(Error::plugin(format!(
            "sandbox in prevResult {} doesn't match configured netns: {netns}",
            intf.sandbox
        )));
    }

    let ns = sandbox::open_required(ctx.netns.as_deref())?;
    let ch = Handle::in_netns(&ns)?;
    let host = if conf.link_in_container { None } else { Some(Handle::new()?) };
    let master = master::resolve(host.as_ref().unwrap_or(&ch), &conf)?;

    let link = ch
        .link_by_name(&ctx.ifname)?
        .ok_or_else(|| Error::plugin(format!("container interface {:?} not found in netns {netns}", ctx.ifname)))?;
    if !link.is_kind("macvlan") {
        return Err(Error::plugin(format!(
            "container interface {:?} is a {}, not a macvlan",
            link.name,
            link.kind.as_deref().unwrap_or("link of no kind")
        )));
    }
    if link.macvlan_mode != Some(conf.mode) {
        let have = link.macvlan_mode.map(|m| m.to_string()).unwrap_or_else(|| "unknown".into());
        return Err(Error::plugin(format!(
            "container macvlan mode {have} does not match expected value: {}",
            conf.mode
        )));
    }
    // The parent's index is in the master's namespace: the host's (a link
    // netnsid is set) or, with linkInContainer, the container's own.
    let same_ns = link.link_netnsid.is_none() == conf.link_in_container;
    if link.link != Some(master.index) || !same_ns {
        return Err(Error::plugin(format!(
            "container interface {:?} is not a macvlan of master {:?} (#{})",
            link.name, master.name, master.index
        )));
    }
    if !intf.mac.is_empty() && !intf.mac.eq_ignore_ascii_case(&link.mac_string()) {
        return Err(Error::plugin(format!(
            "interface {} Mac {} doesn't match container Mac: {}",
            link.name,
            intf.mac,
            link.mac_string()
        )));
    }
    ifconfig::verify(&ch, link.index, &ctx.ifname, &prev, idx)
}
