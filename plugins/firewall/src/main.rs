//! firewall: a chained plugin that admits forwarded traffic to and from
//! the container's addresses (so it passes a host whose FORWARD policy is
//! DROP), with an optional same-bridge ingress policy; nftables only.

mod add;
mod check;
mod config;
mod del;
mod firewalld;
mod forward;
mod lock;
mod ruleset;

use cni::error::code;
use cni::{Context, Error};
use kernel::nft::Socket;

/// Ready when nf_tables answers in this namespace (and, for the
/// firewalld backend, firewalld runs).
fn status(ctx: &Context) -> Result<(), Error> {
    let conf = crate::config::load(ctx)?;
    let sock = Socket::open()
        .and_then(|s| s.generation().map(|_| s))
        .map_err(|e| Error::new(code::NOT_AVAILABLE, format!("firewall: nftables is not usable here: {e}")))?;
    crate::add::check_backend(&conf, &sock).map_err(|e| Error::new(code::NOT_AVAILABLE, e.msg))
}

fn main() {
    cni::skel::run(cni::skel::Commands {
        name: "firewall",
        add: add::add,
        del: del::del,
        check: check::check,
        gc: del::gc,
        status,
    })
}
