//! bridge + host-local: traffic, isolation, concurrency, cleanup, every
//! option's effect in kernel state, and bad input leaving nothing behind.

use conformance::fixture::{with_prev, Host};
use conformance::{witness, TestNs};
use serde_json::{json, Value};

fn net(name: &str, bridge: &str, v4: &str, v6: Option<&str>, extra: Value) -> Value {
    let mut ranges = vec![json!([{ "subnet": v4 }])];
    if let Some(v6) = v6 {
        ranges.push(json!([{ "subnet": v6 }]));
    }
    let mut v = json!({
        "cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": bridge,
        "isGateway": true,
        "ipam": { "type": "host-local", "ranges": ranges, "routes": [{ "dst": "0.0.0.0/0" }] }
    });
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    v
}

fn addr(result: &Value, v4: bool) -> String {
    let ips = result["ips"].as_array().unwrap();
    let a = ips.iter().map(|i| i["address"].as_str().unwrap()).find(|a| a.contains('.') == v4).unwrap();
    a.split('/').next().unwrap().to_string()
}

fn slave_data(host: &Host, dev: &str) -> Value {
    witness::link(&host.ns, dev).unwrap()["linkinfo"]["info_slave_data"].clone()
}

#[test]
fn two_containers_reach_each_other_and_the_gateway_v4_and_v6() {
    let host = Host::new("br-ping");
    let conf = host.conf(net("pingnet", "cni-ping0", "10.51.0.0/24", Some("fd00:51::/64"), json!({})));
    let (c1, c2) = (TestNs::new("br-ping-c1"), TestNs::new("br-ping-c2"));
    let r1 = host.run("bridge", "ADD", &c1.path(), "c1", "eth0", &conf).ok().json();
    let r2 = host.run("bridge", "ADD", &c2.path(), "c2", "eth0", &conf).ok().json();
    assert_eq!(r1["interfaces"][0]["name"], "cni-ping0");
    assert_eq!(r1["interfaces"][2]["sandbox"], c1.path().as_str());
    assert_eq!(r1["ips"][0]["interface"], 2);
    assert_eq!(r1["ips"][0]["gateway"], "10.51.0.1");
    assert!(c1.ping(&addr(&r2, true)), "c1 -> c2 over IPv4");
    assert!(c2.ping(&addr(&r1, false)), "c2 -> c1 over IPv6");
    assert!(c1.ping("10.51.0.1"), "c1 -> gateway v4");
    assert!(c1.ping("fd00:51::1"), "c1 -> gateway v6");
    assert!(witness::addresses(&host.ns, "cni-ping0").contains(&"10.51.0.1/24".to_string()));
    // CHECK passes for both, also after the second container joined.
    for (c, r, id) in [(&c1, &r1, "c1"), (&c2, &r2, "c2")] {
        host.run("bridge", "CHECK", &c.path(), id, "eth0", &with_prev(&conf, r)).ok();
    }
    for (c, r, id) in [(&c1, &r1, "c1"), (&c2, &r2, "c2")] {
        host.run("bridge", "DEL", &c.path(), id, "eth0", &with_prev(&conf, r)).ok();
    }
    assert!(host.veths().is_empty(), "veths left: {:?}", host.veths());
    assert!(host.leases("pingnet").is_empty());
    assert!(witness::link(&host.ns, "cni-ping0").is_some(), "the bridge stays for other containers");
}

#[test]
fn masquerade_reaches_the_outside_and_del_removes_every_element() {
    let host = Host::new("br-masq");
    let outside = TestNs::new("br-masq-out");
    // The host's uplink: a veth to an "outside" namespace that has no
    // route back to the containers, so only masquerade makes replies work.
    host.ns.ok(&["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", &outside.name]);
    host.ns.ok(&["ip", "addr", "add", "192.0.2.1/24", "dev", "up0"]);
    host.ns.ok(&["ip", "link", "set", "up0", "up"]);
    outside.ok(&["ip", "addr", "add", "192.0.2.2/24", "dev", "up1"]);
    outside.ok(&["ip", "link", "set", "up1", "up"]);
    let conf = host.conf(net("masqnet", "cni-masq0", "10.52.0.0/24", None, json!({"ipMasq": true})));
    let c1 = TestNs::new("br-masq-c1");
    let r = host.run("bridge", "ADD", &c1.path(), "c1", "eth0", &conf).ok().json();
    assert!(c1.ping("192.0.2.2"), "the container reaches the outside through masquerade");
    let rules = serde_json::to_string(&witness::nft_ruleset(&host.ns)).unwrap();
    assert!(rules.contains("masquerade") && rules.contains("10.52.0.2"), "{rules}");
    host.run("bridge", "CHECK", &c1.path(), "c1", "eth0", &with_prev(&conf, &r)).ok();
    // DEL with the namespace already gone still removes the element.
    let path = c1.path();
    drop(c1);
    host.run("bridge", "DEL", &path, "c1", "eth0", &with_prev(&conf, &r)).ok();
    host.run("bridge", "DEL", "", "c1", "eth0", &conf).ok();
    assert!(witness::nft_elements(&host.ns, "cnirs-nat", "masq-src4").is_empty());
    assert!(host.veths().iter().all(|v| v == "up0"), "{:?}", host.veths());
    assert!(host.leases("masqnet").is_empty());
}

