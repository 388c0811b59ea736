//! Bridge VLAN filtering, for the bridge plugin's `vlan`, `vlanTrunk` and
//! `preserveDefaultVlan`: turning `vlan_filtering` on for a bridge, and
//! adding, removing and listing the VLANs of one bridge port, as
//! `ip link set BR type bridge vlan_filtering 1` and `bridge vlan
//! add|del|show` do.
//!
//! A kernel built without `CONFIG_BRIDGE_VLAN_FILTERING` refuses the
//! bridge option with `EOPNOTSUPP`; a kernel could also acknowledge it and
//! leave it off. [`Handle::enable_vlan_filtering`] therefore reads the
//! option back and reports `Kind::Unsupported` in both cases, so a plugin
//! refuses the config honestly instead of attaching a container to VLANs
//! that do not exist.
//!
//! Port VLANs travel as `IFLA_BRIDGE_VLAN_INFO` entries inside
//! `IFLA_AF_SPEC` of an `AF_BRIDGE` link message: `RTM_SETLINK` adds,
//! `RTM_DELLINK` removes, an `RTM_GETLINK` dump with
//! `RTEXT_FILTER_BRVLAN` lists. `IFLA_BRIDGE_FLAGS` = master addresses
//! the bridge the port belongs to (not the port device itself).

use rtnetlink::packet_core::NLM_F_REQUEST;
use rtnetlink::packet_route::link::{
    AfSpecBridge, BridgeFlag, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBridge, InfoData, InfoKind, LinkAttribute,
    LinkExtentMask, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use super::link::change_msg;
use super::{Handle, LinkId};
use crate::error::{Error, Kind, Result};

/// The VLAN every port joins untagged (as PVID) when filtering is turned
/// on: the bridge's `default_pvid`, which `preserveDefaultVlan` keeps.
pub const DEFAULT_VLAN: u16 = 1;

/// The highest usable VLAN id (4095 is reserved by 802.1Q).
const MAX_VLAN: u16 = 4094;

/// The VLANs one bridge port should carry, as the bridge plugin's config
/// asks for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortVlans {
    /// Access VLAN (`vlan`): the port's PVID, sent untagged.
    pub access: Option<u16>,
    /// VLANs carried tagged (`vlanTrunk`); the access VLAN is left out.
    pub trunk: Vec<u16>,
    /// Keep VLAN 1 on the port (`preserveDefaultVlan`); otherwise it is
    /// removed once an access VLAN or a trunk is set.
    pub keep_default: bool,
}

impl PortVlans {
    /// Whether anything is to be changed on the port.
    pub fn is_empty(&self) -> bool {
        self.access.is_none() && self.trunk.is_empty()
    }

    /// Whether VLAN 1 is removed after the others are added: only when
    /// something else was asked for, it is not to be kept, and the plan
    /// does not use VLAN 1 itself.
    pub fn removes_default(&self) -> bool {
        !self.is_empty()
            && !self.keep_default
            && self.access != Some(DEFAULT_VLAN)
            && !self.trunk.contains(&DEFAULT_VLAN)
    }

    fn check(&self) -> Result<()> {
        for &vid in self.access.iter().chain(&self.trunk) {
            if !(1..=MAX_VLAN).contains(&vid) {
                return Err(Error::new(
                    Kind::Invalid,
                    format!("VLAN id {vid}"),
                    format!("must be between 1 and {MAX_VLAN}"),
                ));
            }
        }
        Ok(())
    }

    /// The `IFLA_BRIDGE_VLAN_INFO` entries to add, in order: the access
    /// VLAN (PVID, untagged) first, then the trunk with consecutive ids
    /// sent as `RANGE_BEGIN`/`RANGE_END` pairs. A trunk id equal to the
    /// access VLAN is skipped: re-adding it without flags would take its
    /// PVID away again.
    pub(crate) fn infos(&self) -> Vec<BridgeVlanInfo> {
        let mut out = Vec::new();
        if let Some(vid) = self.access {
            out.push(BridgeVlanInfo { flags: BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged, vid });
        }
        let trunk: Vec<u16> = self.trunk.iter().copied().filter(|v| Some(*v) != self.access).collect();
        out.extend(range_infos(&trunk, BridgeVlanInfoFlags::empty()));
        out
    }
}

