//! Macvlan created directly in another namespace, vxlan VTEPs, neighbour and
//! FDB entries, against real throwaway namespaces.

mod netlink_common;

use std::net::IpAddr;

use kernel::netlink::{parse_mac, MacvlanMode, MacvlanSpec, VethSpec, VxlanSpec};
use kernel::Kind;
use netlink_common::TestNs;

#[test]
fn macvlan_is_created_in_the_container_namespace() {
    let host = TestNs::new();
    let ctr = TestNs::new();
    let h = host.handle();
    let master = h
        .create_veth(&VethSpec { name: "up0", peer_name: "up1", mtu: Some(1500), up: true, ..Default::default() })
        .unwrap();
    let mac = parse_mac("02:aa:bb:cc:dd:01").unwrap();
    let ctr_ns = ctr.open();
    for (name, mode) in [("mv0", MacvlanMode::Vepa), ("mv1", MacvlanMode::Bridge), ("mv2", MacvlanMode::Private)] {
        let spec = MacvlanSpec {
            name,
            master: master.index,
            mode,
            mtu: Some(1400),
            mac: (name == "mv0").then_some(mac),
            netns: Some(&ctr_ns),
            ..Default::default()
        };
        h.create_macvlan(&spec).unwrap();
        let w = ctr.link_json(name).expect("macvlan in the container ns");
        assert_eq!(w["linkinfo"]["info_kind"], "macvlan");
        assert_eq!(w["linkinfo"]["info_data"]["mode"], mode.to_string());
        assert_eq!(w["mtu"], 1400);
        assert!(host.link_json(name).is_none());
    }
    let ch = ctr.handle();
    let mv0 = ch.link("mv0").unwrap();
    assert!(mv0.is_kind("macvlan"));
    assert_eq!(mv0.macvlan_mode, Some(MacvlanMode::Vepa));
    assert_eq!(mv0.mac, Some(mac));
    ch.rename("mv0", "eth0").unwrap();
    assert!(ctr.link_json("eth0").is_some());

    // the temporary name collides in the target: Exists
    let spec = MacvlanSpec { name: "mv1", master: master.index, netns: Some(&ctr_ns), ..Default::default() };
    assert_eq!(h.create_macvlan(&spec).unwrap_err().kind, Kind::Exists);
    // a missing master
    let spec = MacvlanSpec { name: "mv9", master: 999_999, netns: Some(&ctr_ns), ..Default::default() };
    let e = h.create_macvlan(&spec).unwrap_err();
    assert_eq!(e.kind, Kind::NotFound, "{e}");
}

