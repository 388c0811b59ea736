//! vxlan with thousands of peers: an ADD whose peer table is the one last
//! applied to the VTEP skips the peers (it used to compare every entry
//! with the kernel on every ADD), so what must still hold is checked here:
//! every peer's entries are there after the first ADD; a changed table is
//! applied by the next ADD; CHECK still verifies every entry and names a
//! missing one; `vxlan reconcile` repairs it; a VTEP deleted under us is
//! recreated with all its entries. (What it costs goes in the benchmark
//! figures, not here.)

use conformance::fixture::{with_prev, Host};
use conformance::{bin_dir, TestNs};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const PEERS: usize = 3000;
const VTEP: &str = "vxlan.43";

fn peer(i: usize) -> Value {
    json!({"underlayIP": format!("172.{}.{}.{}", 16 + i / 65536, (i / 256) % 256, i % 256),
           "subnet": format!("10.{}.{}.0/24", 128 + i / 256, i % 256)})
}

fn write_peers(path: &Path, ids: impl Iterator<Item = usize>) {
    let list: Vec<Value> = ids.map(peer).collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&list).unwrap()).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// The underlay destinations of the VTEP's FDB entries.
fn fdb_dsts(host: &Host) -> Vec<String> {
    let out = host.ns.ok(&["bridge", "-j", "fdb", "show", "dev", VTEP]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array().unwrap().iter().filter_map(|e| e["dst"].as_str().map(str::to_string)).collect()
}

fn routes(host: &Host) -> usize {
    let out = host.ns.ok(&["ip", "-j", "route", "show", "dev", VTEP]);
    serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().iter().filter(|r| r["gateway"].is_string()).count()
}

#[test]
fn many_peers_stay_programmed_and_a_changed_table_is_applied_by_the_next_add() {
    let host = Host::new("vxp");
    host.ns.ok(&["ip", "link", "add", "ul", "type", "veth", "peer", "name", "ulp"]);
    host.ns.ok(&["ip", "addr", "add", "192.168.9.1/24", "dev", "ul"]);
    host.ns.ok(&["ip", "link", "set", "ul", "up"]);
    host.ns.ok(&["ip", "link", "set", "ulp", "up"]);
    let peers = host.dir.join("peers.json");
    write_peers(&peers, 0..PEERS);
    let conf = host.conf(json!({"cniVersion": "1.0.0", "name": "vxp", "type": "vxlan", "vni": 43,
        "underlayInterface": "ul", "clusterCIDR": "10.0.0.0/8", "subnet": "10.1.1.0/24",
        "peersFile": peers, "ipam": {"type": "host-local"}}));
    let mut ctrs = Vec::new();
    let add = |cid: &str| -> (TestNs, Value) {
        let ctr = TestNs::new("vxp-c");
        let r = host.run("vxlan", "ADD", &ctr.path(), cid, "eth0", &conf).ok().json();
        (ctr, r)
    };

    let (c1, r1) = add("c1");
    assert_eq!(fdb_dsts(&host).len(), PEERS);
    assert_eq!(routes(&host), PEERS);
    ctrs.push(add("c2"));
    assert_eq!(fdb_dsts(&host).len(), PEERS, "an ADD with the same table keeps every entry");
    let prev = with_prev(&conf, &r1);
    host.run("vxlan", "CHECK", &c1.path(), "c1", "eth0", &prev).ok();

    // The table changes: peer 0 leaves, a new one joins; the next ADD applies it.
    write_peers(&peers, 1..=PEERS);
    ctrs.push(add("c3"));
    let dsts = fdb_dsts(&host);
    assert_eq!(dsts.len(), PEERS);
    assert!(!dsts.contains(&"172.16.0.0".to_string()), "peer 0 is gone");
    assert!(dsts.contains(&format!("172.16.{}.{}", PEERS / 256, PEERS % 256)), "the new peer is there");
    host.run("vxlan", "CHECK", &c1.path(), "c1", "eth0", &prev).ok();

    // An entry removed behind our back: CHECK names it, reconcile repairs it.
    host.ns.ok(&["ip", "route", "del", "10.128.5.0/24", "dev", VTEP]);
    let e = host.run("vxlan", "CHECK", &c1.path(), "c1", "eth0", &prev).err(100);
    assert!(e["msg"].as_str().unwrap().contains("route to 10.128.5.0/24"), "{e}");
    let file = host.dir.join("vxp.json");
    std::fs::write(&file, &conf).unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &host.ns.name])
        .arg(bin_dir().join("vxlan"))
        .args(["reconcile", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["added"], 1, "{s}");
    host.run("vxlan", "CHECK", &c1.path(), "c1", "eth0", &prev).ok();

    // The VTEP deleted: the next ADD recreates it with every entry.
    host.ns.ok(&["ip", "link", "del", VTEP]);
    ctrs.push(add("c4"));
    assert_eq!(fdb_dsts(&host).len(), PEERS);
    assert_eq!(routes(&host), PEERS);
    host.run("vxlan", "CHECK", &c1.path(), "c1", "eth0", &prev).ok();
}
