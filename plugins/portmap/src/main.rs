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
mod plugin;

fn main() {
    cni::skel::run(plugin::Portmap)
}
