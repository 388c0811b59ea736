//! CHECK: everything prevResult says ADD made is still there, and each
//! mismatch is reported precisely.

use crate::config::{self, BridgeConf};
use crate::{spoofchk, vlan};
use cni::{Command, Context, Error};
use kernel::netlink::vlan::DEFAULT_VLAN;
use kernel::netlink::{Handle, Link};
use netcore::attach::verify_veth;
use netcore::owner::OwnerKey;
use netcore::{ipam, masq, sandbox};

fn drift(msg: String) -> Error {
    Error::plugin(msg)
}

/// Runs CHECK.
pub fn check(ctx: &Context) -> Result<(), Error> {
    let conf = config::load(ctx)?;
    let prev = ctx.require_prev_result()?;
    ipam::forward_configured(ctx, Command::Check)?;
    let host = Handle::new()?;
    let br =
        host.link_by_name(&conf.bridge)?.ok_or_else(|| drift(format!("bridge {:?} does not exist", conf.bridge)))?;
    if !br.is_kind("bridge") {
        return Err(drift(format!("{:?} is not a bridge", conf.bridge)));
    }
    if let Some(want) = prev.interfaces.iter().find(|i| i.name == conf.bridge && i.sandbox.is_empty()) {
        if !want.mac.is_empty() && want.mac != br.mac_string() {
            return Err(drift(format!(
                "bridge {:?} has MAC {}, prevResult says {}",
                br.name,
                br.mac_string(),
                want.mac
            )));
        }
    }
    if conf.promisc_mode && !br.promisc {
        return Err(drift(format!("bridge {:?} is not promiscuous (promiscMode)", br.name)));
    }
    let ns = sandbox::open_required(ctx.netns.as_deref())?;
    let ctr = Handle::in_netns(&ns)?;
    let owner = OwnerKey::of(ctx);
    verify_veth(&host, &ctr, &br, &owner, &prev)?;
    let host_end = owner.host_veth();
    if conf.uses_vlans() {
        check_vlans(&host, &conf, &br, &host_end)?;
    }
    if conf.macspoofchk {
        let mac = ctr.link(ctx.ifname.as_str())?.mac.ok_or_else(|| {
            drift(format!("interface {:?} has no Ethernet address to check (macspoofchk)", ctx.ifname))
        })?;
        if let Some(what) = spoofchk::missing(&owner, &host_end, mac)? {
            return Err(drift(format!("macspoofchk: {what}")));
        }
    }
    if conf.ip_masq {
        masq::check_container(&owner, &prev, &ctx.ifname)?;
    }
    Ok(())
}

/// The bridge filters VLANs and the host port carries what the config
/// asks: the access VLAN as PVID and untagged, every trunk VLAN, and no
/// VLAN 1 unless it is to be kept.
fn check_vlans(host: &Handle, conf: &BridgeConf, br: &Link, host_end: &str) -> Result<(), Error> {
    if !host.vlan_filtering(br.index)? {
        return Err(drift(format!("bridge {:?} does not filter VLANs (vlan_filtering is 0)", br.name)));
    }
    let port = host.link(host_end)?;
    let have = host.port_vlans(port.index)?;
    let plan = vlan::port_plan(conf);
    if let Some(vid) = plan.access {
        if !have.iter().any(|v| v.vid == vid && v.pvid && v.untagged) {
            return Err(drift(format!("port {host_end:?} does not have VLAN {vid} as PVID untagged")));
        }
    }
    if let Some(vid) = plan.trunk.iter().find(|t| !have.iter().any(|v| v.vid == **t)) {
        return Err(drift(format!("port {host_end:?} does not carry trunk VLAN {vid}")));
    }
    if plan.removes_default() && have.iter().any(|v| v.vid == DEFAULT_VLAN) {
        return Err(drift(format!("port {host_end:?} is still in VLAN {DEFAULT_VLAN} (preserveDefaultVlan is off)")));
    }
    Ok(())
}