/// Entries for `vids` with `flags`: single ids as they are, runs of
/// consecutive ids as a `RANGE_BEGIN` and a `RANGE_END` entry, so a trunk
/// of 1-4094 costs two entries, not 4094.
pub(crate) fn range_infos(vids: &[u16], flags: BridgeVlanInfoFlags) -> Vec<BridgeVlanInfo> {
    let mut vids = vids.to_vec();
    vids.sort_unstable();
    vids.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < vids.len() {
        let mut j = i;
        while j + 1 < vids.len() && vids[j + 1] == vids[j] + 1 {
            j += 1;
        }
        if i == j {
            out.push(BridgeVlanInfo { flags, vid: vids[i] });
        } else {
            out.push(BridgeVlanInfo { flags: flags | BridgeVlanInfoFlags::RangeBegin, vid: vids[i] });
            out.push(BridgeVlanInfo { flags: flags | BridgeVlanInfoFlags::RangeEnd, vid: vids[j] });
        }
        i = j + 1;
    }
    out
}

/// One VLAN of a bridge port, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortVlan {
    /// The VLAN id.
    pub vid: u16,
    /// Untagged frames entering the port are put in this VLAN.
    pub pvid: bool,
    /// Frames of this VLAN leave the port untagged.
    pub untagged: bool,
}

/// The `RTM_NEWLINK` that sets `vlan_filtering` on a bridge
/// (`IFLA_LINKINFO` { kind bridge, `IFLA_BR_VLAN_FILTERING` }).
pub(crate) fn vlan_filtering_msg(bridge: LinkId<'_>, on: bool) -> Result<RouteNetlinkMessage> {
    change_msg(bridge, |m| {
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::VlanFiltering(on)])),
        ]))
    })
}

/// An `AF_BRIDGE` link message about port `port` carrying `infos` for its
/// master bridge.
fn port_msg(port: u32, infos: &[BridgeVlanInfo]) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.interface_family = AddressFamily::Bridge;
    m.header.index = port;
    let mut spec = vec![AfSpecBridge::Flags(BridgeFlag::Controller)];
    spec.extend(infos.iter().copied().map(AfSpecBridge::VlanInfo));
    m.attributes.push(LinkAttribute::AfSpecBridge(spec));
    m
}

/// The `RTM_SETLINK` that adds `infos` to port `port`.
pub(crate) fn add_port_vlans_msg(port: u32, infos: &[BridgeVlanInfo]) -> RouteNetlinkMessage {
    RouteNetlinkMessage::SetLink(port_msg(port, infos))
}

/// The `RTM_DELLINK` that removes `infos` from port `port` (only the VLAN
/// membership: an `AF_BRIDGE` DELLINK never deletes the link).
pub(crate) fn del_port_vlans_msg(port: u32, infos: &[BridgeVlanInfo]) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelLink(port_msg(port, infos))
}

/// The `RTM_GETLINK` dump of every bridge port's VLANs.
pub(crate) fn dump_port_vlans_msg() -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.interface_family = AddressFamily::Bridge;
    m.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::Brvlan]));
    RouteNetlinkMessage::GetLink(m)
}

/// Reads `vlan_filtering` from an `RTM_NEWLINK` reply; `false` when the
/// kernel does not report it.
pub(crate) fn read_vlan_filtering(m: &LinkMessage) -> bool {
    m.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().any(|i| match i {
            LinkInfo::Data(InfoData::Bridge(opts)) => opts.contains(&InfoBridge::VlanFiltering(true)),
            _ => false,
        }),
        _ => false,
    })
}

