//! DEL and GC: release the address, remove the veth pair (its host routes
//! and gateway addresses go with it) and the masquerade elements, all by
//! the attachment's identity, so both work when the container's namespace
//! is already gone and with no cached result.

use cni::{Command, Context, Error};
use kernel::nft::{Batch, Socket};
use netcore::owner::OwnerKey;
use netcore::{attach, ipam, masq, p2p};

/// Runs DEL: every step is tried; the first failure is reported after.
pub fn del(ctx: &Context) -> Result<(), Error> {
    let ip_masq = crate::config::load(ctx).map(|c| c.ip_masq).unwrap_or(ctx.conf.ip_masq);
    let owner = OwnerKey::of(ctx);
    let ipam_type = ipam::configured(ctx)?;
    let remove = |sock: &Socket, batch: &mut Batch| -> kernel::Result<()> {
        masq::del_container_into(sock, batch, &owner).map(drop)
    };
    let release = || ipam_type.iter().filter_map(|t| ipam::forward(ctx, t, Command::Del).err()).collect();
    let beside = ipam::releases_beside(ipam_type.as_deref());
    let errors = attach::detach(&owner, ip_masq.then_some(&remove), release, beside);
    cni::error::first_of("DEL", errors)
}

/// Runs GC: releases leases, masquerade elements and host ends of this
/// network that no valid attachment owns. A missing valid list removes
/// nothing.
pub fn gc(ctx: &Context) -> Result<(), Error> {
    let Some(valid) = ctx.valid_attachments()? else {
        return Ok(());
    };
    let mut errors: Vec<Error> = Vec::new();
    if let Some(t) = ipam::configured(ctx)? {
        errors.extend(ipam::forward(ctx, &t, Command::Gc).err());
    }
    errors.extend(p2p::gc_network(&ctx.conf.name, &valid).into_iter().map(Error::from));
    errors.into_iter().next().map_or(Ok(()), Err)
}
