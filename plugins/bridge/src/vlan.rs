//! VLANs on the bridge (`vlan`, `vlanTrunk`, `preserveDefaultVlan`):
//! `vlan_filtering` on the bridge, the VLANs of each container's host
//! port, and the `<bridge>.<vlan>` gateway interface of an access VLAN.
//!
//! Honest on kernels without bridge VLAN filtering (this project's test
//! machine): the kernel is asked, and when it refuses (`EOPNOTSUPP`) or
//! acknowledges without turning filtering on, ADD fails with code 103
//! naming the option, before any container is attached, and leaves an
//! existing bridge exactly as it found it.

use crate::config::{gateway_name, BridgeConf};
use cni::error::code;
use cni::Error;
use kernel::netlink::vlan::PortVlans;
use kernel::netlink::{Handle, Link, VethSpec};
use kernel::Kind;
use netcore::naming::fnv1a64;

/// The config field to name in errors: `vlan` when set, else `vlanTrunk`.
fn field(conf: &BridgeConf) -> &'static str {
    if conf.vlan != 0 {
        "vlan"
    } else {
        "vlanTrunk"
    }
}

/// The CNI error for a failed VLAN step: code 103 naming the option when
/// the kernel lacks the feature, the kernel's error otherwise.
pub fn error(conf: &BridgeConf, e: kernel::Error) -> Error {
    let field = field(conf);
    if e.kind == Kind::Unsupported {
        return Error::new(
            code::UNSUPPORTED_KERNEL,
            format!("bridge: field {field:?} needs bridge VLAN filtering, which this kernel does not provide ({e})"),
        )
        .with_details(
            "nothing was attached; remove the VLAN options or use a kernel with CONFIG_BRIDGE_VLAN_FILTERING",
        );
    }
    let mut c: Error = e.into();
    c.msg = format!("bridge: field {field:?}: {}", c.msg);
    c
}

/// What the config asks of each container's host port.
pub fn port_plan(conf: &BridgeConf) -> PortVlans {
    PortVlans {
        access: (conf.vlan != 0).then_some(conf.vlan),
        trunk: conf.vlan_trunk.clone(),
        keep_default: conf.preserve_default_vlan,
    }
}

/// Turns `vlan_filtering` on for `bridge` and checks that it is on.
pub fn enable(host: &Handle, conf: &BridgeConf, bridge: &Link) -> Result<(), Error> {
    host.enable_vlan_filtering(bridge.index).map_err(|e| error(conf, e))
}

/// Deletes a bridge this ADD created, unless another ADD already put a
/// port on it in the meantime (it is then theirs as much as ours).
pub fn remove_if_unused(host: &Handle, bridge: &Link) {
    let in_use = match host.links() {
        Ok(links) => links.iter().any(|l| l.master == Some(bridge.index)),
        Err(_) => true,
    };
    if !in_use {
        if let Err(e) = host.delete_link(bridge.index) {
            log::warn!("removing bridge {:?} after a failed ADD: {e}", bridge.name);
        }
    }
}

/// The bridge-side end of the gateway veth: `vgw` + 12 hex digits, stable
/// per (bridge, vlan). Not `veth...`, so GC never takes it for a stale
/// container port.
fn gateway_port_name(bridge: &str, vlan: u16) -> String {
    format!("vgw{:012x}", fnv1a64(&["vlan-gateway", bridge, &vlan.to_string()]) >> 16)
}

