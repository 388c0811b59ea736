//! Namespaces and sysctls against real throwaway namespaces.

mod netlink_common;

use kernel::netlink::Family;
use kernel::netns::Netns;
use kernel::{sysctl, Kind};
use netlink_common::TestNs;

#[test]
fn open_missing_is_not_found_and_exists_tracks_the_namespace() {
    let ns = TestNs::new();
    assert!(Netns::exists(ns.path()));
    let missing = format!("{}-missing", ns.path());
    let e = Netns::open(&missing).unwrap_err();
    assert_eq!(e.kind, Kind::NotFound);
    assert!(e.to_string().contains(&missing), "{e}");
    assert!(!Netns::exists(&missing));
}

#[test]
fn enter_runs_inside_and_comes_back() {
    let ns = TestNs::new();
    let target = ns.open();
    let host = Netns::current().unwrap();
    assert!(!target.is_current().unwrap());
    let inside = target.enter(|| Netns::current().unwrap().id().unwrap()).unwrap();
    assert_eq!(inside, target.id().unwrap());
    assert!(host.is_current().unwrap());
}

#[test]
fn enter_comes_back_after_a_panic() {
    let ns = TestNs::new();
    let target = ns.open();
    let host = Netns::current().unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        target.enter(|| panic!("boom inside")).unwrap();
    }));
    assert!(r.is_err());
    assert!(host.is_current().unwrap());
}

#[test]
fn opened_namespace_outlives_its_bind_mount() {
    let ns = TestNs::new();
    let target = ns.open();
    let id = target.id().unwrap();
    netlink_common::run("ip", &["netns", "del", &ns.name]);
    assert!(!Netns::exists(ns.path()));
    assert_eq!(target.enter(|| Netns::current().unwrap().id().unwrap()).unwrap(), id);
}

#[test]
fn sysctl_set_and_get_in_a_namespace() {
    let ns = TestNs::new();
    let target = ns.open();
    let host_before = sysctl::get("net.ipv4.ip_forward").unwrap();
    assert_eq!(sysctl::get_in(&target, "net.ipv4.ip_forward").unwrap(), "0");
    sysctl::set_in(&target, "net.ipv4.ip_forward", "1").unwrap();
    assert_eq!(ns.sysctl("net/ipv4/ip_forward"), "1");
    assert_eq!(sysctl::get_in(&target, "net/ipv4/ip_forward").unwrap(), "1");
    assert!(!sysctl::ensure_in(&target, "net.ipv4.ip_forward", "1").unwrap());
    // the host is untouched
    assert_eq!(sysctl::get("net.ipv4.ip_forward").unwrap(), host_before);

    let key = sysctl::conf_key(Family::V4, "lo", "arp_notify");
    assert!(sysctl::ensure_in(&target, &key, "1").unwrap());
    assert_eq!(ns.sysctl("net/ipv4/conf/lo/arp_notify"), "1");
    target.enter(|| sysctl::ip_forward_on(Family::V6)).unwrap().unwrap();
    assert_eq!(ns.sysctl("net/ipv6/conf/all/forwarding"), "1");
}

#[test]
fn sysctl_errors_are_clear() {
    let ns = TestNs::new();
    let target = ns.open();
    let e = sysctl::set_in(&target, "kernel.hostname", "x").unwrap_err();
    assert_eq!(e.kind, Kind::Invalid);
    let e = sysctl::get_in(&target, "net.ipv4.conf.nope0.forwarding").unwrap_err();
    assert_eq!(e.kind, Kind::NotFound);
    assert!(e.to_string().contains("net.ipv4.conf.nope0.forwarding"), "{e}");
}
