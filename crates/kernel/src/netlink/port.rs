//! Bridge port flags on an enslaved link (the host veth): hairpin for
//! `hairpinMode`, isolated for `portIsolation`, learning. Set through
//! `IFLA_LINKINFO` slave data, as `ip link set DEV type bridge_slave ...` does.
//! Reading them back is `Link::bridge_port` (link.rs), so this module uses
//! link.rs and not the other way round.

use rtnetlink::packet_route::link::{InfoBridgePort, InfoPortData, InfoPortKind, LinkAttribute, LinkInfo};

use super::{Handle, LinkId};
use crate::error::Result;

/// Which port flags to change; `None` leaves a flag as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgePortFlags {
    /// Send frames back out of the port they came in on (hairpin mode).
    pub hairpin: Option<bool>,
    /// Forbid forwarding to other isolated ports.
    pub isolated: Option<bool>,
    /// Learn source MACs on this port.
    pub learning: Option<bool>,
}

impl BridgePortFlags {
    fn attrs(&self) -> Vec<InfoBridgePort> {
        let mut v = Vec::new();
        v.extend(self.hairpin.map(InfoBridgePort::HairpinMode));
        v.extend(self.isolated.map(InfoBridgePort::Isolated));
        v.extend(self.learning.map(InfoBridgePort::Learning));
        v
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut push = |name: &str, v: Option<bool>| {
            if let Some(on) = v {
                parts.push(format!("{name} {}", if on { "on" } else { "off" }));
            }
        };
        push("hairpin", self.hairpin);
        push("isolated", self.isolated);
        push("learning", self.learning);
        parts.join(", ")
    }
}

impl Handle {
    /// Changes the bridge port flags of an enslaved link; a no-op when no flag is set.
    pub fn set_bridge_port<'a>(&self, id: impl Into<LinkId<'a>>, flags: &BridgePortFlags) -> Result<()> {
        let id = id.into();
        let attrs = flags.attrs();
        if attrs.is_empty() {
            return Ok(());
        }
        self.change_link(
            id,
            || format!("setting bridge port flags ({}) on {id}", flags.describe()),
            |m| {
                m.attributes.push(LinkAttribute::LinkInfo(vec![
                    LinkInfo::PortKind(InfoPortKind::Bridge),
                    LinkInfo::PortData(InfoPortData::BridgePort(attrs)),
                ]))
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::fake::Recorder;
    use rtnetlink::packet_route::RouteNetlinkMessage;

    #[test]
    fn hairpin_and_isolated_go_in_slave_data() {
        let rec = Recorder::new();
        let flags = BridgePortFlags { hairpin: Some(true), isolated: Some(false), ..Default::default() };
        rec.handle().set_bridge_port(9, &flags).unwrap();
        let RouteNetlinkMessage::NewLink(m) = &rec.requests()[0].msg else { panic!() };
        assert_eq!(m.header.index, 9);
        assert_eq!(
            m.attributes,
            vec![LinkAttribute::LinkInfo(vec![
                LinkInfo::PortKind(InfoPortKind::Bridge),
                LinkInfo::PortData(InfoPortData::BridgePort(vec![
                    InfoBridgePort::HairpinMode(true),
                    InfoBridgePort::Isolated(false),
                ])),
            ])]
        );
    }

    #[test]
    fn nothing_to_change_sends_nothing() {
        let rec = Recorder::new();
        rec.handle().set_bridge_port("veth0", &BridgePortFlags::default()).unwrap();
        assert!(rec.requests().is_empty());
    }

    #[test]
    fn error_names_the_flags() {
        let rec = Recorder::new();
        rec.fail(libc::EOPNOTSUPP);
        let e = rec.handle().set_bridge_port("veth0", &BridgePortFlags { hairpin: Some(true), ..Default::default() });
        assert_eq!(e.unwrap_err().what, "setting bridge port flags (hairpin on) on link \"veth0\"");
    }
}
