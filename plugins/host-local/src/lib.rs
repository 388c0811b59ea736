//! host-local: IP address management from local files, a drop-in for the
//! reference plugin (same config, same on-disk store) with idempotent ADD,
//! GC and STATUS, and ADD/DEL whose cost does not grow with the number of
//! leases.
//!
//! Modules by concern: [`config`] (what the user asked for), [`range`]
//! (which addresses exist), [`store`] and [`index`] (what is taken, on
//! disk), and one module per command.

#![warn(missing_docs)]

pub mod add;
pub mod check;
pub mod config;
pub mod del;
pub mod dns;
pub mod fsutil;
pub mod gc;
pub mod index;
pub mod parent;
pub mod range;
pub mod store;

use cni::{CniResult, Context, Error, Plugin};

/// The plugin, as `skel` drives it.
pub struct HostLocal;

impl Plugin for HostLocal {
    fn name(&self) -> &'static str {
        "host-local"
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
        gc::gc(ctx)
    }
    fn status(&self, ctx: &Context) -> Result<(), Error> {
        gc::status(ctx)
    }
}
