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
use cni::{Context, Error};
use kernel::nft::Socket;

/// Ready when nf_tables answers: every mapping needs it.
fn status(_ctx: &Context) -> Result<(), Error> {
    Socket::open().and_then(|s| s.generation()).map(drop).map_err(|e| {
        Error::new(code::NOT_AVAILABLE, "portmap: nftables is not usable here").with_details(e.to_string())
    })
}

fn main() {
    cni::skel::run(cni::skel::Commands {
        name: "portmap",
        add: add::add,
        del: del::del,
        check: check::check,
        gc: del::gc,
        status,
    })
}
