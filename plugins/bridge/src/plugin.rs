//! The CNI commands of the bridge plugin, each in its own module.

use cni::{CniResult, Command, Context, Error, Plugin};
use netcore::ipam;

/// The plugin.
pub struct Bridge;

impl Plugin for Bridge {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn add(&self, ctx: &Context) -> Result<CniResult, Error> {
        crate::add::add(ctx)
    }

    fn del(&self, ctx: &Context) -> Result<(), Error> {
        crate::del::del(ctx)
    }

    fn check(&self, ctx: &Context) -> Result<(), Error> {
        crate::check::check(ctx)
    }

    fn gc(&self, ctx: &Context) -> Result<(), Error> {
        crate::del::gc(ctx)
    }

    fn status(&self, ctx: &Context) -> Result<(), Error> {
        match ipam::configured(ctx)? {
            Some(t) => ipam::forward(ctx, &t, Command::Status),
            None => Ok(()),
        }
    }
}
