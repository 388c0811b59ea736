//! `ifconfig::configure` and `ifconfig::verify` against a real throwaway
//! namespace: what ADD leaves on a container interface, and what CHECK sees.

#[path = "../../kernel/tests/netlink_common/mod.rs"]
mod netlink_common;

use cni::result::{Interface, IpConfig, Route as CniRoute};
use cni::CniResult;
use kernel::netlink::{Handle, VethSpec};
use netcore::ifconfig::{self, Options};
use netlink_common::{has_flag, run, TestNs};

/// A veth pair `c0`/`c1` (both down) in `ns`; returns the index of `c0`.
fn veth(h: &Handle) -> u32 {
    h.create_veth(&VethSpec { name: "c0", peer_name: "c1", ..Default::default() }).unwrap().index
}

fn dual_stack() -> CniResult {
    CniResult {
        interfaces: vec![Interface { name: "c0".into(), sandbox: "/x".into(), ..Default::default() }],
        ips: vec![
            IpConfig {
                interface: Some(0),
                address: "10.5.0.2/24".parse().unwrap(),
                gateway: Some("10.5.0.1".parse().unwrap()),
            },
            IpConfig {
                interface: Some(0),
                address: "fd05::2/64".parse().unwrap(),
                gateway: Some("fd05::1".parse().unwrap()),
            },
        ],
        routes: vec![
            CniRoute::new("0.0.0.0/0".parse().unwrap(), None),
            CniRoute::new("::/0".parse().unwrap(), None),
            CniRoute { priority: Some(50), ..CniRoute::new("10.9.0.0/16".parse().unwrap(), None) },
        ],
        dns: Default::default(),
    }
}

#[test]
fn configure_puts_addresses_routes_and_sysctls_in_place() {
    let ns = TestNs::new();
    let h = ns.handle();
    let idx = veth(&h);
    // A runtime may have turned IPv6 off; configure must turn it back on.
    run("ip", &["netns", "exec", &ns.name, "sysctl", "-qw", "net.ipv6.conf.c0.disable_ipv6=1"]);
    assert_eq!(ns.sysctl("net/ipv6/conf/c0/disable_ipv6"), "1");
    let res = dual_stack();
    let opts = Options { announce: true, announce_v6: true, ..Options::default() };
    ifconfig::configure(&ns.open(), &h, idx, "c0", &res, 0, &opts).unwrap();

    let a = ns.addresses("c0");
    assert!(a.contains(&"10.5.0.2/24".into()) && a.contains(&"fd05::2/64".into()), "{a:?}");
    assert!(has_flag(&ns.link_json("c0").unwrap(), "UP"));
    let v4 = ns.ip_json(&["-4", "route", "show"]);
    let def = v4.as_array().unwrap().iter().find(|r| r["dst"] == "default").expect("v4 default route");
    assert_eq!(def["gateway"], "10.5.0.1", "a route without gw goes via the family's gateway");
    let extra = v4.as_array().unwrap().iter().find(|r| r["dst"] == "10.9.0.0/16").expect("10.9/16");
    assert_eq!(extra["metric"], 50);
    let v6 = ns.ip_json(&["-6", "route", "show", "default"]);
    assert_eq!(v6[0]["gateway"], "fd05::1");
    assert_eq!(ns.sysctl("net/ipv6/conf/c0/disable_ipv6"), "0");
    let v6 = ns.ip_json(&["-6", "addr", "show", "dev", "c0", "scope", "global"]);
    assert_eq!(v6[0]["addr_info"][0]["nodad"], true, "no DAD by default: {v6}");
    assert_eq!(ns.sysctl("net/ipv4/conf/c0/arp_notify"), "1");
    assert_eq!(ns.sysctl("net/ipv6/conf/c0/ndisc_notify"), "1");

    ifconfig::verify(&h, idx, "c0", &res, 0).unwrap();
    // Running it again (a retried step) is not an error.
    ifconfig::configure(&ns.open(), &h, idx, "c0", &res, 0, &opts).unwrap();
}

#[test]
fn verify_names_what_is_missing() {
    let ns = TestNs::new();
    let h = ns.handle();
    let idx = veth(&h);
    let res = dual_stack();
    ifconfig::configure(&ns.open(), &h, idx, "c0", &res, 0, &Options::default()).unwrap();
    assert_eq!(ns.sysctl("net/ipv4/conf/c0/arp_notify"), "0", "no announcement unless asked");

    ns.ip(&["route", "del", "10.9.0.0/16"]);
    let e = ifconfig::verify(&h, idx, "c0", &res, 0).unwrap_err();
    assert!(e.msg.contains("route to 10.9.0.0/16"), "{e}");

    ns.ip(&["addr", "del", "fd05::2/64", "dev", "c0"]);
    let e = ifconfig::verify(&h, idx, "c0", &res, 0).unwrap_err();
    assert_eq!(e.code, 100);
    assert!(e.msg.contains("fd05::2/64") && e.msg.contains("c0"), "{e}");
}

#[test]
fn an_unreachable_gateway_is_an_error_naming_the_route() {
    let ns = TestNs::new();
    let h = ns.handle();
    let idx = veth(&h);
    let mut res = dual_stack();
    res.routes = vec![CniRoute::new("10.99.0.0/16".parse().unwrap(), Some("10.200.0.1".parse().unwrap()))];
    let e = ifconfig::configure(&ns.open(), &h, idx, "c0", &res, 0, &Options::default()).unwrap_err();
    assert!(e.to_string().contains("10.99.0.0/16 via 10.200.0.1"), "{e}");
}
