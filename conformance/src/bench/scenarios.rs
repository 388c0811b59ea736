//! What the bench measures: one scenario per kind of network a user runs,
//! each with the same config file for every suite that takes part, the
//! host setup it needs (an underlay link for macvlan and vxlan), and the
//! per-container arguments a runtime would pass (port mappings).

use super::suite::SuiteKind;
use runtime::Attachment;
use serde_json::{json, Value};

/// Everything ours ships that a scenario may need.
pub const PLUGINS: &[&str] =
    &["loopback", "host-local", "bridge", "portmap", "macvlan", "vxlan", "ptp", "static", "bandwidth"];

/// First host port of the portmap scenario (container k maps `BASE + k`).
const PORT_BASE: usize = 20_000;

/// Largest N: a Linux bridge takes at most 1023 ports (the 1024th gets
/// `EXFULL`), and every container of the bridge scenarios is one port.
pub const MAX_N: usize = 1023;

/// One column of a scenario: a suite with its config.
#[derive(Debug, Clone)]
pub struct Participant {
    /// Name in tables and JSON (`ours`, `reference`, `floor`, `1 peer`...).
    pub label: String,
    /// Whose binaries run.
    pub kind: SuiteKind,
    /// The network config list (`None` for the floor, which has no plugin).
    pub conflist: Option<Value>,
}

/// One scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Key for `--only` and JSON.
    pub name: &'static str,
    /// Heading in the table.
    pub title: &'static str,
    /// The network's name (the same for every participant).
    pub network: &'static str,
    /// The binaries every plugin participant needs.
    pub plugins: Vec<&'static str>,
    /// A plugin whose own exec time is reported beside the chain's.
    pub timed_plugin: Option<&'static str>,
    /// The interface name in the container.
    pub ifname: &'static str,
    /// Whether each container gets one port mapping.
    pub port_mappings: bool,
    /// `ip -batch` lines run in each host namespace before the first ADD.
    pub host_setup: Vec<String>,
    /// The columns, interleaved: the first two are compared (second / first
    /// is the "ratio" row, e.g. reference / ours).
    pub participants: Vec<Participant>,
}

fn list(name: &str, plugins: Value) -> Value {
    json!({ "cniVersion": "1.0.0", "name": name, "plugins": plugins })
}

fn host_local(subnet: &str, default_route: bool) -> Value {
    let mut ipam = json!({ "type": "host-local", "ranges": [[{ "subnet": subnet }]] });
    if default_route {
        ipam["routes"] = json!([{ "dst": "0.0.0.0/0" }]);
    }
    ipam
}

fn bridge(subnet: &str) -> Value {
    json!({
        "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
        "ipam": host_local(subnet, true),
    })
}

/// The kernel-only floor and the floor of the whole chain (our binaries
/// exec'd as no-ops plus the same kernel work).
fn floors() -> Vec<Participant> {
    vec![
        Participant { label: "floor".into(), kind: SuiteKind::Floor, conflist: None },
        Participant { label: "chain floor".into(), kind: SuiteKind::ChainFloor, conflist: None },
    ]
}

fn both(conflist: Value) -> Vec<Participant> {
    vec![
        Participant { label: "ours".into(), kind: SuiteKind::Ours, conflist: Some(conflist.clone()) },
        Participant { label: "reference".into(), kind: SuiteKind::Reference, conflist: Some(conflist) },
    ]
}

/// An underlay link in the host namespace (a veth pair: this kernel has no
/// dummy links, and the machine's own interfaces are never used).
fn underlay(addr: Option<&str>) -> Vec<String> {
    let mut v = vec![
        "link set lo up".to_string(),
        "link add ul0 type veth peer name ul1".to_string(),
        "link set ul1 up".to_string(),
        "link set ul0 up".to_string(),
    ];
    if let Some(a) = addr {
        v.push(format!("addr add {a} dev ul0"));
    }
    v
}

/// The vxlan config with `peers` remote hosts (underlay 172.30.1.x, pod
/// subnets 10.250.x.0/24); this host has 10.200.0.0/16.
fn vxlan_conflist(peers: usize) -> Value {
    let peers: Vec<Value> = (0..peers)
        .map(|i| json!({ "underlayIP": format!("172.30.{}.{}", 1 + i / 250, 1 + i % 250), "subnet": format!("10.250.{i}.0/24") }))
        .collect();
    list(
        "bench-vx",
        json!([{
            "type": "vxlan", "vni": 42, "underlayInterface": "ul0", "underlayIP": "172.30.0.1",
            "clusterCIDR": "10.192.0.0/10", "subnet": "10.200.0.0/16", "ipMasq": true,
            "ipam": { "type": "host-local" }, "peers": peers,
        }]),
    )
}

