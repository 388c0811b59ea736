//! What containerd 1.6's CRI plugin sends to the plugins, replayed call by
//! call through the real binaries, in the shapes captured with the
//! reference plugins (`shared/reference/containerd-cri/`): a separate
//! `cni-loopback` network (cniVersion 0.3.1) ADDed at the same time as the
//! pod's chain and DELed first; `CNI_ARGS` with the `K8S_POD_*` keys in any
//! order (Go map order); `CNI_NETNS=/var/run/netns/cni-<uuid>`; DEL on
//! StopPodSandbox with the namespace and prevResult, then again (twice) on
//! RemovePodSandbox with an empty `CNI_NETNS` and no prevResult, after the
//! namespace is gone; `runtimeConfig.portMappings` with Go's capitalised
//! keys, and no `runtimeConfig` at all for a pod without ports; a failed ADD followed at once
//! by a DEL of everything. Each call must succeed (but the failed ADD) and
//! leave nothing behind.

use conformance::fixture::{with_prev, Host};
use conformance::{witness, PluginRun, TestNs};
use serde_json::{json, Value};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

const LOOPBACK: &str = r#"{"cniVersion":"0.3.1","name":"cni-loopback","type":"loopback"}"#;

/// One pod's identity as containerd passes it.
struct Pod {
    id: String,
    name: String,
    uid: String,
    /// The namespace containerd made (`cni-<uuid>`), until Stop removes it.
    netns: Option<TestNs>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Pod {
    fn new(name: &str) -> Pod {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let uuid = format!("{pid:08x}-{n:04x}-{:04x}-{:04x}-{nanos:012x}", nanos & 0xffff, (nanos >> 16) & 0xffff);
        let ns_name = format!("cni-{uuid}");
        let out = Command::new("ip").args(["netns", "add", &ns_name]).output().unwrap();
        assert!(out.status.success(), "ip netns add {ns_name}: {out:?}");
        Pod {
            id: format!("{:064x}", (u128::from(pid) << 64) | (u128::from(n) << 32) | u128::from(nanos)),
            name: name.into(),
            uid: format!("{uuid}-uid"),
            netns: Some(TestNs { name: ns_name }),
        }
    }

    /// `CNI_NETNS` as containerd sets it: `/var/run/netns/cni-<uuid>`, or
    /// empty once the namespace is gone.
    fn netns_path(&self) -> String {
        self.netns.as_ref().map(|ns| format!("/var/run/netns/{}", ns.name)).unwrap_or_default()
    }

    /// `CNI_ARGS` with the keys in the order given by `order` (a
    /// permutation of 0..5), as Go's map iteration produces them.
    fn cni_args(&self, order: [usize; 5]) -> String {
        let kv = [
            "IgnoreUnknown=1".to_string(),
            "K8S_POD_NAMESPACE=cniacc".to_string(),
            format!("K8S_POD_NAME={}", self.name),
            format!("K8S_POD_INFRA_CONTAINER_ID={}", self.id),
            format!("K8S_POD_UID={}", self.uid),
        ];
        order.iter().map(|&i| kv[i].as_str()).collect::<Vec<_>>().join(";")
    }
}

/// The node: a host namespace with the network of the captures
/// (bridge + host-local dual-stack + portmap, cniVersion 1.0.0).
struct Node {
    host: Host,
    net: String,
    subnet4: String,
}

/// Orders of `CNI_ARGS` keys seen in the captures, and more.
const ORDERS: [[usize; 5]; 5] = [[0, 1, 2, 3, 4], [3, 4, 0, 1, 2], [4, 0, 1, 2, 3], [1, 2, 3, 4, 0], [2, 3, 4, 0, 1]];

impl Node {
    fn new(prefix: &str, subnet4: &str) -> Node {
        let host = Host::new(prefix);
        Node { net: format!("cri-{}", host.ns.name), host, subnet4: subnet4.into() }
    }

