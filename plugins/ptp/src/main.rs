//! ptp: a veth pair per container and no bridge. The container holds its
//! address as /32 (/128) and a route to the host end, which holds the
//! gateway address; the host routes each container address to its host
//! end, so containers on one host reach each other through the host.

mod add;
mod check;
mod config;
mod del;

use cni::{CniResult, Command, Context, Error, Plugin};
use netcore::{attachment_lock, ipam};

/// The plugin.
pub struct Ptp;

impl Plugin for Ptp {
    fn name(&self) -> &'static str {
        "ptp"
    }

    // ADD, DEL and CHECK of one attachment never interleave (a DEL sent
    // while its ADD runs waits for it, then undoes it).
    fn add(&self, ctx: &Context) -> Result<CniResult, Error> {
        let _held = attachment_lock::of(ctx)?;
        add::add(ctx)
    }

    fn del(&self, ctx: &Context) -> Result<(), Error> {
        let held = attachment_lock::of(ctx)?;
        let done = del::del(ctx);
        held.remove();
        done
    }

    fn check(&self, ctx: &Context) -> Result<(), Error> {
        let _held = attachment_lock::of(ctx)?;
        check::check(ctx)
    }

    fn gc(&self, ctx: &Context) -> Result<(), Error> {
        let done = del::gc(ctx);
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
    cni::skel::run(Ptp)
}
