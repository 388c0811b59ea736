//! ADD: the IPAM delegate, the bridge, the veth pair, the container's
//! addresses and routes, the gateway, and one nftables batch; every step
//! after a side effect is undone when a later one fails. The delegate
//! (host-local, static) starts once the config, the namespace and a free
//! interface name are known; when the bridge is already there as this
//! config wants it (every ADD but a network's first), it runs beside the
//! veth pair's creation: its process start and its fsync overlap the link
//! work. Otherwise its lease is waited for before the bridge is made or
//! changed.

use crate::config::{self, BridgeConf};
use crate::{isolation, spoofchk, vlan};
use cni::result::Interface;
use cni::{CniResult, Context, Error};
use kernel::netlink::{BridgePortFlags, Handle, Link};
use kernel::netns::Netns;
use kernel::nft::Batch;
use netcore::attach::{attach_veth, detach_veth, ensure_bridge, Attached, BridgeOptions, VethAttach};
use netcore::gateway::{self, ResultSpec};
use netcore::ifconfig::{self, Options};
use netcore::owner::OwnerKey;
use netcore::{ipam, masq, sandbox};
use std::net::IpAddr;

/// Runs ADD.
pub fn add(ctx: &Context) -> Result<CniResult, Error> {
    let conf = config::load(ctx)?;
    let ns = sandbox::open_required(ctx.netns.as_deref())?;
    let ipam_type = ipam::configured(ctx)?;
    let ctr = Handle::in_netns(&ns)?;
    // Checked before the delegate starts: a repeated ADD of a live
    // attachment must fail here, before host-local hands it the live
    // attachment's own lease back (which the failed ADD would release).
    sandbox::ensure_ifname_free(&ctr, &ctx.ifname)?;
    // The delegate then starts before the bridge check, which runs while
    // its process starts: it is the longest step of an ADD. When the check
    // fails, the pending lease's drop waits for it and releases what it
    // reserved.
    let pending = ipam_type.as_deref().map(|t| ipam::Lease::start(ctx, t)).transpose()?;
    let host = Handle::new()?;
    let env = Env { ctx, conf: &conf, ns: &ns, host: &host, ctr: &ctr };
    let Some(pending) = pending else { return env.setup(None) };
    if let Some(br) = env.ready_bridge()? {
        return env.overlapped(pending, &br);
    }
    let lease = pending.finish()?;
    let result = env.setup(Some(lease.result().clone()))?;
    lease.keep();
    Ok(result)
}

struct Env<'a> {
    ctx: &'a Context,
    conf: &'a BridgeConf,
    ns: &'a Netns,
    host: &'a Handle,
    ctr: &'a Handle,
}