    /// The bridge entry exactly as containerd sends it (keys sorted, as Go
    /// marshals a map), host-local pointed at this node's store.
    fn bridge(&self, prev: Option<&Value>) -> String {
        let conf = self.host.conf(json!({
            "bridge": "cri-br0", "cniVersion": "1.0.0", "hairpinMode": true, "ipMasq": true,
            "ipam": {
                "ranges": [[{"subnet": self.subnet4}], [{"subnet": "fd00:89:81::/64"}]],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}], "type": "host-local"
            },
            "isGateway": true, "name": self.net, "type": "bridge"
        }));
        prev.map_or(conf.clone(), |p| with_prev(&conf, p))
    }

    /// The portmap entry with containerd's `runtimeConfig`: `ports` is the
    /// list of `{"HostPort":…}` objects, or `null` for a pod without ports
    /// (containerd then sends no `runtimeConfig` at all).
    fn portmap(&self, ports: &Value, prev: Option<&Value>) -> String {
        let mut v = json!({
            "capabilities": {"portMappings": true}, "cniVersion": "1.0.0", "name": self.net, "type": "portmap"
        });
        if !ports.is_null() {
            v["runtimeConfig"] = json!({"portMappings": ports});
        }
        if let Some(p) = prev {
            v["prevResult"] = p.clone();
        }
        v.to_string()
    }

    fn call(&self, plugin: &str, cmd: &str, pod: &Pod, ifname: &str, stdin: &str, order: [usize; 5]) -> PluginRun {
        let args = pod.cni_args(order);
        let path = pod.netns_path();
        self.host.run_env(plugin, cmd, &path, &pod.id, ifname, stdin, &[("CNI_ARGS", &args)])
    }

    /// RunPodSandbox's network setup: `cni-loopback` and the pod's chain
    /// at the same time. The chain's result, or the failed call.
    fn add(&self, pod: &Pod, ports: &Value) -> Result<Value, PluginRun> {
        std::thread::scope(|s| {
            let lo = s.spawn(|| self.call("loopback", "ADD", pod, "lo", LOOPBACK, ORDERS[2]));
            let chain = s.spawn(|| {
                let r = self.call("bridge", "ADD", pod, "eth0", &self.bridge(None), ORDERS[0]);
                if r.code != 0 {
                    return Err(r);
                }
                let prev = r.json();
                let r = self.call("portmap", "ADD", pod, "eth0", &self.portmap(ports, Some(&prev)), ORDERS[3]);
                if r.code != 0 {
                    return Err(r);
                }
                Ok(r.json())
            });
            let lo = lo.join().unwrap().ok();
            assert_eq!(lo.json()["ips"][0]["address"], "127.0.0.1/8", "cni-loopback result: {lo:?}");
            chain.join().unwrap()
        })
    }

    /// One teardown as go-cni does it: `cni-loopback` first, then the chain
    /// in reverse. `prev`: the cached result (only the first DEL of a pod
    /// that was set up has one).
    fn del(&self, pod: &Pod, ports: &Value, prev: Option<&Value>, order: [usize; 5]) {
        self.call("loopback", "DEL", pod, "lo", LOOPBACK, order).ok();
        self.call("portmap", "DEL", pod, "eth0", &self.portmap(ports, prev), order).ok();
        self.call("bridge", "DEL", pod, "eth0", &self.bridge(prev), order).ok();
    }

    /// StopPodSandbox (DEL with the namespace and prevResult, then the
    /// namespace removed) and RemovePodSandbox (two more DELs with an empty
    /// `CNI_NETNS` and no prevResult), as captured.
    fn stop_and_remove(&self, pod: &mut Pod, ports: &Value, prev: &Value) {
        self.del(pod, ports, Some(prev), ORDERS[4]);
        pod.netns = None;
        self.del(pod, ports, None, ORDERS[1]);
        self.del(pod, ports, None, ORDERS[0]);
    }

    fn assert_clean(&self) {
        assert_eq!(self.host.veths(), Vec::<String>::new(), "veths left");
        assert_eq!(self.host.leases(&self.net), Vec::<String>::new(), "leases left");
        assert_eq!(witness::suite_elements(&self.host.ns), Vec::<String>::new(), "nftables elements left");
    }
}

