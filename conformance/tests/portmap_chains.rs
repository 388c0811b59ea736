//! portmap's per-network masquerade chains (`masq-<subnet>`) are named from
//! the prevResult: a hostile one (an address of `0.0.0.0/0`, `::/0`, a
//! loopback or multicast address) is refused before anything is made, and
//! a chain goes with the DEL of the last container that uses it, so no
//! chain is left behind however many subnets came and went.

use conformance::fixture::{with_prev, Host};
use conformance::{witness, TestNs};
use serde_json::{json, Value};

const TABLE: &str = "cnirs-portmap";

/// The network masquerade chains in our table (not `masq-all`).
fn network_chains(host: &Host) -> Vec<String> {
    witness::nft_ruleset(&host.ns)
        .iter()
        .filter_map(|i| i.get("chain"))
        .filter(|c| c["table"] == TABLE)
        .filter_map(|c| c["name"].as_str())
        .filter(|n| n.starts_with("masq-") && *n != "masq-all")
        .map(str::to_string)
        .collect()
}

fn conf(host: &Host, ctr: &TestNs, address: &str, port: u16) -> String {
    let prev = json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "pcbr0"}, {"name": "eth0", "sandbox": ctr.path()}],
        "ips": [{"interface": 1, "address": address}]});
    let c: Value = json!({"cniVersion": "1.0.0", "name": "pc", "type": "portmap",
        "runtimeConfig": {"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]}});
    with_prev(&host.conf(c), &prev)
}

#[test]
fn hostile_prev_results_make_no_chain_and_del_removes_unused_chains() {
    let host = Host::new("pmc");
    let ctr = TestNs::new("pmc-c");
    for (i, bad) in ["0.0.0.0/0", "::/0", "10.1.2.3/0", "127.0.0.5/8", "224.0.0.1/4", "ff02::1/8"].iter().enumerate() {
        let c = conf(&host, &ctr, bad, 18000 + i as u16);
        let v = host.run("portmap", "ADD", &ctr.path(), &format!("bad{i}"), "eth0", &c).err(7);
        assert!(v["msg"].as_str().unwrap().contains("prevResult"), "{v}");
        host.run("portmap", "DEL", &ctr.path(), &format!("bad{i}"), "eth0", &c).ok();
        assert!(network_chains(&host).is_empty(), "{bad}: {:?}", network_chains(&host));
    }

    // Unusual but valid subnets: each gets its chain while in use, and
    // loses it with its last container, also when DEL lacks the mappings.
    let a = conf(&host, &ctr, "10.95.3.6/30", 18100);
    let b = conf(&host, &ctr, "10.95.3.5/30", 18101);
    let v6 = conf(&host, &ctr, "fd95:3::6/126", 18102);
    host.run("portmap", "ADD", &ctr.path(), "a", "eth0", &a).ok();
    host.run("portmap", "ADD", &ctr.path(), "b", "eth0", &b).ok();
    host.run("portmap", "ADD", &ctr.path(), "c", "eth0", &v6).ok();
    let mut chains = network_chains(&host);
    chains.sort();
    assert_eq!(chains, ["masq-10.95.3.4_30", "masq-fd95-3--4_126"]);
    host.run("portmap", "DEL", &ctr.path(), "a", "eth0", &a).ok();
    assert_eq!(network_chains(&host).len(), 2, "b still uses its network's chain");
    host.run("portmap", "CHECK", &ctr.path(), "b", "eth0", &b).ok();
    host.run("portmap", "DEL", &ctr.path(), "b", "eth0", &b).ok();
    // A DEL without prevResult or mappings lists the maps instead.
    let bare = host.conf(json!({"cniVersion": "1.0.0", "name": "pc", "type": "portmap"}));
    host.run("portmap", "DEL", &ctr.path(), "c", "eth0", &bare).ok();
    assert!(network_chains(&host).is_empty(), "{:?}", network_chains(&host));
    for map in ["masq4", "masq6", "hp4all", "hp6all"] {
        assert!(witness::nft_elements(&host.ns, TABLE, map).is_empty(), "{map} keeps elements");
    }
}