/// Returns `<bridge>.<vlan>`, the interface that holds the gateway address
/// of an access VLAN, creating it when missing: the reference's design, a
/// veth pair whose other end is a port of the bridge with `vlan` as PVID
/// and untagged (no 802.1Q device, so no `8021q` module is needed). It is
/// shared by every container of the VLAN and, like the bridge, never
/// deleted by DEL. Needs `vlan_filtering` on the bridge (checked by ADD
/// before this is reached).
pub fn ensure_gateway(
    host: &Handle,
    bridge: &Link,
    vlan: u16,
    keep_default: bool,
    mtu: Option<u32>,
) -> Result<Link, kernel::Error> {
    let name = gateway_name(&bridge.name, vlan);
    if let Some(l) = host.link_by_name(&name)? {
        if !l.is_kind("veth") {
            let kind = l.kind.clone().unwrap_or_else(|| "device without a driver kind".into());
            return Err(kernel::Error::new(
                Kind::Invalid,
                format!("using {name:?} as the gateway of VLAN {vlan}"),
                format!("a link with that name exists and is a {kind}, not a veth"),
            ));
        }
        if !l.up {
            host.set_up(l.index)?;
        }
        return host.link(l.index);
    }
    let port = gateway_port_name(&bridge.name, vlan);
    let spec = VethSpec { name: &name, peer_name: &port, mtu, ..Default::default() };
    let gw = match host.create_veth(&spec) {
        Ok(l) => l,
        // Another ADD of the same VLAN made it a moment ago.
        Err(e) if e.is_exists() => return host.link(name.as_str()),
        Err(e) => return Err(e),
    };
    let done = (|| {
        let p = host.link(port.as_str())?;
        host.set_master(p.index, bridge.index)?;
        host.set_port_vlans(p.index, &PortVlans { access: Some(vlan), trunk: Vec::new(), keep_default })?;
        host.set_up(p.index)?;
        host.set_up(gw.index)?;
        host.link(gw.index)
    })();
    if done.is_err() {
        let _ = host.delete_link(gw.index);
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel::netlink::fake::Recorder;
    use kernel::netlink::Mac;
    use rtnetlink::packet_route::link::{
        AfSpecBridge, BridgeFlag, BridgeVlanInfo, BridgeVlanInfoFlags, InfoKind, LinkAttribute, LinkInfo, LinkMessage,
    };
    use rtnetlink::packet_route::RouteNetlinkMessage;

    fn conf(vlan: u16, trunk: Vec<u16>) -> BridgeConf {
        BridgeConf {
            bridge: "cni0".into(),
            is_gateway: false,
            is_default_gateway: false,
            force_address: false,
            ip_masq: false,
            mtu: None,
            hairpin_mode: false,
            promisc_mode: false,
            vlan,
            vlan_trunk: trunk,
            preserve_default_vlan: false,
            enabledad: false,
            macspoofchk: false,
            disable_container_interface: false,
            port_isolation: false,
            isolation: false,
            mac: None::<Mac>,
        }
    }

    #[test]
    fn unsupported_is_code_103_naming_the_field() {
        let e = kernel::Error::from_errno("setting vlan_filtering 1 on bridge link #3", libc::EOPNOTSUPP);
        let c = error(&conf(10, vec![]), e.clone());
        assert_eq!(c.code, code::UNSUPPORTED_KERNEL);
        assert!(c.msg.starts_with("bridge: field \"vlan\" needs bridge VLAN filtering"), "{}", c.msg);
        assert!(c.msg.contains("Operation not supported"), "{}", c.msg);
        let c = error(&conf(0, vec![7]), e);
        assert!(c.msg.contains("\"vlanTrunk\""), "{}", c.msg);
        let other = error(&conf(10, vec![]), kernel::Error::from_errno("x", libc::EPERM));
        assert_eq!(other.code, code::PLUGIN);
        assert!(other.msg.starts_with("bridge: field \"vlan\": x:"), "{}", other.msg);
    }

    #[test]
    fn plan_follows_the_config() {
        let mut c = conf(10, vec![20, 21]);
        let p = port_plan(&c);
        assert_eq!((p.access, p.trunk.as_slice(), p.keep_default), (Some(10), &[20u16, 21][..], false));
        c.preserve_default_vlan = true;
        assert!(!port_plan(&c).removes_default());
        assert_eq!(port_plan(&conf(0, vec![5])).access, None);
    }

    #[test]
    fn gateway_names() {
        assert_eq!(gateway_name("cni0", 100), "cni0.100");
        let p = gateway_port_name("cni0", 100);
        assert_eq!(p.len(), 15);
        assert!(p.starts_with("vgw"));
        assert_ne!(p, gateway_port_name("cni0", 101));
        assert_ne!(p, gateway_port_name("cni1", 100));
    }

    fn link_reply(index: u32, name: &str) -> Result<Vec<RouteNetlinkMessage>, kernel::netlink::Fault> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]));
        Ok(vec![RouteNetlinkMessage::NewLink(m)])
    }

    #[test]
    fn gateway_is_a_veth_whose_peer_is_an_access_port() {
        let port = gateway_port_name("cni0", 100);
        let rec = Recorder::new();
        rec.fail(libc::ENODEV) // cni0.100 is missing
            .reply(Ok(vec![])) // veth created
            .reply(link_reply(20, "cni0.100"))
            .reply(link_reply(21, &port))
            .reply(Ok(vec![])) // master
            .reply(Ok(vec![])) // VLAN 100 PVID untagged
            .reply(Ok(vec![])) // VLAN 1 removed
            .reply(Ok(vec![])) // port up
            .reply(Ok(vec![])) // gateway up
            .reply(link_reply(20, "cni0.100"));
        let br = Link { index: 3, name: "cni0".into(), kind: Some("bridge".into()), ..Default::default() };
        let gw = ensure_gateway(&rec.handle(), &br, 100, false, Some(1400)).unwrap();
        assert_eq!((gw.index, gw.name.as_str()), (20, "cni0.100"));
        let reqs = rec.requests();
        assert_eq!(reqs.len(), 10);
        let RouteNetlinkMessage::NewLink(veth) = &reqs[1].msg else { panic!("{:?}", reqs[1].msg) };
        assert!(veth.attributes.contains(&LinkAttribute::IfName("cni0.100".into())));
        assert!(veth.attributes.contains(&LinkAttribute::Mtu(1400)));
        let RouteNetlinkMessage::NewLink(master) = &reqs[4].msg else { panic!("{:?}", reqs[4].msg) };
        assert_eq!(master.header.index, 21);
        assert_eq!(master.attributes, vec![LinkAttribute::Controller(3)]);
        let RouteNetlinkMessage::SetLink(vlans) = &reqs[5].msg else { panic!("{:?}", reqs[5].msg) };
        assert_eq!(vlans.header.index, 21);
        assert_eq!(
            vlans.attributes,
            vec![LinkAttribute::AfSpecBridge(vec![
                AfSpecBridge::Flags(BridgeFlag::Controller),
                AfSpecBridge::VlanInfo(BridgeVlanInfo {
                    flags: BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged,
                    vid: 100
                }),
            ])]
        );
        let RouteNetlinkMessage::DelLink(v1) = &reqs[6].msg else { panic!("{:?}", reqs[6].msg) };
        assert_eq!(v1.header.index, 21);
        let ups: Vec<u32> = reqs[7..9]
            .iter()
            .map(|r| match &r.msg {
                RouteNetlinkMessage::NewLink(m) => m.header.index,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ups, [21, 20]);
    }

    #[test]
    fn failed_gateway_setup_removes_the_pair() {
        let port = gateway_port_name("cni0", 100);
        let rec = Recorder::new();
        rec.fail(libc::ENODEV)
            .reply(Ok(vec![]))
            .reply(link_reply(20, "cni0.100"))
            .reply(link_reply(21, &port))
            .reply(Ok(vec![]))
            .fail(libc::EOPNOTSUPP); // the port's VLAN
        let br = Link { index: 3, name: "cni0".into(), kind: Some("bridge".into()), ..Default::default() };
        let e = ensure_gateway(&rec.handle(), &br, 100, true, None).unwrap_err();
        assert_eq!(e.kind, Kind::Unsupported);
        let reqs = rec.requests();
        let RouteNetlinkMessage::DelLink(del) = &reqs.last().unwrap().msg else { panic!("{:?}", reqs.last()) };
        assert_eq!(del.header.index, 20);
    }

    #[test]
    fn existing_gateway_of_another_kind_is_refused() {
        let rec = Recorder::new();
        let mut m = LinkMessage::default();
        m.header.index = 9;
        m.attributes.push(LinkAttribute::IfName("cni0.100".into()));
        m.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Vlan)]));
        rec.reply(Ok(vec![RouteNetlinkMessage::NewLink(m)]));
        let br = Link { index: 3, name: "cni0".into(), ..Default::default() };
        let e = ensure_gateway(&rec.handle(), &br, 100, false, None).unwrap_err();
        assert!(e.to_string().contains("is a vlan, not a veth"), "{e}");
        assert_eq!(rec.requests().len(), 1);
    }
}
