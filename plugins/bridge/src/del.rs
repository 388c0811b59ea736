//! DEL and GC: release the address first, then remove the veth pair and
//! the nftables elements by the attachment's identity, so both work when
//! the container's namespace is already gone. The bridge stays for others.

use crate::{config, spoofchk};
use cni::{Command, Context, Error};
use netcore::attach::{detach_veth, remove_stale_veths};
use netcore::naming::{attachment_key, host_veth_name};
use netcore::netlink::Handle;
use netcore::nft::{Batch, Socket};
use netcore::{ipam, masq};
use std::collections::HashSet;

/// Runs DEL: every step is tried; the first failure is reported after.
/// The nftables removal runs beside the veth deletion: both wait for the
/// kernel's RCU grace periods, and waiting for them one after the other
/// would double the cost of a DEL.
pub fn del(ctx: &Context) -> Result<(), Error> {
    let conf = config::load(ctx)?;
    let owner = attachment_key(&ctx.conf.name, &ctx.container_id, &ctx.ifname);
    let ipam_type = ipam::configured(ctx)?;
    let mut errors: Vec<Error> = Vec::new();
    std::thread::scope(|s| {
        let nft = (conf.ip_masq || conf.macspoofchk).then(|| s.spawn(|| remove_elements(&conf, &owner)));
        if let Some(t) = &ipam_type {
            errors.extend(ipam::forward(ctx, t, Command::Del).err());
        }
        let veth =
            Handle::new().and_then(|host| detach_veth(&host, &ctx.conf.name, &ctx.container_id, &ctx.ifname).map(drop));
        errors.extend(veth.err().map(Error::from));
        if let Some(h) = nft {
            match h.join() {
                Ok(r) => errors.extend(r.err()),
                Err(_) => errors.push(Error::plugin("removing nftables elements: the worker thread panicked")),
            }
        }
    });
    for e in &errors {
        log::warn!("DEL: {e}");
    }
    errors.into_iter().next().map_or(Ok(()), Err)
}

/// Removes the attachment's masquerade and spoof-check elements in one
/// batch (one grace period, not one per table).
fn remove_elements(conf: &config::BridgeConf, owner: &str) -> Result<(), Error> {
    let sock = Socket::open()?;
    let mut batch = Batch::new();
    if conf.ip_masq {
        masq::del_container_into(&sock, &mut batch, owner)?;
    }
    if conf.macspoofchk {
        spoofchk::del_into(&sock, &mut batch, owner)?;
    }
    sock.commit(&batch)?;
    Ok(())
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