#[test]
fn isolation_blocks_other_networks_and_routing_works_without_it() {
    for isolated in [true, false] {
        let host = Host::new("br-iso");
        let a = host.conf(net("isoa", "cni-isoa", "10.53.1.0/24", None, json!({"isolation": isolated})));
        let b = host.conf(net("isob", "cni-isob", "10.53.2.0/24", None, json!({"isolation": isolated})));
        let (ca, cb, both) = (TestNs::new("br-iso-a"), TestNs::new("br-iso-b"), TestNs::new("br-iso-ab"));
        let ra = host.run("bridge", "ADD", &ca.path(), "ca", "eth0", &a).ok().json();
        let rb = host.run("bridge", "ADD", &cb.path(), "cb", "eth0", &b).ok().json();
        // A container on both networks, as `docker network connect` makes it.
        let rab1 = host.run("bridge", "ADD", &both.path(), "cab", "eth0", &a).ok().json();
        host.run("bridge", "ADD", &both.path(), "cab", "eth1", &b).ok();
        assert_eq!(ca.ping(&addr(&rb, true)), !isolated, "a -> b with isolation={isolated}");
        assert_eq!(cb.ping(&addr(&ra, true)), !isolated, "b -> a with isolation={isolated}");
        assert!(both.ping(&addr(&ra, true)) && both.ping(&addr(&rb, true)), "the two-network container reaches both");
        assert!(ca.ping(&addr(&rab1, true)));
        assert!(ca.ping("10.53.1.1"), "the gateway stays reachable");
    }
}

#[test]
fn parallel_adds_create_one_bridge() {
    let host = Host::new("br-par");
    let conf = host.conf(net("parnet", "cni-par0", "10.54.0.0/24", None, json!({"ipMasq": true})));
    let ctrs: Vec<TestNs> = (0..32).map(|_| TestNs::new("br-par-c")).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = ctrs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (host, conf) = (&host, &conf);
                s.spawn(move || host.run("bridge", "ADD", &c.path(), &format!("p{i}"), "eth0", conf))
            })
            .collect();
        for h in handles {
            h.join().unwrap().ok();
        }
    });
    let bridges: Vec<Value> = witness::ip(&host.ns, &["link", "show", "type", "bridge"]).as_array().unwrap().clone();
    assert_eq!(bridges.len(), 1);
    assert_eq!(host.leases("parnet").len(), 32);
    assert_eq!(host.veths().len(), 32);
    for (i, c) in ctrs.iter().enumerate() {
        host.run("bridge", "DEL", &c.path(), &format!("p{i}"), "eth0", &conf).ok();
    }
    assert!(host.veths().is_empty());
    assert!(host.leases("parnet").is_empty());
    assert!(witness::nft_elements(&host.ns, "cnirs-nat", "masq-src4").is_empty());
}

