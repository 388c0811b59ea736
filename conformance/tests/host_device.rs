//! host-device: an existing interface of the host moves into a container
//! and back, through cnitool with the example `cni-conf/50-host-device.conflist`
//! (host-local, dual-stack, a route). The "host device" is one end of a
//! veth pair made in a host namespace of the test's own (the machine has no
//! spare NIC; a veth end has no PCI device, so `kernelpath` and `pciBusID`
//! are exercised only by their "not found" errors here and by the unit
//! tests on a sysfs tree). DEL gives the device back under its original
//! name, MTU, up/down state and alias, with no address, twice in a row and
//! repeated; a name taken meanwhile gives a clear fallback name; a veth end
//! dies with its container namespace, and DEL then succeeds; bad input
//! changes nothing.

use conformance::fixture::{json_of, Host};
use conformance::{witness, TestNs};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;

const FILE: &str = "50-host-device.conflist";
const NET: &str = "hostdevnet";

/// The example, naming the test's device and host-local's scratch store.
fn example(host: &Host, select: Value) -> Value {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut list: Value = serde_json::from_slice(&std::fs::read(repo.join("cni-conf").join(FILE)).unwrap()).unwrap();
    conformance::demo::point_stores_at(&mut list, &host.ipam_dir());
    let p = list["plugins"][0].as_object_mut().unwrap();
    p.remove("device");
    p.extend(select.as_object().unwrap().clone());
    list
}

fn install(host: &Host, list: &Value) -> PathBuf {
    host.install(FILE, list)
}

fn cnitool(host: &Host, confdir: &Path, cmd: &str, ctr: &str, cid: &str) -> Output {
    host.cnitool(confdir, &[cmd, NET, ctr], &[("CNI_CONTAINERID", cid), ("CNI_IFNAME", "eth1")])
}

/// A host namespace with the veth pair `hd0` (the device; MTU 1400, up,
/// alias "uplink") and `hd0p` (stays in the host).
fn host_with_device(prefix: &str) -> Host {
    let host = Host::new(prefix);
    host.ns.ok(&["ip", "link", "add", "hd0", "mtu", "1400", "type", "veth", "peer", "name", "hd0p"]);
    host.ns.ok(&["ip", "link", "set", "hd0", "alias", "uplink"]);
    host.ns.ok(&["ip", "link", "set", "hd0", "up"]);
    host.ns.ok(&["ip", "link", "set", "hd0p", "up"]);
    host
}

/// (name, MTU, up, alias, MAC) of a host link, as `ip -j -d link` shows it.
fn state(ns: &TestNs, dev: &str) -> Option<(String, u64, bool, String, String)> {
    let l = witness::link(ns, dev)?;
    let up = l["flags"].as_array().unwrap().iter().any(|f| f == "UP");
    Some((
        l["ifname"].as_str().unwrap().to_string(),
        l["mtu"].as_u64().unwrap(),
        up,
        l["ifalias"].as_str().unwrap_or_default().to_string(),
        l["address"].as_str().unwrap().to_string(),
    ))
}

fn global_addresses(ns: &TestNs, dev: &str) -> Vec<String> {
    witness::addresses(ns, dev).into_iter().filter(|a| !a.starts_with("fe80:")).collect()
}

