//! DEL and GC: release the address first, then remove the veth pair and
//! the nftables elements by the attachment's identity, so both work when
//! the container's namespace is already gone. The bridge stays for others.

use crate::{config, spoofchk};
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
    if let Some(t) = ipam::configured(ctx)? {
        note(ipam::forward(ctx, &t, Command::Del));
    }
    let host = Handle::new()?;
    note(detach_veth(&host, &ctx.conf.name, &ctx.container_id, &ctx.ifname).map(drop).map_err(Error::from));
    let owner = attachment_key(&ctx.conf.name, &ctx.container_id, &ctx.ifname);
    if conf.ip_masq {
        note(masq::del_container(&owner).map(drop).map_err(Error::from));
    }
    if conf.macspoofchk {
        note(spoofchk::del(&owner).map(drop).map_err(Error::from));
    }
    first.map_or(Ok(()), Err)
}

/// Runs GC: releases leases, masquerade and spoof-check elements and host
/// veths of this network that no valid attachment owns. A missing valid list removes
/// nothing.
pub fn gc(ctx: &Context) -> Result<(), Error> {
    let conf = config::load(ctx)?;
    let Some(valid) = ctx.valid_attachments()? else {
        return Ok(());
    };
    let net = &ctx.conf.name;
    let mut first: Option<Error> = None;
    if let Some(t) = ipam::configured(ctx)? {
        if let Err(e) = ipam::forward(ctx, &t, Command::Gc) {
            first.get_or_insert(e);
        }
    }
    let keys: HashSet<String> = valid.iter().map(|a| attachment_key(net, &a.container_id, &a.ifname)).collect();
    if let Err(e) = masq::gc_network(net, &keys) {
        first.get_or_insert(e.into());
    }
    if let Err(e) = spoofchk::gc(net, &keys) {
        first.get_or_insert(e.into());
    }
    let live: HashSet<String> = valid.iter().map(|a| host_veth_name(net, &a.container_id, &a.ifname)).collect();
    let host = Handle::new()?;
    if let Err(e) = remove_stale_veths(&host, &conf.bridge, &live) {
        first.get_or_insert(e.into());
    }
    first.map_or(Ok(()), Err)
}
