//! DEL and GC: remove the elements an attachment owns, found by their
//! owner comment, so neither needs prevResult, the addresses or the
//! namespace. The shared rules stay (they admit nothing on their own).

use crate::ruleset;
use cni::{Context, Error};
use kernel::nft::Socket;
use netcore::owner::{OwnerKey, Stale};

/// Runs DEL; nothing to remove is success. A config this plugin would
/// refuse on ADD (an unknown backend or policy) still cleans up.
pub fn del(ctx: &Context) -> Result<(), Error> {
    if let Err(e) = crate::config::load(ctx) {
        log::warn!("DEL: {e}; removing the attachment's entries anyway");
    }
    let owner = OwnerKey::of(ctx);
    let sock = Socket::open()?;
    ruleset::release(&sock, &ruleset::objects()?, &|c| owner.matches(c))?;
    Ok(())
}

/// Runs GC: removes this network's elements that no valid attachment
/// owns. Without a valid list it removes nothing.
pub fn gc(ctx: &Context) -> Result<(), Error> {
    let Some(valid) = ctx.valid_attachments()? else {
        return Ok(());
    };
    let net = &ctx.conf.name;
    let stale = Stale::new(net, &valid);
    let sock = Socket::open()?;
    let n = ruleset::release(&sock, &ruleset::objects()?, &|c| stale.is_stale(c))?;
    if n > 0 {
        log::info!("GC: removed the firewall entries of {n} attachments of network {net}");
    }
    Ok(())
}
