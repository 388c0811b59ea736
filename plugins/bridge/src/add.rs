//! ADD: IPAM first, then the bridge, the veth pair, the container's
//! addresses and routes, the gateway, and one nftables batch; every step
//! after a side effect is undone when a later one fails.

use crate::config::{self, BridgeConf};
use crate::isolation;
use cni::error::code;
use cni::{CniResult, Context, Error};
use netcore::attach::{attach_veth, detach_veth, ensure_bridge, Attached, BridgeOptions, VethAttach};
use netcore::gateway::{self, ResultSpec};
use netcore::ifconfig::{self, Options};
use netcore::naming::attachment_key;
use netcore::netlink::{BridgePortFlags, Handle, Link};
use netcore::netns::Netns;
use netcore::nft::Batch;
use netcore::{ipam, masq, sandbox};
use std::net::IpAddr;

/// Runs ADD.
pub fn add(ctx: &Context) -> Result<CniResult, Error> {
    let conf = config::load(ctx)?;
    let ns = sandbox::open_required(ctx.netns.as_deref())?;
    let ctr = Handle::in_netns(&ns)?;
    if ctr.link_by_name(&ctx.ifname)?.is_some() {
        return Err(Error::new(
            code::CONFLICT,
            format!("container veth name provided ({}) already exists", ctx.ifname),
        ));
    }
    let host = Handle::new()?;
    let env = Env { ctx, conf: &conf, ns: &ns, host: &host, ctr: &ctr };
    match ipam::configured(ctx)? {
        Some(t) => ipam::add_with_rollback(ctx, &t, |lease| env.setup(Some(lease))),
        None => env.setup(None),
    }
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
        let (conf, ctx) = (self.conf, self.ctx);
        let (br, created) =
            ensure_bridge(self.host, &BridgeOptions { name: &conf.bridge, mtu: conf.mtu, promisc: conf.promisc_mode })?;
        if conf.uses_vlans() {
            let e = unsupported_vlans(conf);
            if created {
                let _ = self.host.delete_link(br.index);
            }
            return Err(e);
        }
        let port = BridgePortFlags {
            hairpin: conf.hairpin_mode.then_some(true),
            isolated: conf.port_isolation.then_some(true),
            learning: None,
        };
        let attach = VethAttach {
            network: &ctx.conf.name,
            container_id: &ctx.container_id,
            ifname: &ctx.ifname,
            netns: self.ns,
            mtu: conf.mtu,
            mac: conf.mac,
            port,
        };
        let attached = attach_veth(self.host, self.ctr, &br, &attach)?;
        self.configure(&br, &attached, lease).inspect_err(|_| {
            let _ = detach_veth(self.host, &ctx.conf.name, &ctx.container_id, &ctx.ifname);
        })
    }

    fn configure(&self, br: &Link, attached: &Attached, lease: Option<CniResult>) -> Result<CniResult, Error> {
        let (conf, ctx) = (self.conf, self.ctx);
        let mut result = self.result(br, attached, lease.unwrap_or_default());
        if !conf.disable_container_interface {
            let opts = Options { dad: conf.enabledad, announce: true, ..Options::default() };
            ifconfig::configure(self.ns, self.ctr, attached.container.index, &ctx.ifname, &result, 2, &opts)?;
        }
        if conf.is_gateway {
            gateway::ensure_gateways(self.host, br, &result.ips, conf.force_address)?;
        }
        let mut batch = Batch::new();
        let ips: Vec<IpAddr> = result.ips.iter().map(|ip| ip.address.ip()).collect();
        if conf.ip_masq && !ips.is_empty() {
            let subnets: Vec<_> = result.ips.iter().map(|ip| ip.address).collect();
            let owner = attachment_key(&ctx.conf.name, &ctx.container_id, &ctx.ifname);
            masq::ensure_network(&mut batch, &ctx.conf.name, &subnets)?;
            masq::add_container(&mut batch, &ctx.conf.name, &owner, &ips)?;
        }
        if conf.isolation {
            isolation::ensure(&mut batch, &ctx.conf.name, &conf.bridge)?;
        }
        batch.commit()?;
        // The container end's MAC may only be known now (random).
        if let Some(l) = self.ctr.link_by_index(attached.container.index)? {
            result.interfaces[2].mac = l.mac_string();
        }
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

/// The error for VLAN options on a kernel without bridge VLAN filtering.
fn unsupported_vlans(conf: &BridgeConf) -> Error {
    let field = if conf.vlan != 0 { "vlan" } else { "vlanTrunk" };
    Error::new(
        code::UNSUPPORTED_KERNEL,
        format!("bridge: field {field:?} needs bridge VLAN filtering, which this kernel does not provide"),
    )
    .with_details("nothing was changed; remove the VLAN options or use a kernel with CONFIG_BRIDGE_VLAN_FILTERING")
}
