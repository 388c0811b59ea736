//! bridge: a Linux bridge on the host, a veth pair per container, the
//! bridge as gateway, masquerade to the outside (the `docker0` model).

mod add;
mod check;
mod config;
mod del;
mod isolation;
mod spoofchk;
mod vlan;

use cni::skel::Commands;
use netcore::{attachment_lock::Locked, ipam};

fn main() {
    cni::skel::run(Locked(Commands {
        name: "bridge",
        add: add::add,
        del: del::del,
        check: check::check,
        gc: del::gc,
        status: ipam::status,
    }))
}
