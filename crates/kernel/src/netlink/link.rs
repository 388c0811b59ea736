//! Existing links: look them up (by name or index), read what plugins check
//! (kind, MAC, MTU, flags, master, peer, macvlan mode, vxlan settings, bridge
//! port flags), change them, and delete them.

use std::fmt;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::str::FromStr;

use rtnetlink::packet_route::link::{
    InfoBridgePort, InfoData, InfoMacVlan, InfoPortData, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    MacVlanMode, State,
};
use rtnetlink::packet_route::RouteNetlinkMessage;

use super::{mac_to_string, Handle, Mac};
use crate::error::{Error, Kind, Result};
use crate::netns::Netns;

/// Longest interface name the kernel accepts (`IFNAMSIZ` - 1).
const IFNAME_MAX: usize = 15;

/// Checks an interface name the way the kernel will (1–15 bytes, no `/`, `:`
/// or whitespace, not `.`/`..`), so a bad `CNI_IFNAME` gets a clear error.
pub fn validate_ifname(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > IFNAME_MAX
        || name == "."
        || name == ".."
        || name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if bad {
        return Err(Error::new(
            Kind::Invalid,
            format!("interface name {name:?}"),
            "must be 1-15 characters without '/', ':' or whitespace, and not '.' or '..'",
        ));
    }
    Ok(())
}

/// How a macvlan shares its parent (`mode` in the macvlan config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MacvlanMode {
    /// Children can't talk to each other.
    Private,
    /// Traffic between children goes out through the external switch.
    Vepa,
    /// Children talk to each other directly (the default).
    #[default]
    Bridge,
    /// One child takes over the parent.
    Passthru,
    /// Only traffic from listed source MACs.
    Source,
    /// A mode this code does not know.
    Other(u32),
}

impl MacvlanMode {
    pub(crate) fn from_raw(v: u32) -> MacvlanMode {
        match MacVlanMode::from(v) {
            MacVlanMode::Private => MacvlanMode::Private,
            MacVlanMode::Vepa => MacvlanMode::Vepa,
            MacVlanMode::Bridge => MacvlanMode::Bridge,
            MacVlanMode::Passthrough => MacvlanMode::Passthru,
            MacVlanMode::Source => MacvlanMode::Source,
            _ => MacvlanMode::Other(v),
        }
    }

    pub(crate) fn raw(self) -> MacVlanMode {
        match self {
            MacvlanMode::Private => MacVlanMode::Private,
            MacvlanMode::Vepa => MacVlanMode::Vepa,
            MacvlanMode::Bridge => MacVlanMode::Bridge,
            MacvlanMode::Passthru => MacVlanMode::Passthrough,
            MacvlanMode::Source => MacVlanMode::Source,
            MacvlanMode::Other(v) => MacVlanMode::Other(v),
        }
    }
}

impl FromStr for MacvlanMode {
    type Err = Error;

    /// Parses the config's `mode` (`bridge`, `private`, `vepa`, `passthru`, `source`).
    fn from_str(s: &str) -> Result<MacvlanMode> {
        Ok(match s {
            "" | "bridge" => MacvlanMode::Bridge,
            "private" => MacvlanMode::Private,
            "vepa" => MacvlanMode::Vepa,
            "passthru" => MacvlanMode::Passthru,
            "source" => MacvlanMode::Source,
            _ => {
                return Err(Error::new(
                    Kind::Invalid,
                    format!("macvlan mode {s:?}"),
                    "unknown mode, expected one of bridge, private, vepa, passthru, source",
                ))
            }
        })
    }
}

/// Which link a request is about: by index when we know it (cheapest, immune
/// to renames), by name when that is all the config gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkId<'a> {
    /// The kernel's ifindex in the handle's namespace.
    Index(u32),
    /// The interface name in the handle's namespace.
    Name(&'a str),
}

impl From<u32> for LinkId<'_> {
    fn from(i: u32) -> Self {
        LinkId::Index(i)
    }
}

impl<'a> From<&'a str> for LinkId<'a> {
    fn from(n: &'a str) -> Self {
        LinkId::Name(n)
    }
}