#[test]
fn options_show_in_kernel_state() {
    let host = Host::new("br-opt");
    let conf = host.conf(net(
        "optnet",
        "cni-opt0",
        "10.55.0.0/24",
        Some("fd00:55::/64"),
        json!({"mtu": 1400, "hairpinMode": true, "portIsolation": true, "isDefaultGateway": true, "enabledad": true,
               "runtimeConfig": {"mac": "02:11:22:33:44:55"}}),
    ));
    let c = TestNs::new("br-opt-c");
    let r = host.run("bridge", "ADD", &c.path(), "oc", "eth0", &conf).ok().json();
    let eth0 = witness::link(&c, "eth0").unwrap();
    assert_eq!(eth0["mtu"], 1400);
    assert_eq!(eth0["address"], "02:11:22:33:44:55");
    assert_eq!(r["interfaces"][2]["mac"], "02:11:22:33:44:55");
    let veth = r["interfaces"][1]["name"].as_str().unwrap().to_string();
    let slave = slave_data(&host, &veth);
    assert_eq!(slave["hairpin"], true, "{slave}");
    assert_eq!(slave["isolated"], true, "{slave}");
    assert_eq!(witness::link(&host.ns, &veth).unwrap()["mtu"], 1400);
    let routes = witness::ip(&c, &["route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "10.55.0.1", "{routes}");
    assert!(!witness::v6_nodad(&c, "eth0"), "enabledad keeps DAD on");
    host.run("bridge", "DEL", &c.path(), "oc", "eth0", &conf).ok();

    // Defaults: DAD off, no hairpin, and promiscMode on the bridge.
    let conf =
        host.conf(net("optnet2", "cni-opt1", "10.55.1.0/24", Some("fd00:56::/64"), json!({"promiscMode": true})));
    let c = TestNs::new("br-opt-d");
    let r = host.run("bridge", "ADD", &c.path(), "od", "eth0", &conf).ok().json();
    assert!(witness::v6_nodad(&c, "eth0"), "no DAD by default");
    let flags = witness::link(&host.ns, "cni-opt1").unwrap()["flags"].clone();
    assert!(flags.as_array().unwrap().iter().any(|f| f == "PROMISC"), "{flags}");
    assert_eq!(slave_data(&host, r["interfaces"][1]["name"].as_str().unwrap())["hairpin"], false);
}

#[test]
fn l2_only_and_disabled_container_interface() {
    let host = Host::new("br-l2");
    let c = TestNs::new("br-l2-c");
    let l2 =
        json!({"cniVersion": "1.0.0", "name": "l2net", "type": "bridge", "bridge": "cni-l2", "ipam": {}}).to_string();
    let r = host.run("bridge", "ADD", &c.path(), "l2", "eth0", &l2).ok().json();
    assert!(r.get("ips").is_none());
    assert!(witness::link(&c, "eth0").unwrap()["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    host.run("bridge", "CHECK", &c.path(), "l2", "eth0", &with_prev(&l2, &r)).ok();
    // A 0.2.0 result cannot carry an L2-only attachment: error, nothing left.
    host.run("bridge", "DEL", &c.path(), "l2", "eth0", &l2).ok();
    let old = l2.replace("1.0.0", "0.2.0");
    host.run("bridge", "ADD", &c.path(), "l2", "eth0", &old).err(1);
    let down = json!({"cniVersion": "1.0.0", "name": "l2net", "type": "bridge", "bridge": "cni-l2", "ipam": {},
                      "disableContainerInterface": true})
    .to_string();
    host.run("bridge", "ADD", &c.path(), "l2d", "eth1", &down).ok();
    let flags = witness::link(&c, "eth1").unwrap()["flags"].clone();
    assert!(!flags.as_array().unwrap().iter().any(|f| f == "UP"), "{flags}");
}

#[test]
fn force_address_replaces_a_different_gateway() {
    let host = Host::new("br-force");
    host.ns.ok(&["ip", "link", "add", "cni-force", "type", "bridge"]);
    host.ns.ok(&["ip", "addr", "add", "10.56.9.1/24", "dev", "cni-force"]);
    let c = TestNs::new("br-force-c");
    let conf = host.conf(net("forcenet", "cni-force", "10.56.0.0/24", None, json!({})));
    let e = host.run("bridge", "ADD", &c.path(), "f1", "eth0", &conf).err(100);
    assert!(e["msg"].as_str().unwrap().contains("already has an IP address different"), "{e}");
    assert!(host.leases("forcenet").is_empty(), "the lease was released");
    assert_eq!(host.veths(), Vec::<String>::new(), "the veth was removed");
    let conf = host.conf(net("forcenet", "cni-force", "10.56.0.0/24", None, json!({"forceAddress": true})));
    host.run("bridge", "ADD", &c.path(), "f1", "eth0", &conf).ok();
    let v4: Vec<String> = witness::addresses(&host.ns, "cni-force").into_iter().filter(|a| a.contains('.')).collect();
    assert_eq!(v4, vec!["10.56.0.1/24"]);
}

#[test]
fn check_reports_drift() {
    let host = Host::new("br-drift");
    let c = TestNs::new("br-drift-c");
    let conf = host.conf(net("driftnet", "cni-drift", "10.57.0.0/24", None, json!({})));
    let r = host.run("bridge", "ADD", &c.path(), "d1", "eth0", &conf).ok().json();
    let prev = with_prev(&conf, &r);
    host.run("bridge", "CHECK", &c.path(), "d1", "eth0", &prev).ok();
    c.ok(&["ip", "addr", "flush", "dev", "eth0"]);
    let e = host.run("bridge", "CHECK", &c.path(), "d1", "eth0", &prev).err(100);
    assert!(e["msg"].as_str().unwrap().contains("10.57.0.2/24"), "{e}");
    c.ok(&["ip", "link", "del", "eth0"]);
    let e = host.run("bridge", "CHECK", &c.path(), "d1", "eth0", &prev).err(100);
    assert!(e["msg"].as_str().unwrap().contains("missing"), "{e}");
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let host = Host::new("br-bad");
    let c = TestNs::new("br-bad-c");
    host.ns.ok(&["ip", "link", "add", "notabridge", "type", "veth", "peer", "name", "nab-peer"]);
    let cases: Vec<(Value, u64, &str)> = vec![
        (json!({"bridge": "a-very-long-bridge-name"}), 7, "bridge"),
        (json!({"bridge": "br/x"}), 7, "bridge"),
        (json!({"mtu": 60}), 7, "mtu"),
        (json!({"mtu": 70000}), 7, "mtu"),
        (json!({"vlan": 5000}), 7, "vlan"),
        (json!({"vlanTrunk": [{"minID": 10, "maxID": 20}, {"id": 15}]}), 7, "vlanTrunk"),
        (json!({"bridge": "notabridge"}), 100, "not a bridge"),
        (json!({"vlan": 10}), 103, "vlan"),
        (json!({"vlanTrunk": [{"id": 7}]}), 103, "vlanTrunk"),
    ];
    for (extra, code, needle) in cases {
        let bridge = extra.get("bridge").and_then(Value::as_str).unwrap_or("cni-bad0").to_string();
        let mut extra = extra;
        extra["bridge"] = bridge.clone().into();
        let conf = host.conf(net("badnet", &bridge, "10.58.0.0/24", None, extra.clone()));
        let e = host.run("bridge", "ADD", &c.path(), "b1", "eth0", &conf).err(code);
        assert!(e["msg"].as_str().unwrap().contains(needle), "{extra}: {e}");
        assert!(host.leases("badnet").is_empty(), "{extra}: lease left");
        let mut veths = host.veths();
        veths.sort();
        assert_eq!(veths, ["nab-peer", "notabridge"], "{extra}: veth left behind");
        assert!(witness::link(&host.ns, "cni-bad0").is_none(), "{extra}: bridge left behind");
        assert_eq!(witness::link_names(&c), vec!["lo"], "{extra}: container changed");
    }
    // An IPAM plugin that returns no address.
    let dir = host.dir.join("fakeipam");
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("noaddr");
    std::fs::write(&fake, "#!/bin/sh\ncat >/dev/null\n[ \"$CNI_COMMAND\" = ADD ] && echo '{\"cniVersion\":\"1.0.0\",\"dns\":{}}'\nexit 0\n").unwrap();
    std::process::Command::new("chmod").args(["+x", fake.to_str().unwrap()]).status().unwrap();
    let conf = json!({"cniVersion": "1.0.0", "name": "noaddr", "type": "bridge", "bridge": "cni-bad0", "ipam": {"type": "noaddr"}});
    let path = format!("{}", dir.display());
    let e = conformance::run_plugin(
        Some(&host.ns.name),
        "bridge",
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "b2"),
            ("CNI_NETNS", &c.path()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", &path),
        ],
        &conf.to_string(),
    )
    .err(100);
    assert!(e["msg"].as_str().unwrap().contains("no IP address"), "{e}");
    assert!(witness::link(&host.ns, "cni-bad0").is_none());
    assert_eq!(witness::link_names(&c), vec!["lo"]);
}

#[test]
fn an_interface_name_already_taken_leaves_no_lease() {
    // The name is checked before the delegate starts: a refused ADD takes
    // no address and releases none.
    let host = Host::new("br-dup");
    let c = TestNs::new("br-dup-c");
    let conf = host.conf(net("dupnet", "cni-dup0", "10.62.0.0/24", None, json!({})));
    host.run("bridge", "ADD", &c.path(), "d1", "eth0", &conf).ok();
    let leases = host.leases("dupnet");
    assert_eq!(leases.len(), 1, "{leases:?}");
    let e = host.run("bridge", "ADD", &c.path(), "d2", "eth0", &conf).err(102);
    assert!(e["msg"].as_str().unwrap().contains("eth0"), "{e}");
    assert_eq!(host.leases("dupnet"), leases, "the second ADD keeps no address");
    assert_eq!(host.veths().len(), 1, "no second veth pair");
    // The same attachment added again (a runtime's retry of a live one):
    // refused, and the live container keeps its address, on disk and in use.
    let e = host.run("bridge", "ADD", &c.path(), "d1", "eth0", &conf).err(102);
    assert!(e["msg"].as_str().unwrap().contains("eth0"), "{e}");
    assert_eq!(host.leases("dupnet"), leases, "the live attachment's lease stays");
    assert!(c.ping("10.62.0.1"), "the live container still reaches its gateway");
    // The range still serves the next ADD.
    let c2 = TestNs::new("br-dup-c");
    host.run("bridge", "ADD", &c2.path(), "d3", "eth0", &conf).ok();
    assert_eq!(host.leases("dupnet").len(), 2);
}

#[test]
fn gc_removes_what_no_valid_attachment_owns() {
    let host = Host::new("br-gc");
    let mut v = net("gcnet", "cni-gc0", "10.59.0.0/24", None, json!({"ipMasq": true}));
    v["cniVersion"] = "1.1.0".into();
    let conf = host.conf(v.clone());
    let (c1, c2) = (TestNs::new("br-gc-c1"), TestNs::new("br-gc-c2"));
    host.run("bridge", "ADD", &c1.path(), "keep", "eth0", &conf).ok();
    host.run("bridge", "ADD", &c2.path(), "gone", "eth0", &conf).ok();
    let mut gc = serde_json::from_str::<Value>(&conf).unwrap();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    host.run("bridge", "GC", "", "", "", &gc.to_string()).ok();
    assert_eq!(host.leases("gcnet"), vec!["10.59.0.2"]);
    assert_eq!(host.veths().len(), 1);
    assert_eq!(witness::nft_elements(&host.ns, "cnirs-nat", "masq-src4"), vec!["10.59.0.2"]);
    assert!(c1.ping("10.59.0.1"), "the valid container still works");
}

/// `ip -d -j link show <dev>` without what changes by itself (timers,
/// statistics), to compare a link before and after a refused ADD.
fn stable_link(host: &Host, dev: &str) -> Value {
    let mut l = witness::link(&host.ns, dev).unwrap_or_else(|| panic!("{dev} is gone"));
    if let Some(data) = l["linkinfo"]["info_data"].as_object_mut() {
        data.retain(|k, _| !k.ends_with("_timer"));
    }
    l
}

#[test]
fn vlans_on_a_kernel_without_vlan_filtering_leave_an_existing_bridge_unchanged() {
    let host = Host::new("br-vlan");
    let c = TestNs::new("br-vlan-c");
    // An existing bridge, down, with an address and a port: none of it may change.
    host.ns.ok(&["ip", "link", "add", "cni-vlan0", "type", "bridge"]);
    host.ns.ok(&["ip", "addr", "add", "10.61.0.1/24", "dev", "cni-vlan0"]);
    host.ns.ok(&["ip", "link", "add", "vl-port", "type", "veth", "peer", "name", "vl-peer"]);
    host.ns.ok(&["ip", "link", "set", "vl-port", "master", "cni-vlan0"]);
    let before = stable_link(&host, "cni-vlan0");
    assert_eq!(before["linkinfo"]["info_data"]["vlan_filtering"], 0);
    let cases = [
        (json!({"vlan": 10}), "vlan"),
        (json!({"vlan": 10, "isGateway": false}), "vlan"),
        (json!({"vlanTrunk": [{"id": 7}, {"minID": 100, "maxID": 110}]}), "vlanTrunk"),
        (json!({"vlan": 20, "vlanTrunk": [{"id": 7}], "preserveDefaultVlan": true}), "vlan"),
    ];
    for (extra, field) in cases {
        let conf = host.conf(net("vlannet", "cni-vlan0", "10.61.0.0/24", None, extra.clone()));
        let e = host.run("bridge", "ADD", &c.path(), "v1", "eth0", &conf).err(103);
        let msg = e["msg"].as_str().unwrap();
        assert!(msg.contains(&format!("field \"{field}\"")), "{extra}: {e}");
        assert!(msg.contains("VLAN filtering"), "{extra}: {e}");
        assert_eq!(stable_link(&host, "cni-vlan0"), before, "{extra}: the existing bridge changed");
        assert!(host.leases("vlannet").is_empty(), "{extra}: lease left");
        let mut veths = host.veths();
        veths.sort();
        assert_eq!(veths, ["vl-peer", "vl-port"], "{extra}: veth left behind");
        assert_eq!(witness::link_names(&c), vec!["lo"], "{extra}: container changed");
        // A bridge the refused ADD would have made is not left behind.
        let conf = host.conf(net("vlannet", "cni-vlan9", "10.61.0.0/24", None, extra.clone()));
        host.run("bridge", "ADD", &c.path(), "v2", "eth0", &conf).err(103);
        assert!(witness::link(&host.ns, "cni-vlan9").is_none(), "{extra}: new bridge left behind");
        assert!(host.leases("vlannet").is_empty(), "{extra}: lease left");
        // DEL after a refused ADD is still fine.
        host.run("bridge", "DEL", &c.path(), "v2", "eth0", &conf).ok();
    }
}

/// The owner comments of the elements of set `set` of the spoof-check
/// table, sorted.
fn spoof_owners(host: &Host, set: &str) -> Vec<String> {
    let mut out = Vec::new();
    for item in witness::nft_ruleset(&host.ns) {
        let Some(s) = item.get("set").filter(|s| s["table"] == "cnirs-spoofchk" && s["name"] == set) else { continue };
        for e in s["elem"].as_array().into_iter().flatten() {
            out.push(e["elem"]["comment"].as_str().unwrap_or("").to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn macspoofchk_drops_frames_from_a_changed_mac() {
    let host = Host::new("br-spoof");
    let mut v = net("spoofnet", "cni-spoof0", "10.62.0.0/24", None, json!({"macspoofchk": true}));
    v["cniVersion"] = "1.1.0".into();
    let conf = host.conf(v);
    let (c1, c2, c3) = (TestNs::new("br-spoof-c1"), TestNs::new("br-spoof-c2"), TestNs::new("br-spoof-c3"));
    let r1 = host.run("bridge", "ADD", &c1.path(), "s1", "eth0", &conf).ok().json();
    let r2 = host.run("bridge", "ADD", &c2.path(), "s2", "eth0", &conf).ok().json();
    host.run("bridge", "ADD", &c3.path(), "s3", "eth0", &conf).ok();
    let port1 = r1["interfaces"][1]["name"].as_str().unwrap().to_string();
    let mac1 = r1["interfaces"][2]["mac"].as_str().unwrap().to_string();
    assert_eq!(mac1, witness::link(&c1, "eth0").unwrap()["address"], "the result has the real MAC");
    // nft 1.0.6 prints the keys of a plain ifname set as "" (it reads
    // them as big-endian numbers); the owners tell the elements apart.
    let ports = spoof_owners(&host, "ports");
    assert_eq!(ports, ["spoofnet/s1/eth0", "spoofnet/s2/eth0", "spoofnet/s3/eth0"]);
    let allowed = witness::nft_elements(&host.ns, "cnirs-spoofchk", "allowed");
    assert_eq!(allowed.len(), 3, "{allowed:?}");
    assert!(allowed.iter().any(|a| a.contains(&port1) && a.contains(&mac1)), "{allowed:?}");

    assert!(c1.ping(&addr(&r2, true)), "c1 -> c2 with its own MAC");
    assert!(c2.ping(&addr(&r1, true)), "c2 -> c1 with its own MAC");
    for (c, r, id) in [(&c1, &r1, "s1"), (&c2, &r2, "s2")] {
        host.run("bridge", "CHECK", &c.path(), id, "eth0", &with_prev(&conf, r)).ok();
    }

    // c1 takes another MAC: its frames no longer enter the bridge, while
    // c2, with the right MAC, still gets through.
    c1.ok(&["ip", "link", "set", "eth0", "address", "02:00:00:5e:66:66"]);
    assert!(!c1.ping(&addr(&r2, true)), "c1 with a spoofed MAC still reaches c2");
    assert!(!c1.ping("10.62.0.1"), "c1 with a spoofed MAC still reaches the gateway");
    assert!(c2.ping("10.62.0.1"), "c2 no longer reaches the gateway");
    let counters = serde_json::to_string(&witness::nft_ruleset(&host.ns)).unwrap();
    assert!(counters.contains("\"drop\""), "{counters}");
    // Back to its own MAC, c1 is let through again.
    c1.ok(&["ip", "link", "set", "eth0", "address", &mac1]);
    assert!(c1.ping(&addr(&r2, true)), "c1 with its MAC back");

    // GC removes the elements no valid attachment owns.
    let mut gc = serde_json::from_str::<Value>(&conf).unwrap();
    gc["cni.dev/valid-attachments"] =
        json!([{"containerID": "s1", "ifname": "eth0"}, {"containerID": "s2", "ifname": "eth0"}]);
    host.run("bridge", "GC", "", "", "", &gc.to_string()).ok();
    assert_eq!(spoof_owners(&host, "ports"), ["spoofnet/s1/eth0", "spoofnet/s2/eth0"]);
    assert_eq!(spoof_owners(&host, "allowed"), ["spoofnet/s1/eth0", "spoofnet/s2/eth0"]);
    assert!(c1.ping(&addr(&r2, true)), "GC kept the valid containers' elements");

    // CHECK notices a missing element.
    let elem = format!("{{ \"{port1}\" . {mac1} }}");
    host.ns.ok(&["nft", "delete", "element", "bridge", "cnirs-spoofchk", "allowed", &elem]);
    let e = host.run("bridge", "CHECK", &c1.path(), "s1", "eth0", &with_prev(&conf, &r1)).err(100);
    let msg = e["msg"].as_str().unwrap();
    assert!(msg.contains("macspoofchk") && msg.contains(&mac1), "{e}");
    assert!(!c1.ping(&addr(&r2, true)), "without its allowed element c1 is dropped");

    // DEL removes the elements, also when the namespace is already gone.
    let path1 = c1.path();
    drop(c1);
    host.run("bridge", "DEL", &path1, "s1", "eth0", &with_prev(&conf, &r1)).ok();
    host.run("bridge", "DEL", &c2.path(), "s2", "eth0", &with_prev(&conf, &r2)).ok();
    host.run("bridge", "DEL", &c2.path(), "s2", "eth0", &with_prev(&conf, &r2)).ok();
    assert!(witness::nft_elements(&host.ns, "cnirs-spoofchk", "ports").is_empty());
    assert!(witness::nft_elements(&host.ns, "cnirs-spoofchk", "allowed").is_empty());
    assert!(host.leases("spoofnet").is_empty());
    assert!(host.veths().is_empty(), "{:?}", host.veths());
}

/// A bridge port (the host end of the veth) has no IPv6 of its own: no
/// link-local address and no route, so the kernel's walks of the IPv6
/// routing table on every port's up and removal do not grow with the
/// containers on the host. Both families still cross the bridge.
#[test]
fn bridge_ports_carry_no_ipv6_of_their_own() {
    let host = Host::new("br-port6");
    let conf = host.conf(net("port6net", "cni-port6", "10.58.0.0/24", Some("fd00:58::/64"), json!({})));
    let (c1, c2) = (TestNs::new("br-port6-c1"), TestNs::new("br-port6-c2"));
    let r1 = host.run("bridge", "ADD", &c1.path(), "c1", "eth0", &conf).ok().json();
    let r2 = host.run("bridge", "ADD", &c2.path(), "c2", "eth0", &conf).ok().json();
    let ports = host.veths();
    assert_eq!(ports.len(), 2, "{ports:?}");
    for p in &ports {
        assert!(witness::addresses(&host.ns, p).is_empty(), "{p} has addresses");
        let routes = host.ns.ok(&["ip", "-6", "route", "show", "table", "all", "dev", p]);
        assert!(routes.trim().is_empty(), "{p} has IPv6 routes: {routes}");
    }
    // The bridge keeps its own link-local address and the gateway.
    let br = witness::addresses(&host.ns, "cni-port6");
    assert!(br.iter().any(|a| a.starts_with("fe80:")) && br.contains(&"fd00:58::1/64".to_string()), "{br:?}");
    assert!(c1.ping(&addr(&r2, false)), "c1 -> c2 over IPv6");
    assert!(c2.ping(&addr(&r1, true)), "c2 -> c1 over IPv4");
    assert!(c2.ping("fd00:58::1"), "c2 -> gateway v6");
    for (c, r, id) in [(&c1, &r1, "c1"), (&c2, &r2, "c2")] {
        host.run("bridge", "CHECK", &c.path(), id, "eth0", &with_prev(&conf, r)).ok();
        host.run("bridge", "DEL", &c.path(), id, "eth0", &with_prev(&conf, r)).ok();
    }
    assert!(host.veths().is_empty(), "veths left: {:?}", host.veths());
}

/// Once the bridge exists, ADD runs its IPAM delegate while it makes the
/// veth pair (the fake delegate waits until it sees the bridge's second
/// port, and says whether it did). A delegate that fails there must still
/// win: its own error is returned, the pair is
/// removed, the container and the bridge's other port are untouched; a
/// result without an address is refused and released (the delegate's DEL).
#[test]
fn ipam_failing_beside_the_link_work_leaves_only_what_was_there() {
    let host = Host::new("br-ovl");
    let c1 = TestNs::new("br-ovl-a");
    let conf = host.conf(net("ovlnet", "cni-ovl0", "10.61.0.0/24", None, json!({})));
    host.run("bridge", "ADD", &c1.path(), "o1", "eth0", &conf).ok();
    let before = host.veths();
    assert_eq!(before.len(), 1, "{before:?}");

    let dir = host.dir.join("slowipam");
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("del-called");
    let saw = dir.join("saw-the-pair");
    let fakes = [
        (
            "slowfail",
            r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"no addresses left in the range"}'; exit 1"#.to_string(),
        ),
        ("slownoaddr", r#"echo '{"cniVersion":"1.0.0","dns":{}}'"#.to_string()),
    ];
    // Each fake answers to host-local's name, the delegate that may run
    // beside the link work (`netcore::ipam::runs_beside_links`).
    for (name, on_add) in &fakes {
        let script = format!(
            "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = DEL ]; then touch {}; exit 0; fi\n\
             for i in $(seq 200); do\n  if [ \"$(ip -o link show master cni-ovl0 | wc -l)\" = 2 ]; then touch {}; break; fi\n  sleep 0.05\ndone\n{on_add}\n",
            marker.display(),
            saw.display()
        );
        let fake = dir.join(name).join("host-local");
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(&fake, script).unwrap();
        std::process::Command::new("chmod").args(["+x", fake.to_str().unwrap()]).status().unwrap();
    }
    let c2 = TestNs::new("br-ovl-b");
    let run = |variant: &str| {
        let path = dir.join(variant).display().to_string();
        let conf = json!({"cniVersion": "1.0.0", "name": "ovlnet", "type": "bridge", "bridge": "cni-ovl0",
                          "isGateway": true, "ipam": {"type": "host-local"}});
        conformance::run_plugin(
            Some(&host.ns.name),
            "bridge",
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "o2"),
                ("CNI_NETNS", &c2.path()),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", &path),
            ],
            &conf.to_string(),
        )
    };
    let e = run("slowfail").err(11);
    assert!(saw.exists(), "the pair was made while the delegate ran");
    std::fs::remove_file(&saw).unwrap();
    assert_eq!(e["msg"], "no addresses left in the range", "{e}");
    assert_eq!(host.veths(), before, "the new pair was removed, the other port stays");
    assert_eq!(witness::link_names(&c2), vec!["lo"]);
    assert!(!marker.exists(), "nothing was leased, so nothing is released");

    let e = run("slownoaddr").err(100);
    assert!(saw.exists(), "the pair was made while the delegate ran");
    assert!(e["msg"].as_str().unwrap().contains("no IP address"), "{e}");
    assert_eq!(host.veths(), before);
    assert_eq!(witness::link_names(&c2), vec!["lo"]);
    assert!(marker.exists(), "the address-less result was released");

    // The first container is still served, and a good ADD still works.
    host.run("bridge", "ADD", &c2.path(), "o2", "eth0", &conf).ok();
    assert_eq!(host.veths().len(), 2);
    host.run("bridge", "DEL", &c2.path(), "o2", "eth0", &conf).ok();
    host.run("bridge", "DEL", &c1.path(), "o1", "eth0", &conf).ok();
    assert!(host.veths().is_empty());
    assert!(host.leases("ovlnet").is_empty(), "{:?}", host.leases("ovlnet"));
}

/// An IPAM delegate other than host-local and static may need the
/// container's interface (dhcp acquires on it and sends its release from
/// the leased address): its ADD runs once the interface exists, its DEL
/// before the interface goes, as the reference orders them, also when the
/// bridge exists already (where host-local runs beside the link work).
#[test]
fn an_ipam_that_needs_the_interface_runs_after_it_exists_and_before_it_goes() {
    let host = Host::new("br-lnk");
    let c1 = TestNs::new("br-lnk-a");
    let conf = host.conf(net("lnknet", "cni-lnk0", "10.62.0.0/24", None, json!({})));
    host.run("bridge", "ADD", &c1.path(), "l1", "eth0", &conf).ok();

    let dir = host.dir.join("linkipam");
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("needs-link");
    let seen = dir.join("seen");
    let script = format!(
        "#!/bin/sh\ncat >/dev/null\n\
         if nsenter --net=\"$CNI_NETNS\" ip link show \"$CNI_IFNAME\" >/dev/null 2>&1; then s=present; else s=missing; fi\n\
         echo \"$CNI_COMMAND $s\" >> {}\n\
         [ \"$CNI_COMMAND\" = ADD ] && echo '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"10.62.0.77/24\",\"gateway\":\"10.62.0.1\"}}]}}'\n\
         exit 0\n",
        seen.display()
    );
    std::fs::write(&fake, script).unwrap();
    std::process::Command::new("chmod").args(["+x", fake.to_str().unwrap()]).status().unwrap();
    let c2 = TestNs::new("br-lnk-b");
    let run = |command: &str| {
        let conf = json!({"cniVersion": "1.0.0", "name": "lnknet", "type": "bridge", "bridge": "cni-lnk0",
                          "isGateway": true, "ipam": {"type": "needs-link"}});
        conformance::run_plugin(
            Some(&host.ns.name),
            "bridge",
            &[
                ("CNI_COMMAND", command),
                ("CNI_CONTAINERID", "l2"),
                ("CNI_NETNS", &c2.path()),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", &dir.display().to_string()),
            ],
            &conf.to_string(),
        )
    };
    run("ADD").ok();
    assert!(witness::addresses(&c2, "eth0").contains(&"10.62.0.77/24".to_string()));
    run("DEL").ok();
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "ADD present\nDEL present\n");
    assert_eq!(witness::link_names(&c2), vec!["lo"]);
    host.run("bridge", "DEL", &c1.path(), "l1", "eth0", &conf).ok();
    assert!(host.veths().is_empty(), "{:?}", host.veths());
}
