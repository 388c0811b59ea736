//! ptp: a veth pair per container and no bridge. The container holds its
//! address as /32 (/128) and a route to the host end, which holds the
//! gateway address; the host routes each container address to its host
//! end, so containers on one host reach each other through the host.

mod add;
mod check;
mod config;
mod del;

use cni::skel::Commands;
use netcore::{attachment_lock::Locked, ipam};

fn main() {
    cni::skel::run(Locked(Commands {
        name: "ptp",
        add: add::add,
        del: del::del,
        check: check::check,
        gc: del::gc,
        status: ipam::status,
    }))
}
