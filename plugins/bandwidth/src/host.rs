//! Which devices an attachment's shaping lives on: the host end of the
//! container's veth (found as the reference finds it: the peer of the
//! container interface, which prevResult must list without a sandbox) and
//! the ifb, named from the attachment and owned through its alias.

use cni::result::CniResult;
use cni::{Context, Error};
use kernel::netlink::{Handle, Link};
use netcore::naming::fnv1a64;
use netcore::owner::OwnerKey;
use netcore::sandbox;

/// Prefix of our ifb names (the reference's too, so operators recognise them).
pub const IFB_PREFIX: &str = "bwp";

/// The ifb of an attachment: `bwp` + 12 hex digits of a hash of (network,
/// container id, ifname); 15 bytes, the kernel's limit. The interface name
/// is part of it, so two interfaces of one container never share an ifb
/// (the reference hashes only network and container id).
pub fn ifb_name(owner: &OwnerKey) -> String {
    let h = fnv1a64(&["bandwidth", owner.network(), owner.container_id(), owner.ifname()]);
    format!("{IFB_PREFIX}{:012x}", h >> 16)
}

/// The host end of the container's interface: the veth peer of
/// `CNI_IFNAME` in the container, which must be one of prevResult's
/// interfaces without a sandbox.
pub fn host_end(ctx: &Context, host: &Handle, prev: &CniResult) -> Result<Link, Error> {
    let ns = sandbox::open_required(ctx.netns.as_deref())?;
    let ctr = Handle::in_netns(&ns)?;
    let ifname = &ctx.ifname;
    let Some(inside) = ctr.link_by_name(ifname)? else {
        return Err(Error::plugin(format!("container interface {ifname:?} not found in {}", ns.path().display())));
    };
    let peer = match (inside.is_kind("veth"), inside.link) {
        (true, Some(p)) => p,
        _ => return Err(Error::plugin(format!("container interface {ifname:?} has no veth peer: nothing to shape"))),
    };
    let link = host
        .link_by_index(peer)?
        .ok_or_else(|| Error::plugin(format!("the veth peer of {ifname:?} (#{peer}) is not in the host namespace")))?;
    if !prev.interfaces.iter().any(|i| i.sandbox.is_empty() && i.name == link.name) {
        return Err(Error::plugin(format!(
            "the veth peer of {ifname:?} ({:?}) is not among prevResult's host interfaces",
            link.name
        )));
    }
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifb_names_fit_and_differ() {
        let a = ifb_name(&OwnerKey::new("net", "c1", "eth0"));
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("bwp"));
        assert_ne!(a, ifb_name(&OwnerKey::new("net", "c1", "eth1")));
        assert_ne!(a, ifb_name(&OwnerKey::new("net2", "c1", "eth0")));
    }
}
