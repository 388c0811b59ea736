//! Bridge VLAN filtering against a real kernel, in throwaway namespaces.
//! A kernel without `CONFIG_BRIDGE_VLAN_FILTERING` (this machine's) must be
//! reported as `Kind::Unsupported` and left unchanged; a kernel with it
//! must end up with exactly the VLANs asked for, per `ip`/`bridge -j`.

mod netlink_common;

use kernel::netlink::vlan::{PortVlan, PortVlans};
use kernel::netlink::{BridgeSpec, VethSpec};
use kernel::Kind;
use netlink_common::TestNs;
use serde_json::Value;

fn vlan_filtering(ns: &TestNs, dev: &str) -> Value {
    ns.link_json(dev).unwrap()["linkinfo"]["info_data"]["vlan_filtering"].clone()
}

/// `bridge -j vlan show dev <dev>` as (vid, pvid, untagged) triples.
fn witness_vlans(ns: &TestNs, dev: &str) -> Vec<(u64, bool, bool)> {
    let v = ns.bridge_json(&["vlan", "show", "dev", dev]);
    let mut out = Vec::new();
    for port in v.as_array().into_iter().flatten() {
        for e in port["vlans"].as_array().into_iter().flatten() {
            let flags: Vec<&str> = e["flags"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let first = e["vlan"].as_u64().unwrap();
            let last = e["vlanEnd"].as_u64().unwrap_or(first);
            for vid in first..=last {
                out.push((vid, flags.contains(&"PVID"), flags.contains(&"Egress Untagged")));
            }
        }
    }
    out
}

#[test]
fn vlan_filtering_is_enabled_or_reported_unsupported() {
    let ns = TestNs::new();
    let h = ns.handle();
    let br = h.create_bridge(&BridgeSpec { name: "vbr0", up: true, ..Default::default() }).unwrap();
    let port = h.create_veth(&VethSpec { name: "vp0", peer_name: "vp1", ..Default::default() }).unwrap();
    h.set_master(port.index, br.index).unwrap();
    assert!(!h.vlan_filtering(br.index).unwrap());
    assert_eq!(vlan_filtering(&ns, "vbr0"), 0);

    match h.enable_vlan_filtering(br.index) {
        Err(e) => {
            // No bridge VLAN filtering in this kernel: refused, nothing changed.
            assert_eq!(e.kind, Kind::Unsupported, "{e}");
            eprintln!("kernel answer to vlan_filtering 1: {e} (errno {:?})", e.errno);
            assert_eq!(vlan_filtering(&ns, "vbr0"), 0);
            assert!(!h.vlan_filtering("vbr0").unwrap());
            let link = ns.link_json("vbr0").unwrap();
            assert_eq!(link["linkinfo"]["info_kind"], "bridge", "the bridge is still there");
            // The port's VLANs: an AF_BRIDGE dump works and lists nothing.
            assert_eq!(h.port_vlans(port.index).unwrap(), Vec::<PortVlan>::new());
            // Port VLANs are refused the same way.
            let plan = PortVlans { access: Some(10), ..Default::default() };
            let e = h.set_port_vlans(port.index, &plan).unwrap_err();
            eprintln!("kernel answer to a port VLAN add: {e}");
            assert_eq!(e.kind, Kind::Unsupported, "{e}");
        }
        Ok(()) => {
            assert_eq!(vlan_filtering(&ns, "vbr0"), 1);
            let plan = PortVlans { access: Some(10), trunk: vec![20, 21, 22, 30], keep_default: false };
            h.set_port_vlans(port.index, &plan).unwrap();
            let mut got = witness_vlans(&ns, "vp0");
            got.sort();
            assert_eq!(
                got,
                vec![(10, true, true), (20, false, false), (21, false, false), (22, false, false), (30, false, false)]
            );
            let mine = h.port_vlans(port.index).unwrap();
            assert!(mine.contains(&PortVlan { vid: 10, pvid: true, untagged: true }), "{mine:?}");
            assert!(!mine.iter().any(|v| v.vid == 1), "VLAN 1 was removed: {mine:?}");
            // Repeating is harmless (VLAN 1 already gone is success).
            h.set_port_vlans(port.index, &plan).unwrap();
            h.del_port_vlans(port.index, &[20, 21, 22]).unwrap();
            let left: Vec<u64> = witness_vlans(&ns, "vp0").into_iter().map(|v| v.0).collect();
            assert_eq!(left, vec![10, 30]);
        }
    }
}

#[test]
fn missing_bridge_is_not_found() {
    let ns = TestNs::new();
    let h = ns.handle();
    assert_eq!(h.vlan_filtering("nobr0").unwrap_err().kind, Kind::NotFound);
    assert_eq!(h.enable_vlan_filtering("nobr0").unwrap_err().kind, Kind::NotFound);
}
