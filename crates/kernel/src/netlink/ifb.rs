//! ifb devices: the "intermediate functional block" a device's received
//! traffic is redirected to so that it can be shaped on the ifb's transmit
//! side (the kernel shapes only what a device sends). Created with the
//! owner's key as alias so GC tells its own from anyone else's.

use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;

use super::link::{change_msg, validate_ifname};
use super::transport::{Fault, Request};
use super::{Handle, Link, LinkId};
use crate::error::{Error, Kind, Result};

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
        let ack = NLM_F_REQUEST | NLM_F_ACK;
        let set_alias = change_msg(spec.name.into(), |m| m.attributes.push(LinkAttribute::IfAlias(spec.alias.into())))?;
        let mut get = LinkMessage::default();
        LinkId::from(spec.name).apply(&mut get)?;
        let reqs = vec![
            Request { msg: RouteNetlinkMessage::NewLink(ifb_msg(spec)?), flags: ack | NLM_F_CREATE | NLM_F_EXCL },
            Request { msg: set_alias, flags: ack },
            Request { msg: RouteNetlinkMessage::GetLink(get), flags: NLM_F_REQUEST },
        ];
        let here = |w: String| match self.netns_path() {
            Some(ns) => format!("{w} in netns {ns}"),
            None => w,
        };
        let named = |what: String, f: Fault| match f {
            Fault::Errno(n) => Error::from_errno(here(what), n),
            Fault::Other(cause) => Error::other(here(what), cause),
        };
        let mut answers = self.tx.requests(reqs).into_iter();
        if let Some(Err(f)) = answers.next() {
            let mut e = named(format!("creating ifb {:?}", spec.name), f);
            if e.errno == Some(libc::EOPNOTSUPP) || e.errno == Some(libc::ENOENT) {
                e.kind = Kind::Unsupported;
                e.cause = format!("{} (the kernel has no ifb driver: CONFIG_IFB / module ifb)", e.cause);
            }
            return Err(e);
        }
        if let Some(Err(f)) = answers.next() {
            let _ = self.delete_link(spec.name);
            return Err(named(format!("setting the alias of ifb {:?}", spec.name), f));
        }
        match answers.next() {
            Some(Ok(replies)) => replies
                .iter()
                .find_map(|r| match r {
                    RouteNetlinkMessage::NewLink(m) => Some(Link::from_msg(m)),
                    _ => None,
                })
                .ok_or_else(|| Error::from_errno(here(format!("looking up {:?}", spec.name)), libc::ENODEV)),
            Some(Err(f)) => Err(named(format!("looking up {:?}", spec.name), f)),
            None => Err(Error::other(here(format!("creating ifb {:?}", spec.name)), "no answer")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::fake::Recorder;

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
