//! macvlan: each container gets a macvlan sub-interface of a host NIC, with
//! its own MAC, on the same L2 segment as the host (underlay networking).

mod add;
mod check;
mod config;
mod del;
mod master;

use cni::skel::Commands;
use cni::{Command, Context, Error};
use netcore::{attachment_lock::Locked, ipam};

/// GC: the links went with their namespaces; only leases remain.
fn gc(ctx: &Context) -> Result<(), Error> {
    ipam::forward_configured(ctx, Command::Gc)
}

fn main() {
    cni::skel::run(Locked(Commands {
        name: "macvlan",
        add: add::add,
        del: del::del,
        check: check::check,
        gc,
        status: ipam::status,
    }))
}
