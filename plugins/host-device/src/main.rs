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

use cni::{CniResult, Command, Context, Error, Plugin};
use netcore::{attachment_lock, ipam};

/// The plugin.
pub struct HostDevice;

/// Forwards `command` to the configured IPAM plugin, if there is one.
fn to_ipam(ctx: &Context, command: Command) -> Result<(), Error> {
    match ipam::configured(ctx)? {
        Some(t) => ipam::forward(ctx, &t, command),
        None => Ok(()),
    }
}

impl Plugin for HostDevice {
    fn name(&self) -> &'static str {
        "host-device"
    }

    // ADD, DEL and CHECK of one attachment never interleave (a DEL sent
    // while its ADD runs waits for it, then undoes it).
    fn add(&self, ctx: &Context) -> Result<CniResult, Error> {
        let _held = attachment_lock::of(ctx)?;
        add::add(ctx)
    }

    fn del(&self, ctx: &Context) -> Result<(), Error> {
        let held = attachment_lock::of(ctx)?;
        let done = del::del(ctx);
        held.remove();
        done
    }

    fn check(&self, ctx: &Context) -> Result<(), Error> {
        let _held = attachment_lock::of(ctx)?;
        check::check(ctx)
    }

    // Nothing host-wide is ours beyond IPAM's leases: a moved device lives
    // in its container (or comes back with the record DEL restores from).
    fn gc(&self, ctx: &Context) -> Result<(), Error> {
        let done = to_ipam(ctx, Command::Gc);
        attachment_lock::gc_of(ctx);
        done
    }

    fn status(&self, ctx: &Context) -> Result<(), Error> {
        to_ipam(ctx, Command::Status)
    }
}

fn main() {
    cni::skel::run(HostDevice)
}
