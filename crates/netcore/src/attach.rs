//! A container on a Linux bridge through a veth pair: the shared half of
//! the bridge and vxlan plugins. The host end's name is derived from the
//! attachment, so DEL removes it without the container's namespace.

use crate::naming::bridge_mac;
use crate::owner::{OwnerKey, Stale};
use kernel::error::{Error, Kind, Result};
use kernel::netlink::{BridgePortFlags, BridgeSpec, Handle, Link, Mac, VethSpec};
use kernel::netns::Netns;
use std::collections::HashSet;

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
    /// The attachment: names the host end and is written as its alias.
    pub owner: &'a OwnerKey,
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
/// (no move between namespaces) and the host end enslaved to `bridge` in
/// the same request. A stale host end of this same attachment (a killed
/// ADD) is replaced. On failure the pair is removed again. Requests are
/// few: create, IPv6 off on the host end, up, read the container end, and
/// port flags only when asked for.
///
/// The host end is a bridge port: it carries no address of its own (the
/// gateway is on the bridge), so IPv6 is turned off on it before it goes
/// up. Otherwise each port gets a link-local address and three IPv6 routes,
/// and the kernel walks the whole IPv6 routing table on every port's up,
/// carrier change and removal: each ADD and DEL would cost more with every
/// container already on the host. Frames of either family are still
/// bridged through the port.
pub fn attach_veth(host: &Handle, ctr: &Handle, bridge: &Link, a: &VethAttach<'_>) -> Result<Attached> {
    let veth = create_pair(host, a, Some(bridge.index), None)?;
    let done = (|| {
        disable_ipv6(&veth.name)?;
        host.set_up(veth.index)?;
        if a.port != BridgePortFlags::default() {
            host.set_bridge_port(veth.index, &a.port)?;
        }
        let container = ctr.link(a.owner.ifname())?;
        Ok(Attached { host: veth.clone(), container })
    })();
    if done.is_err() {
        let _ = host.delete_link(veth.index);
    }
    done
}

/// Turns IPv6 off on the host end `name` (still down): no link-local
/// address and no IPv6 routes for a link that needs none. A kernel without
/// IPv6 has nothing to turn off.
pub(crate) fn disable_ipv6(name: &str) -> Result<()> {
    match kernel::sysctl::set(&kernel::sysctl::conf_key(kernel::netlink::Family::V6, name, "disable_ipv6"), "1") {
        Err(e) if e.is_not_found() && !std::path::Path::new("/proc/sys/net/ipv6").exists() => Ok(()),
        other => other,
    }
}

/// Creates one attachment's pair, the host end named from the attachment,
/// down (the caller sets its IPv6, then brings it up), enslaved to `master` when given and with `host_mac` when given; the
/// container end is made in the container. A stale host end of this same
/// attachment (a killed ADD) is replaced. The host end carries the owner
/// key as its alias, which is how GC tells its own veths from another
/// network's. Returns the host end. Shared by [`attach_veth`] and the
/// bridgeless [`crate::p2p`].
pub fn create_pair(host: &Handle, a: &VethAttach<'_>, master: Option<u32>, host_mac: Option<Mac>) -> Result<Link> {
    let name = a.owner.host_veth();
    let alias = a.owner.key();
    let spec = VethSpec {
        name: &name,
        peer_name: a.owner.ifname(),
        peer_netns: Some(a.netns),
        mtu: a.mtu,
        mac: host_mac,
        peer_mac: a.mac,
        // Up once the caller set its IPv6 (see attach_veth, p2p::attach).
        up: false,
        master,
        alias: Some(&alias),
    };
    match host.create_veth(&spec) {
        Err(e) if e.is_exists() => match host.link_by_name(&name)? {
            // Our own leftover (the name is derived from the attachment).
            Some(stale) => {
                host.delete_link(stale.index)?;
                host.create_veth(&spec)
            }
            // The container already has an interface of that name.
            None => Err(e),
        },
        other => other,
    }
}

