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
const FIREWALL: &str = "cnirs-firewall";
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

    let alias = |veth: &str| witness::link(&host.ns, veth).unwrap()["ifalias"].clone();
    assert_eq!(alias(&veth_b), "shB/b1/eth0", "each host veth names its owner");

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

/// An "outside" namespace behind the host (host 198.51.100.1, client .2)
/// with no route to the containers: only masquerade lets them reach it.
fn outside(host: &Host, name: &str) -> TestNs {
    let client = host.outside(name);
    host.ns.ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    client
}

fn firewall_conf(net: &str, prev: &Value) -> String {
    json!({"cniVersion": "1.1.0", "name": net, "type": "firewall", "backend": "", "prevResult": prev}).to_string()
}

#[test]
fn two_masquerading_networks_on_one_subnet_both_work_and_keep_their_own_admission() {
    let host = Host::new("own-same");
    let client = outside(&host, "own-same-out");
    // Docker's FORWARD policy: only the firewall plugin's admission passes.
    host.ns.ok(&["iptables", "-P", "FORWARD", "DROP"]);
    let range = json!({"subnet": "10.76.0.0/24"});
    // A's bridge has no gateway address, so the host routes the subnet to
    // B's bridge alone: both containers get 10.76.0.2.
    let conf_a = host.conf(bridge("samea", "cni-same-a", range.clone(), json!({"isGateway": false})));
    let conf_b = host.conf(bridge("sameb", "cni-same-b", range, json!({})));
    let (a, b) = (TestNs::new("own-same-a"), TestNs::new("own-same-b"));
    let ra = host.run("bridge", "ADD", &a.path(), "ca", "eth0", &conf_a).ok().json();
    let rb = host.run("bridge", "ADD", &b.path(), "cb", "eth0", &conf_b).ok().json();
    assert_eq!(v4(&ra), v4(&rb), "one subnet, two stores: one address");
    host.run("firewall", "ADD", &a.path(), "ca", "eth0", &firewall_conf("samea", &ra)).ok();
    host.run("firewall", "ADD", &b.path(), "cb", "eth0", &firewall_conf("sameb", &rb)).ok();
    host.run("bridge", "CHECK", &a.path(), "ca", "eth0", &with_prev(&conf_a, &ra)).ok();
    host.run("bridge", "CHECK", &b.path(), "cb", "eth0", &with_prev(&conf_b, &rb)).ok();
    assert!(b.ping("198.51.100.2"), "B reaches the outside, masqueraded and admitted");

    // A goes away: B keeps its masquerade and its admission.
    host.run("firewall", "DEL", &a.path(), "ca", "eth0", &firewall_conf("samea", &ra)).ok();
    host.run("bridge", "DEL", &a.path(), "ca", "eth0", &with_prev(&conf_a, &ra)).ok();
    host.run("firewall", "CHECK", &b.path(), "cb", "eth0", &firewall_conf("sameb", &rb)).ok();
    host.run("bridge", "CHECK", &b.path(), "cb", "eth0", &with_prev(&conf_b, &rb)).ok();
    assert_eq!(witness::nft_elements(&host.ns, FIREWALL, "ctr4"), vec![v4(&rb)]);
    assert_eq!(masq_elements(&host), vec![v4(&rb)]);
    assert!(b.ping("198.51.100.2"), "B's traffic still flows after A's DEL");

    // B's own DEL removes the last of it.
    host.run("firewall", "DEL", &b.path(), "cb", "eth0", &firewall_conf("sameb", &rb)).ok();
    host.run("bridge", "DEL", &b.path(), "cb", "eth0", &with_prev(&conf_b, &rb)).ok();
    assert!(witness::nft_elements(&host.ns, FIREWALL, "ctr4").is_empty());
    assert!(masq_elements(&host).is_empty());
    drop(client);
}