/// What the pod sees after setup: `lo` up and both families on `eth0`.
fn assert_pod_set_up(pod: &Pod) {
    let ns = pod.netns.as_ref().unwrap();
    let lo = witness::link(ns, "lo").expect("lo");
    assert!(lo["flags"].as_array().unwrap().contains(&json!("UP")), "lo is not up: {lo}");
    let addrs = witness::addresses(ns, "eth0");
    assert!(addrs.iter().any(|a| a.starts_with("10.")), "no IPv4 on eth0: {addrs:?}");
    assert!(addrs.iter().any(|a| a.starts_with("fd00:89:81::")), "no IPv6 on eth0: {addrs:?}");
}

#[test]
fn pod_without_ports_loopback_beside_the_chain_then_three_dels_leave_nothing() {
    let node = Node::new("crr", "10.89.81.0/24");
    let mut pod = Pod::new("web");
    let result = node.add(&pod, &Value::Null).unwrap_or_else(|r| panic!("ADD failed: {r:?}"));
    assert_pod_set_up(&pod);
    assert!(node.host.ns.ping(result["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap()));
    node.stop_and_remove(&mut pod, &Value::Null, &result);
    node.assert_clean();
}

#[test]
fn k8s_cni_args_in_any_order_are_accepted() {
    let node = Node::new("cra", "10.89.82.0/24");
    for order in ORDERS {
        let mut pod = Pod::new("args");
        let lo = node.call("loopback", "ADD", &pod, "lo", LOOPBACK, order).ok();
        assert_eq!(lo.json()["ips"][0]["address"], "127.0.0.1/8");
        let prev = node.call("bridge", "ADD", &pod, "eth0", &node.bridge(None), order).ok().json();
        let res =
            node.call("portmap", "ADD", &pod, "eth0", &node.portmap(&Value::Null, Some(&prev)), order).ok().json();
        assert_pod_set_up(&pod);
        node.stop_and_remove(&mut pod, &Value::Null, &res);
    }
    node.assert_clean();
}

/// A bridge ADD that fails (the range is full) and the teardown containerd
/// sends at once (with the namespace, no prevResult: nothing was cached)
/// leave nothing of the failed pod and take nothing from the pod before.
#[test]
fn failed_add_then_immediate_del_leaves_nothing_and_spares_the_other_pod() {
    // A /30: one address besides the gateway.
    let node = Node::new("crf", "10.89.83.0/30");
    let mut first = Pod::new("first");
    let first_result = node.add(&first, &Value::Null).unwrap_or_else(|r| panic!("first ADD failed: {r:?}"));
    let mut second = Pod::new("second");
    let failed = node.add(&second, &Value::Null).expect_err("the second ADD must fail: the range is full");
    assert!(failed.stdout.contains("no IP addresses available"), "not the full range that failed: {failed:?}");
    node.del(&second, &Value::Null, None, ORDERS[1]);
    second.netns = None;
    node.del(&second, &Value::Null, None, ORDERS[2]);
    assert_eq!(node.host.veths().len(), 1, "the first pod's veth only: {:?}", node.host.veths());
    assert_eq!(node.host.leases(&node.net), ["10.89.83.2", "fd00:89:81::2"], "the first pod's leases only");
    assert_pod_set_up(&first);
    node.stop_and_remove(&mut first, &Value::Null, &first_result);
    node.assert_clean();
}

/// Depends on Go's case-insensitive key matching: the mappings come as
/// `{"HostPort":18082,"ContainerPort":80,"Protocol":"tcp","HostIP":""}`.
#[test]
fn pod_with_a_host_port_in_containerds_spelling_is_mapped_and_unmapped() {
    let node = Node::new("crp", "10.89.84.0/24");
    let ports = json!([{"HostPort": 18082, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}]);
    let mut pod = Pod::new("web");
    let result = node.add(&pod, &ports).unwrap_or_else(|r| panic!("ADD with containerd's portMappings: {r:?}"));
    assert_pod_set_up(&pod);
    let elements = witness::suite_elements(&node.host.ns);
    assert!(elements.iter().any(|e| e.contains("18082")), "no element for hostPort 18082: {elements:?}");
    node.stop_and_remove(&mut pod, &ports, &result);
    node.assert_clean();
}
