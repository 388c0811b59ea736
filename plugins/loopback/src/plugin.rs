//! ADD, DEL and CHECK of the loopback interface. `lo` is the same in every
//! namespace, so the plugin ignores `CNI_IFNAME` as the reference does.

use cni::result::{Interface, IpConfig};
use cni::{CniResult, Context, Error, Plugin};
use kernel::netlink::Handle;
use netcore::sandbox;

/// The plugin; it has no options.
pub struct Loopback;

const LO: &str = "lo";

fn lo_handle(ctx: &Context) -> Result<(Handle, u32), Error> {
    let ns = sandbox::open_required(ctx.netns.as_deref())?;
    let h = Handle::in_netns(&ns)?;
    let lo = h.link_by_name(LO)?.ok_or_else(|| Error::plugin(format!("no {LO} in netns {}", ns.path().display())))?;
    Ok((h, lo.index))
}

impl Plugin for Loopback {
    fn name(&self) -> &'static str {
        "loopback"
    }

    fn add(&self, ctx: &Context) -> Result<CniResult, Error> {
        ctx.args.check_known(&[])?;
        let prev = ctx.prev_result()?;
        let (h, index) = lo_handle(ctx)?;
        let addrs = h.addresses(index)?;
        if let Some(a) = addrs.iter().find(|a| !a.net.ip().is_loopback()) {
            return Err(Error::invalid_config(format!("{LO} holds a non-loopback address {}", a.net))
                .with_details("refusing to manage a loopback interface that carries other addresses"));
        }
        h.set_up(index)?;
        if let Some(prev) = prev {
            return Ok(prev);
        }
        // The kernel adds 127.0.0.1/8 and ::1/128 when lo goes up.
        let addrs = h.addresses(index)?;
        let sandbox = ctx.netns.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let mut ips = Vec::new();
        for v4 in [true, false] {
            if let Some(a) = addrs.iter().find(|a| a.net.is_ipv4() == v4) {
                ips.push(IpConfig { interface: Some(0), address: a.net, gateway: None });
            }
        }
        Ok(CniResult {
            interfaces: vec![Interface {
                name: LO.into(),
                mac: "00:00:00:00:00:00".into(),
                sandbox,
                ..Default::default()
            }],
            ips,
            ..Default::default()
        })
    }

    fn del(&self, ctx: &Context) -> Result<(), Error> {
        let Some(ns) = sandbox::open_for_del(ctx.netns.as_deref())? else {
            return Ok(());
        };
        let h = Handle::in_netns(&ns)?;
        match h.link_by_name(LO)? {
            Some(lo) => Ok(h.set_down(lo.index)?),
            None => Ok(()),
        }
    }

    fn check(&self, ctx: &Context) -> Result<(), Error> {
        ctx.require_prev_result()?;
        let (h, index) = lo_handle(ctx)?;
        match h.link_by_index(index)? {
            Some(l) if l.up => Ok(()),
            _ => Err(Error::plugin(format!("{LO} is down in netns {}", ctx.netns.as_ref().unwrap().display()))),
        }
    }
}
