//! Addresses and routes against real throwaway namespaces.

mod netlink_common;

use ipnetwork::IpNetwork;
use kernel::netlink::{Family, Handle, Route, RouteScope, VethSpec};
use kernel::Kind;
use netlink_common::TestNs;
use serde_json::Value;

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

/// A veth pair `a0`/`a1` in `ns`, `a0` up; returns the index of `a0`.
fn veth(h: &Handle) -> u32 {
    let a0 = h.create_veth(&VethSpec { name: "a0", peer_name: "a1", up: true, ..Default::default() }).unwrap();
    h.set_up("a1").unwrap();
    a0.index
}

#[test]
fn add_list_delete_addresses() {
    let ns = TestNs::new();
    let h = ns.handle();
    let a0 = veth(&h);
    h.add_address(a0, net("10.1.2.3/24")).unwrap();
    h.add_address(a0, net("2001:db8::5/64")).unwrap();
    let w = ns.addresses("a0");
    assert!(w.contains(&"10.1.2.3/24".to_string()), "{w:?}");
    assert!(w.contains(&"2001:db8::5/64".to_string()), "{w:?}");
    let v = ns.ip_json(&["-4", "addr", "show", "dev", "a0"]);
    assert_eq!(v[0]["addr_info"][0]["broadcast"], "10.1.2.255");

    let e = h.add_address(a0, net("10.1.2.3/24")).unwrap_err();
    assert_eq!(e.kind, Kind::Exists, "{e}");

    let got = h.addresses(a0).unwrap();
    let nets: Vec<IpNetwork> = got.iter().map(|a| a.net).collect();
    assert!(nets.contains(&net("10.1.2.3/24")) && nets.contains(&net("2001:db8::5/64")), "{got:?}");
    assert!(got.iter().all(|a| a.index == a0));
    assert!(h.addresses(1).unwrap().iter().all(|a| a.index == 1));

    h.del_address(a0, net("10.1.2.3/24")).unwrap();
    assert!(!ns.addresses("a0").contains(&"10.1.2.3/24".to_string()));
    let e = h.del_address(a0, net("10.1.2.3/24")).unwrap_err();
    assert_eq!(e.kind, Kind::NotFound, "{e}");
}

fn find_route<'a>(routes: &'a Value, dst: &str) -> Option<&'a Value> {
    routes.as_array().unwrap().iter().find(|r| r["dst"] == dst)
}

#[test]
fn add_list_delete_routes() {
    let ns = TestNs::new();
    let h = ns.handle();
    let a0 = veth(&h);
    h.add_address(a0, net("10.1.2.3/24")).unwrap();

    // default route via a gateway, with a metric
    let dflt = Route {
        gw: Some("10.1.2.1".parse().unwrap()),
        oif: Some(a0),
        priority: Some(50),
        ..Route::to(net("0.0.0.0/0"))
    };
    h.add_route(&dflt).unwrap();
    let w = ns.ip_json(&["-4", "route", "show"]);
    let r = find_route(&w, "default").expect("default route");
    assert_eq!(
        (r["gateway"].as_str(), r["dev"].as_str(), r["metric"].as_u64()),
        (Some("10.1.2.1"), Some("a0"), Some(50))
    );
    assert_eq!(h.add_route(&dflt).unwrap_err().kind, Kind::Exists);
    assert_eq!(h.default_route_interface().unwrap(), Some(a0));

    // a direct route is link scoped, mtu/advmss are kept
    let direct = Route { oif: Some(a0), mtu: Some(1300), advmss: Some(1260), ..Route::to(net("192.168.50.0/24")) };
    h.add_route(&direct).unwrap();
    let w = ns.ip_json(&["-4", "route", "show"]);
    let r = find_route(&w, "192.168.50.0/24").unwrap();
    assert_eq!(r["scope"], "link");
    assert_eq!(r["metrics"][0]["mtu"], 1300);

    // an onlink gateway outside every subnet, in another table
    let onlink = Route {
        gw: Some("10.244.9.0".parse().unwrap()),
        oif: Some(a0),
        onlink: true,
        table: Some(100),
        ..Route::to(net("10.244.9.0/24"))
    };
    h.add_route(&onlink).unwrap();
    let w = ns.ip_json(&["-4", "route", "show", "table", "100"]);
    let r = find_route(&w, "10.244.9.0/24").unwrap();
    assert!(r["flags"].as_array().unwrap().iter().any(|f| f == "onlink"), "{r}");

    // IPv6
    h.add_address(a0, net("2001:db8::5/64")).unwrap();
    let v6 = Route { gw: Some("2001:db8::1".parse().unwrap()), oif: Some(a0), ..Route::to(net("2001:db8:9::/48")) };
    h.add_route(&v6).unwrap();
    assert!(find_route(&ns.ip_json(&["-6", "route", "show"]), "2001:db8:9::/48").is_some());

    // read back
    let ours = h.routes_via(Family::V4, a0).unwrap();
    let d = ours.iter().find(|r| r.is_default()).unwrap();
    assert_eq!((d.gw, d.priority, d.scope), (dflt.gw, Some(50), Some(RouteScope::Universe)));
    let m = ours.iter().find(|r| r.dst == net("192.168.50.0/24")).unwrap();
    assert_eq!((m.mtu, m.advmss, m.scope), (Some(1300), Some(1260), Some(RouteScope::Link)));
    let all = h.routes(Family::V4).unwrap();
    let o = all.iter().find(|r| r.dst == net("10.244.9.0/24")).unwrap();
    assert!(o.onlink && o.table == Some(100));
    assert!(h.routes(Family::V6).unwrap().iter().any(|r| r.dst == net("2001:db8:9::/48") && r.gw == v6.gw));

    // delete
    h.del_route(&onlink).unwrap();
    assert!(find_route(&ns.ip_json(&["-4", "route", "show", "table", "100"]), "10.244.9.0/24").is_none());
    h.del_route(&dflt).unwrap();
    assert!(find_route(&ns.ip_json(&["-4", "route", "show"]), "default").is_none());
    assert_eq!(h.default_route_interface().unwrap(), None);
    let e = h.del_route(&dflt).unwrap_err();
    assert_eq!(e.kind, Kind::NotFound, "{e}");
    h.del_route(&v6).unwrap();
}

#[test]
fn wait_for_ipv6_dad() {
    let ns = TestNs::new();
    let h = ns.handle();
    let a0 = veth(&h);
    let target = ns.open();
    kernel::sysctl::set_in(&target, "net/ipv6/neigh/a0/retrans_time_ms", "100").unwrap();
    h.add_address(a0, net("2001:db8::7/64")).unwrap();
    let first = h.addresses(a0).unwrap().into_iter().find(|a| a.net == net("2001:db8::7/64")).unwrap();
    assert!(first.is_tentative(), "DAD runs on a fresh address: {first:?}");
    h.wait_dad(a0, std::time::Duration::from_secs(5)).unwrap();
    let a = h.addresses(a0).unwrap().into_iter().find(|a| a.net == net("2001:db8::7/64")).unwrap();
    assert!(!a.is_tentative() && !a.dad_failed());
    let w = ns.ip_json(&["-6", "addr", "show", "dev", "a0"]);
    let info = w[0]["addr_info"].as_array().unwrap();
    let e = info.iter().find(|x| x["local"] == "2001:db8::7").unwrap();
    assert!(e.get("tentative").is_none(), "{e}");
}
