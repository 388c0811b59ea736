//! ifb devices: the "intermediate functional block" a device's received
//! traffic is redirected to so that it can be shaped on the ifb's transmit
//! side (the kernel shapes only what a device sends). Created with the
//! owner's key as alias so GC tells its own from anyone else's.

use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};

use super::link::validate_ifname;
use super::{Handle, Link};
use crate::error::{Kind, Result};

/// An ifb to create.
#[derive(Debug, Clone, Copy, Default)]
pub struct IfbSpec<'a> {
    /// Its name.
    pub name: &'a str,
    /// MTU (that of the device whose traffic it carries).
    pub mtu: Option<u32>,
    /// Transmit queue length.
    pub txqlen: Option<u32>,
    /// `IFLA_IFALIAS`: who made it.
    pub alias: &'a str,
    /// Create it up. Down, a root qdisc is attached without the RCU
    /// grace period the kernel waits for on a running device (~10 ms
    /// here); set it up afterwards.
    pub up: bool,
}

/// The `RTM_NEWLINK` of an ifb.
pub(crate) fn ifb_msg(s: &IfbSpec<'_>) -> Result<LinkMessage> {
    validate_ifname(s.name)?;
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(s.name.to_string()));
    m.attributes.extend(s.mtu.map(LinkAttribute::Mtu));
    m.attributes.extend(s.txqlen.map(LinkAttribute::TxQueueLen));
    if s.up {
        m.header.flags |= LinkFlags::Up;
        m.header.change_mask |= LinkFlags::Up;
    }
    m.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Ifb)]));
    Ok(m)
}

impl Handle {
    /// Creates the ifb, names its owner and reads it back, in one round
    /// trip. `Kind::Exists` when the name is taken; `Kind::Unsupported`
    /// (or `NotFound`, the kernel's answer for a missing driver) when the
    /// kernel has no ifb driver.
    pub fn create_ifb(&self, spec: &IfbSpec<'_>) -> Result<Link> {
        let what = || format!("creating ifb {:?}", spec.name);
        self.create_aliased(ifb_msg(spec)?, spec.name, spec.alias, "ifb", what, |mut e| {
            if e.errno == Some(libc::EOPNOTSUPP) || e.errno == Some(libc::ENOENT) {
                e.kind = Kind::Unsupported;
                e.cause = format!("{} (the kernel has no ifb driver: CONFIG_IFB / module ifb)", e.cause);
            }
            e
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::fake::Recorder;
    use rtnetlink::packet_route::RouteNetlinkMessage;

    #[test]
    fn created_up_with_alias_in_one_batch() {
        let rec = Recorder::new();
        rec.reply(Ok(vec![])).reply(Ok(vec![])).reply(Ok(vec![RouteNetlinkMessage::NewLink({
            let mut m = LinkMessage::default();
            m.header.index = 9;
            m.attributes.push(LinkAttribute::IfName("bwp0".into()));
            m
        })]));
        let spec = IfbSpec { name: "bwp0", mtu: Some(1400), txqlen: Some(1000), alias: "net/c1/eth0", up: true };
        let l = rec.handle().create_ifb(&spec).unwrap();
        assert_eq!((l.index, l.name.as_str()), (9, "bwp0"));
        let reqs = rec.requests();
        assert_eq!(reqs.len(), 3);
        let RouteNetlinkMessage::NewLink(m) = &reqs[0].msg else { panic!() };
        assert!(m.header.flags.contains(LinkFlags::Up));
        assert!(m.attributes.contains(&LinkAttribute::Mtu(1400)));
        assert!(m.attributes.contains(&LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Ifb)])));
        let RouteNetlinkMessage::NewLink(a) = &reqs[1].msg else { panic!() };
        assert!(a.attributes.contains(&LinkAttribute::IfAlias("net/c1/eth0".into())));
    }

    #[test]
    fn a_kernel_without_ifb_is_unsupported() {
        let rec = Recorder::new();
        rec.fail(libc::EOPNOTSUPP);
        let e = rec.handle().create_ifb(&IfbSpec { name: "bwp0", alias: "x", ..Default::default() }).unwrap_err();
        assert_eq!(e.kind, Kind::Unsupported);
        assert!(e.cause.contains("ifb"), "{e:?}");
    }
}
