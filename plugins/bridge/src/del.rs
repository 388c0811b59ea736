//! DEL and GC: release the address first, then remove the veth pair and
//! the nftables elements by the attachment's identity, so both work when
//! the container's namespace is already gone. The bridge stays for others.

use crate::{config, spoofchk};
use cni::{Command, Context, Error};
use kernel::nft::{Batch, Socket};
use netcore::owner::{OwnerKey, Stale};
use netcore::{attach, ipam, masq};

/// Runs DEL: every step is tried; the first failure is reported after.
pub fn del(ctx: &Context) -> Result<(), Error> {
    let conf = config::load(ctx)?;
    let owner = OwnerKey::of(ctx);
    let ipam_type = ipam::configured(ctx)?;
    let remove = |sock: &Socket, batch: &mut Batch| -> kernel::Result<()> {
        if conf.ip_masq {
            masq::del_container_into(sock, batch, &owner)?;
        }
        if conf.macspoofchk {
            spoofchk::del_into(sock, batch, &owner)?;
        }
        Ok(())
    };
    let nft = conf.ip_masq || conf.macspoofchk;
    // IPAM first in this thread (the address is released whatever else
    // fails), while the nftables removal already runs beside it.
    let release = || ipam_type.iter().filter_map(|t| ipam::forward(ctx, t, Command::Del).err()).collect();
    let beside = ipam::releases_beside(ipam_type.as_deref());
    let errors = attach::detach(&owner, nft.then_some(&remove), release, beside);
    cni::error::first_of("DEL", errors)
}

/// Runs GC: releases leases, masquerade and spoof-check elements and host
/// veths of this network that no valid attachment owns. A missing valid
/// list removes nothing.
pub fn gc(ctx: &Context) -> Result<(), Error> {
    let conf = config::load(ctx)?;
    let Some(valid) = ctx.valid_attachments()? else {
        return Ok(());
    };
    let stale = Stale::new(&ctx.conf.name, &valid);
    let mut errors: Vec<Error> = Vec::new();
    if let Some(t) = ipam::configured(ctx)? {
        errors.extend(ipam::forward(ctx, &t, Command::Gc).err());
    }
    let found = match spoofchk::gc(&stale) {
        Ok(owners) => owners,
        Err(e) => {
            errors.push(e.into());
            Vec::new()
        }
    };
    errors.extend(attach::gc_network(&stale, &conf.bridge, &valid, &found).into_iter().map(Error::from));
    errors.into_iter().next().map_or(Ok(()), Err)
}
