//! The [`Plugin`] implementation: each command in its own module; STATUS
//! and GC have no macvlan state of their own and go to IPAM.

use cni::{CniResult, Command, Context, Error, Plugin};
use netcore::ipam;

use crate::{add, check, del};

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

    fn add(&self, ctx: &Context) -> Result<CniResult, Error> {
        add::add(ctx)
    }

    fn del(&self, ctx: &Context) -> Result<(), Error> {
        del::del(ctx)
    }

    fn check(&self, ctx: &Context) -> Result<(), Error> {
        check::check(ctx)
    }

    fn gc(&self, ctx: &Context) -> Result<(), Error> {
        to_ipam(ctx, Command::Gc)
    }

    fn status(&self, ctx: &Context) -> Result<(), Error> {
        to_ipam(ctx, Command::Status)
    }
}
