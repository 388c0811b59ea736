//! ptp: a veth pair per container and no bridge, through cnitool with the
//! example `cni-conf/50-ptp.conflist` (dual-stack, ipMasq, mtu). Two
//! containers ping each other and the host, reach a peer namespace behind
//! the host only through masquerade, and after DEL (repeated, also with
//! the namespace gone and no cache) or GC nothing of them is left: no
//! host link, host route, nftables element or lease.

use conformance::fixture::{json_of, Host};
use conformance::{witness, TestNs};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;

const FILE: &str = "50-ptp.conflist";
const NET: &str = "ptpnet";

/// The example, with host-local's store in the test's scratch dir.
fn example(host: &Host) -> Value {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut list: Value = serde_json::from_slice(&std::fs::read(repo.join("cni-conf").join(FILE)).unwrap()).unwrap();
    conformance::demo::point_stores_at(&mut list, &host.ipam_dir());
    list
}

fn install(host: &Host, list: &Value) -> PathBuf {
    host.install(FILE, list)
}

/// `cnitool <cmd> ptpnet <ctr>` in the host namespace, for container `cid`.
fn cnitool(host: &Host, confdir: &Path, cmd: &str, ctr: &TestNs, cid: &str) -> Output {
    host.cnitool(confdir, &[cmd, NET, &ctr.path()], &[("CNI_CONTAINERID", cid)])
}

fn global_addresses(ns: &TestNs, dev: &str) -> Vec<String> {
    witness::addresses(ns, dev).into_iter().filter(|a| !a.starts_with("fe80:")).collect()
}

