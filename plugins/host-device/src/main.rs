//! host-device: moves an existing host interface (named by `device`,
//! `hwaddr`, `kernelpath` or `pciBusID`) into the container as
//! `CNI_IFNAME`, with IPAM's addresses and routes, and back on DEL under
//! its original name, MTU and up/down state.

mod add;
mod check;
mod config;
mod del;
mod device;
mod saved;

use cni::skel::Commands;
use cni::{Command, Context, Error};
use netcore::attachment_lock::Locked;
use netcore::ipam;

/// GC: nothing host-wide is ours beyond IPAM's leases (a moved device
/// lives in its container, or comes back with the record DEL restores
/// from).
fn gc(ctx: &Context) -> Result<(), Error> {
    ipam::forward_configured(ctx, Command::Gc)
}

fn main() {
    cni::skel::run(Locked(Commands {
        name: "host-device",
        add: add::add,
        del: del::del,
        check: check::check,
        gc,
        status: ipam::status,
    }))
}