/// Reads the VLANs of one port from an `AF_BRIDGE` reply, expanding ranges.
pub(crate) fn read_port_vlans(m: &LinkMessage) -> Vec<PortVlan> {
    let mut out = Vec::new();
    let mut begin: Option<u16> = None;
    for a in &m.attributes {
        let LinkAttribute::AfSpecBridge(spec) = a else { continue };
        for s in spec {
            let AfSpecBridge::VlanInfo(info) = s else { continue };
            let pvid = info.flags.contains(BridgeVlanInfoFlags::Pvid);
            let untagged = info.flags.contains(BridgeVlanInfoFlags::Untagged);
            if info.flags.contains(BridgeVlanInfoFlags::RangeBegin) {
                begin = Some(info.vid);
            } else if info.flags.contains(BridgeVlanInfoFlags::RangeEnd) {
                let first = begin.take().unwrap_or(info.vid);
                out.extend((first..=info.vid).map(|vid| PortVlan { vid, pvid, untagged }));
            } else {
                out.push(PortVlan { vid: info.vid, pvid, untagged });
            }
        }
    }
    out
}

fn describe(plan: &PortVlans) -> String {
    let mut parts = Vec::new();
    if let Some(v) = plan.access {
        parts.push(format!("access VLAN {v}"));
    }
    if !plan.trunk.is_empty() {
        parts.push(format!("{} trunk VLANs", plan.trunk.len()));
    }
    parts.join(" and ")
}

