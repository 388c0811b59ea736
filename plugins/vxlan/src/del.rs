//! DEL and GC. DEL releases the address first, with the IPAM config
//! rebuilt from the network config (no per-container state file that
//! could be missing), then removes the veth pair and the masquerade
//! elements by the attachment's identity, so it works when the container's
//! namespace, the underlay or the peers file is gone. The overlay stays
//! for the host's other containers.

use crate::config;
use cni::{Command, Context, Error};
use kernel::nft::{Batch, Socket};
use netcore::owner::{OwnerKey, Stale};
use netcore::{attach, ipam, masq};

/// Runs DEL: every step is tried; the first failure is reported after.
pub fn del(ctx: &Context) -> Result<(), Error> {
    let conf = config::load_for_release(ctx)?;
    // Also when ipMasq is off now: it may have been on at ADD.
    let owner = OwnerKey::of(ctx);
    let remove = |sock: &Socket, batch: &mut Batch| masq::del_container_into(sock, batch, &owner).map(drop);
    let release =
        || ipam::forward_stdin(ctx, &conf.ipam.plugin, Command::Del, &conf.ipam.stdin).err().into_iter().collect();
    let errors = attach::detach(&owner, Some(&remove), release, ipam::runs_beside_links(&conf.ipam.plugin));
    cni::error::first_of("DEL", errors)
}

/// Runs GC: releases leases, masquerade elements and host veths of this
/// network that no valid attachment owns. A missing valid list removes
/// nothing. The overlay is host state, not an attachment's: it stays.
pub fn gc(ctx: &Context) -> Result<(), Error> {
    let conf = config::load_for_release(ctx)?;
    let Some(valid) = ctx.valid_attachments()? else {
        return Ok(());
    };
    let mut errors: Vec<Error> = Vec::new();
    errors.extend(ipam::forward_stdin(ctx, &conf.ipam.plugin, Command::Gc, &conf.ipam.stdin).err());
    errors.extend(
        attach::gc_network(&Stale::new(&ctx.conf.name, &valid), &conf.bridge, &valid, &[]).into_iter().map(Error::from),
    );
    errors.into_iter().next().map_or(Ok(()), Err)
}