impl<'a> From<&'a String> for LinkId<'a> {
    fn from(n: &'a String) -> Self {
        LinkId::Name(n)
    }
}

impl From<&Link> for LinkId<'_> {
    fn from(l: &Link) -> Self {
        LinkId::Index(l.index)
    }
}

impl fmt::Display for LinkId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkId::Index(i) => write!(f, "link #{i}"),
            LinkId::Name(n) => write!(f, "link {n:?}"),
        }
    }
}

impl LinkId<'_> {
    /// Addresses `msg` to this link (header index, or `IFLA_IFNAME` lookup).
    pub(crate) fn apply(self, msg: &mut LinkMessage) -> Result<()> {
        match self {
            LinkId::Index(i) => msg.header.index = i,
            LinkId::Name(n) => {
                validate_ifname(n)?;
                msg.attributes.push(LinkAttribute::IfName(n.to_string()));
            }
        }
        Ok(())
    }
}

/// What the vxlan driver reports about a VTEP, to decide whether an existing
/// one matches the config or must be recreated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VxlanInfo {
    /// The VXLAN network identifier.
    pub vni: u32,
    /// The local (source) underlay address, if pinned.
    pub local: Option<IpAddr>,
    /// The destination UDP port.
    pub port: u16,
    /// Whether the VTEP learns remote MACs from traffic.
    pub learning: bool,
    /// The underlay device index, if pinned.
    pub underlay: Option<u32>,
}

/// The state of one link, as the plugins need it for ADD and CHECK.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    /// ifindex in the handle's namespace.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Driver kind (`veth`, `bridge`, `macvlan`, `vxlan`, ...); `None` for lo and NICs.
    pub kind: Option<String>,
    /// Hardware address, when it is a 6-byte one.
    pub mac: Option<Mac>,
    /// MTU.
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Operationally up (operstate UP), what a bridge port must reach.
    pub oper_up: bool,
    /// Promiscuous flag set (`IFF_PROMISC`).
    pub promisc: bool,
    /// All-multicast flag set (`IFF_ALLMULTI`).
    pub allmulti: bool,
    /// Transmit queue length.
    pub txqlen: u32,
    /// Index of the master (bridge) this link is enslaved to.
    pub master: Option<u32>,
    /// `IFLA_LINK`: the veth peer's index, or the parent of a macvlan/vlan.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: set when `link` lives in another namespace.
    pub link_netnsid: Option<i32>,
    /// Mode of a macvlan.
    pub macvlan_mode: Option<MacvlanMode>,
    /// Settings of a vxlan.
    pub vxlan: Option<VxlanInfo>,
    /// Bridge port flags, when the link is enslaved to a bridge.
    pub bridge_port: Option<BridgePortInfo>,
    /// `IFLA_IFALIAS`: for a host veth we made, the owner of its attachment.
    pub alias: Option<String>,
}

impl Link {
    /// Whether the driver kind is `kind` (e.g. `"bridge"`).
    pub fn is_kind(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }

    /// The MAC as CNI results print it, empty when there is none.
    pub fn mac_string(&self) -> String {
        self.mac.as_ref().map(mac_to_string).unwrap_or_default()
    }

