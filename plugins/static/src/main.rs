//! static: IPAM whose answer is written in the config (or handed over by
//! the runtime as the `ips` capability, `args.cni.ips` or CNI_ARGS `IP=`).
//! Nothing is reserved anywhere, so DEL, GC and STATUS have nothing to do
//! and always succeed, as with the reference plugin.

mod check;
mod config;

use cni::{CniResult, Context, Error, Plugin};

/// The plugin.
struct Static;

impl Plugin for Static {
    fn name(&self) -> &'static str {
        "static"
    }

    fn add(&self, ctx: &Context) -> Result<CniResult, Error> {
        let conf = config::Config::load(ctx)?;
        Ok(CniResult { interfaces: Vec::new(), ips: conf.addresses, routes: conf.routes, dns: conf.dns })
    }

    // Stateless: nothing was taken, so nothing is given back, and a config
    // broken since the ADD must not keep a container from going away.
    fn del(&self, _ctx: &Context) -> Result<(), Error> {
        Ok(())
    }

    fn check(&self, ctx: &Context) -> Result<(), Error> {
        check::check(ctx)
    }
}

fn main() {
    cni::skel::run(Static)
}
