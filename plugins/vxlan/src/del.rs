//! DEL and GC. DEL releases the address first, with the IPAM config
//! rebuilt from the network config (no per-container state file that
//! could be missing), then removes the veth pair and the masquerade
//! elements by the attachment's identity, so it works when the container's
//! namespace, the underlay or the peers file is gone. The overlay stays
//! for the host's other containers.

use crate::config;
use cni::{Command, Context, Error};
use netcore::attach::{detach_veth, remove_stale_veths};
use netcore::naming::{attachment_key, host_veth_name};
use netcore::netlink::Handle;
use netcore::{ipam, masq};
use std::collections::HashSet;

/// Runs DEL: every step is tried; the first failure is reported after.
pub fn del(ctx: &Context) -> Result<(), Error> {
    let conf = config::load(ctx)?;
    let mut first: Option<Error> = None;
    let mut note = |r: Result<(), Error>| {
        if let Err(e) = r {
            log::warn!("DEL: {e}");
            first.get_or_insert(e);
        }
    };
    note(ipam::forward_stdin(ctx, &conf.ipam.plugin, Command::Del, &conf.ipam.stdin));
    let host = Handle::new()?;
    note(detach_veth(&host, &ctx.conf.name, &ctx.container_id, &ctx.ifname).map(drop).map_err(Error::from));
    // Also when ipMasq is off now: it may have been on at ADD.
    let owner = attachment_key(&ctx.conf.name, &ctx.container_id, &ctx.ifname);
    note(masq::del_container(&owner).map(drop).map_err(Error::from));
    first.map_or(Ok(()), Err)
}

/// Runs GC: releases leases, masquerade elements and host veths of this
/// network that no valid attachment owns. A missing valid list removes
/// nothing. The overlay is host state, not an attachment's: it stays.
pub fn gc(ctx: &Context) -> Result<(), Error> {
    let conf = config::load(ctx)?;
    let Some(valid) = ctx.valid_attachments()? else {
        return Ok(());
    };
    let net = &ctx.conf.name;
    let mut first: Option<Error> = None;
    if let Err(e) = ipam::forward_stdin(ctx, &conf.ipam.plugin, Command::Gc, &conf.ipam.stdin) {
        first.get_or_insert(e);
    }
    let keys: HashSet<String> = valid.iter().map(|a| attachment_key(net, &a.container_id, &a.ifname)).collect();
    if let Err(e) = masq::gc_network(net, &keys) {
        first.get_or_insert(e.into());
    }
    let live: HashSet<String> = valid.iter().map(|a| host_veth_name(net, &a.container_id, &a.ifname)).collect();
    let host = Handle::new()?;
    if let Err(e) = remove_stale_veths(&host, &conf.bridge, &live) {
        first.get_or_insert(e.into());
    }
    first.map_or(Ok(()), Err)
}
