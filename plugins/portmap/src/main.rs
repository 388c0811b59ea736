//! portmap: `docker run -p 8888:80` for CNI. A chained plugin that reads
//! the `portMappings` capability and the container's addresses from
//! prevResult and forwards host ports to the container with nftables maps.

mod add;
mod check;
mod conditions;
mod config;
mod conntrack;
mod del;
mod nft_maps;

use cni::error::code;
use cni::{CniResult, Context, Error, Plugin};
use netcore::nft::Socket;

/// The plugin.
pub struct Portmap;

impl Plugin for Portmap {
    fn name(&self) -> &'static str {
        "portmap"
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

    /// Ready when nf_tables answers: every mapping needs it.
    fn status(&self, _ctx: &Context) -> Result<(), Error> {
        Socket::open().and_then(|s| s.generation()).map(drop).map_err(|e| {
            Error::new(code::NOT_AVAILABLE, "portmap: nftables is not usable here").with_details(e.to_string())
        })
    }
}

fn main() {
    cni::skel::run(Portmap)
}