    /// Reads a link from an `RTM_NEWLINK` reply.
    pub(crate) fn from_msg(m: &LinkMessage) -> Link {
        let f = m.header.flags;
        let mut l = Link {
            index: m.header.index,
            up: f.contains(LinkFlags::Up),
            promisc: f.contains(LinkFlags::Promisc),
            allmulti: f.contains(LinkFlags::Allmulti),
            ..Link::default()
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::IfAlias(a) if !a.is_empty() => l.alias = Some(a.clone()),
                LinkAttribute::Address(a) => l.mac = <Mac>::try_from(a.as_slice()).ok(),
                LinkAttribute::Mtu(v) => l.mtu = *v,
                LinkAttribute::TxQueueLen(v) => l.txqlen = *v,
                LinkAttribute::Controller(v) if *v != 0 => l.master = Some(*v),
                LinkAttribute::Link(v) if *v != 0 => l.link = Some(*v),
                LinkAttribute::LinkNetNsId(v) => l.link_netnsid = Some(*v),
                LinkAttribute::OperState(s) => l.oper_up = *s == State::Up,
                LinkAttribute::LinkInfo(infos) => l.read_info(infos),
                _ => {}
            }
        }
        l
    }

    fn read_info(&mut self, infos: &[LinkInfo]) {
        for info in infos {
            match info {
                LinkInfo::Kind(k) => self.kind = Some(k.to_string()),
                LinkInfo::Data(InfoData::MacVlan(v)) => {
                    self.macvlan_mode = v.iter().find_map(|i| match i {
                        InfoMacVlan::Mode(m) => Some(MacvlanMode::from_raw(u32::from(*m))),
                        _ => None,
                    });
                }
                LinkInfo::Data(InfoData::Vxlan(v)) => self.vxlan = Some(read_vxlan(v)),
                LinkInfo::PortData(InfoPortData::BridgePort(p)) => {
                    self.bridge_port = Some(BridgePortInfo::from_attrs(p))
                }
                _ => {}
            }
        }
    }
}

fn read_vxlan(attrs: &[InfoVxlan]) -> VxlanInfo {
    let mut v = VxlanInfo::default();
    for a in attrs {
        match a {
            InfoVxlan::Id(id) => v.vni = *id,
            InfoVxlan::Local(ip) => v.local = Some(IpAddr::V4(*ip)),
            InfoVxlan::Local6(ip) => v.local = Some(IpAddr::V6(*ip)),
            InfoVxlan::Port(p) => v.port = *p,
            InfoVxlan::Learning(b) => v.learning = *b,
            InfoVxlan::Link(i) if *i != 0 => v.underlay = Some(*i),
            _ => {}
        }
    }
    v
}

/// The port flags the kernel reports for an enslaved link, for CHECK.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgePortInfo {
    /// Hairpin mode is on.
    pub hairpin: bool,
    /// The port is isolated.
    pub isolated: bool,
    /// The port learns source MACs.
    pub learning: bool,
}

impl BridgePortInfo {
    fn from_attrs(attrs: &[InfoBridgePort]) -> BridgePortInfo {
        let mut p = BridgePortInfo::default();
        for a in attrs {
            match a {
                InfoBridgePort::HairpinMode(b) => p.hairpin = *b,
                InfoBridgePort::Isolated(b) => p.isolated = *b,
                InfoBridgePort::Learning(b) => p.learning = *b,
                _ => {}
            }
        }
        p
    }
}

/// Builds an `RTM_NEWLINK` change of an existing link (pure, for tests).
pub(crate) fn change_msg(id: LinkId<'_>, edit: impl FnOnce(&mut LinkMessage)) -> Result<RouteNetlinkMessage> {
    let mut msg = LinkMessage::default();
    id.apply(&mut msg)?;
    edit(&mut msg);
    Ok(RouteNetlinkMessage::NewLink(msg))
}

