//! tuning: a chained plugin that adjusts the container interface (MAC,
//! MTU, promiscuous and all-multicast modes, transmit queue length) and
//! `net.*` sysctls inside the container, and puts them back on DEL.

mod add;
mod check;
mod config;
mod del;
mod gc;
mod link;
mod state;

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

fn main() {
    cni::skel::run(Tuning)
}
