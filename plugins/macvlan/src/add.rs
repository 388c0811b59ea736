//! ADD: create the macvlan straight into the container namespace under its
//! final name (no link move, ~30 ms saved) while the IPAM delegate runs
//! (started just before, once the name is known to be free: its process
//! start overlaps the link work), then addresses, routes; on any failure
//! the IP is released and the link deleted.

use cni::error::code;
use cni::{CniResult, Context, Error};
use kernel::netlink::{Handle, Link, MacvlanSpec};
use kernel::netns::Netns;
use netcore::ifconfig;
use netcore::ipam;
use netcore::sandbox;

use crate::config::MacvlanConf;
use crate::master;

/// CNI_ARGS keys this plugin (or its IPAM) reads.
pub const KNOWN_ARGS: &[&str] = &["MAC", "IP"];

/// Runs ADD.
pub fn add(ctx: &Context) -> Result<CniResult, Error> {
    ctx.args.check_known(KNOWN_ARGS)?;
    let conf = MacvlanConf::load(ctx)?;
    let ipam_type = ipam::configured(ctx)?;
    // The result could not be printed: fail before making anything.
    cni::result::require_printable(ctx.version, ipam_type.is_some())?;
    let ns = sandbox::open_required(ctx.netns.as_deref())?;
    let ch = Handle::in_netns(&ns)?;
    let host = if conf.link_in_container { None } else { Some(Handle::new()?) };
    let parent = host.as_ref().unwrap_or(&ch);
    let master = master::resolve(parent, &conf)?;

    // Checked before the delegate starts: a second ADD of a live
    // attachment must fail here, before host-local hands it the live
    // attachment's own lease back (and the undo would release it).
    ensure_free(&ch, &ns, &ctx.ifname)?;
    let pending = match ipam_type.as_deref() {
        Some(t) => Some(ipam::Lease::start(ctx, t)?),
        None => None,
    };
    // A failed creation drops `pending`: the delegate is waited for and
    // what it leased released; the link's error is returned, as when the
    // link was made before the delegate ran.
    let link = create(parent, &ch, &ns, &conf, master.index, &ctx.ifname)?;
    let configured = attach(ctx, &conf, &ns, &ch, &link, pending);
    if configured.is_err() {
        if let Err(e) = ch.delete_link(link.index) {
            log::warn!("deleting {:?} after a failed ADD: {e}", ctx.ifname);
        }
    }
    configured
}

/// Creates the macvlan as `ifname` in the container and returns it.
fn create(
    parent: &Handle,
    ch: &Handle,
    ns: &Netns,
    conf: &MacvlanConf,
    master: u32,
    ifname: &str,
) -> Result<Link, Error> {
    let spec = MacvlanSpec {
        name: ifname,
        master,
        mode: conf.mode,
        mtu: conf.mtu,
        mac: conf.mac,
        // With linkInContainer the parent handle already is the container.
        netns: if conf.link_in_container { None } else { Some(ns) },
        bcqueuelen: conf.bcqueuelen,
    };
    match parent.create_macvlan(&spec) {
        Ok(()) => {}
        Err(e) if e.is_exists() => {
            ensure_free(ch, ns, ifname)?;
            // Some kernels check a new link's name on the creating side too
            // (why the reference always uses a temporary name): do that.
            let tmp = temp_name();
            parent.create_macvlan(&MacvlanSpec { name: &tmp, ..spec })?;
            if let Err(e) = ch.rename(tmp.as_str(), ifname) {
                let _ = ch.delete_link(tmp.as_str());
                return Err(e.into());
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(ch.link(ifname)?)
}

/// Refuses an `ifname` the container already has (code 50).
fn ensure_free(ch: &Handle, ns: &Netns, ifname: &str) -> Result<(), Error> {
    if ch.link_by_name(ifname)?.is_some() {
        return Err(Error::new(code::CONFLICT, format!("container interface name provided ({ifname}) already exists"))
            .with_details(format!("netns {} already has a link called {ifname:?}", ns.path().display())));
    }
    Ok(())
}

/// A name unlikely to be taken, for the fallback above.
fn temp_name() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("mv{:08x}", nanos ^ std::process::id().rotate_left(16))
}

/// Everything after the link exists: IPAM (released again if a later step
/// fails), sysctls, addresses, up, routes. Builds the result.
fn attach(
    ctx: &Context,
    conf: &MacvlanConf,
    ns: &Netns,
    ch: &Handle,
    link: &Link,
    pending: Option<ipam::PendingLease<'_>>,
) -> Result<CniResult, Error> {
    let sandbox = ns.path().display().to_string();
    let mut result = CniResult::container_only(&ctx.ifname, link.mac_string(), sandbox, ctx.conf.dns.as_ref());
    let Some(pending) = pending else {
        // L2 only: an interface without addresses, just up.
        ch.set_up(link.index)?;
        return Ok(result);
    };
    let lease = pending.finish()?;
    result.take_lease(lease.result(), 0);
    let opts = ifconfig::Options { dad: conf.enable_dad, announce: true, announce_v6: true, ..Default::default() };
    ifconfig::configure(ns, ch, link.index, &ctx.ifname, &result, 0, &opts)?;
    lease.keep();
    Ok(result)
}