impl Handle {
    /// Turns `vlan_filtering` on or off for a bridge. Prefer
    /// [`Handle::enable_vlan_filtering`], which also checks that the
    /// kernel did it.
    fn set_vlan_filtering<'a>(&self, bridge: impl Into<LinkId<'a>>, on: bool) -> Result<()> {
        let id = bridge.into();
        let what = || format!("setting vlan_filtering {} on bridge {id}", u8::from(on));
        self.ack(vlan_filtering_msg(id, on)?, 0, what)
    }

    /// Whether the bridge has `vlan_filtering` on (as `ip -d link show`
    /// prints it); `Kind::NotFound` when the link is missing.
    pub fn vlan_filtering<'a>(&self, bridge: impl Into<LinkId<'a>>) -> Result<bool> {
        let id = bridge.into();
        let mut msg = LinkMessage::default();
        id.apply(&mut msg)?;
        let replies =
            self.send(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST, || format!("reading vlan_filtering of {id}"))?;
        Ok(replies.iter().any(|r| matches!(r, RouteNetlinkMessage::NewLink(m) if read_vlan_filtering(m))))
    }

    /// Turns `vlan_filtering` on and reads it back. `Kind::Unsupported`
    /// when the kernel refuses (`EOPNOTSUPP`: no
    /// `CONFIG_BRIDGE_VLAN_FILTERING`) or acknowledges and leaves it off,
    /// so the caller can fail cleanly instead of carrying on without VLANs.
    pub fn enable_vlan_filtering<'a>(&self, bridge: impl Into<LinkId<'a>>) -> Result<()> {
        let id = bridge.into();
        self.set_vlan_filtering(id, true)?;
        if self.vlan_filtering(id)? {
            return Ok(());
        }
        let what = match self.netns_path() {
            Some(ns) => format!("setting vlan_filtering 1 on bridge {id} in netns {ns}"),
            None => format!("setting vlan_filtering 1 on bridge {id}"),
        };
        Err(Error::new(
            Kind::Unsupported,
            what,
            "the kernel acknowledged the request but vlan_filtering is still 0 (no bridge VLAN filtering support)",
        ))
    }

    /// Removes VLANs from a bridge port; a VLAN the port does not carry is
    /// success, so teardown can repeat it.
    pub fn del_port_vlans(&self, port: u32, vids: &[u16]) -> Result<()> {
        let infos = range_infos(vids, BridgeVlanInfoFlags::empty());
        if infos.is_empty() {
            return Ok(());
        }
        let what = || format!("removing VLANs {vids:?} from bridge port #{port}");
        match self.ack(del_port_vlans_msg(port, &infos), 0, what) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Gives a bridge port the VLANs of `plan`: one `RTM_SETLINK` with the
    /// access and trunk entries, then one `RTM_DELLINK` of VLAN 1 when the
    /// plan removes it. The bridge must have `vlan_filtering` on.
    pub fn set_port_vlans(&self, port: u32, plan: &PortVlans) -> Result<()> {
        plan.check()?;
        let infos = plan.infos();
        if !infos.is_empty() {
            let what = || format!("adding {} to bridge port #{port}", describe(plan));
            self.ack(add_port_vlans_msg(port, &infos), 0, what)?;
        }
        if plan.removes_default() {
            self.del_port_vlans(port, &[DEFAULT_VLAN])?;
        }
        Ok(())
    }

    /// The VLANs of bridge port `port` (empty when it has none, or is not a
    /// port), for CHECK.
    pub fn port_vlans(&self, port: u32) -> Result<Vec<PortVlan>> {
        let replies = self.dump(dump_port_vlans_msg(), || format!("listing the VLANs of bridge port #{port}"))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) if m.header.index == port => Some(read_port_vlans(m)),
                _ => None,
            })
            .flatten()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::fake::Recorder;
    use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_DUMP};

    fn info(flags: BridgeVlanInfoFlags, vid: u16) -> AfSpecBridge {
        AfSpecBridge::VlanInfo(BridgeVlanInfo { flags, vid })
    }

    const NONE: BridgeVlanInfoFlags = BridgeVlanInfoFlags::empty();

    fn bridge_reply(index: u32, filtering: bool) -> RouteNetlinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::IfName("br0".into()));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::Priority(32768), InfoBridge::VlanFiltering(filtering)])),
        ]));
        RouteNetlinkMessage::NewLink(m)
    }

    /// The `AF_BRIDGE` message of request `i`, checking its type.
    fn port_request(rec: &Recorder, i: usize, set: bool) -> LinkMessage {
        let req = &rec.requests()[i];
        assert_eq!(req.flags, NLM_F_REQUEST | NLM_F_ACK);
        match (&req.msg, set) {
            (RouteNetlinkMessage::SetLink(m), true) | (RouteNetlinkMessage::DelLink(m), false) => m.clone(),
            (other, _) => panic!("request {i} is {other:?}"),
        }
    }

    #[test]
    fn vlan_filtering_goes_in_bridge_link_info() {
        let rec = Recorder::new();
        rec.handle().set_vlan_filtering(7, true).unwrap();
        let req = &rec.requests()[0];
        assert_eq!(req.flags, NLM_F_REQUEST | NLM_F_ACK);
        let RouteNetlinkMessage::NewLink(m) = &req.msg else { panic!("{:?}", req.msg) };
        assert_eq!(m.header.index, 7);
        assert_eq!(m.header.interface_family, AddressFamily::Unspec);
        assert_eq!(
            m.attributes,
            vec![LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Bridge),
                LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::VlanFiltering(true)])),
            ])]
        );
    }

    #[test]
    fn enable_reads_the_option_back() {
        let rec = Recorder::new();
        rec.reply(Ok(vec![])).reply(Ok(vec![bridge_reply(7, true)]));
        rec.handle().enable_vlan_filtering("br0").unwrap();
        let reqs = rec.requests();
        assert_eq!(reqs.len(), 2);
        let RouteNetlinkMessage::GetLink(get) = &reqs[1].msg else { panic!("{:?}", reqs[1].msg) };
        assert_eq!(get.attributes, vec![LinkAttribute::IfName("br0".into())]);
        assert_eq!(reqs[1].flags, NLM_F_REQUEST);
    }

    #[test]
    fn acknowledged_but_still_off_is_unsupported() {
        let rec = Recorder::new();
        rec.reply(Ok(vec![])).reply(Ok(vec![bridge_reply(7, false)]));
        let e = rec.handle().enable_vlan_filtering(7).unwrap_err();
        assert_eq!(e.kind, Kind::Unsupported);
        assert_eq!(e.what, "setting vlan_filtering 1 on bridge link #7");
        assert!(e.cause.contains("still 0"), "{e}");
    }

    #[test]
    fn refused_is_unsupported_and_nothing_else_is_sent() {
        let rec = Recorder::new();
        rec.fail(libc::EOPNOTSUPP);
        let e = rec.handle().enable_vlan_filtering("br0").unwrap_err();
        assert_eq!(e.kind, Kind::Unsupported);
        assert_eq!(e.errno, Some(libc::EOPNOTSUPP));
        assert_eq!(e.what, "setting vlan_filtering 1 on bridge link \"br0\"");
        assert_eq!(rec.requests().len(), 1);
    }

    #[test]
    fn access_vlan_is_pvid_untagged_then_vlan_1_is_removed() {
        let rec = Recorder::new();
        let plan = PortVlans { access: Some(10), ..Default::default() };
        rec.handle().set_port_vlans(12, &plan).unwrap();
        assert_eq!(rec.requests().len(), 2);
        let add = port_request(&rec, 0, true);
        assert_eq!(add.header.interface_family, AddressFamily::Bridge);
        assert_eq!(add.header.index, 12);
        assert_eq!(
            add.attributes,
            vec![LinkAttribute::AfSpecBridge(vec![
                AfSpecBridge::Flags(BridgeFlag::Controller),
                info(BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged, 10),
            ])]
        );
        let del = port_request(&rec, 1, false);
        assert_eq!(del.header.interface_family, AddressFamily::Bridge);
        assert_eq!(del.header.index, 12);
        assert_eq!(
            del.attributes,
            vec![LinkAttribute::AfSpecBridge(vec![AfSpecBridge::Flags(BridgeFlag::Controller), info(NONE, 1)])]
        );
    }

    #[test]
    fn trunk_runs_become_ranges_and_skip_the_access_vlan() {
        let rec = Recorder::new();
        let plan = PortVlans { access: Some(11), trunk: vec![20, 5, 10, 11, 12, 13, 30, 31], keep_default: true };
        rec.handle().set_port_vlans(3, &plan).unwrap();
        assert_eq!(rec.requests().len(), 1, "VLAN 1 is preserved");
        let add = port_request(&rec, 0, true);
        assert_eq!(
            add.attributes,
            vec![LinkAttribute::AfSpecBridge(vec![
                AfSpecBridge::Flags(BridgeFlag::Controller),
                info(BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged, 11),
                info(NONE, 5),
                info(NONE, 10),
                info(BridgeVlanInfoFlags::RangeBegin, 12),
                info(BridgeVlanInfoFlags::RangeEnd, 13),
                info(NONE, 20),
                info(BridgeVlanInfoFlags::RangeBegin, 30),
                info(BridgeVlanInfoFlags::RangeEnd, 31),
            ])]
        );
    }

    #[test]
    fn whole_trunk_is_two_entries() {
        let plan = PortVlans { trunk: (1..=MAX_VLAN).collect(), ..Default::default() };
        assert_eq!(
            plan.infos(),
            vec![
                BridgeVlanInfo { flags: BridgeVlanInfoFlags::RangeBegin, vid: 1 },
                BridgeVlanInfo { flags: BridgeVlanInfoFlags::RangeEnd, vid: MAX_VLAN },
            ]
        );
        assert!(!plan.removes_default(), "the trunk carries VLAN 1 itself");
    }

    #[test]
    fn trunk_only_removes_vlan_1_unless_kept() {
        let rec = Recorder::new();
        let plan = PortVlans { trunk: vec![100], ..Default::default() };
        rec.handle().set_port_vlans(4, &plan).unwrap();
        let add = port_request(&rec, 0, true);
        assert_eq!(
            add.attributes,
            vec![LinkAttribute::AfSpecBridge(vec![AfSpecBridge::Flags(BridgeFlag::Controller), info(NONE, 100)])]
        );
        port_request(&rec, 1, false);
        assert!(!PortVlans { trunk: vec![100], keep_default: true, ..Default::default() }.removes_default());
        assert!(!PortVlans { access: Some(1), ..Default::default() }.removes_default());
        assert!(!PortVlans::default().removes_default());
    }

    #[test]
    fn vlan_1_already_gone_is_success() {
        let rec = Recorder::new();
        rec.reply(Ok(vec![])).fail(libc::ENOENT);
        rec.handle().set_port_vlans(4, &PortVlans { access: Some(2), ..Default::default() }).unwrap();
        assert_eq!(rec.requests().len(), 2);
    }

    #[test]
    fn refused_port_vlans_name_the_port() {
        let rec = Recorder::new();
        rec.fail(libc::EOPNOTSUPP);
        let e = rec.handle().set_port_vlans(4, &PortVlans { access: Some(2), ..Default::default() }).unwrap_err();
        assert_eq!(e.kind, Kind::Unsupported);
        assert_eq!(e.what, "adding access VLAN 2 to bridge port #4");
        assert_eq!(rec.requests().len(), 1, "no removal of VLAN 1 after a failed add");
    }

    #[test]
    fn bad_ids_are_refused_before_sending() {
        let rec = Recorder::new();
        for plan in [
            PortVlans { access: Some(0), ..Default::default() },
            PortVlans { access: Some(4095), ..Default::default() },
            PortVlans { trunk: vec![5, 4096], ..Default::default() },
        ] {
            assert_eq!(rec.handle().set_port_vlans(1, &plan).unwrap_err().kind, Kind::Invalid, "{plan:?}");
        }
        assert!(rec.requests().is_empty());
        rec.handle().set_port_vlans(1, &PortVlans::default()).unwrap();
        assert!(rec.requests().is_empty(), "an empty plan sends nothing");
    }

    #[test]
    fn port_vlans_dump_is_filtered_by_port_and_expands_ranges() {
        let mut other = LinkMessage::default();
        other.header.interface_family = AddressFamily::Bridge;
        other.header.index = 8;
        other.attributes.push(LinkAttribute::AfSpecBridge(vec![info(NONE, 99)]));
        let mut ours = LinkMessage::default();
        ours.header.interface_family = AddressFamily::Bridge;
        ours.header.index = 9;
        ours.attributes.push(LinkAttribute::IfName("veth0".into()));
        ours.attributes.push(LinkAttribute::AfSpecBridge(vec![
            info(BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged, 10),
            info(BridgeVlanInfoFlags::RangeBegin, 20),
            info(BridgeVlanInfoFlags::RangeEnd, 22),
        ]));
        let rec = Recorder::new();
        rec.reply(Ok(vec![RouteNetlinkMessage::NewLink(other), RouteNetlinkMessage::NewLink(ours)]));
        let got = rec.handle().port_vlans(9).unwrap();
        let req = &rec.requests()[0];
        assert_eq!(req.flags, NLM_F_REQUEST | NLM_F_DUMP);
        let RouteNetlinkMessage::GetLink(m) = &req.msg else { panic!("{:?}", req.msg) };
        assert_eq!(m.header.interface_family, AddressFamily::Bridge);
        assert_eq!(m.attributes, vec![LinkAttribute::ExtMask(vec![LinkExtentMask::Brvlan])]);
        let tagged = |vid| PortVlan { vid, pvid: false, untagged: false };
        assert_eq!(got, vec![PortVlan { vid: 10, pvid: true, untagged: true }, tagged(20), tagged(21), tagged(22)]);
    }

    #[test]
    fn del_port_vlans_sends_ranges() {
        let rec = Recorder::new();
        rec.handle().del_port_vlans(5, &[7, 8, 9]).unwrap();
        let del = port_request(&rec, 0, false);
        assert_eq!(
            del.attributes,
            vec![LinkAttribute::AfSpecBridge(vec![
                AfSpecBridge::Flags(BridgeFlag::Controller),
                info(BridgeVlanInfoFlags::RangeBegin, 7),
                info(BridgeVlanInfoFlags::RangeEnd, 9),
            ])]
        );
    }
}