#[test]
fn a_veth_end_moves_in_and_back_twice_by_device_and_by_hwaddr() {
    let host = host_with_device("hdh");
    let mac = state(&host.ns, "hd0").unwrap().4;
    // Round 1 by name with the device up; round 2 by MAC with it down.
    for (round, select, up) in [(1, json!({"device": "hd0"}), true), (2, json!({"hwaddr": mac.to_uppercase()}), false)]
    {
        if !up {
            host.ns.ok(&["ip", "link", "set", "hd0", "down"]);
        }
        let before = state(&host.ns, "hd0").unwrap();
        assert_eq!(before, ("hd0".into(), 1400, up, "uplink".into(), mac.clone()));
        let confdir = install(&host, &example(&host, select));
        let ctr = TestNs::new("hdc");
        let cid = format!("hd-{round}-{}", std::process::id());
        let r = json_of(cnitool(&host, &confdir, "add", &ctr.path(), &cid), "add");
        // host-local hands out the next address each round.
        let (v4, v6) = (format!("10.80.0.{}/24", round + 1), format!("fd00:80::{}/64", round + 1));

        // The result: the container's interface with its sandbox and MAC.
        assert_eq!(r["interfaces"], json!([{"name": "eth1", "mac": mac, "sandbox": ctr.path()}]), "{r}");
        assert_eq!(
            r["ips"],
            json!([
                {"interface": 0, "address": v4, "gateway": "10.80.0.1"},
                {"interface": 0, "address": v6, "gateway": "fd00:80::1"}
            ]),
            "{r}"
        );
        // In the container: renamed, up, addressed, routed; gone from the host.
        assert!(state(&host.ns, "hd0").is_none(), "round {round}: hd0 still in the host");
        let inside = state(&ctr, "eth1").expect("eth1 in the container");
        assert_eq!((inside.2, inside.4.as_str()), (true, mac.as_str()));
        assert_eq!(global_addresses(&ctr, "eth1"), [v4, v6]);
        let routes = witness::ip(&ctr, &["-4", "route", "show", "10.81.0.0/16"]);
        assert_eq!(routes[0]["gateway"], "10.80.0.1", "{routes}");
        assert_eq!(routes[0]["dev"], "eth1", "{routes}");
        json_of(cnitool(&host, &confdir, "check", &ctr.path(), &cid), "check");
        // Something in the container (a chained tuning) changes the MTU.
        ctr.ok(&["ip", "link", "set", "eth1", "mtu", "1300"]);

        json_of(cnitool(&host, &confdir, "del", &ctr.path(), &cid), "del");
        assert_eq!(state(&host.ns, "hd0"), Some(before), "round {round}: hd0 not restored");
        assert!(global_addresses(&host.ns, "hd0").is_empty(), "round {round}: addresses left on hd0");
        assert_eq!(witness::link_names(&ctr), ["lo"]);
        assert!(host.leases(NET).is_empty(), "round {round}: leases left: {:?}", host.leases(NET));
        // DEL repeated succeeds and changes nothing.
        json_of(cnitool(&host, &confdir, "del", &ctr.path(), &cid), "del again");
        assert_eq!(state(&host.ns, "hd0").unwrap().0, "hd0");
    }
}