/// Removes the pair of one attachment by its host end's name; already
/// gone is success.
pub fn detach_veth(host: &Handle, owner: &OwnerKey) -> Result<bool> {
    match host.delete_link(owner.host_veth().as_str()) {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// CHECK of one attachment's veth pair against the previous result: the
/// container interface is a veth with the MAC prevResult gives, its host
/// end (found by name) is its peer and a port of `bridge`, and the
/// container holds the result's addresses and routes. Each mismatch is a
/// CNI error (code 100) saying precisely what drifted.
pub fn verify_veth(
    host: &Handle,
    ctr: &Handle,
    bridge: &Link,
    owner: &OwnerKey,
    prev: &cni::CniResult,
) -> std::result::Result<(), cni::Error> {
    let ifname = owner.ifname();
    let host_end = owner.host_veth();
    let drift = cni::Error::plugin;
    let (c, idx, h) = find_veth_pair(host, ctr, ifname, &host_end, prev)?;
    if h.master != Some(bridge.index) {
        return Err(drift(format!("host end {host_end:?} is not a port of bridge {:?}", bridge.name)));
    }
    if h.link != Some(c.index) {
        return Err(drift(format!("host end {host_end:?} is not the peer of {ifname:?} in the container")));
    }
    crate::ifconfig::verify(ctr, c.index, ifname, prev, idx)
}

/// CHECK's common start for a veth attachment (bridge, ptp): the
/// container interface `ifname` exists, is a veth and has the MAC
/// prevResult gives it, and the host end `host_end` exists. Returns the
/// container end, its index in prevResult's interfaces, and the host end;
/// the caller checks how the two are wired. Each miss is a CNI error
/// (code 100) saying what drifted.
pub fn find_veth_pair(
    host: &Handle,
    ctr: &Handle,
    ifname: &str,
    host_end: &str,
    prev: &cni::CniResult,
) -> std::result::Result<(Link, usize, Link), cni::Error> {
    let drift = cni::Error::plugin;
    let c =
        ctr.link_by_name(ifname)?.ok_or_else(|| drift(format!("interface {ifname:?} is missing in the container")))?;
    if !c.is_kind("veth") {
        return Err(drift(format!("interface {ifname:?} in the container is not a veth")));
    }
    let idx = prev
        .sandbox_interface(ifname)
        .ok_or_else(|| drift(format!("prevResult has no interface {ifname:?} in a sandbox")))?;
    let want_mac = &prev.interfaces[idx].mac;
    if !want_mac.is_empty() && *want_mac != c.mac_string() {
        return Err(drift(format!("interface {ifname:?} has MAC {}, prevResult says {want_mac}", c.mac_string())));
    }
    let h = host
        .link_by_name(host_end)?
        .ok_or_else(|| drift(format!("host end {host_end:?} of the veth pair is missing")))?;
    Ok((c, idx, h))
}

/// GC: deletes the host veths on bridge `bridge` that carry our naming
/// (`veth` + 11 hex), are not in `live` (the valid attachments' host ends)
/// and are surely this network's: their alias is an owner `stale` selects,
/// or, for a veth made before aliases were written (none), its name is in
/// `proven` (the host ends of owners found in this network's own state).
/// Any other veth, another network's on a shared bridge above all, stays.
/// A missing bridge means nothing to do; the first failed deletion is
/// returned after trying the others.
pub fn remove_stale_veths(
    host: &Handle,
    bridge: &str,
    stale: &Stale,
    live: &HashSet<String>,
    proven: &HashSet<String>,
) -> Result<()> {
    let Some(br) = host.link_by_name(bridge)? else { return Ok(()) };
    let mut first: Option<Error> = None;
    for l in host.links()? {
        let ours = l.name.len() == 15 && l.name.starts_with("veth") && l.is_kind("veth");
        if !ours || l.master != Some(br.index) || live.contains(&l.name) {
            continue;
        }
        let remove = match &l.alias {
            Some(owner) => stale.is_stale(owner),
            None => proven.contains(&l.name),
        };
        if remove {
            if let Err(e) = host.delete_link(l.index) {
                if !e.is_not_found() {
                    first.get_or_insert(e);
                }
            }
        }
    }
    first.map_or(Ok(()), Err)
}

/// Adds to a batch the removal of one attachment's nftables elements.
type ElementRemoval<'a> = dyn Fn(&kernel::nft::Socket, &mut kernel::nft::Batch) -> Result<()> + Sync + 'a;

/// DEL's kernel half for a container on a bridge: commits one nftables
/// batch that `elements` fills with the attachment's elements, in a thread
/// started first; runs `release` (the IPAM DEL) in a second thread while
/// this one deletes the veth pair when `release_beside` (the delegate
/// needs no interface: [`crate::ipam::runs_beside_links`]), else before
/// it, as the reference does; only then lets the nftables socket close. The kernel frees deleted elements after an RCU grace period and
/// makes a closing nftables socket wait for that, and deleting a veth
/// waits for grace periods too (~20 ms): started together, the IPAM
/// delegate's process and the two waits overlap instead of adding up.
/// Everything has finished when this returns. Every failure is returned
/// (the IPAM's first, then the veth's, then the elements'); nothing stops
/// at the first.
pub fn detach(
    owner: &OwnerKey,
    elements: Option<&ElementRemoval<'_>>,
    release: impl FnOnce() -> Vec<cni::Error> + Send,
    release_beside: bool,
) -> Vec<cni::Error> {
    std::thread::scope(|s| {
        let (close_tx, close_rx) = std::sync::mpsc::channel::<()>();
        let nft = elements.map(|fill| {
            s.spawn(move || -> Result<()> {
                let sock = kernel::nft::Socket::open()?;
                let mut batch = kernel::nft::Batch::new();
                fill(&sock, &mut batch)?;
                let committed = sock.commit(&batch);
                // Hold the socket open until the veth is gone.
                let _ = close_rx.recv();
                committed
            })
        });
        let delete_veth = || Handle::new().and_then(|host| detach_veth(&host, owner).map(drop));
        let (mut errors, veth) = if release_beside {
            // The delegate is forked by that thread, which lives until it
            // is reaped (its parent-death signal follows the forking thread).
            let released = s.spawn(release);
            let veth = delete_veth();
            let errors = released
                .join()
                .unwrap_or_else(|_| vec![cni::Error::plugin("releasing the address: the worker thread panicked")]);
            (errors, veth)
        } else {
            let errors = release();
            (errors, delete_veth())
        };
        errors.extend(veth.err().map(cni::Error::from));
        drop(close_tx);
        if let Some(t) = nft {
            match t.join() {
                Ok(r) => errors.extend(r.err().map(cni::Error::from)),
                Err(_) => errors.push(cni::Error::plugin("removing nftables elements: the worker thread panicked")),
            }
        }
        errors
    })
}

/// GC's kernel half for the containers of a bridge network: removes the
/// masquerade elements and host veths that `stale` selects. `found` are
/// owners the caller already removed from this network's other state
/// (spoof-check elements): with the masquerade owners, they prove which
/// alias-less veths of the previous release are this network's. Every
/// failure is returned.
pub fn gc_network(stale: &Stale, bridge: &str, valid: &[cni::config::Attachment], found: &[String]) -> Vec<Error> {
    let live: HashSet<String> = valid.iter().map(|a| OwnerKey::valid(stale.network(), a).host_veth()).collect();
    let mut errors = Vec::new();
    let mut owners: Vec<String> = found.to_vec();
    match crate::masq::gc_network(stale) {
        Ok(o) => owners.extend(o),
        Err(e) => errors.push(e),
    }
    let proven: HashSet<String> =
        owners.iter().filter(|o| stale.is_stale(o)).filter_map(|o| crate::owner::host_veth_of(o)).collect();
    errors.extend(Handle::new().and_then(|host| remove_stale_veths(&host, bridge, stale, &live, &proven)).err());
    errors
}
