//! Interface names from a config or `CNI_IFNAME` that the kernel would
//! rewrite or refuse: `%d` (the kernel fills in the first free number, so
//! `"bridge": "br%d"` made br0, br1, ... one per ADD, and then failed),
//! `/`, `:`, white space, `.`, over 15 bytes. Each is refused before
//! anything is created: code 7 naming the field for a config, code 4 for
//! `CNI_IFNAME`, and the host keeps exactly the links it had.

use conformance::fixture::Host;
use conformance::{witness, TestNs};
use serde_json::{json, Value};

const BAD: &[&str] = &["br%d", "%d", "a/b", "a:b", "a b", "..", "0123456789abcdef"];

fn ipam() -> Value {
    json!({"type": "host-local", "ranges": [[{"subnet": "10.94.0.0/24"}]]})
}

/// (plugin, field, config with `name` in that field).
fn configs(name: &str) -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "bridge",
            "bridge",
            json!({"cniVersion": "1.0.0", "name": "nm", "type": "bridge", "bridge": name, "ipam": ipam()}),
        ),
        (
            "macvlan",
            "master",
            json!({"cniVersion": "1.0.0", "name": "nm", "type": "macvlan", "master": name, "ipam": ipam()}),
        ),
        (
            "vxlan",
            "bridge",
            json!({"cniVersion": "1.0.0", "name": "nm", "type": "vxlan", "vni": 42, "bridge": name,
                   "underlayInterface": "ul0", "clusterCIDR": "10.128.0.0/9", "subnet": "10.200.1.0/24",
                   "peers": [], "ipam": {"type": "host-local"}}),
        ),
        (
            "vxlan",
            "underlayInterface",
            json!({"cniVersion": "1.0.0", "name": "nm", "type": "vxlan", "vni": 42, "underlayInterface": name,
                   "clusterCIDR": "10.128.0.0/9", "subnet": "10.200.1.0/24", "peers": [],
                   "ipam": {"type": "host-local"}}),
        ),
    ]
}

#[test]
fn interface_names_the_kernel_would_rewrite_are_refused_with_nothing_created() {
    let host = Host::new("nm");
    let ctr = TestNs::new("nm-c");
    host.ns.ok(&["ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul0p"]);
    host.ns.ok(&["ip", "addr", "add", "192.0.2.1/24", "dev", "ul0"]);
    host.ns.ok(&["ip", "link", "set", "ul0", "up"]);
    let links = witness::link_names(&host.ns);
    let ctr_links = witness::link_names(&ctr);
    for bad in BAD {
        for (plugin, field, conf) in configs(bad) {
            for attempt in 0..2 {
                let v = host.run(plugin, "ADD", &ctr.path(), "c1", "eth0", &host.conf(conf.clone())).err(7);
                let msg = v["msg"].as_str().unwrap();
                assert!(msg.contains(&format!("{field:?}")), "{plugin} {field}={bad:?} (ADD #{attempt}): {msg}");
                assert_eq!(witness::link_names(&host.ns), links, "{plugin} {field}={bad:?} created a link");
            }
        }
        // The same name as CNI_IFNAME: refused by every plugin before it acts.
        let conf = host.conf(json!({"cniVersion": "1.0.0", "name": "nm", "type": "bridge", "bridge": "nmbr0",
                                    "ipam": ipam()}));
        let v = host.run("bridge", "ADD", &ctr.path(), "c1", bad, &conf).err(4);
        assert!(v["msg"].as_str().unwrap().contains("CNI_IFNAME"), "{v}");
        assert_eq!(witness::link_names(&host.ns), links, "CNI_IFNAME={bad:?} created a link");
    }
    assert_eq!(witness::link_names(&ctr), ctr_links);
    assert!(host.leases("nm").is_empty(), "{:?}", host.leases("nm"));
}