#[test]
fn a_veth_end_dies_with_its_container_namespace_and_del_then_succeeds() {
    let host = host_with_device("hdg");
    let confdir = install(&host, &example(&host, json!({"device": "hd0"})));
    let ctr = TestNs::new("hdgc");
    let cid = format!("hd-gone-{}", std::process::id());
    json_of(cnitool(&host, &confdir, "add", &ctr.path(), &cid), "add");
    let path = ctr.path();
    drop(ctr);
    // The kernel returns physical devices to the root namespace when their
    // namespace goes, but destroys a veth end, and its peer with it.
    // (Namespace teardown is asynchronous: wait for it, boundedly.)
    let mut peer_left = true;
    for _ in 0..100 {
        if !witness::link_names(&host.ns).iter().any(|n| n == "hd0p") {
            peer_left = false;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!peer_left, "hd0p outlived its peer's namespace");
    assert_eq!(witness::link_names(&host.ns), ["lo"]);
    json_of(cnitool(&host, &confdir, "del", &path, &cid), "del after the namespace went");
    json_of(cnitool(&host, &confdir, "del", &path, &cid), "del again");
    assert!(host.leases(NET).is_empty(), "leases left: {:?}", host.leases(NET));
}

#[test]
fn a_name_taken_while_the_device_was_away_gets_a_clear_fallback() {
    let host = host_with_device("hdt");
    let mac = state(&host.ns, "hd0").unwrap().4;
    let confdir = install(&host, &example(&host, json!({"device": "hd0"})));
    let ctr = TestNs::new("hdtc");
    let cid = format!("hd-taken-{}", std::process::id());
    json_of(cnitool(&host, &confdir, "add", &ctr.path(), &cid), "add");
    host.ns.ok(&["ip", "link", "add", "hd0", "type", "veth", "peer", "name", "hd0q"]);
    json_of(cnitool(&host, &confdir, "del", &ctr.path(), &cid), "del");
    // The newcomer keeps its name; the device comes back under `hd` + 12
    // hex digits of its attachment (not the kernel's anonymous `devN`),
    // with its MTU, state and alias.
    let newcomer = witness::link(&host.ns, "hd0").unwrap();
    assert_eq!(newcomer["linkinfo"]["info_data"]["peer"], Value::Null); // not the device: a new pair
    assert_ne!(newcomer["address"], mac.as_str());
    let back: Vec<Value> = witness::ip(&host.ns, &["-d", "link", "show", "type", "veth"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["address"] == mac.as_str())
        .cloned()
        .collect();
    assert_eq!(back.len(), 1, "{back:?}");
    let name = back[0]["ifname"].as_str().unwrap();
    assert!(name.starts_with("hd") && name.len() == 14, "fallback name {name:?}");
    assert_eq!(state(&host.ns, name).unwrap(), (name.to_string(), 1400, true, "uplink".to_string(), mac));
    assert_eq!(witness::link_names(&ctr), ["lo"]);
}

#[test]
fn bad_input_is_refused_naming_the_field_and_changes_nothing() {
    let host = host_with_device("hdb");
    host.ns.ok(&["ip", "link", "add", "hd1", "type", "veth", "peer", "name", "hd1p"]);
    let ctr = TestNs::new("hdbc");
    let before = (state(&host.ns, "hd0"), state(&host.ns, "hd1"));
    let cases: &[(Value, u64, &[&str])] = &[
        (json!({}), 7, &["\"device\"", "\"hwaddr\"", "\"kernelpath\"", "\"pciBusID\""]),
        (
            json!({"device": "hd0", "hwaddr": state(&host.ns, "hd1").unwrap().4}),
            7,
            &["\"device\"", "\"hwaddr\"", "hd1"],
        ),
        (json!({"device": "nope0"}), 100, &["\"device\"", "nope0"]),
        (json!({"hwaddr": "02:00:00:00:00:99"}), 100, &["\"hwaddr\"", "02:00:00:00:00:99"]),
        (json!({"hwaddr": "02:00"}), 7, &["\"hwaddr\""]),
        (json!({"pciBusID": "0000:99:1f.7"}), 100, &["\"pciBusID\"", "0000:99:1f.7"]),
        (json!({"kernelpath": "/sys/devices/virtual/net/hd0"}), 100, &["\"kernelpath\""]),
        (json!({"kernelpath": "/tmp/x"}), 7, &["\"kernelpath\"", "/sys/devices/"]),
    ];
    for (i, (select, code, words)) in cases.iter().enumerate() {
        let list = example(&host, select.clone());
        let mut conf = list["plugins"][0].clone();
        conf["cniVersion"] = list["cniVersion"].clone();
        conf["name"] = list["name"].clone();
        let e = host.run("host-device", "ADD", &ctr.path(), &format!("bad-{i}"), "eth1", &conf.to_string()).err(*code);
        let msg = e["msg"].as_str().unwrap();
        for w in *words {
            assert!(msg.contains(w), "case {select}: {msg:?} does not name {w}");
        }
        assert_eq!((state(&host.ns, "hd0"), state(&host.ns, "hd1")), before, "case {select} changed the host");
        assert_eq!(witness::link_names(&ctr), ["lo"], "case {select} changed the container");
        assert!(host.leases(NET).is_empty(), "case {select} left a lease");
    }
    // The container's interface name taken: 102, the device stays.
    ctr.ok(&["ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p"]);
    let list = example(&host, json!({"device": "hd0"}));
    let mut conf = list["plugins"][0].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    conf["name"] = list["name"].clone();
    let e = host.run("host-device", "ADD", &ctr.path(), "bad-taken", "eth1", &conf.to_string()).err(102);
    assert!(e["msg"].as_str().unwrap().contains("eth1"), "{e}");
    assert_eq!((state(&host.ns, "hd0"), state(&host.ns, "hd1")), before);
    assert!(host.leases(NET).is_empty());
    // STATUS goes to IPAM (spec 1.1).
    conf["cniVersion"] = "1.1.0".into();
    host.run("host-device", "STATUS", "", "", "", &conf.to_string()).ok();
}

#[test]
fn del_finds_a_device_an_add_killed_midway_left_behind() {
    // The record ADD writes in the device's alias before moving it, built
    // by hand: `cni-hd:<fnv1a64(network, container id, ifname)>:...`.
    let host = host_with_device("hdk");
    let before = state(&host.ns, "hd0").unwrap();
    let confdir = install(&host, &example(&host, json!({"device": "hd0"})));
    let cid = format!("hd-killed-{}", std::process::id());
    let tag = format!("{:016x}", netcore::naming::fnv1a64(&[NET, &cid, "eth1"]));
    let record = format!("cni-hd:{tag}:hd0:1400:u:uplink");

    // Killed after the move, before the rename: the device is in the
    // container under its host name, down.
    let ctr = TestNs::new("hdkc");
    host.ns.ok(&["ip", "link", "set", "hd0", "down"]);
    host.ns.ok(&["ip", "link", "set", "hd0", "alias", &record]);
    host.ns.ok(&["ip", "link", "set", "hd0", "netns", &ctr.name]);
    json_of(cnitool(&host, &confdir, "del", &ctr.path(), &cid), "del");
    assert_eq!(state(&host.ns, "hd0"), Some(before.clone()));
    assert_eq!(witness::link_names(&ctr), ["lo"]);

    // Killed after the record, before the move: the device is still in
    // the host, down, carrying the record.
    host.ns.ok(&["ip", "link", "set", "hd0", "down"]);
    host.ns.ok(&["ip", "link", "set", "hd0", "mtu", "1300"]);
    host.ns.ok(&["ip", "link", "set", "hd0", "alias", &record]);
    json_of(cnitool(&host, &confdir, "del", &ctr.path(), &cid), "del");
    assert_eq!(state(&host.ns, "hd0"), Some(before));
}

#[test]
fn every_spec_version_with_static_ipam_and_without_ipam() {
    let host = host_with_device("hdv");
    let before = state(&host.ns, "hd0").unwrap();
    let ctr = TestNs::new("hdvc");
    let versions = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
    for (i, v) in versions.iter().enumerate() {
        let conf = json!({
            "cniVersion": v, "name": NET, "type": "host-device", "device": "hd0",
            "ipam": {"type": "static", "addresses": [{"address": "10.82.0.5/24"}]}
        })
        .to_string();
        let cid = format!("hd-v{i}-{}", std::process::id());
        let r = host.run("host-device", "ADD", &ctr.path(), &cid, "eth1", &conf).ok().json();
        assert_eq!(r["cniVersion"], *v);
        if v.starts_with("0.1") || v.starts_with("0.2") {
            assert_eq!(r["ip4"]["ip"], "10.82.0.5/24", "{r}");
        } else {
            assert_eq!(r["interfaces"][0]["name"], "eth1", "{r}");
            assert_eq!(r["ips"][0]["address"], "10.82.0.5/24", "{r}");
        }
        assert_eq!(global_addresses(&ctr, "eth1"), ["10.82.0.5/24"], "{v}");
        host.run("host-device", "DEL", &ctr.path(), &cid, "eth1", &conf).ok();
        assert_eq!(state(&host.ns, "hd0"), Some(before.clone()), "{v}");
        // Without IPAM: an L2-only interface, which 0.1/0.2 results cannot
        // carry (refused before anything moves).
        let l2 = json!({"cniVersion": v, "name": NET, "type": "host-device", "device": "hd0"}).to_string();
        let run = host.run("host-device", "ADD", &ctr.path(), &cid, "eth1", &l2);
        if v.starts_with("0.1") || v.starts_with("0.2") {
            run.err(1);
            assert_eq!(state(&host.ns, "hd0"), Some(before.clone()), "{v}");
        } else {
            let r = run.ok().json();
            assert_eq!(r["interfaces"][0]["sandbox"], ctr.path(), "{r}");
            assert!(state(&ctr, "eth1").unwrap().2, "{v}: eth1 not up");
            host.run("host-device", "DEL", &ctr.path(), &cid, "eth1", &l2).ok();
        }
        assert_eq!(state(&host.ns, "hd0"), Some(before.clone()), "{v}");
    }
}