/// Host routes (`dst dev`) into the containers' subnets, both families,
/// without the kernel's own routes for the gateway addresses.
fn host_routes(host: &Host) -> Vec<String> {
    let mut out = Vec::new();
    for fam in ["-4", "-6"] {
        for r in witness::ip(&host.ns, &[fam, "route", "show"]).as_array().into_iter().flatten() {
            let dst = r["dst"].as_str().unwrap_or_default();
            if (dst.starts_with("10.70.") || dst.starts_with("fd00:70:")) && r["protocol"] != "kernel" {
                out.push(format!("{dst} {}", r["dev"].as_str().unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

fn masq_elements(host: &Host) -> Vec<String> {
    let mut v = witness::nft_elements(&host.ns, "cnirs-nat", "masq-src4");
    v.extend(witness::nft_elements(&host.ns, "cnirs-nat", "masq-src6"));
    v.sort();
    v
}

#[test]
fn two_containers_reach_each_other_the_host_and_a_peer_through_masquerade() {
    let host = Host::new("ptph");
    // A peer network behind the host, with no route back to the
    // containers' subnets: only masquerade makes replies come back.
    let peer = TestNs::new("ptpp");
    host.ns.ok(&["ip", "link", "add", "up0", "type", "veth", "peer", "name", "p0", "netns", &peer.name]);
    host.ns.ok(&["ip", "addr", "add", "192.168.70.1/24", "dev", "up0"]);
    host.ns.ok(&["ip", "addr", "add", "fd00:71::1/64", "dev", "up0", "nodad"]);
    host.ns.ok(&["ip", "link", "set", "up0", "up"]);
    peer.ok(&["ip", "addr", "add", "192.168.70.2/24", "dev", "p0"]);
    peer.ok(&["ip", "addr", "add", "fd00:71::2/64", "dev", "p0", "nodad"]);
    peer.ok(&["ip", "link", "set", "p0", "up"]);

    let confdir = install(&host, &example(&host));
    let (a, b) = (TestNs::new("ptpc"), TestNs::new("ptpc"));
    let ra = json_of(cnitool(&host, &confdir, "add", &a, "ptp-a"), "add a");
    let rb = json_of(cnitool(&host, &confdir, "add", &b, "ptp-b"), "add b");

    // The result: host end and container, /32 and /128 with the gateways.
    assert_eq!(
        ra["ips"],
        json!([
            {"interface": 1, "address": "10.70.0.2/32", "gateway": "10.70.0.1"},
            {"interface": 1, "address": "fd00:70::2/128", "gateway": "fd00:70::1"}
        ]),
        "{ra}"
    );
    assert_eq!(ra["interfaces"][1]["name"], "eth0");
    assert_eq!(ra["interfaces"][1]["sandbox"], a.path());
    assert_eq!(ra["routes"], json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]));
    assert_eq!(global_addresses(&a, "eth0"), ["10.70.0.2/32", "fd00:70::2/128"]);
    assert_eq!(global_addresses(&b, "eth0"), ["10.70.0.3/32", "fd00:70::3/128"]);

    // No bridge: each host end holds the gateways and carries one route per
    // container address; both ends have the configured MTU.
    let veths = host.veths();
    let host_a = ra["interfaces"][0]["name"].as_str().unwrap().to_string();
    let host_b = rb["interfaces"][0]["name"].as_str().unwrap().to_string();
    assert!(veths.contains(&host_a) && veths.contains(&host_b) && veths.len() == 3, "{veths:?}");
    assert!(witness::link(&host.ns, &host_a).unwrap().get("master").is_none());
    assert_eq!(global_addresses(&host.ns, &host_a), ["10.70.0.1/32", "fd00:70::1/128"]);
    assert_eq!(
        host_routes(&host),
        [
            format!("10.70.0.2 {host_a}"),
            format!("10.70.0.3 {host_b}"),
            format!("fd00:70::2 {host_a}"),
            format!("fd00:70::3 {host_b}"),
        ]
    );
    assert_eq!(witness::link(&a, "eth0").unwrap()["mtu"], 1400);
    assert_eq!(witness::link(&host.ns, &host_a).unwrap()["mtu"], 1400);

    for (from, to) in [(&a, "10.70.0.3"), (&a, "fd00:70::3"), (&b, "10.70.0.2"), (&b, "fd00:70::2")] {
        assert!(from.ping(to), "{} -> {to}", from.name);
    }
    for gw in ["10.70.0.1", "fd00:70::1"] {
        assert!(a.ping(gw) && b.ping(gw), "container -> host {gw}");
    }
    assert!(host.ns.ping("10.70.0.2") && host.ns.ping("fd00:70::3"), "host -> containers");
    assert!(a.ping("192.168.70.2") && a.ping("fd00:71::2"), "container -> peer through masquerade");
    assert_eq!(masq_elements(&host), ["10.70.0.2", "10.70.0.3", "fd00:70::2", "fd00:70::3"]);

    json_of(cnitool(&host, &confdir, "check", &a, "ptp-a"), "check a");
    // CHECK sees a host route gone.
    host.ns.ok(&["ip", "route", "del", "10.70.0.2/32"]);
    let drift = cnitool(&host, &confdir, "check", &a, "ptp-a");
    assert!(!drift.status.success() && String::from_utf8_lossy(&drift.stdout).contains("no route to 10.70.0.2/32"));
    host.ns.ok(&["ip", "route", "add", "10.70.0.2/32", "dev", &host_a, "scope", "link"]);

    for _ in 0..2 {
        json_of(cnitool(&host, &confdir, "del", &a, "ptp-a"), "del a");
    }
    assert_eq!(witness::link_names(&a), ["lo"]);
    assert!(!host.veths().contains(&host_a));
    assert_eq!(host_routes(&host), [format!("10.70.0.3 {host_b}"), format!("fd00:70::3 {host_b}")]);
    assert_eq!(masq_elements(&host), ["10.70.0.3", "fd00:70::3"]);
    assert!(b.ping("192.168.70.2"), "the other container is unaffected");

    // b's namespace is gone and there is no cached result: DEL still
    // removes everything, by the attachment's identity.
    let mut single = example(&host)["plugins"][0].clone();
    single["cniVersion"] = json!("1.0.0");
    single["name"] = json!(NET);
    let bname = b.name.clone();
    drop(b);
    assert!(!conformance::netns::exists(&bname));
    for _ in 0..2 {
        host.run("ptp", "DEL", "", "ptp-b", "eth0", &single.to_string()).ok();
    }
    assert_eq!(host.veths(), ["up0"]);
    assert!(host_routes(&host).is_empty(), "{:?}", host_routes(&host));
    assert!(masq_elements(&host).is_empty());
    assert!(host.leases(NET).is_empty(), "{:?}", host.leases(NET));
}

#[test]
fn gc_removes_only_what_no_valid_attachment_of_the_network_owns() {
    let host = Host::new("ptpgc");
    let confdir = install(&host, &example(&host));
    let (a, b, other) = (TestNs::new("ptpc"), TestNs::new("ptpc"), TestNs::new("ptpc"));
    let ra = json_of(cnitool(&host, &confdir, "add", &a, "ptp-a"), "add a");
    json_of(cnitool(&host, &confdir, "add", &b, "ptp-b"), "add b");
    // Another ptp network on the same host: its host end is no veth of ours.
    let mut net2 = example(&host)["plugins"][0].clone();
    net2["cniVersion"] = json!("1.1.0");
    net2["name"] = json!("ptpnet2");
    net2["ipam"]["ranges"] = json!([[{"subnet": "10.71.0.0/24"}]]);
    net2["ipam"]["routes"] = json!([]);
    let r2 = host.run("ptp", "ADD", &other.path(), "ptp-o", "eth0", &net2.to_string()).ok().json();
    let host_other = r2["interfaces"][0]["name"].as_str().unwrap().to_string();

    let mut gc = example(&host)["plugins"][0].clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["name"] = json!(NET);
    host.run("ptp", "STATUS", "", "", "", &gc.to_string()).ok();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "ptp-a", "ifname": "eth0"}]);
    host.run("ptp", "GC", "", "", "", &gc.to_string()).ok();

    let host_a = ra["interfaces"][0]["name"].as_str().unwrap().to_string();
    let mut left = host.veths();
    left.sort();
    let mut want = vec![host_a.clone(), host_other.clone()];
    want.sort();
    assert_eq!(left, want, "b's host end is gone, a's and the other network's stay");
    assert_eq!(host_routes(&host), [format!("10.70.0.2 {host_a}"), format!("fd00:70::2 {host_a}")]);
    assert_eq!(masq_elements(&host), ["10.70.0.2", "10.71.0.2", "fd00:70::2"]);
    assert_eq!(host.leases(NET), ["10.70.0.2", "fd00:70::2"]);
    assert!(a.ping("10.70.0.1") && other.ping("10.71.0.1"));

    json_of(cnitool(&host, &confdir, "del", &a, "ptp-a"), "del a");
    host.run("ptp", "DEL", &other.path(), "ptp-o", "eth0", &net2.to_string()).ok();
    assert!(host.veths().is_empty() && masq_elements(&host).is_empty());
}

#[test]
fn a_failed_add_leaves_nothing_and_bad_config_is_code_7() {
    let host = Host::new("ptpf");
    let ctr = TestNs::new("ptpc");
    let mut conf = example(&host)["plugins"][0].clone();
    conf["cniVersion"] = json!("1.0.0");
    conf["name"] = json!(NET);
    // A route via a gateway the container cannot reach fails after the
    // lease, the pair and the host routes were made: all of it goes.
    conf["ipam"]["routes"] = json!([{"dst": "192.168.99.0/24", "gw": "10.99.99.99"}]);
    let e = host.run("ptp", "ADD", &ctr.path(), "ptp-f", "eth0", &conf.to_string());
    assert_ne!(e.code, 0, "{e:?}");
    assert!(host.veths().is_empty(), "{:?}", host.veths());
    assert!(host_routes(&host).is_empty(), "{:?}", host_routes(&host));
    assert!(masq_elements(&host).is_empty());
    assert!(host.leases(NET).is_empty(), "{:?}", host.leases(NET));
    assert_eq!(witness::link_names(&ctr), ["lo"]);

    for (key, value, field) in
        [("mtu", json!(20), "mtu"), ("ipMasqBackend", json!("pf"), "ipMasqBackend"), ("ipam", json!({}), "ipam")]
    {
        let mut bad = example(&host)["plugins"][0].clone();
        bad["cniVersion"] = json!("1.0.0");
        bad["name"] = json!(NET);
        bad[key] = value;
        let e = host.run("ptp", "ADD", &ctr.path(), "ptp-f", "eth0", &bad.to_string()).err(7);
        assert!(e["msg"].as_str().unwrap().contains(field), "{e}");
    }
    assert!(host.leases(NET).is_empty() && host.veths().is_empty());
}

/// With no IPv6 address to route, the host end has no IPv6 at all (no
/// link-local address, no route), so the kernel's IPv6 routing table does
/// not grow with the containers; IPv4 works as before. (The dual-stack
/// test above shows a host end that routes IPv6.)
#[test]
fn an_ipv4_only_host_end_carries_no_ipv6() {
    let host = Host::new("ptp-v4only");
    let conf = host.conf(json!({
        "cniVersion": "1.0.0", "name": "ptpv4", "type": "ptp",
        "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.74.0.0/24" }]] }
    }));
    let c = TestNs::new("ptp-v4only-c");
    let r = host.run("ptp", "ADD", &c.path(), "c1", "eth0", &conf).ok().json();
    let ip = r["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_string();
    let ends = host.veths();
    assert_eq!(ends.len(), 1, "{ends:?}");
    let v6: Vec<String> = witness::addresses(&host.ns, &ends[0]).into_iter().filter(|a| a.contains(':')).collect();
    assert!(v6.is_empty(), "host end has IPv6 addresses: {v6:?}");
    let routes = host.ns.ok(&["ip", "-6", "route", "show", "table", "all", "dev", &ends[0]]);
    assert!(routes.trim().is_empty(), "host end has IPv6 routes: {routes}");
    assert!(c.ping("10.74.0.1"), "container -> its gateway on the host end");
    assert!(host.ns.ping(&ip), "host -> container");
    // The same attachment added again: refused, its lease and link stay.
    host.run("ptp", "ADD", &c.path(), "c1", "eth0", &conf).err(102);
    assert_eq!(host.leases("ptpv4"), std::slice::from_ref(&ip), "the live attachment's lease stays");
    assert!(host.ns.ping(&ip), "host -> container, after the refused ADD");
    host.run("ptp", "DEL", &c.path(), "c1", "eth0", &conf).ok();
    assert!(host.veths().is_empty(), "{:?}", host.veths());
}