impl Env<'_> {
    fn setup(&self, lease: Option<CniResult>) -> Result<CniResult, Error> {
        let br = self.bridge()?;
        let attached = self.attach(&br)?;
        self.finish(&br, &attached, lease)
    }

    /// The delegate's ADD runs while the veth pair is made; the outcome is
    /// the one of running them one after the other: the delegate's error
    /// first (even when the link work failed too), the link work undone
    /// when the delegate fails, the lease released when the link work
    /// fails (`PendingLease`'s drop).
    fn overlapped(&self, pending: ipam::PendingLease<'_>, br: &Link) -> Result<CniResult, Error> {
        let attached = match self.attach(br) {
            Ok(a) => a,
            Err(e) => return Err(pending.finish_if_started().and_then(Result::err).unwrap_or(e)),
        };
        let lease = pending.finish().inspect_err(|_| {
            let _ = detach_veth(self.host, &OwnerKey::of(self.ctx));
        })?;
        let result = self.finish(br, &attached, Some(lease.result().clone()))?;
        lease.keep();
        Ok(result)
    }

    /// The bridge when it exists and needs no change for this config (up,
    /// promiscuous if asked, no VLANs): then an ADD whose IPAM fails
    /// leaves the host as it was once its veth pair is removed again.
    /// Otherwise (a network's first ADD, VLANs) `None`: the delegate runs
    /// first, as the bridge made or changed here would otherwise stay
    /// behind a failed ADD.
    fn ready_bridge(&self) -> Result<Option<Link>, Error> {
        if self.conf.uses_vlans() {
            return Ok(None);
        }
        let found = self.host.link_by_name(&self.conf.bridge)?;
        Ok(found.filter(|l| l.is_kind("bridge") && l.up && (l.promisc || !self.conf.promisc_mode)))
    }

    /// The veth pair on `br`, with its VLANs; removed again on failure.
    fn attach(&self, br: &Link) -> Result<Attached, Error> {
        let (conf, ctx) = (self.conf, self.ctx);
        let port = BridgePortFlags {
            hairpin: conf.hairpin_mode.then_some(true),
            isolated: conf.port_isolation.then_some(true),
            learning: None,
        };
        let attach = VethAttach { owner: &OwnerKey::of(ctx), netns: self.ns, mtu: conf.mtu, mac: conf.mac, port };
        let attached = attach_veth(self.host, self.ctr, br, &attach)?;
        let plan = vlan::port_plan(conf);
        self.host.set_port_vlans(attached.host.index, &plan).map_err(|e| vlan::error(conf, e)).inspect_err(|_| {
            let _ = detach_veth(self.host, &OwnerKey::of(ctx));
        })?;
        Ok(attached)
    }

    /// Addresses, gateway and nftables on an attached pair, which is
    /// removed again when any of it fails.
    fn finish(&self, br: &Link, attached: &Attached, lease: Option<CniResult>) -> Result<CniResult, Error> {
        self.configure(br, attached, lease).inspect_err(|_| {
            let _ = detach_veth(self.host, &OwnerKey::of(self.ctx));
        })
    }

    /// The bridge, made if missing, with `vlan_filtering` on when the
    /// config uses VLANs. An existing bridge is asked first, before
    /// anything else touches it, so a kernel that refuses leaves it as it
    /// was; a bridge this call made is removed again when refused.
    fn bridge(&self) -> Result<Link, Error> {
        let conf = self.conf;
        let mut filtering = false;
        if conf.uses_vlans() {
            if let Some(existing) = self.host.link_by_name(&conf.bridge)?.filter(|l| l.is_kind("bridge")) {
                vlan::enable(self.host, conf, &existing)?;
                filtering = true;
            }
        }
        let opts = BridgeOptions { name: &conf.bridge, mtu: conf.mtu, promisc: conf.promisc_mode };
        let (br, created) = ensure_bridge(self.host, &opts)?;
        if conf.uses_vlans() && !filtering {
            if let Err(e) = vlan::enable(self.host, conf, &br) {
                if created {
                    vlan::remove_if_unused(self.host, &br);
                }
                return Err(e);
            }
        }
        Ok(br)
    }

    fn configure(&self, br: &Link, attached: &Attached, lease: Option<CniResult>) -> Result<CniResult, Error> {
        let (conf, ctx) = (self.conf, self.ctx);
        let mut result = self.result(br, attached, lease.unwrap_or_default());
        if !conf.disable_container_interface {
            let opts = Options { dad: conf.enabledad, announce: true, ..Options::default() };
            ifconfig::configure(self.ns, self.ctr, attached.container.index, &ctx.ifname, &result, 2, &opts)?;
        }
        if conf.is_gateway {
            if conf.vlan != 0 {
                // The bridge itself is not in the access VLAN: the gateway
                // address goes on `<bridge>.<vlan>`, reported as interface 3.
                let gw = vlan::ensure_gateway(self.host, br, conf.vlan, conf.preserve_default_vlan, conf.mtu)
                    .map_err(|e| vlan::error(conf, e))?;
                gateway::ensure_gateways(self.host, &gw, &result.ips, conf.force_address)?;
                result.interfaces.push(Interface { name: gw.name.clone(), mac: gw.mac_string(), ..Default::default() });
            } else {
                gateway::ensure_gateways(self.host, br, &result.ips, conf.force_address)?;
            }
        }
        let owner = OwnerKey::of(ctx);
        let mut batch = Batch::new();
        let ips: Vec<IpAddr> = result.ips.iter().map(|ip| ip.address.ip()).collect();
        if conf.ip_masq && !ips.is_empty() {
            let subnets: Vec<_> = result.ips.iter().map(|ip| ip.address).collect();
            masq::ensure_network(&mut batch, &ctx.conf.name, &subnets)?;
            masq::add_container(&mut batch, &ctx.conf.name, &owner, &ips)?;
        }
        if conf.isolation {
            isolation::ensure(&mut batch, &ctx.conf.name, &conf.bridge)?;
        }
        if conf.macspoofchk {
            let mac = attached.container.mac.ok_or_else(|| {
                Error::plugin(format!("macspoofchk: interface {:?} has no Ethernet address", ctx.ifname))
            })?;
            spoofchk::add(&mut batch, &owner, &attached.host.name, mac)?;
        }
        batch.commit()?;
        Ok(result)
    }

    /// The result, as every container on a bridge gets it (netcore::gateway).
    fn result(&self, br: &Link, attached: &Attached, lease: CniResult) -> CniResult {
        let (conf, ctx) = (self.conf, self.ctx);
        let sandbox = ctx.netns.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let spec = ResultSpec {
            ifname: &ctx.ifname,
            sandbox: &sandbox,
            mtu: conf.mtu,
            is_gateway: conf.is_gateway,
            is_default_gateway: conf.is_default_gateway,
            dns: ctx.conf.dns.as_ref(),
        };
        gateway::bridge_result(br, attached, lease, &spec)
    }
}
