//! Bridges, bridge ports and link setters against real throwaway namespaces.

mod netlink_common;

use kernel::netlink::{parse_mac, BridgePortFlags, BridgeSpec, Handle, VethSpec};
use kernel::Kind;
use netlink_common::{has_flag, TestNs};

#[test]
fn bridge_create_is_idempotent_and_refuses_non_bridges() {
    let ns = TestNs::new();
    let h = ns.handle();
    let spec = BridgeSpec { name: "cni0", mtu: Some(1450), up: true, ..Default::default() };
    let br = h.create_bridge(&spec).unwrap();
    assert!(br.is_kind("bridge") && br.up && br.mtu == 1450);
    let w = ns.link_json("cni0").unwrap();
    assert_eq!(w["linkinfo"]["info_kind"], "bridge");
    assert!(has_flag(&w, "UP"));
    assert_eq!(h.create_bridge(&spec).unwrap().index, br.index);

    // found down: set up again
    h.set_down("cni0").unwrap();
    assert!(h.create_bridge(&spec).unwrap().up);

    h.create_veth(&VethSpec { name: "notbr0", peer_name: "notbr1", ..Default::default() }).unwrap();
    let e = h.create_bridge(&BridgeSpec { name: "notbr0", ..Default::default() }).unwrap_err();
    assert_eq!(e.kind, Kind::Other);
    assert!(e.to_string().contains("is a veth, not a bridge"), "{e}");
}

#[test]
fn concurrent_bridge_creation_all_succeed() {
    let ns = TestNs::new();
    let path = ns.path();
    let indexes: Vec<u32> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..16)
            .map(|_| {
                let path = path.clone();
                s.spawn(move || {
                    let h = Handle::in_netns(&kernel::netns::Netns::open(&path).unwrap()).unwrap();
                    h.create_bridge(&BridgeSpec { name: "race0", up: true, ..Default::default() }).unwrap().index
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(indexes.iter().all(|i| *i == indexes[0]), "{indexes:?}");
    assert!(ns.link_json("race0").is_some());
}

#[test]
fn enslave_and_set_port_flags() {
    let ns = TestNs::new();
    let h = ns.handle();
    let br = h.create_bridge(&BridgeSpec { name: "br0", up: true, ..Default::default() }).unwrap();
    let port = h.create_veth(&VethSpec { name: "p0", peer_name: "p1", up: true, ..Default::default() }).unwrap();
    h.set_master(port.index, br.index).unwrap();
    let w = ns.link_json("p0").unwrap();
    assert_eq!(w["master"], "br0");

    h.set_bridge_port("p0", &BridgePortFlags { hairpin: Some(true), isolated: Some(true), learning: Some(false) })
        .unwrap();
    let slave = &ns.link_json("p0").unwrap()["linkinfo"]["info_slave_data"];
    assert_eq!((slave["hairpin"].as_bool(), slave["isolated"].as_bool()), (Some(true), Some(true)), "{slave}");
    assert_eq!(slave["learning"].as_bool(), Some(false), "{slave}");
    let p = h.link(port.index).unwrap();
    assert_eq!(p.master, Some(br.index));
    let info = p.bridge_port.expect("bridge port info");
    assert!(info.hairpin && info.isolated && !info.learning);

    h.set_bridge_port(port.index, &BridgePortFlags { hairpin: Some(false), ..Default::default() }).unwrap();
    assert_eq!(ns.link_json("p0").unwrap()["linkinfo"]["info_slave_data"]["hairpin"].as_bool(), Some(false));

    h.set_nomaster("p0").unwrap();
    assert!(ns.link_json("p0").unwrap().get("master").is_none());
    assert_eq!(h.link("p0").unwrap().master, None);
}

#[test]
fn link_setters() {
    let ns = TestNs::new();
    let h = ns.handle();
    let l = h.create_veth(&VethSpec { name: "s0", peer_name: "s1", ..Default::default() }).unwrap();
    let mac = parse_mac("02:11:22:33:44:55").unwrap();
    h.set_mtu(l.index, 1280).unwrap();
    h.set_mac("s0", mac).unwrap();
    h.set_promisc("s0", true).unwrap();
    h.set_allmulti("s0", true).unwrap();
    h.set_txqlen("s0", 77).unwrap();
    let w = ns.link_json("s0").unwrap();
    assert_eq!(w["mtu"], 1280);
    assert_eq!(w["address"], "02:11:22:33:44:55");
    assert!(has_flag(&w, "PROMISC") && has_flag(&w, "ALLMULTI"), "{w}");
    assert_eq!(w["txqlen"], 77);
    let got = h.link(l.index).unwrap();
    assert_eq!((got.mtu, got.mac, got.promisc, got.allmulti, got.txqlen), (1280, Some(mac), true, true, 77));

    h.set_promisc("s0", false).unwrap();
    assert!(!has_flag(&ns.link_json("s0").unwrap(), "PROMISC"));

    h.rename("s0", "renamed0").unwrap();
    assert!(ns.link_json("s0").is_none());
    assert_eq!(h.link("renamed0").unwrap().index, l.index);

    let e = h.set_mtu("nope0", 1500).unwrap_err();
    assert_eq!(e.kind, Kind::NotFound, "{e}");
    assert!(e.to_string().contains("\"nope0\"") && e.to_string().contains(&ns.path()), "{e}");
}

#[test]
fn move_to_another_namespace() {
    let a = TestNs::new();
    let b = TestNs::new();
    let h = a.handle();
    h.create_veth(&VethSpec { name: "m0", peer_name: "m1", ..Default::default() }).unwrap();
    h.move_to_netns("m1", &b.open()).unwrap();
    assert!(a.link_json("m1").is_none());
    assert!(b.link_json("m1").is_some());
}