/// A result as bridge gives it for a container at `ip`.
fn synthetic(ip: &str) -> Value {
    json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "cni0"}, {"name": "veth0"}, {"name": "eth0", "sandbox": "/run/netns/none"}],
        "ips": [{"interface": 2, "address": format!("{ip}/24"), "gateway": "10.77.0.1"}],
        "dns": {}
    })
}

#[test]
fn firewall_del_of_one_network_keeps_the_other_networks_admission_of_the_same_address() {
    let host = Host::new("own-fw");
    let prev = synthetic("10.77.0.2");
    let run = |cmd: &str, net: &str, cid: &str| {
        host.run("firewall", cmd, "/run/netns/none", cid, "eth0", &firewall_conf(net, &prev))
    };
    run("ADD", "fwa", "ca").ok();
    run("ADD", "fwb", "cb").ok();
    run("DEL", "fwa", "ca").ok();
    run("CHECK", "fwb", "cb").ok();
    assert_eq!(witness::nft_elements(&host.ns, FIREWALL, "ctr4"), vec!["10.77.0.2".to_string()]);
    // GC of A's network with nothing valid leaves B's too.
    let gc = json!({"cniVersion": "1.1.0", "name": "fwa", "type": "firewall", "cni.dev/valid-attachments": []});
    host.run("firewall", "GC", "", "", "", &gc.to_string()).ok();
    run("CHECK", "fwb", "cb").ok();
    run("DEL", "fwb", "cb").ok();
    assert!(witness::nft_elements(&host.ns, FIREWALL, "ctr4").is_empty());
}

// ---- what the previous release wrote ----

/// The owner key the previous release wrote for a long attachment.
fn legacy_key(net: &str, cid: &str) -> String {
    format!("{net:.40}/#{:016x}", netcore::naming::fnv1a64(&[net, cid, "eth0"]))
}

/// Every set that holds an attachment's elements (claims sets included).
fn owned_sets() -> Vec<kernel::nft::Set> {
    use kernel::nft::{DataType::*, Family, Table};
    let nat = Table::new(Family::Inet, NAT).unwrap();
    let spoof = Table::new(Family::Bridge, "cnirs-spoofchk").unwrap();
    let fw = Table::new(Family::Inet, FIREWALL).unwrap();
    let pm = Table::new(Family::Inet, PORTMAP).unwrap();
    vec![
        nat.vmap("masq-src4", &[Ipv4Addr]).unwrap(),
        nat.vmap("masq-src4-claims", &[Ipv4Addr, Mark, Mark]).unwrap(),
        spoof.set("ports", &[Ifname]).unwrap(),
        spoof.set("allowed", &[Ifname, EtherAddr]).unwrap(),
        fw.set("ctr4", &[Ipv4Addr]).unwrap(),
        fw.set("ctr4-claims", &[Ipv4Addr, Mark, Mark]).unwrap(),
        pm.map("hp4all", &[InetProto, InetService], &[Ipv4Addr, InetService]).unwrap(),
        pm.vmap("masq4", &[Ipv4Addr, InetProto, InetService]).unwrap(),
    ]
}

/// Rewrites the elements owned by `key` as the previous release wrote
/// them: owned by `old`, without claims; and drops the veth's alias.
fn downgrade(host: &Host, key: &str, old: &str, veth: &str) {
    let (ns, key, old) = (host.ns.name.clone(), key.to_string(), old.to_string());
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let sock = kernel::nft::Socket::open().unwrap();
        let mut b = kernel::nft::Batch::new();
        for set in owned_sets() {
            let Ok(elems) = sock.list_elements(&set) else { continue };
            for e in elems.into_iter().filter(|e| e.comment.as_deref() == Some(key.as_str())) {
                b.destroy_element(&set, &e);
                if !set.name().ends_with("-claims") {
                    b.add_element(&set, e.clone().comment(old.as_str()));
                }
            }
        }
        sock.commit(&b).unwrap();
    })
    .join()
    .unwrap();
    host.ns.ok(&["ip", "link", "set", "dev", veth, "alias", ""]);
}

