//! A container on a Linux bridge through a veth pair: the shared half of
//! the bridge and vxlan plugins. The host end's name is derived from the
//! attachment, so DEL removes it without the container's namespace.

use crate::error::{Error, Kind, Result};
use crate::naming::{bridge_mac, host_veth_name};
use crate::netlink::{BridgePortFlags, BridgeSpec, Handle, Link, Mac, VethSpec};
use crate::netns::Netns;

/// How to make the bridge when it is missing.
#[derive(Debug, Clone, Copy, Default)]
pub struct BridgeOptions<'a> {
    /// Bridge name.
    pub name: &'a str,
    /// MTU at creation (an existing bridge keeps its own).
    pub mtu: Option<u32>,
    /// Promiscuous mode (`promiscMode`).
    pub promisc: bool,
}

/// Returns the bridge, creating it when missing; `true` when this call
/// created it (so a failed ADD may remove it again). Concurrent ADDs that
/// race to create it all succeed on the same bridge.
pub fn ensure_bridge(h: &Handle, opts: &BridgeOptions<'_>) -> Result<(Link, bool)> {
    let existing = h.link_by_name(opts.name)?;
    let created = existing.is_none();
    let mut br = match existing {
        Some(l) if l.is_kind("bridge") => l,
        Some(l) => {
            let kind = l.kind.unwrap_or_else(|| "device without a driver kind".into());
            return Err(Error::new(
                Kind::Invalid,
                format!("using bridge {:?}", opts.name),
                format!("a link with that name exists and is a {kind}, not a bridge"),
            ));
        }
        None => {
            let mac = Some(bridge_mac(opts.name));
            h.create_bridge(&BridgeSpec { name: opts.name, mtu: opts.mtu, mac, up: true })?
        }
    };
    if !br.up {
        h.set_up(br.index)?;
        br.up = true;
    }
    if opts.promisc && !br.promisc {
        h.set_promisc(br.index, true)?;
        br.promisc = true;
    }
    Ok((br, created))
}

/// One container's veth pair, as ADD asks for it.
#[derive(Debug, Clone, Copy)]
pub struct VethAttach<'a> {
    /// Network name (part of the host end's name).
    pub network: &'a str,
    /// Container id.
    pub container_id: &'a str,
    /// Interface name in the container.
    pub ifname: &'a str,
    /// The container's namespace.
    pub netns: &'a Netns,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// MAC of the container end.
    pub mac: Option<Mac>,
    /// Port flags of the host end on the bridge.
    pub port: BridgePortFlags,
}

/// What [`attach_veth`] made.
#[derive(Debug, Clone)]
pub struct Attached {
    /// The host end, enslaved and up.
    pub host: Link,
    /// The container end (index in the container's namespace).
    pub container: Link,
}

/// Creates the pair with the container end made directly in the container
/// (no move between namespaces), enslaves the host end to `bridge` and
/// brings it up. A stale host end of this same attachment (a killed ADD)
/// is replaced. On failure the pair is removed again.
pub fn attach_veth(host: &Handle, ctr: &Handle, bridge: &Link, a: &VethAttach<'_>) -> Result<Attached> {
    let name = host_veth_name(a.network, a.container_id, a.ifname);
    if let Some(stale) = host.link_by_name(&name)? {
        host.delete_link(stale.index)?;
    }
    let spec = VethSpec {
        name: &name,
        peer_name: a.ifname,
        peer_netns: Some(a.netns),
        mtu: a.mtu,
        mac: None,
        peer_mac: a.mac,
        up: false,
    };
    let veth = host.create_veth(&spec)?;
    let done = (|| {
        host.set_master(veth.index, bridge.index)?;
        if a.port != BridgePortFlags::default() {
            host.set_bridge_port(veth.index, &a.port)?;
        }
        host.set_up(veth.index)?;
        let container = ctr.link(a.ifname)?;
        let host_end = host.link(veth.index)?;
        Ok(Attached { host: host_end, container })
    })();
    if done.is_err() {
        let _ = host.delete_link(veth.index);
    }
    done
}

/// Removes the pair of one attachment by its host end's name; already
/// gone is success.
pub fn detach_veth(host: &Handle, network: &str, container_id: &str, ifname: &str) -> Result<bool> {
    match host.delete_link(host_veth_name(network, container_id, ifname).as_str()) {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}
