//! vxlan: containers on a local bridge, hosts joined by a VXLAN overlay
//! (flannel's vxlan model): static peers from the config, or peers and
//! subnets from etcd through the node's agent. Besides the CNI commands,
//! `vxlan reconcile <config>` brings the host side in line with the peer
//! table on its own (see [`reconcile`]), `vxlan agent <config>` is the
//! control plane on etcd ([`agent`]) and `vxlan status <config>` reports it.

mod add;
mod agent;
mod applied;
mod check;
mod config;
mod del;
mod lock;
mod overlay;
mod peers;
mod reconcile;
mod state;
mod status;
mod underlay;

use cni::error::code;
use cni::skel::Commands;
use cni::{Command, Context, Error};
use kernel::netlink::Handle;
use netcore::attachment_lock::Locked;
use netcore::ipam;

/// STATUS: not available (50) while the underlay, the peer table or (on
/// etcd) the agent's state would make ADD fail; then IPAM's own STATUS.
fn status(ctx: &Context) -> Result<(), Error> {
    let unavailable = |e: Error| Error::new(code::NOT_AVAILABLE, e.msg).with_details(e.details);
    let conf = config::load(ctx).map_err(|e| if e.code == code::INVALID_CONFIG { e } else { unavailable(e) })?;
    let host = Handle::new()?;
    let ul = underlay::resolve(&host, &conf).map_err(unavailable)?;
    peers::load(&conf, ul.ip).map_err(unavailable)?;
    ipam::forward_stdin(ctx, &conf.ipam.plugin, Command::Status, &conf.ipam.stdin)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("reconcile") => std::process::exit(reconcile::main(&args[2..])),
        Some("agent") => std::process::exit(agent::main(&args[2..])),
        Some("status") => std::process::exit(status::main(&args[2..])),
        _ => {}
    }
    cni::skel::run(Locked(Commands {
        name: "vxlan",
        add: add::add,
        del: del::del,
        check: check::check,
        gc: del::gc,
        status,
    }))
}
