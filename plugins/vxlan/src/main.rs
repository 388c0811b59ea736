//! vxlan: containers on a local bridge, hosts joined by a VXLAN overlay
//! with static peers (flannel's vxlan model, without a daemon). Besides
//! the CNI commands, `vxlan reconcile <config>` brings the host side in
//! line with the peer table on its own (see [`reconcile`]).

mod add;
mod applied;
mod check;
mod config;
mod del;
mod lock;
mod overlay;
mod peers;
mod plugin;
mod reconcile;
mod underlay;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("reconcile") {
        std::process::exit(reconcile::main(&args[2..]));
    }
    cni::skel::run(plugin::Vxlan)
}
