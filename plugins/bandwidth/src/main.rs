//! bandwidth: a chained plugin that shapes the traffic of the container
//! interface the previous plugin made. Traffic into the container is
//! shaped on the host end of its veth; traffic out of it is redirected
//! from the host end's ingress to an ifb and shaped there, since the
//! kernel shapes only what a device sends.

mod add;
mod check;
mod config;
mod del;
mod host;

use cni::skel::Commands;
use netcore::attachment_lock::Locked;

fn main() {
    cni::skel::run(Locked(Commands {
        name: "bandwidth",
        add: add::add,
        del: del::del,
        check: check::check,
        gc: del::gc,
        status: cni::skel::nothing,
    }))
}