fn owned_elements(host: &Host) -> Vec<String> {
    owned_sets().iter().flat_map(|s| witness::nft_elements(&host.ns, s.table().name(), s.name())).collect()
}

/// A container on `net` with every plugin that writes owned elements.
fn full_attach(host: &Host, net: &str, cid: &str, ctr: &TestNs, n: u8) -> (String, Value) {
    let subnet = format!("10.78.{n}.0/24");
    let conf = host.conf(bridge(net, &format!("cni-old{n}"), json!({"subnet": subnet}), json!({"macspoofchk": true})));
    let r = host.run("bridge", "ADD", &ctr.path(), cid, "eth0", &conf).ok().json();
    host.run("firewall", "ADD", &ctr.path(), cid, "eth0", &firewall_conf(net, &r)).ok();
    host.run("portmap", "ADD", &ctr.path(), cid, "eth0", &portmap_conf(net, 8091, &r)).ok();
    (conf, r)
}

#[test]
fn elements_of_the_previous_release_are_removed_by_del_and_gc() {
    let host = Host::new("own-old");
    // A network name past 40 bytes: the old key's prefix is ambiguous, so
    // GC leaves it (it may be another network's); DEL finds it exactly.
    let net = format!("{}-legacy", "o".repeat(45));
    let cid = "a".repeat(64);
    let ctr = TestNs::new("own-old-c");
    let (conf, r) = full_attach(&host, &net, &cid, &ctr, 0);
    let key = netcore::owner::OwnerKey::new(&net, &cid, "eth0").key();
    let veth = host_veth_name(&net, &cid, "eth0");
    downgrade(&host, &key, &legacy_key(&net, &cid), &veth);
    assert_eq!(owned_elements(&host).len(), 6, "masquerade, 2 spoof-check, admission, mapping and its masquerade");
    host.run("bridge", "GC", "", "", "", &gc_conf(&conf, json!([]))).ok();
    assert_eq!(owned_elements(&host).len(), 6, "an ambiguous old key is left to DEL");
    assert!(has_link(&host.ns, &veth));
    host.run("portmap", "DEL", &ctr.path(), &cid, "eth0", &portmap_conf(&net, 8091, &r)).ok();
    host.run("firewall", "DEL", &ctr.path(), &cid, "eth0", &firewall_conf(&net, &r)).ok();
    host.run("bridge", "DEL", &ctr.path(), &cid, "eth0", &with_prev(&conf, &r)).ok();
    assert_eq!(owned_elements(&host), Vec::<String>::new(), "DEL removes every old-format element");
    assert!(!has_link(&host.ns, &veth));

    // A short network name with a long container id: the old key names the
    // whole network, so GC removes its elements and its alias-less veth.
    let (net, cid) = ("oldnet", "b".repeat(120));
    let ctr = TestNs::new("own-old-d");
    let (conf, _) = full_attach(&host, net, &cid, &ctr, 1);
    let veth = host_veth_name(net, &cid, "eth0");
    downgrade(&host, &netcore::owner::OwnerKey::new(net, &cid, "eth0").key(), &legacy_key(net, &cid), &veth);
    assert_eq!(owned_elements(&host).len(), 6);
    let gc = |plugin: &str, conf: &str| host.run(plugin, "GC", "", "", "", &gc_conf(conf, json!([]))).ok();
    gc("bridge", &conf);
    gc("firewall", &json!({"cniVersion": "1.1.0", "name": net, "type": "firewall"}).to_string());
    gc("portmap", &json!({"cniVersion": "1.1.0", "name": net, "type": "portmap"}).to_string());
    assert_eq!(owned_elements(&host), Vec::<String>::new(), "GC removes every old-format element");
    assert!(!has_link(&host.ns, &veth), "and the veth the old key names");
    assert!(host.leases(net).is_empty());
}
