//! Creating links: veth pairs and macvlans directly in the container namespace
//! (`IFLA_NET_NS_FD` at creation costs ~1.5 ms where moving a link costs
//! ~30 ms), bridges idempotently (many concurrent ADDs race to create one),
//! and vxlan VTEPs.

use std::fmt;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::RouteNetlinkMessage;

use super::link::{change_msg, validate_ifname, MacvlanMode};
use super::transport::{Fault, Request};
use super::{Handle, Link, LinkId, Mac};
use crate::error::{Error, Kind, Result};
use crate::netns::Netns;

/// A veth pair to create: `name` here, `peer_name` in `peer_netns` (or here).
#[derive(Debug, Default, Clone, Copy)]
pub struct VethSpec<'a> {
    /// Name of the end created in the handle's namespace (the host end).
    pub name: &'a str,
    /// Name of the other end (the container's `CNI_IFNAME`).
    pub peer_name: &'a str,
    /// Namespace the peer is created in; `None` keeps it next to `name`.
    pub peer_netns: Option<&'a Netns>,
    /// MTU of both ends; kernel default when `None`.
    pub mtu: Option<u32>,
    /// MAC of the host end; random when `None`.
    pub mac: Option<Mac>,
    /// MAC of the peer (the container MAC from runtime config); random when `None`.
    pub peer_mac: Option<Mac>,
    /// Create the host end already up (saves one request).
    pub up: bool,
    /// Enslave the host end to this bridge at creation (`IFLA_MASTER`;
    /// saves one request, each of which costs ~1 ms with 1,000 links).
    pub master: Option<u32>,
    /// `IFLA_IFALIAS` of the host end: who made it, so GC can tell its own
    /// veths from another network's on a shared bridge. The kernel ignores
    /// an alias in the creating request, so it goes in a second request
    /// sent with it, before either is answered.
    pub alias: Option<&'a str>,
}

/// A bridge to create if missing.
#[derive(Debug, Default, Clone, Copy)]
pub struct BridgeSpec<'a> {
    /// Bridge name (`cni0` by default in configs).
    pub name: &'a str,
    /// MTU at creation; kernel default when `None`.
    pub mtu: Option<u32>,
    /// MAC at creation; random when `None`.
    pub mac: Option<Mac>,
    /// Make sure the bridge is up (when created, and when found down).
    pub up: bool,
}

impl fmt::Display for MacvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MacvlanMode::Private => f.write_str("private"),
            MacvlanMode::Vepa => f.write_str("vepa"),
            MacvlanMode::Bridge => f.write_str("bridge"),
            MacvlanMode::Passthru => f.write_str("passthru"),
            MacvlanMode::Source => f.write_str("source"),
            MacvlanMode::Other(v) => write!(f, "mode {v}"),
        }
    }
}

/// A macvlan to create on `master`, directly in `netns` when given.
#[derive(Debug, Default, Clone, Copy)]
pub struct MacvlanSpec<'a> {
    /// Name in the target namespace (use a temporary name, then rename).
    pub name: &'a str,
    /// Parent link index, in the handle's namespace.
    pub master: u32,
    /// Macvlan mode.
    pub mode: MacvlanMode,
    /// MTU; the parent's when `None`.
    pub mtu: Option<u32>,
    /// MAC; random when `None`.
    pub mac: Option<Mac>,
    /// Namespace to create it in; `None` creates it next to the parent.
    pub netns: Option<&'a Netns>,
    /// Broadcast queue length (`bcqueuelen`).
    pub bcqueuelen: Option<u32>,
}

/// A vxlan VTEP to create (the overlay device of the vxlan plugin).
#[derive(Debug, Default, Clone, Copy)]
pub struct VxlanSpec<'a> {
    /// Device name (`vxlan.<vni>` by default).
    pub name: &'a str,
    /// VXLAN network identifier.
    pub vni: u32,
    /// Source underlay address.
    pub local: Option<IpAddr>,
    /// Destination UDP port; the kernel's default (8472) when `None`.
    pub port: Option<u16>,
    /// Underlay device index.
    pub underlay: Option<u32>,
    /// Learn remote MACs from traffic (off: FDB entries are programmed).
    pub learning: bool,
    /// Stable MAC; random when `None`.
    pub mac: Option<Mac>,
    /// MTU (underlay MTU minus the encapsulation overhead).
    pub mtu: Option<u32>,
    /// Create it already up.
    pub up: bool,
}

