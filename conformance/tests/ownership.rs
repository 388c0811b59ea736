//! Whose state is whose: GC and DEL of one network never touch another
//! network's containers (a shared bridge, names that share a long prefix,
//! one subnet used by two networks), and elements written by the previous
//! release (its owner key format, veths without an owner alias) are still
//! found by DEL and GC.

use conformance::fixture::{with_prev, Host};
use conformance::{tcp, witness, TestNs};
use netcore::naming::host_veth_name;
use serde_json::{json, Value};

const NAT: &str = "cnirs-nat";
const PORTMAP: &str = "cnirs-portmap";

fn bridge(name: &str, br: &str, range: Value, extra: Value) -> Value {
    let mut v = json!({
        "cniVersion": "1.1.0", "name": name, "type": "bridge", "bridge": br,
        "isGateway": true, "ipMasq": true,
        "ipam": { "type": "host-local", "ranges": [[range]], "routes": [{ "dst": "0.0.0.0/0" }] }
    });
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    v
}

fn v4(result: &Value) -> String {
    let ips = result["ips"].as_array().unwrap();
    let a = ips.iter().map(|i| i["address"].as_str().unwrap()).find(|a| a.contains('.')).unwrap();
    a.split('/').next().unwrap().to_string()
}

fn gc_conf(conf: &str, valid: Value) -> String {
    let mut v: Value = serde_json::from_str(conf).unwrap();
    v["cni.dev/valid-attachments"] = valid;
    v.to_string()
}

fn masq_elements(host: &Host) -> Vec<String> {
    witness::nft_elements(&host.ns, NAT, "masq-src4")
}

fn has_link(ns: &TestNs, name: &str) -> bool {
    witness::link(ns, name).is_some()
}

#[test]
fn gc_of_one_network_leaves_another_networks_containers_on_a_shared_bridge() {
    let host = Host::new("own-shbr");
    let sha = host.conf(bridge(
        "shA",
        "advbr11",
        json!({"subnet": "10.74.0.0/24", "rangeStart": "10.74.0.10", "rangeEnd": "10.74.0.99"}),
        json!({}),
    ));
    let shb = host.conf(bridge(
        "shB",
        "advbr11",
        json!({"subnet": "10.74.0.0/24", "rangeStart": "10.74.0.100", "rangeEnd": "10.74.0.199"}),
        json!({}),
    ));
    let (a, b) = (TestNs::new("own-shbr-a"), TestNs::new("own-shbr-b"));
    let ra = host.run("bridge", "ADD", &a.path(), "a1", "eth0", &sha).ok().json();
    let rb = host.run("bridge", "ADD", &b.path(), "b1", "eth0", &shb).ok().json();
    let (veth_a, veth_b) = (host_veth_name("shA", "a1", "eth0"), host_veth_name("shB", "b1", "eth0"));

    host.run("bridge", "GC", "", "", "", &gc_conf(&sha, json!([{"containerID": "a1", "ifname": "eth0"}]))).ok();
    assert!(has_link(&host.ns, &veth_b), "b1's host veth survives shA's GC");
    assert!(has_link(&b, "eth0"), "b1's eth0 survives shA's GC");
    assert_eq!(host.leases("shB"), vec![v4(&rb)], "b1's lease survives");
    assert!(masq_elements(&host).contains(&v4(&rb)), "b1's masquerade element survives");
    assert!(b.ping("10.74.0.1"), "b1 still reaches its gateway");
    assert!(has_link(&host.ns, &veth_a) && a.ping("10.74.0.1"), "a1 is valid and untouched");
    host.run("bridge", "CHECK", &b.path(), "b1", "eth0", &with_prev(&shb, &rb)).ok();

    // shA's GC without a1 still removes what shA made for a1, and only that.
    host.run("bridge", "GC", "", "", "", &gc_conf(&sha, json!([]))).ok();
    assert!(!has_link(&host.ns, &veth_a), "a1's host veth is removed");
    assert!(host.leases("shA").is_empty(), "a1's lease is released");
    assert_eq!(masq_elements(&host), vec![v4(&rb)], "only b1's masquerade element is left");
    assert!(has_link(&host.ns, &veth_b) && b.ping("10.74.0.1"), "b1 is still there");
    let _ = ra;
}

/// Two network names of 52 bytes that share their first 45.
fn long_names() -> (String, String) {
    let common = "n".repeat(45);
    (format!("{common}-one-xx"), format!("{common}-two-xx"))
}

fn portmap_conf(net: &str, host_port: u16, prev: &Value) -> String {
    json!({
        "cniVersion": "1.1.0", "name": net, "type": "portmap",
        "capabilities": {"portMappings": true}, "snat": true,
        "runtimeConfig": {"portMappings": [{"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}]},
        "prevResult": prev
    })
    .to_string()
}

#[test]
fn gc_of_a_long_named_network_never_takes_a_similar_networks_state() {
    let host = Host::new("own-long");
    host.ns.ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let (one, two) = long_names();
    let (id1, id2) = ("1".repeat(64), "2".repeat(64));
    let conf1 = host.conf(bridge(&one, "cni-long1", json!({"subnet": "10.75.1.0/24"}), json!({})));
    let conf2 = host.conf(bridge(&two, "cni-long2", json!({"subnet": "10.75.2.0/24"}), json!({})));
    let (c1, c2) = (TestNs::new("own-long-1"), TestNs::new("own-long-2"));
    let r1 = host.run("bridge", "ADD", &c1.path(), &id1, "eth0", &conf1).ok().json();
    let r2 = host.run("bridge", "ADD", &c2.path(), &id2, "eth0", &conf2).ok().json();
    host.run("portmap", "ADD", &c2.path(), &id2, "eth0", &portmap_conf(&two, 8090, &r2)).ok();
    let _server = tcp::Server::start(&c2.name, "0.0.0.0:80", "two").expect("listening in container two");
    assert_eq!(tcp::request(&host.ns.name, "10.75.2.1:8090").expect("hostPort before GC"), "two");

    let empty = json!([]);
    host.run("bridge", "GC", "", "", "", &gc_conf(&conf1, empty.clone())).ok();
    let pm1 = json!({"cniVersion": "1.1.0", "name": one, "type": "portmap"}).to_string();
    host.run("portmap", "GC", "", "", "", &gc_conf(&pm1, empty)).ok();

    let masq = masq_elements(&host);
    assert!(!masq.contains(&v4(&r1)), "network one's masquerade element is removed: {masq:?}");
    assert!(masq.contains(&v4(&r2)), "network two's masquerade element stays: {masq:?}");
    assert_eq!(witness::nft_elements(&host.ns, PORTMAP, "hp4all").len(), 1, "network two's mapping stays");
    assert_eq!(tcp::request(&host.ns.name, "10.75.2.1:8090").expect("hostPort after GC"), "two");
    assert!(!has_link(&host.ns, &host_veth_name(&one, &id1, "eth0")));
    assert!(has_link(&host.ns, &host_veth_name(&two, &id2, "eth0")));
    host.run("portmap", "CHECK", &c2.path(), &id2, "eth0", &portmap_conf(&two, 8090, &r2)).ok();
}