#[test]
fn vxlan_vtep_with_neighbours_and_fdb() {
    let ns = TestNs::new();
    let h = ns.handle();
    let under = h.create_veth(&VethSpec { name: "u0", peer_name: "u1", up: true, ..Default::default() }).unwrap();
    h.add_address(under.index, "192.0.2.10/24".parse().unwrap()).unwrap();
    let local: IpAddr = "192.0.2.10".parse().unwrap();
    let vtep_mac = parse_mac("02:00:00:00:00:2a").unwrap();
    let spec = VxlanSpec {
        name: "vxlan.42",
        vni: 42,
        local: Some(local),
        port: Some(4789),
        underlay: Some(under.index),
        learning: false,
        mac: Some(vtep_mac),
        mtu: Some(1450),
        up: true,
    };
    let vx = h.create_vxlan(&spec).unwrap();
    let w = ns.link_json("vxlan.42").unwrap();
    let d = &w["linkinfo"]["info_data"];
    assert_eq!((d["id"].as_u64(), d["port"].as_u64(), d["local"].as_str()), (Some(42), Some(4789), Some("192.0.2.10")));
    assert_eq!(d["learning"].as_bool(), Some(false), "{d}");
    assert_eq!(w["mtu"], 1450);
    let info = vx.vxlan.clone().unwrap();
    assert_eq!(
        (info.vni, info.port, info.local, info.learning, info.underlay),
        (42, 4789, Some(local), false, Some(under.index))
    );
    assert_eq!(vx.mac, Some(vtep_mac));
    assert_eq!(h.create_vxlan(&spec).unwrap_err().kind, Kind::Exists);

    // a remote node: ARP entry, FDB entry, onlink route (the flannel recipe)
    let peer_mac = parse_mac("02:00:00:00:00:99").unwrap();
    let peer_vtep_ip: IpAddr = "10.244.7.0".parse().unwrap();
    let peer_public: IpAddr = "192.0.2.77".parse().unwrap();
    h.add_neigh(vx.index, peer_vtep_ip, peer_mac, true).unwrap();
    assert_eq!(h.add_neigh(vx.index, peer_vtep_ip, peer_mac, true).unwrap_err().kind, Kind::Exists);
    h.replace_neigh(vx.index, peer_vtep_ip, peer_mac, true).unwrap();
    let w = ns.ip_json(&["neigh", "show", "dev", "vxlan.42"]);
    let e = w.as_array().unwrap().iter().find(|n| n["dst"] == "10.244.7.0").expect("neighbour");
    assert_eq!(e["lladdr"], "02:00:00:00:00:99");
    assert!(e["state"].as_array().unwrap().iter().any(|s| s == "PERMANENT"), "{e}");
    let n = h.neighs(vx.index).unwrap();
    assert!(n.iter().any(|n| n.ip == peer_vtep_ip && n.mac == Some(peer_mac) && n.permanent), "{n:?}");

    h.add_fdb(vx.index, peer_mac, Some(peer_public)).unwrap();
    h.add_fdb(vx.index, peer_mac, Some(peer_public)).unwrap(); // idempotent
    let w = ns.bridge_json(&["fdb", "show", "dev", "vxlan.42"]);
    let f = w.as_array().unwrap().iter().find(|f| f["mac"] == "02:00:00:00:00:99").expect("fdb entry");
    assert_eq!(f["dst"], "192.0.2.77");
    assert!(f["flags"].as_array().unwrap().iter().any(|x| x == "self"), "{f}");
    assert_eq!(f["state"], "permanent");
    let zero = [0u8; 6];
    h.append_fdb(vx.index, zero, "192.0.2.78".parse().unwrap()).unwrap();
    h.append_fdb(vx.index, zero, "192.0.2.79".parse().unwrap()).unwrap();
    let fdb = h.fdb(vx.index).unwrap();
    assert!(fdb.iter().any(|f| f.mac == peer_mac && f.dst == Some(peer_public) && f.permanent && f.is_self), "{fdb:?}");
    assert_eq!(fdb.iter().filter(|f| f.mac == zero).count(), 2, "{fdb:?}");

    let route = kernel::netlink::Route {
        gw: Some(peer_vtep_ip),
        oif: Some(vx.index),
        onlink: true,
        ..kernel::netlink::Route::to("10.244.7.0/24".parse().unwrap())
    };
    h.add_route(&route).unwrap();
    let w = ns.ip_json(&["-4", "route", "show", "dev", "vxlan.42"]);
    assert!(w.as_array().unwrap().iter().any(|r| r["dst"] == "10.244.7.0/24" && r["gateway"] == "10.244.7.0"), "{w}");

    // teardown in reverse
    h.del_route(&route).unwrap();
    h.del_fdb(vx.index, peer_mac, Some(peer_public)).unwrap();
    assert_eq!(h.del_fdb(vx.index, peer_mac, Some(peer_public)).unwrap_err().kind, Kind::NotFound);
    h.del_fdb(vx.index, zero, Some("192.0.2.78".parse().unwrap())).unwrap();
    let fdb = h.fdb(vx.index).unwrap();
    assert!(!fdb.iter().any(|f| f.mac == peer_mac), "{fdb:?}");
    assert_eq!(fdb.iter().filter(|f| f.mac == zero).count(), 1, "{fdb:?}");
    h.del_neigh(vx.index, peer_vtep_ip).unwrap();
    assert!(!h.neighs(vx.index).unwrap().iter().any(|n| n.ip == peer_vtep_ip && n.permanent));
    assert!(!ns
        .ip_json(&["neigh", "show", "dev", "vxlan.42"])
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["dst"] == "10.244.7.0" && n["state"].as_array().unwrap().iter().any(|s| s == "PERMANENT")));
    h.delete_link("vxlan.42").unwrap();
    assert!(ns.link_json("vxlan.42").is_none());
}
