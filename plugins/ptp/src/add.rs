//! ADD: IPAM (a ptp container needs an address; its delegate runs while
//! the veth pair is made), then the pair's host side (gateways, host
//! routes, forwarding), the container side, and masquerade in one nftables
//! batch; the pair is removed and the lease released when a later step
//! fails.

use crate::config;
use cni::result::Interface;
use cni::{CniResult, Context, Error};
use kernel::netlink::{BridgePortFlags, Handle};
use kernel::nft::Batch;
use netcore::attach::{detach_veth, VethAttach};
use netcore::owner::OwnerKey;
use netcore::{ipam, masq, p2p, sandbox};
use std::net::IpAddr;

/// Runs ADD.
pub fn add(ctx: &Context) -> Result<CniResult, Error> {
    let conf = config::load(ctx)?;
    let ipam_type = ipam::configured(ctx)?
        .ok_or_else(|| Error::invalid_config("ptp: an \"ipam\" section with a type is required"))?;
    let ns = sandbox::open_required(ctx.netns.as_deref())?;
    let ctr = Handle::in_netns(&ns)?;
    sandbox::ensure_ifname_free(&ctr, &ctx.ifname)?;
    let host = Handle::new()?;
    let (net, ifname) = (&ctx.conf.name, &ctx.ifname);
    let owner = OwnerKey::of(ctx);
    let attach = VethAttach { owner: &owner, netns: &ns, mtu: conf.mtu, mac: None, port: BridgePortFlags::default() };
    // The delegate runs while the pair is made (the pair needs no address).
    // The outcome is the one of running them one after the other: the
    // delegate's error (or a lease without usable hops) first, even when
    // the pair failed too; the pair removed when the lease fails; the
    // lease released when anything fails (`PendingLease`/`Lease` drops).
    let pending = ipam::Lease::start(ctx, &ipam_type)?;
    let veth = match p2p::create(&host, &attach) {
        Ok(v) => v,
        Err(e) => {
            if let Some(lease) = pending.finish_if_started() {
                p2p::hops(&lease?.result().ips)?;
            }
            return Err(e.into());
        }
    };
    let leased = pending.finish().and_then(|lease| Ok((p2p::hops(&lease.result().ips)?, lease)));
    let (hops, lease) = leased.inspect_err(|_| {
        let _ = detach_veth(&host, &owner);
    })?;
    let attached = p2p::attach_created(&host, &ctr, &attach, veth, &hops)?;
    let sandbox = ctx.netns.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let dns = match &ctx.conf.dns {
        Some(d) if !d.is_empty() => d.clone(),
        _ => lease.result().dns.clone(),
    };
    let result = CniResult {
        interfaces: vec![
            Interface { name: attached.host.name.clone(), mac: attached.host.mac_string(), ..Default::default() },
            Interface {
                name: ifname.clone(),
                mac: attached.container.mac_string(),
                mtu: conf.mtu,
                sandbox,
                ..Default::default()
            },
        ],
        ips: p2p::container_ips(&hops, 1),
        routes: lease.result().routes.clone(),
        dns,
    };
    let configured = (|| -> Result<(), Error> {
        p2p::configure_container(&ns, &ctr, attached.container.index, ifname, &result, 1, &hops)?;
        if conf.ip_masq {
            let ips: Vec<IpAddr> = hops.iter().map(|h| h.address).collect();
            let subnets: Vec<_> = hops.iter().map(|h| h.subnet).collect();
            let mut batch = Batch::new();
            masq::ensure_network(&mut batch, net, &subnets)?;
            masq::add_container(&mut batch, net, &owner, &ips)?;
            batch.commit()?;
        }
        Ok(())
    })();
    if let Err(e) = configured {
        let _ = detach_veth(&host, &owner);
        return Err(e);
    }
    lease.keep();
    Ok(result)
}
