//! macvlan: each container gets a macvlan sub-interface of a host NIC, with
//! its own MAC, on the same L2 segment as the host (underlay networking).

mod add;
mod check;
mod config;
mod del;
mod master;

use cni::{CniResult, Command, Context, Error, Plugin};
use netcore::{attachment_lock, ipam};

/// The macvlan plugin.
pub struct Macvlan;

/// Forwards `command` to the configured IPAM plugin, if there is one.
fn to_ipam(ctx: &Context, command: Command) -> Result<(), Error> {
    match ipam::configured(ctx)? {
        Some(t) => ipam::forward(ctx, &t, command),
        None => Ok(()),
    }
}

impl Plugin for Macvlan {
    fn name(&self) -> &'static str {
        "macvlan"
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
        let done = to_ipam(ctx, Command::Gc);
        attachment_lock::gc_of(ctx);
        done
    }

    fn status(&self, ctx: &Context) -> Result<(), Error> {
        to_ipam(ctx, Command::Status)
    }
}

fn main() {
    cni::skel::run(Macvlan)
}
