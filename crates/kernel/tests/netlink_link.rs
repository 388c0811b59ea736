//! Links against real throwaway namespaces: lookup, set up, veth created with
//! its peer directly in another namespace, delete.

mod netlink_common;

use kernel::netlink::{parse_mac, VethSpec};
use kernel::Kind;
use netlink_common::{has_flag, TestNs};

#[test]
fn loopback_lookup_and_set_up() {
    let ns = TestNs::new();
    let h = ns.handle();
    let lo = h.link_by_name("lo").unwrap().unwrap();
    assert_eq!(lo.index, 1);
    assert!(!lo.up);
    assert_eq!(h.link_by_index(1).unwrap().unwrap().name, "lo");
    h.set_up("lo").unwrap();
    assert!(has_flag(&ns.link_json("lo").unwrap(), "UP"));
    assert!(h.link(1).unwrap().up);
    h.set_down(1).unwrap();
    assert!(!has_flag(&ns.link_json("lo").unwrap(), "UP"));
    assert_eq!(h.links().unwrap().len(), 1);
    assert_eq!(h.link_by_name("nope0").unwrap(), None);
    assert_eq!(h.link("nope0").unwrap_err().kind, Kind::NotFound);
}

#[test]
fn veth_peer_is_created_in_the_container_namespace() {
    let host = TestNs::new();
    let ctr = TestNs::new();
    let hh = host.handle();
    let ctr_ns = ctr.open();
    let mac = parse_mac("0a:58:0a:f4:00:05").unwrap();
    let spec = VethSpec {
        name: "vethtest0",
        peer_name: "eth0",
        peer_netns: Some(&ctr_ns),
        mtu: Some(1400),
        peer_mac: Some(mac),
        up: true,
        ..Default::default()
    };
    let veth = hh.create_veth(&spec).unwrap();
    assert!(veth.is_kind("veth"));
    assert_eq!(veth.mtu, 1400);
    assert!(veth.up);
    assert!(veth.link_netnsid.is_some(), "peer lives in another namespace: {veth:?}");

    let w = host.link_json("vethtest0").expect("host end in host ns");
    assert_eq!(w["mtu"], 1400);
    assert!(host.link_json("eth0").is_none());
    let w = ctr.link_json("eth0").expect("peer in container ns");
    assert_eq!(w["address"], "0a:58:0a:f4:00:05");
    assert_eq!(w["mtu"], 1400);
    assert_eq!(w["linkinfo"]["info_kind"], "veth");

    let ch = ctr.handle();
    let eth0 = ch.link("eth0").unwrap();
    assert_eq!(eth0.mac, Some(mac));
    assert_eq!(eth0.link, Some(veth.index), "peer index points back at the host end");
    assert_eq!(veth.link, Some(eth0.index));

    // same names again: Exists
    let e = hh.create_veth(&spec).unwrap_err();
    assert_eq!(e.kind, Kind::Exists, "{e}");
    assert!(e.to_string().contains("vethtest0"), "{e}");

    // deleting one end removes both
    ch.delete_link("eth0").unwrap();
    assert!(ctr.link_json("eth0").is_none());
    assert!(host.link_json("vethtest0").is_none());
    let e = ch.delete_link("eth0").unwrap_err();
    assert_eq!(e.kind, Kind::NotFound);
    assert!(e.to_string().contains(&ctr.path()), "{e}");
    let e = hh.delete_link(veth.index).unwrap_err();
    assert_eq!(e.kind, Kind::NotFound);
}

#[test]
fn veth_pair_in_one_namespace() {
    let ns = TestNs::new();
    let h = ns.handle();
    let a = h.create_veth(&VethSpec { name: "va", peer_name: "vb", ..Default::default() }).unwrap();
    let b = h.link("vb").unwrap();
    assert_eq!(a.link, Some(b.index));
    assert_eq!(a.link_netnsid, None);
    assert!(ns.link_json("va").is_some() && ns.link_json("vb").is_some());
}
