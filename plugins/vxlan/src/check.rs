//! CHECK: the container side as the bridge plugin checks it (netcore's
//! attach::verify_veth), IPAM's reservation, the masquerade elements, and
//! the host side of the overlay for every configured peer.

use crate::{config, overlay, peers, underlay};
use cni::{Command, Context, Error};
use kernel::netlink::Handle;
use netcore::attach::verify_veth;
use netcore::owner::OwnerKey;
use netcore::{ipam, masq, sandbox};

/// Runs CHECK.
pub fn check(ctx: &Context) -> Result<(), Error> {
    let conf = config::load(ctx)?;
    if let Some(e) = &conf.etcd {
        // The agent holds its lease and runs (the subnet read above says it held it).
        crate::state::verify(&e.network, &e.state_dir)?;
    }
    let prev = ctx.require_prev_result()?;
    ipam::forward_stdin(ctx, &conf.ipam.plugin, Command::Check, &conf.ipam.stdin)?;
    let host = Handle::new()?;
    let ul = underlay::resolve(&host, &conf)?;
    let peers = peers::load(&conf, ul.ip)?;
    overlay::verify(&host, &conf, &ul, &peers)?;
    let br = host.link(conf.bridge.as_str())?;
    if let Some(want) = prev.interfaces.iter().find(|i| i.name == conf.bridge && i.sandbox.is_empty()) {
        if !want.mac.is_empty() && want.mac != br.mac_string() {
            return Err(Error::plugin(format!(
                "bridge {:?} has MAC {}, prevResult says {}",
                br.name,
                br.mac_string(),
                want.mac
            )));
        }
    }
    let ns = sandbox::open_required(ctx.netns.as_deref())?;
    let ctr = Handle::in_netns(&ns)?;
    verify_veth(&host, &ctr, &br, &OwnerKey::of(ctx), &prev)?;
    if conf.ip_masq {
        masq::check_container(&OwnerKey::of(ctx), &prev, &ctx.ifname)?;
    }
    Ok(())
}
