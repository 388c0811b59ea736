//! Go's key matching through the public decoding paths: what containerd's
//! go-cni sends (capitalised capability keys, see
//! `shared/reference/containerd-cri/`) decodes as the reference plugins
//! decode it, and any re-casing of any key of a config, its capabilities,
//! its `args`, its GC list or a `prevResult` decodes to the same value.

use cni::config::{Bandwidth, IpRange, PortMapping, RuntimeDns};
use cni::gojson::refold_keys;
use cni::skel::Command;
use cni::{CniResult, Context, Version};
use proptest::prelude::*;
use serde_json::{json, Value};

fn ctx(conf: &Value, command: Command) -> Context {
    cni::testing::context(command, &conf.to_string(), &[])
}

/// The runtimeConfig of a containerd CRI pod with every capability, keys as
/// go-cni spells them (no JSON tags on its structs).
fn containerd_runtime_config() -> Value {
    json!({
        "portMappings": [{"HostPort": 18082, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}],
        "bandwidth": {"IngressRate": 1000000, "IngressBurst": 20000, "EgressRate": 2000000, "EgressBurst": 30000},
        "ipRanges": [[{"Subnet": "10.89.0.0/24", "RangeStart": "10.89.0.10", "RangeEnd": "10.89.0.20", "Gateway": "10.89.0.1"}]],
        "dns": {"Servers": ["10.96.0.10"], "Searches": ["svc.cluster.local"], "Options": ["ndots:5"]}
    })
}

#[test]
fn containerd_capabilities_decode_as_the_reference_decodes_them() {
    let conf =
        json!({"cniVersion": "1.0.0", "name": "k8s", "type": "portmap", "runtimeConfig": containerd_runtime_config()});
    let rc = ctx(&conf, Command::Add).conf.runtime_config().unwrap();
    assert_eq!(
        rc.port_mappings,
        vec![PortMapping { host_port: 18082, container_port: 80, protocol: "tcp".into(), host_ip: String::new() }]
    );
    assert_eq!(
        rc.bandwidth,
        Some(Bandwidth { ingress_rate: 1000000, ingress_burst: 20000, egress_rate: 2000000, egress_burst: 30000 })
    );
    assert_eq!(
        rc.ip_ranges,
        vec![vec![IpRange {
            subnet: "10.89.0.0/24".parse().unwrap(),
            range_start: Some("10.89.0.10".parse().unwrap()),
            range_end: Some("10.89.0.20".parse().unwrap()),
            gateway: Some("10.89.0.1".parse().unwrap()),
        }]]
    );
    assert_eq!(
        rc.dns,
        Some(RuntimeDns {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["svc.cluster.local".into()],
            options: vec!["ndots:5".into()]
        })
    );
}

#[test]
fn a_bad_value_under_a_go_spelled_key_names_the_field_as_the_spec_spells_it() {
    let conf = json!({"cniVersion": "1.0.0", "name": "k8s", "type": "portmap",
        "runtimeConfig": {"portMappings": [{"HostPort": "x", "ContainerPort": 80}]}});
    let e = ctx(&conf, Command::Add).conf.runtime_config().unwrap_err();
    assert_eq!(e.code, 7);
    assert!(e.msg.contains("portMappings[0].hostPort"), "{}", e.msg);
}

#[test]
fn top_level_fields_match_in_any_case() {
    let conf =
        json!({"CNIVersion": "0.4.0", "Name": "net", "Type": "bridge", "IPAM": {"Type": "host-local"}, "IPMasq": true});
    let c = ctx(&conf, Command::Add);
    assert_eq!(c.version, Version::V040);
    assert_eq!(c.conf.name, "net");
    assert_eq!(c.conf.plugin_type, "bridge");
    assert_eq!(c.conf.ipam_type().unwrap(), Some("host-local"));
    assert!(c.conf.ip_masq);
}

/// A config that carries every shared field, a full prevResult and a GC list.
fn full_config() -> Value {
    json!({
        "cniVersion": "1.1.0", "name": "net", "type": "bridge", "ipMasq": true,
        "ipam": {"type": "host-local"},
        "dns": {"nameservers": ["10.0.0.1"], "domain": "example", "search": ["a"], "options": ["ndots:2"]},
        "runtimeConfig": containerd_runtime_config(),
        "args": {"cni": {"ips": ["10.89.0.5"], "mac": "02:00:00:00:00:01"}},
        "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}],
        "prevResult": {
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:01", "mtu": 1400, "sandbox": "/run/netns/x"}],
            "ips": [{"interface": 0, "address": "10.89.0.5/24", "gateway": "10.89.0.1"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.89.0.1", "mtu": 1400, "priority": 5}],
            "dns": {"nameservers": ["10.0.0.1"]}
        }
    })
}

/// Everything the shared decoding produces from a config, as one value.
fn decoded(conf: &Value) -> Value {
    let c = ctx(conf, Command::Gc);
    let prev: CniResult = c.prev_result().unwrap().unwrap();
    json!({
        "version": c.version.as_str(),
        "conf": serde_json::to_value(&c.conf).unwrap()
            .as_object().unwrap().iter()
            .filter(|(k, _)| *k != "runtimeConfig" && *k != "prevResult" && *k != "args")
            .map(|(k, v)| (k.clone(), v.clone())).collect::<serde_json::Map<_, _>>(),
        "runtimeConfig": serde_json::to_value(c.conf.runtime_config().unwrap()).unwrap(),
        "argsCni": format!("{:?}", c.conf.args_cni().unwrap()),
        "valid": serde_json::to_value(c.valid_attachments().unwrap()).unwrap(),
        "prevResult": prev.to_value(Version::V110).unwrap(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_recasing_of_any_key_decodes_the_same(seed in any::<u64>()) {
        let plain = full_config();
        let folded = refold_keys(&plain, seed, &["capabilities"]);
        prop_assert_eq!(decoded(&folded), decoded(&plain));
    }
}

#[test]
fn podmans_aliases_map_does_not_break_the_other_capabilities() {
    // Podman sends `aliases` as a map of network to names; a plugin that
    // reads another capability (here the MAC) must still get it.
    let conf = json!({"cniVersion": "1.0.0", "name": "podman", "type": "bridge",
        "runtimeConfig": {"aliases": {"podman": ["web", "www"]}, "mac": "c2:11:22:33:44:55"}});
    let c = ctx(&conf, Command::Add);
    assert_eq!(c.requested_mac().unwrap(), Some(("runtimeConfig.mac", "c2:11:22:33:44:55".to_string())));
    assert_eq!(c.conf.runtime_config().unwrap().aliases["podman"], vec!["web", "www"]);
}