/// Every scenario, in the order they run.
pub fn all() -> Vec<Scenario> {
    let setup_lo = vec!["link set lo up".to_string()];
    let bridge_list = list("bench-br", json!([bridge("10.88.0.0/16")]));
    let mut bridge_parts = both(bridge_list);
    bridge_parts.extend(floors());
    let ptp_list =
        list("bench-ptp", json!([{ "type": "ptp", "ipMasq": true, "ipam": host_local("10.91.0.0/16", true) }]));
    let mut ptp_parts = both(ptp_list);
    ptp_parts.extend(floors());
    let mut portmap_parts = both(list(
        "bench-pm",
        json!([
            bridge("10.89.0.0/16"),
            { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true },
        ]),
    ));
    portmap_parts.extend(floors());
    let static_ipam = json!({
        "type": "static",
        "addresses": [{ "address": "10.92.0.5/24", "gateway": "10.92.0.1" }, { "address": "fd00:92::5/64" }],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dns": { "nameservers": ["10.92.0.1"] },
    });
    vec![
        Scenario {
            name: "loopback",
            title: "loopback",
            network: "bench-lo",
            plugins: vec!["loopback"],
            timed_plugin: None,
            ifname: "lo",
            port_mappings: false,
            host_setup: setup_lo.clone(),
            participants: both(list("bench-lo", json!([{ "type": "loopback" }]))),
        },
        Scenario {
            name: "host-local",
            title: "host-local alone (IPAM store, no kernel work)",
            network: "bench-ipam",
            plugins: vec!["host-local"],
            timed_plugin: None,
            ifname: "eth0",
            port_mappings: false,
            host_setup: setup_lo.clone(),
            participants: both(list(
                "bench-ipam",
                json!([{ "type": "host-local", "ipam": host_local("10.87.0.0/16", false) }]),
            )),
        },
        Scenario {
            name: "bridge",
            title: "bridge + host-local",
            network: "bench-br",
            plugins: vec!["bridge", "host-local"],
            timed_plugin: None,
            ifname: "eth0",
            port_mappings: false,
            host_setup: setup_lo.clone(),
            participants: bridge_parts,
        },
        Scenario {
            name: "portmap",
            title: "bridge + host-local + portmap (1 mapping per container)",
            network: "bench-pm",
            plugins: vec!["bridge", "host-local", "portmap"],
            timed_plugin: Some("portmap"),
            ifname: "eth0",
            port_mappings: true,
            host_setup: setup_lo.clone(),
            participants: portmap_parts,
        },
        Scenario {
            name: "macvlan",
            title: "macvlan + host-local (master: a veth in the host namespace)",
            network: "bench-mv",
            plugins: vec!["macvlan", "host-local"],
            timed_plugin: None,
            ifname: "eth0",
            port_mappings: false,
            host_setup: underlay(None),
            participants: both(list(
                "bench-mv",
                json!([{ "type": "macvlan", "master": "ul0", "mode": "bridge", "ipam": host_local("10.90.0.0/16", true) }]),
            )),
        },
        Scenario {
            name: "ptp",
            title: "ptp + host-local (ipMasq; no bridge)",
            network: "bench-ptp",
            plugins: vec!["ptp", "host-local"],
            timed_plugin: None,
            ifname: "eth0",
            port_mappings: false,
            host_setup: setup_lo.clone(),
            participants: ptp_parts,
        },
        Scenario {
            name: "static",
            title: "static alone (IPAM from the config, no kernel work)",
            network: "bench-static",
            plugins: vec!["static"],
            timed_plugin: None,
            ifname: "eth0",
            port_mappings: false,
            host_setup: setup_lo.clone(),
            participants: both(list("bench-static", json!([{ "type": "static", "ipam": static_ipam }]))),
        },
        Scenario {
            name: "bandwidth",
            title: "bridge + host-local + bandwidth (both directions shaped)",
            network: "bench-bw",
            plugins: vec!["bridge", "host-local", "bandwidth"],
            timed_plugin: Some("bandwidth"),
            ifname: "eth0",
            port_mappings: false,
            host_setup: setup_lo.clone(),
            participants: both(list(
                "bench-bw",
                json!([
                    bridge("10.93.0.0/16"),
                    {
                        "type": "bandwidth", "ingressRate": 10_000_000, "ingressBurst": 200_000,
                        "egressRate": 20_000_000, "egressBurst": 400_000,
                    },
                ]),
            )),
        },
        Scenario {
            name: "vxlan",
            title: "vxlan overlay (ours only; 1 peer vs 100 peers)",
            network: "bench-vx",
            plugins: vec!["vxlan", "host-local"],
            timed_plugin: None,
            ifname: "eth0",
            port_mappings: false,
            host_setup: underlay(Some("172.30.0.1/16")),
            participants: vec![
                Participant { label: "1 peer".into(), kind: SuiteKind::Ours, conflist: Some(vxlan_conflist(1)) },
                Participant { label: "100 peers".into(), kind: SuiteKind::Ours, conflist: Some(vxlan_conflist(100)) },
            ],
        },
    ]
}

impl Scenario {
    /// The attachment of container `k` (whose namespace is at `netns`).
    pub fn attachment(&self, k: usize, netns: &str) -> Attachment {
        let a = Attachment::new(format!("bench-{k}"), netns, self.ifname);
        if self.port_mappings {
            a.with_capability(
                "portMappings",
                json!([{ "hostPort": PORT_BASE + k, "containerPort": 80, "protocol": "tcp" }]),
            )
        } else {
            a
        }
    }

    /// The suites taking part (without repeats).
    pub fn kinds(&self) -> Vec<SuiteKind> {
        let mut v: Vec<SuiteKind> = self.participants.iter().map(|p| p.kind).collect();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_lists_of_the_named_network() {
        for s in all() {
            for p in &s.participants {
                if let Some(c) = &p.conflist {
                    assert_eq!(c["name"], s.network, "{}", s.name);
                    assert_eq!(c["cniVersion"], "1.0.0");
                    let types: Vec<&str> =
                        c["plugins"].as_array().unwrap().iter().map(|p| p["type"].as_str().unwrap()).collect();
                    assert!(types.iter().all(|t| s.plugins.contains(t)), "{}: {types:?}", s.name);
                }
            }
        }
    }

    #[test]
    fn portmap_attachment_has_one_mapping() {
        let s = all().into_iter().find(|s| s.name == "portmap").unwrap();
        let a = s.attachment(7, "/run/netns/x");
        assert_eq!(a.capability_args["portMappings"][0]["hostPort"], PORT_BASE + 7);
        assert_eq!(vxlan_conflist(100)["plugins"][0]["peers"].as_array().unwrap().len(), 100);
    }
}
