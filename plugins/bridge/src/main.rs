//! bridge: a Linux bridge on the host, a veth pair per container, the
//! bridge as gateway, masquerade to the outside (the `docker0` model).

mod add;
mod check;
mod config;
mod del;
mod isolation;
mod spoofchk;
mod vlan;

use cni::{CniResult, Command, Context, Error, Plugin};
use netcore::{attachment_lock, ipam};

/// The plugin.
pub struct Bridge;

impl Plugin for Bridge {
    fn name(&self) -> &'static str {
        "bridge"
    }

    // ADD, DEL and CHECK of one attachment never interleave (a DEL sent
    // while its ADD runs waits for it, then undoes it).
    fn add(&self, ctx: &Context) -> Result<CniResult, Error> {
        let _held = attachment_lock::of(ctx)?;
        crate::add::add(ctx)
    }

    fn del(&self, ctx: &Context) -> Result<(), Error> {
        let held = attachment_lock::of(ctx)?;
        let done = crate::del::del(ctx);
        held.remove();
        done
    }

    fn check(&self, ctx: &Context) -> Result<(), Error> {
        let _held = attachment_lock::of(ctx)?;
        crate::check::check(ctx)
    }

    fn gc(&self, ctx: &Context) -> Result<(), Error> {
        let done = crate::del::gc(ctx);
        attachment_lock::gc_of(ctx);
        done
    }

    fn status(&self, ctx: &Context) -> Result<(), Error> {
        match ipam::configured(ctx)? {
            Some(t) => ipam::forward(ctx, &t, Command::Status),
            None => Ok(()),
        }
    }
}

fn main() {
    cni::skel::run(Bridge)
}
