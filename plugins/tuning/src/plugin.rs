//! The CNI commands of the tuning plugin, each in its own module.

use cni::{CniResult, Context, Error, Plugin};

/// The plugin.
pub struct Tuning;

impl Plugin for Tuning {
    fn name(&self) -> &'static str {
        "tuning"
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
        crate::gc::gc(ctx)
    }
}