fn set_flag(msg: &mut LinkMessage, flag: LinkFlags, on: bool) {
    msg.header.flags.set(flag, on);
    msg.header.change_mask |= flag;
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

impl Handle {
    /// The link, or `None` when there is none with that name or index.
    fn find_link<'a>(&self, id: impl Into<LinkId<'a>>) -> Result<Option<Link>> {
        let id = id.into();
        let mut msg = LinkMessage::default();
        id.apply(&mut msg)?;
        let what = || format!("looking up {id}");
        match self.send(RouteNetlinkMessage::GetLink(msg), rtnetlink::packet_core::NLM_F_REQUEST, what) {
            Ok(replies) => Ok(replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) => Some(Link::from_msg(m)),
                _ => None,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The link named `name`, or `None`.
    pub fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        self.find_link(name)
    }

    /// The link with ifindex `index`, or `None`.
    pub fn link_by_index(&self, index: u32) -> Result<Option<Link>> {
        self.find_link(index)
    }

    /// The link; a `Kind::NotFound` error naming it when it is missing.
    pub fn link<'a>(&self, id: impl Into<LinkId<'a>>) -> Result<Link> {
        let id = id.into();
        self.find_link(id)?.ok_or_else(|| {
            let what = match self.netns_path() {
                Some(ns) => format!("looking up {id} in netns {ns}"),
                None => format!("looking up {id}"),
            };
            Error::from_errno(what, libc::ENODEV)
        })
    }

    /// Every link in the namespace.
    pub fn links(&self) -> Result<Vec<Link>> {
        let replies = self.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()), || "listing links".into())?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) => Some(Link::from_msg(m)),
                _ => None,
            })
            .collect())
    }

    /// Sends a change of one link; `NotFound` when the link is missing.
    pub(crate) fn change_link(
        &self,
        id: LinkId<'_>,
        what: impl FnOnce() -> String,
        edit: impl FnOnce(&mut LinkMessage),
    ) -> Result<()> {
        self.ack(change_msg(id, edit)?, 0, what)
    }

    /// Sets the link administratively up.
    pub fn set_up<'a>(&self, id: impl Into<LinkId<'a>>) -> Result<()> {
        let id = id.into();
        self.change_link(id, || format!("setting {id} up"), |m| set_flag(m, LinkFlags::Up, true))
    }

    /// Sets the link administratively down (loopback DEL, before renames).
    pub fn set_down<'a>(&self, id: impl Into<LinkId<'a>>) -> Result<()> {
        let id = id.into();
        self.change_link(id, || format!("setting {id} down"), |m| set_flag(m, LinkFlags::Up, false))
    }

    /// Sets the MTU (bridge and veth `mtu` option).
    pub fn set_mtu<'a>(&self, id: impl Into<LinkId<'a>>, mtu: u32) -> Result<()> {
        let id = id.into();
        self.change_link(id, || format!("setting MTU {mtu} on {id}"), |m| m.attributes.push(LinkAttribute::Mtu(mtu)))
    }

    /// Sets the hardware address (the `mac` runtime config / CNI_ARGS).
    pub fn set_mac<'a>(&self, id: impl Into<LinkId<'a>>, mac: Mac) -> Result<()> {
        let id = id.into();
        self.change_link(
            id,
            || format!("setting MAC {} on {id}", mac_to_string(&mac)),
            |m| m.attributes.push(LinkAttribute::Address(mac.to_vec())),
        )
    }

    /// Turns the link's IPv4 `arp_notify` on through netlink
    /// (`IFLA_INET_CONF`), so bringing it up announces its address, without
    /// the cost of a first `/proc/sys/net` access in a fresh namespace.
    /// (The request format carries only non-zero values: there is no "off".)
    pub fn enable_arp_notify<'a>(&self, id: impl Into<LinkId<'a>>) -> Result<()> {
        use rtnetlink::packet_route::link::{AfSpecInet, AfSpecUnspec, InetDevConf, LinkAttribute};
        let id = id.into();
        let mut conf = InetDevConf::default();
        conf.arp_notify = 1;
        self.change_link(
            id,
            || format!("turning arp_notify on for {id}"),
            |m| {
                m.attributes
                    .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![AfSpecInet::DevConfRequest(conf)])]))
            },
        )
    }

    /// Turns promiscuous mode on or off (bridge `promiscMode`, tuning `promisc`).
    pub fn set_promisc<'a>(&self, id: impl Into<LinkId<'a>>, on: bool) -> Result<()> {
        let id = id.into();
        self.change_link(
            id,
            || format!("setting promisc {} on {id}", on_off(on)),
            |m| set_flag(m, LinkFlags::Promisc, on),
        )
    }

    /// Turns all-multicast mode on or off (tuning `allmulti`).
    pub fn set_allmulti<'a>(&self, id: impl Into<LinkId<'a>>, on: bool) -> Result<()> {
        let id = id.into();
        self.change_link(
            id,
            || format!("setting allmulticast {} on {id}", on_off(on)),
            |m| set_flag(m, LinkFlags::Allmulti, on),
        )
    }

    /// Sets the transmit queue length (tuning `txQLen`).
    pub fn set_txqlen<'a>(&self, id: impl Into<LinkId<'a>>, len: u32) -> Result<()> {
        let id = id.into();
        self.change_link(
            id,
            || format!("setting txqueuelen {len} on {id}"),
            |m| m.attributes.push(LinkAttribute::TxQueueLen(len)),
        )
    }

    /// Enslaves the link to `master` (a bridge port).
    pub fn set_master<'a>(&self, id: impl Into<LinkId<'a>>, master: u32) -> Result<()> {
        let id = id.into();
        self.change_link(
            id,
            || format!("attaching {id} to master #{master}"),
            |m| m.attributes.push(LinkAttribute::Controller(master)),
        )
    }

    /// Releases the link from its master.
    pub fn set_nomaster<'a>(&self, id: impl Into<LinkId<'a>>) -> Result<()> {
        let id = id.into();
        self.change_link(
            id,
            || format!("detaching {id} from its master"),
            |m| m.attributes.push(LinkAttribute::Controller(0)),
        )
    }

    /// Renames a link (a macvlan created under a temporary name becomes
    /// `CNI_IFNAME`). The link must be down.
    pub fn rename<'a>(&self, id: impl Into<LinkId<'a>>, new_name: &str) -> Result<()> {
        let id = id.into();
        validate_ifname(new_name)?;
        // A name in IFLA_IFNAME would be read as the new name, so address by index.
        let index = match id {
            LinkId::Index(i) => i,
            LinkId::Name(_) => self.link(id)?.index,
        };
        self.change_link(
            LinkId::Index(index),
            || format!("renaming {id} to {new_name:?}"),
            |m| m.attributes.push(LinkAttribute::IfName(new_name.to_string())),
        )
    }

    /// Sets `IFLA_IFALIAS` (empty removes it): host-device keeps a moved
    /// device's original name there, since the alias travels with the link
    /// across namespaces.
    pub fn set_alias<'a>(&self, id: impl Into<LinkId<'a>>, alias: &str) -> Result<()> {
        let id = id.into();
        self.change_link(
            id,
            || format!("setting the alias of {id}"),
            |m| m.attributes.push(LinkAttribute::IfAlias(alias.to_string())),
        )
    }

    /// Moves a link into another namespace. This costs ~30 ms of kernel time:
    /// prefer creating links in place (see [`super::create`]).
    pub fn move_to_netns<'a>(&self, id: impl Into<LinkId<'a>>, ns: &Netns) -> Result<()> {
        let id = id.into();
        let fd = ns.as_raw_fd();
        self.change_link(
            id,
            || format!("moving {id} to netns {}", ns.path().display()),
            |m| m.attributes.push(LinkAttribute::NetNsFd(fd)),
        )
    }

    /// Deletes a link (both ends, for a veth). `Kind::NotFound` when it is
    /// missing, so DEL can use `.or_missing()`.
    pub fn delete_link<'a>(&self, id: impl Into<LinkId<'a>>) -> Result<()> {
        let id = id.into();
        let mut msg = LinkMessage::default();
        id.apply(&mut msg)?;
        self.ack(RouteNetlinkMessage::DelLink(msg), 0, || format!("deleting {id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::fake::Recorder;
    use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST};
    use rtnetlink::packet_route::link::{InfoKind, LinkHeader};

    fn sent_link(rec: &Recorder, i: usize) -> LinkMessage {
        match &rec.requests()[i].msg {
            RouteNetlinkMessage::NewLink(m) | RouteNetlinkMessage::DelLink(m) | RouteNetlinkMessage::GetLink(m) => {
                m.clone()
            }
            other => panic!("not a link message: {other:?}"),
        }
    }

    #[test]
    fn ifname_validation() {
        for ok in ["eth0", "veth1a2b3c4d", "a", "123456789012345", "eth0.100"] {
            validate_ifname(ok).unwrap();
        }
        for bad in ["", ".", "..", "1234567890123456", "a/b", "a:b", "a b", "a\nb"] {
            assert_eq!(validate_ifname(bad).unwrap_err().kind, Kind::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn set_up_by_name_uses_ifname_lookup() {
        let rec = Recorder::new();
        rec.handle().set_up("eth0").unwrap();
        let req = &rec.requests()[0];
        assert_eq!(req.flags, NLM_F_REQUEST | NLM_F_ACK);
        let m = sent_link(&rec, 0);
        assert_eq!(m.header.index, 0);
        assert!(m.header.flags.contains(LinkFlags::Up));
        assert!(m.header.change_mask.contains(LinkFlags::Up));
        assert_eq!(m.attributes, vec![LinkAttribute::IfName("eth0".into())]);
    }

    #[test]
    fn set_down_and_promisc_by_index() {
        let rec = Recorder::new();
        let h = rec.handle();
        h.set_down(7).unwrap();
        h.set_promisc(7, true).unwrap();
        let down = sent_link(&rec, 0);
        assert_eq!(down.header.index, 7);
        assert!(!down.header.flags.contains(LinkFlags::Up));
        assert_eq!(down.header.change_mask, LinkFlags::Up);
        let p = sent_link(&rec, 1);
        assert_eq!(p.header.flags, LinkFlags::Promisc);
        assert_eq!(p.header.change_mask, LinkFlags::Promisc);
    }

    #[test]
    fn missing_link_is_none_or_not_found() {
        let rec = Recorder::new();
        rec.fail(libc::ENODEV).fail(libc::ENODEV).fail(libc::ENODEV);
        let h = rec.handle();
        assert_eq!(h.link_by_name("nope").unwrap(), None);
        let e = h.link("nope").unwrap_err();
        assert!(e.is_not_found());
        assert!(e.what.contains("\"nope\""), "{e}");
        let e = h.delete_link("nope").unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(e.what, "deleting link \"nope\"");
    }

    #[test]
    fn rename_by_name_resolves_the_index_first() {
        let rec = Recorder::new();
        let mut reply = LinkMessage::default();
        reply.header.index = 12;
        reply.attributes.push(LinkAttribute::IfName("tmp0".into()));
        rec.reply(Ok(vec![RouteNetlinkMessage::NewLink(reply)]));
        rec.handle().rename("tmp0", "eth0").unwrap();
        let m = sent_link(&rec, 1);
        assert_eq!(m.header.index, 12);
        assert_eq!(m.attributes, vec![LinkAttribute::IfName("eth0".into())]);
    }

    #[test]
    fn set_alias_by_index() {
        let rec = Recorder::new();
        rec.handle().set_alias(9, "cni-hd:x").unwrap();
        let m = sent_link(&rec, 0);
        assert_eq!(m.header.index, 9);
        assert_eq!(m.attributes, vec![LinkAttribute::IfAlias("cni-hd:x".into())]);
    }

    #[test]
    fn bad_name_is_refused_before_sending() {
        let rec = Recorder::new();
        assert_eq!(rec.handle().set_up("way-too-long-interface").unwrap_err().kind, Kind::Invalid);
        assert!(rec.requests().is_empty());
    }

    #[test]
    fn parse_a_link_reply() {
        let mut m = LinkMessage::default();
        m.header = LinkHeader::default();
        m.header.index = 4;
        m.header.flags = LinkFlags::Up | LinkFlags::Promisc;
        m.attributes = vec![
            LinkAttribute::IfName("veth0".into()),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
            LinkAttribute::Mtu(1400),
            LinkAttribute::Controller(3),
            LinkAttribute::Link(9),
            LinkAttribute::LinkNetNsId(1),
            LinkAttribute::OperState(State::Up),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
        ];
        let l = Link::from_msg(&m);
        assert_eq!(l.index, 4);
        assert_eq!(l.name, "veth0");
        assert!(l.is_kind("veth"));
        assert_eq!(l.mac_string(), "02:00:00:00:00:01");
        assert_eq!((l.mtu, l.master, l.link, l.link_netnsid), (1400, Some(3), Some(9), Some(1)));
        assert!(l.up && l.oper_up && l.promisc && !l.allmulti);
    }
}