/// The attributes every new link shares: name, MTU, MAC, up.
fn base(name: &str, mtu: Option<u32>, mac: Option<Mac>, up: bool) -> Result<LinkMessage> {
    validate_ifname(name)?;
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    if let Some(mtu) = mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = mac {
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    if up {
        m.header.flags |= LinkFlags::Up;
        m.header.change_mask |= LinkFlags::Up;
    }
    Ok(m)
}

fn with_info(mut m: LinkMessage, kind: InfoKind, data: Option<InfoData>) -> LinkMessage {
    let mut info = vec![LinkInfo::Kind(kind)];
    info.extend(data.map(LinkInfo::Data));
    m.attributes.push(LinkAttribute::LinkInfo(info));
    m
}

/// The `RTM_NEWLINK` of a veth pair whose peer carries `IFLA_NET_NS_FD`.
pub(crate) fn veth_msg(s: &VethSpec<'_>) -> Result<LinkMessage> {
    let mut peer = base(s.peer_name, s.mtu, s.peer_mac, false)?;
    if let Some(ns) = s.peer_netns {
        peer.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
    }
    let mut m = base(s.name, s.mtu, s.mac, s.up)?;
    m.attributes.extend(s.master.map(LinkAttribute::Controller));
    Ok(with_info(m, InfoKind::Veth, Some(InfoData::Veth(InfoVeth::Peer(peer)))))
}

/// The `RTM_NEWLINK` of a bridge.
pub(crate) fn bridge_msg(s: &BridgeSpec<'_>) -> Result<LinkMessage> {
    Ok(with_info(base(s.name, s.mtu, s.mac, s.up)?, InfoKind::Bridge, None))
}

/// The `RTM_NEWLINK` of a macvlan, with `IFLA_NET_NS_FD` when it goes elsewhere.
pub(crate) fn macvlan_msg(s: &MacvlanSpec<'_>) -> Result<LinkMessage> {
    let mut m = base(s.name, s.mtu, s.mac, false)?;
    m.attributes.push(LinkAttribute::Link(s.master));
    if let Some(ns) = s.netns {
        m.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
    }
    let mut data = vec![InfoMacVlan::Mode(s.mode.raw())];
    data.extend(s.bcqueuelen.map(InfoMacVlan::BcQueueLen));
    Ok(with_info(m, InfoKind::MacVlan, Some(InfoData::MacVlan(data))))
}

/// The `RTM_NEWLINK` of a vxlan VTEP.
pub(crate) fn vxlan_msg(s: &VxlanSpec<'_>) -> Result<LinkMessage> {
    let m = base(s.name, s.mtu, s.mac, s.up)?;
    let mut data = vec![InfoVxlan::Id(s.vni)];
    match s.local {
        Some(IpAddr::V4(ip)) => data.push(InfoVxlan::Local(ip)),
        Some(IpAddr::V6(ip)) => data.push(InfoVxlan::Local6(ip)),
        None => {}
    }
    data.extend(s.underlay.map(InfoVxlan::Link));
    data.extend(s.port.map(InfoVxlan::Port));
    data.push(InfoVxlan::Learning(s.learning));
    Ok(with_info(m, InfoKind::Vxlan, Some(InfoData::Vxlan(data))))
}

fn in_ns(ns: Option<&Netns>) -> String {
    ns.map(|n| format!(" in netns {}", n.path().display())).unwrap_or_default()
}

impl Handle {
    fn create(&self, msg: LinkMessage, what: impl FnOnce() -> String) -> Result<()> {
        self.ack(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL, what)
    }

    /// Creates a veth pair with the peer made directly in `peer_netns`, and
    /// returns the host end. `Kind::Exists` when either name is taken (retry
    /// with another host name).
    pub fn create_veth(&self, spec: &VethSpec<'_>) -> Result<Link> {
        let what = || format!("creating veth {:?} with peer {:?}{}", spec.name, spec.peer_name, in_ns(spec.peer_netns));
        let Some(alias) = spec.alias else {
            self.create(veth_msg(spec)?, what)?;
            return self.link(spec.name);
        };
        self.create_aliased(veth_msg(spec)?, spec.name, alias, "veth", what, |e| e)
    }

    /// Creates the link `msg` describes (`NLM_F_EXCL`: never someone
    /// else's), sets its alias (the owner's key) and reads it back: three
    /// requests, one wait, where three round trips cost three. A failed
    /// alias deletes the link again (created but not marked, GC could not
    /// tell it is ours). `what` names the creation in errors and
    /// `create_failed` may refine its error (ifb: a missing driver);
    /// `kind` ("veth", "ifb") names the link in the alias's error.
    pub(super) fn create_aliased(
        &self,
        msg: LinkMessage,
        name: &str,
        alias: &str,
        kind: &str,
        what: impl Fn() -> String,
        create_failed: impl FnOnce(Error) -> Error,
    ) -> Result<Link> {
        let ack = NLM_F_REQUEST | NLM_F_ACK;
        let set_alias = change_msg(name.into(), |m| m.attributes.push(LinkAttribute::IfAlias(alias.into())))?;
        let mut get = LinkMessage::default();
        LinkId::from(name).apply(&mut get)?;
        let reqs = vec![
            Request { msg: RouteNetlinkMessage::NewLink(msg), flags: ack | NLM_F_CREATE | NLM_F_EXCL },
            Request { msg: set_alias, flags: ack },
            Request { msg: RouteNetlinkMessage::GetLink(get), flags: NLM_F_REQUEST },
        ];
        let mut answers = self.tx.requests(reqs).into_iter();
        let in_here = |w: String| match self.netns_path() {
            Some(ns) => format!("{w} in netns {ns}"),
            None => w,
        };
        let named = |what: String, f: Fault| match f {
            Fault::Errno(n) => Error::from_errno(in_here(what), n),
            Fault::Other(cause) => Error::other(in_here(what), cause),
        };
        if let Some(Err(f)) = answers.next() {
            // Not ours: the alias and the lookup found someone else's link, if any.
            return Err(create_failed(named(what(), f)));
        }
        if let Some(Err(f)) = answers.next() {
            let _ = self.delete_link(name);
            return Err(named(format!("setting the alias of {kind} {name:?}"), f));
        }
        match answers.next() {
            Some(Ok(replies)) => replies
                .iter()
                .find_map(|r| match r {
                    RouteNetlinkMessage::NewLink(m) => Some(Link::from_msg(m)),
                    _ => None,
                })
                .ok_or_else(|| Error::from_errno(in_here(format!("looking up {name:?}")), libc::ENODEV)),
            Some(Err(f)) => Err(named(format!("looking up {name:?}"), f)),
            None => Err(Error::other(in_here(what()), "no answer")),
        }
    }

    /// Creates the bridge, or returns the existing one: `EEXIST` is success when
    /// the link is a bridge (concurrent ADDs), an error when it is something else.
    /// An existing bridge keeps its MTU and MAC; it is only set up if `spec.up`.
    pub fn create_bridge(&self, spec: &BridgeSpec<'_>) -> Result<Link> {
        let what = || format!("creating bridge {:?}", spec.name);
        match self.create(bridge_msg(spec)?, what) {
            Ok(()) => self.link(spec.name),
            Err(e) if e.is_exists() => {
                let link = self.link(spec.name)?;
                if !link.is_kind("bridge") {
                    let kind = link.kind.as_deref().unwrap_or("device without a driver kind");
                    return Err(Error::new(
                        Kind::Other,
                        format!("creating bridge {:?}", spec.name),
                        format!("a link with that name already exists and is a {kind}, not a bridge"),
                    ));
                }
                if spec.up && !link.up {
                    self.set_up(link.index)?;
                    return self.link(link.index);
                }
                Ok(link)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a macvlan on `spec.master`, directly in `spec.netns` when given
    /// (look it up there with a handle on that namespace).
    pub fn create_macvlan(&self, spec: &MacvlanSpec<'_>) -> Result<()> {
        let what = || {
            format!("creating macvlan {:?} ({}) on master #{}{}", spec.name, spec.mode, spec.master, in_ns(spec.netns))
        };
        self.create(macvlan_msg(spec)?, what)
    }

    /// Creates a vxlan VTEP and returns it; `Kind::Exists` when the name is
    /// taken (compare [`Link::vxlan`] and recreate if it differs).
    pub fn create_vxlan(&self, spec: &VxlanSpec<'_>) -> Result<Link> {
        let what = || format!("creating vxlan {:?} (vni {})", spec.name, spec.vni);
        self.create(vxlan_msg(spec)?, what)?;
        self.link(spec.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::fake::Recorder;
    use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST};
    use std::net::Ipv4Addr;

    fn info(m: &LinkMessage) -> &Vec<LinkInfo> {
        m.attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(i) => Some(i),
                _ => None,
            })
            .expect("IFLA_LINKINFO")
    }

    #[test]
    fn veth_peer_is_created_in_the_other_namespace() {
        let ns = Netns::current().unwrap();
        let spec = VethSpec {
            name: "veth1234",
            peer_name: "eth0",
            peer_netns: Some(&ns),
            mtu: Some(1400),
            peer_mac: Some([2, 0, 0, 0, 0, 9]),
            up: true,
            ..Default::default()
        };
        let m = veth_msg(&spec).unwrap();
        assert!(m.header.flags.contains(LinkFlags::Up));
        assert!(m.attributes.contains(&LinkAttribute::IfName("veth1234".into())));
        assert!(m.attributes.contains(&LinkAttribute::Mtu(1400)));
        let info = info(&m);
        assert_eq!(info[0], LinkInfo::Kind(InfoKind::Veth));
        let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) = &info[1] else { panic!("{info:?}") };
        assert_eq!(
            peer.attributes,
            vec![
                LinkAttribute::IfName("eth0".into()),
                LinkAttribute::Mtu(1400),
                LinkAttribute::Address(vec![2, 0, 0, 0, 0, 9]),
                LinkAttribute::NetNsFd(ns.as_raw_fd()),
            ]
        );
        assert!(!peer.header.flags.contains(LinkFlags::Up));
    }

    #[test]
    fn veth_create_is_exclusive_and_reports_exists() {
        let rec = Recorder::new();
        rec.fail(libc::EEXIST);
        let spec = VethSpec { name: "veth1", peer_name: "eth0", ..Default::default() };
        let e = rec.handle().create_veth(&spec).unwrap_err();
        assert!(e.is_exists());
        assert_eq!(e.what, "creating veth \"veth1\" with peer \"eth0\"");
        assert_eq!(rec.requests()[0].flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    }

    #[test]
    fn the_owner_alias_goes_with_the_creation_and_a_failure_to_set_it_removes_the_veth() {
        let rec = Recorder::new();
        rec.reply(Ok(Vec::new())).fail(libc::EINVAL);
        let spec = VethSpec { name: "veth1", peer_name: "eth0", alias: Some("n/c/eth0"), ..Default::default() };
        let e = rec.handle().create_veth(&spec).unwrap_err();
        assert_eq!(e.what, "setting the alias of veth \"veth1\"");
        let reqs = rec.requests();
        // create, alias, lookup (sent together), then the cleanup.
        assert_eq!(reqs.len(), 4);
        let RouteNetlinkMessage::NewLink(alias) = &reqs[1].msg else { panic!("{:?}", reqs[1]) };
        assert!(alias.attributes.contains(&LinkAttribute::IfAlias("n/c/eth0".into())));
        assert!(alias.attributes.contains(&LinkAttribute::IfName("veth1".into())));
        assert!(matches!(reqs[3].msg, RouteNetlinkMessage::DelLink(_)));
    }

    fn link_reply(index: u32, name: &str, kind: Option<InfoKind>, up: bool) -> RouteNetlinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        if up {
            m.header.flags = LinkFlags::Up;
        }
        m.attributes.push(LinkAttribute::IfName(name.into()));
        if let Some(k) = kind {
            m.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(k)]));
        }
        RouteNetlinkMessage::NewLink(m)
    }

    #[test]
    fn existing_bridge_is_success() {
        let rec = Recorder::new();
        rec.fail(libc::EEXIST).reply(Ok(vec![link_reply(5, "cni0", Some(InfoKind::Bridge), true)]));
        let br = rec.handle().create_bridge(&BridgeSpec { name: "cni0", up: true, ..Default::default() }).unwrap();
        assert_eq!(br.index, 5);
        assert_eq!(rec.requests().len(), 2);
    }

    #[test]
    fn existing_non_bridge_is_an_error() {
        let rec = Recorder::new();
        rec.fail(libc::EEXIST).reply(Ok(vec![link_reply(5, "cni0", Some(InfoKind::Veth), true)]));
        let e = rec.handle().create_bridge(&BridgeSpec { name: "cni0", ..Default::default() }).unwrap_err();
        assert_eq!(e.kind, Kind::Other);
        assert!(e.to_string().contains("is a veth, not a bridge"), "{e}");
    }

    #[test]
    fn existing_down_bridge_is_set_up() {
        let rec = Recorder::new();
        rec.fail(libc::EEXIST)
            .reply(Ok(vec![link_reply(5, "cni0", Some(InfoKind::Bridge), false)]))
            .reply(Ok(vec![]))
            .reply(Ok(vec![link_reply(5, "cni0", Some(InfoKind::Bridge), true)]));
        let br = rec.handle().create_bridge(&BridgeSpec { name: "cni0", up: true, ..Default::default() }).unwrap();
        assert!(br.up);
        assert_eq!(rec.requests().len(), 4);
    }

    #[test]
    fn macvlan_message() {
        let ns = Netns::current().unwrap();
        let spec = MacvlanSpec {
            name: "tmp1",
            master: 2,
            mode: "vepa".parse().unwrap(),
            netns: Some(&ns),
            bcqueuelen: Some(100),
            ..Default::default()
        };
        let m = macvlan_msg(&spec).unwrap();
        assert!(m.attributes.contains(&LinkAttribute::Link(2)));
        assert!(m.attributes.contains(&LinkAttribute::NetNsFd(ns.as_raw_fd())));
        assert_eq!(
            info(&m)[1],
            LinkInfo::Data(InfoData::MacVlan(vec![
                InfoMacVlan::Mode(rtnetlink::packet_route::link::MacVlanMode::Vepa),
                InfoMacVlan::BcQueueLen(100)
            ]))
        );
    }

    #[test]
    fn macvlan_modes_parse_and_print() {
        for s in ["bridge", "private", "vepa", "passthru", "source"] {
            let m: MacvlanMode = s.parse().unwrap();
            assert_eq!(m.to_string(), s);
            assert_eq!(MacvlanMode::from_raw(u32::from(m.raw())), m);
        }
        assert_eq!("".parse::<MacvlanMode>().unwrap(), MacvlanMode::Bridge);
        let e = "bogus".parse::<MacvlanMode>().unwrap_err();
        assert!(e.to_string().contains("expected one of bridge"), "{e}");
    }

    #[test]
    fn vxlan_message() {
        let spec = VxlanSpec {
            name: "vxlan.1",
            vni: 1,
            local: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            port: Some(4789),
            underlay: Some(3),
            ..Default::default()
        };
        let m = vxlan_msg(&spec).unwrap();
        assert_eq!(
            info(&m)[1],
            LinkInfo::Data(InfoData::Vxlan(vec![
                InfoVxlan::Id(1),
                InfoVxlan::Local(Ipv4Addr::new(192, 0, 2, 1)),
                InfoVxlan::Link(3),
                InfoVxlan::Port(4789),
                InfoVxlan::Learning(false),
            ]))
        );
    }
}
