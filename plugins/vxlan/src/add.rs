//! ADD: check everything that can be checked first (config, underlay,
//! peer table, the container's namespace), then bring the host side of
//! the overlay in line under the host lock (the peer entries only when the
//! table changed since it was last applied), then attach the container to
//! the local bridge as the bridge plugin does (netcore's attach, ifconfig
//! and gateway modules), with an address from this host's subnet. Every
//! step after the IPAM lease is undone when a later one fails; the host
//! side stays, as it serves every container of the host.

use crate::config::{self, VxConf};
use crate::overlay::{self, HostSide};
use crate::underlay::{self, Underlay};
use crate::{lock, peers};
use cni::result::Route;
use cni::{CniResult, Context, Error};
use kernel::netlink::{BridgePortFlags, Handle};
use kernel::netns::Netns;
use kernel::nft::Batch;
use netcore::attach::{attach_veth, detach_veth, Attached, VethAttach};
use netcore::gateway::{self, ResultSpec};
use netcore::ifconfig::{self, Options};
use netcore::owner::OwnerKey;
use netcore::{ipam, masq, sandbox};
use std::net::IpAddr;

/// Runs ADD.
pub fn add(ctx: &Context) -> Result<CniResult, Error> {
    let conf = config::load(ctx)?;
    let host = Handle::new()?;
    let ul = underlay::resolve(&host, &conf)?;
    let table = peers::read(&conf, ul.ip)?;
    // A table already applied was valid then; a new one is checked here,
    // before anything changes.
    let parsed = if overlay::table_applied(&host, &conf, &table)? { None } else { Some(table.parse()?) };
    let ns = sandbox::open_required(ctx.netns.as_deref())?;
    let ctr = Handle::in_netns(&ns)?;
    sandbox::ensure_ifname_free(&ctr, &ctx.ifname)?;
    let side = {
        let _held = lock::lock()?;
        overlay::ensure(&host, &conf, &ul, overlay::Peers::IfChanged { table: &table, parsed: parsed.as_deref() })?
    };
    let env = Env { ctx, conf: &conf, ul: &ul, side: &side, ns: &ns, host: &host, ctr: &ctr };
    // The delegate runs while the veth pair is made (the bridge is there:
    // the host side above made it).
    let pending = ipam::Lease::start_stdin(ctx, &conf.ipam.plugin, &conf.ipam.stdin)?;
    env.attach(pending)
}

struct Env<'a> {
    ctx: &'a Context,
    conf: &'a VxConf,
    ul: &'a Underlay,
    side: &'a HostSide,
    ns: &'a Netns,
    host: &'a Handle,
    ctr: &'a Handle,
}

impl Env<'_> {
    /// Makes the veth pair while the delegate runs, then configures it
    /// with the lease. The outcome is the one of running them one after
    /// the other: the delegate's error (or a lease outside this host's
    /// subnet) first, even when the link work failed too; the pair removed
    /// when anything after it fails; the lease released when the ADD fails
    /// (`PendingLease` and `Lease` drops).
    fn attach(&self, pending: ipam::PendingLease<'_>) -> Result<CniResult, Error> {
        let ctx = self.ctx;
        let a = VethAttach {
            owner: &OwnerKey::of(ctx),
            netns: self.ns,
            mtu: Some(self.ul.mtu),
            mac: None,
            port: BridgePortFlags { hairpin: self.conf.hairpin_mode.then_some(true), ..Default::default() },
        };
        let attached = match attach_veth(self.host, self.ctr, &self.side.bridge, &a) {
            Ok(attached) => attached,
            Err(e) => {
                if let Some(lease) = pending.finish_if_started() {
                    self.own_subnet(lease?.result().clone())?;
                }
                return Err(e.into());
            }
        };
        let undo = |_: &Error| {
            let _ = detach_veth(self.host, &OwnerKey::of(ctx));
        };
        let lease = pending.finish().inspect_err(undo)?;
        let own = self.own_subnet(lease.result().clone()).inspect_err(undo)?;
        let result = self.configure(&attached, own).inspect_err(undo)?;
        lease.keep();
        Ok(result)
    }

    /// Every leased address must be in this host's subnet (another IPAM
    /// could hand out anything), and its gateway is the bridge's address.
    fn own_subnet(&self, mut lease: CniResult) -> Result<CniResult, Error> {
        for ip in &mut lease.ips {
            let s = self.conf.subnet_of(ip.address.is_ipv4()).filter(|s| s.net.contains(ip.address.ip()));
            let Some(s) = s else {
                return Err(Error::plugin(format!(
                    "IPAM plugin {:?} returned {}, which is not in this host's subnet ({})",
                    self.conf.ipam.plugin,
                    ip.address,
                    config::show(&self.conf.subnets.iter().map(|s| s.net).collect::<Vec<_>>())
                )));
            };
            ip.gateway = Some(s.gateway);
        }
        Ok(lease)
    }

    fn configure(&self, attached: &Attached, lease: CniResult) -> Result<CniResult, Error> {
        let (conf, ctx) = (self.conf, self.ctx);
        let sandbox = ctx.netns.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let spec = ResultSpec {
            ifname: &ctx.ifname,
            sandbox: &sandbox,
            mtu: Some(self.ul.mtu),
            is_gateway: true,
            is_default_gateway: conf.is_default_gateway,
            dns: ctx.conf.dns.as_ref(),
        };
        let mut result = gateway::bridge_result(&self.side.bridge, attached, lease, &spec);
        // The cluster is reached through the gateway even without a default route.
        for c in &conf.cluster {
            let gw = result.ips.iter().find(|ip| ip.address.is_ipv4() == c.is_ipv4()).and_then(|ip| ip.gateway);
            if let (Some(gw), false) = (gw, result.routes.iter().any(|r| r.dst == *c)) {
                result.routes.push(Route::new(*c, Some(gw)));
            }
        }
        let opts = Options { dad: conf.enable_dad, announce: true, ..Options::default() };
        ifconfig::configure(self.ns, self.ctr, attached.container.index, &ctx.ifname, &result, 2, &opts)?;
        let ips: Vec<IpAddr> = result.ips.iter().map(|ip| ip.address.ip()).collect();
        if conf.ip_masq && !ips.is_empty() {
            let mut batch = Batch::new();
            let owner = OwnerKey::of(ctx);
            // Exempt the whole cluster, not only this host's subnet: pod to
            // pod traffic across hosts keeps its source address.
            masq::ensure_network(&mut batch, &ctx.conf.name, &conf.cluster)?;
            masq::add_container(&mut batch, &ctx.conf.name, &owner, &ips)?;
            batch.commit()?;
        }
        Ok(result)
    }
}
