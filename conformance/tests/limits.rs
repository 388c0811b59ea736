//! Every bound of `cni::limits`, through the built binaries: one past the
//! bound is a clear code-7 error naming the field and the bound, and the
//! host is left exactly as it was (no link, no nftables table, no lease).
//! At the bound, the same configs are accepted. (The stdin bound is in
//! `protocol.rs`; host-local's own counts also in its `fs_safety` tests.)

use cni::limits;
use conformance::fixture::{with_prev, Host};
use conformance::{witness, TestNs};
use serde_json::{json, Value};

fn refused(v: &Value, needle: &str) {
    assert_eq!(v["code"], 7, "{v}");
    let msg = v["msg"].as_str().unwrap();
    assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
}

/// What the host namespace holds, as a witness sees it.
fn state(host: &Host) -> (Vec<String>, usize, Vec<String>) {
    (witness::link_names(&host.ns), witness::nft_ruleset(&host.ns).len(), host.leases("lim"))
}

fn bridge_conf(host: &Host, ipam_extra: Value) -> String {
    let mut ipam = json!({"type": "host-local", "ranges": [[{"subnet": "10.58.0.0/24"}]]});
    for (k, v) in ipam_extra.as_object().unwrap() {
        ipam[k] = v.clone();
    }
    host.conf(json!({"cniVersion": "1.0.0", "name": "lim", "type": "bridge", "bridge": "lim0", "ipam": ipam}))
}

#[test]
fn ranges_range_sets_and_routes_are_bounded_through_bridge() {
    let host = Host::new("lim-br");
    let ctr = TestNs::new("lim-br-c");
    let before = state(&host);
    let sets: Vec<Value> =
        (0..=limits::MAX_RANGE_SETS).map(|i| json!([{"subnet": format!("10.{}.0.0/24", 100 + i)}])).collect();
    let v = host.run("bridge", "ADD", &ctr.path(), "c1", "eth0", &bridge_conf(&host, json!({"ranges": sets}))).err(7);
    refused(
        &v,
        &format!(
            "too many range sets in \"ipam.ranges\": {} (at most {})",
            limits::MAX_RANGE_SETS + 1,
            limits::MAX_RANGE_SETS
        ),
    );
    let ranges: Vec<Value> =
        (0..=limits::MAX_RANGES).map(|i| json!({"subnet": format!("10.{}.{}.0/24", 100 + i / 256, i % 256)})).collect();
    let v =
        host.run("bridge", "ADD", &ctr.path(), "c1", "eth0", &bridge_conf(&host, json!({"ranges": [ranges]}))).err(7);
    refused(&v, "too many ranges");
    let routes: Vec<Value> = (0..=limits::MAX_ROUTES).map(|_| json!({"dst": "10.0.0.0/8"})).collect();
    let v = host.run("bridge", "ADD", &ctr.path(), "c1", "eth0", &bridge_conf(&host, json!({"routes": routes}))).err(7);
    refused(&v, "too many routes");
    assert_eq!(state(&host), before, "a refused ADD changed the host");
    assert!(witness::link_names(&ctr).iter().all(|l| l == "lo"));
}

#[test]
fn container_ids_are_bounded_at_add_through_bridge() {
    let host = Host::new("lim-id");
    let ctr = TestNs::new("lim-id-c");
    let conf = bridge_conf(&host, json!({}));
    let before = state(&host);
    for len in [limits::MAX_CONTAINER_ID + 1, 5000] {
        let v = host.run("bridge", "ADD", &ctr.path(), &"c".repeat(len), "eth0", &conf).err(4);
        let msg = v["msg"].as_str().unwrap();
        assert!(msg.contains(&format!("{len} bytes long (at most {})", limits::MAX_CONTAINER_ID)), "{v}");
        assert_eq!(state(&host), before, "a refused ADD changed the host");
        assert!(witness::link_names(&ctr).iter().all(|l| l == "lo"));
        // DEL of such an id (what an older release may have made) works.
        host.run("bridge", "DEL", &ctr.path(), &"c".repeat(len), "eth0", &conf).ok();
    }
    // At the bound, everything works and DEL removes it.
    let id = "c".repeat(limits::MAX_CONTAINER_ID);
    host.run("bridge", "ADD", &ctr.path(), &id, "eth0", &conf).ok();
    assert_eq!(host.leases("lim").len(), 1);
    host.run("bridge", "DEL", &ctr.path(), &id, "eth0", &conf).ok();
    assert!(host.leases("lim").is_empty());
}

#[test]
fn port_mappings_are_bounded_through_portmap() {
    let host = Host::new("lim-pm");
    let ctr = TestNs::new("lim-pm-c");
    let mappings = |n: usize| -> Vec<Value> {
        (0..n).map(|i| json!({"hostPort": 10000 + i, "containerPort": 80, "protocol": "tcp"})).collect()
    };
    let prev = json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "lim0"}, {"name": "eth0", "sandbox": ctr.path()}],
        "ips": [{"interface": 1, "address": "10.58.0.2/24", "gateway": "10.58.0.1"}]});
    let conf = |n: usize| {
        with_prev(
            &host.conf(json!({"cniVersion": "1.0.0", "name": "lim", "type": "portmap",
                              "runtimeConfig": {"portMappings": mappings(n)}})),
            &prev,
        )
    };
    let before = state(&host);
    let v = host.run("portmap", "ADD", &ctr.path(), "c1", "eth0", &conf(limits::MAX_PORT_MAPPINGS + 1)).err(7);
    refused(
        &v,
        &format!(
            "too many port mappings in \"runtimeConfig.portMappings\": {} (at most {})",
            limits::MAX_PORT_MAPPINGS + 1,
            limits::MAX_PORT_MAPPINGS
        ),
    );
    assert_eq!(state(&host), before, "a refused ADD changed the host");
    // At the bound: accepted, and DEL removes it all again.
    host.run("portmap", "ADD", &ctr.path(), "c1", "eth0", &conf(limits::MAX_PORT_MAPPINGS)).ok();
    host.run("portmap", "DEL", &ctr.path(), "c1", "eth0", &conf(limits::MAX_PORT_MAPPINGS)).ok();
    for map in ["hp4", "hp6"] {
        assert!(witness::nft_elements(&host.ns, "cnirs-portmap", map).is_empty(), "{map} keeps elements");
    }
}

#[test]
fn peers_are_bounded_through_vxlan() {
    let host = Host::new("lim-vx");
    let ctr = TestNs::new("lim-vx-c");
    host.ns.ok(&["ip", "link", "add", "ul", "type", "veth", "peer", "name", "ulp"]);
    host.ns.ok(&["ip", "addr", "add", "192.0.2.1/24", "dev", "ul"]);
    host.ns.ok(&["ip", "link", "set", "ul", "up"]);
    let peers: Vec<Value> = (0..=limits::MAX_PEERS)
        .map(|i| {
            json!({"underlayIP": format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256),
                   "subnet": format!("10.{}.{}.0/24", 128 + i / 65536 / 4, (i / 256) % 256)})
        })
        .collect();
    let conf = host.conf(json!({"cniVersion": "1.0.0", "name": "lim", "type": "vxlan", "vni": 42,
        "underlayInterface": "ul", "clusterCIDR": "10.128.0.0/9", "subnet": "10.200.1.0/24",
        "peers": peers, "ipam": {"type": "host-local"}}));
    let before = state(&host);
    let v = host.run("vxlan", "ADD", &ctr.path(), "c1", "eth0", &conf).err(7);
    refused(&v, &limits::MAX_PEERS.to_string());
    assert_eq!(state(&host), before, "a refused ADD changed the host");
}
