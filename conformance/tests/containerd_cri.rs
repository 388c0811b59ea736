//! The kubelet's path, for real: containerd 1.6's CRI plugin with our
//! binaries as its `bin_dir` and `cni-conf/kubernetes/10-containerd-net.conflist`
//! (bridge + host-local dual-stack + portmap) as its network, driven through
//! the CRI v1 API as the kubelet drives it: RunPodSandbox (with and without
//! `port_mappings`), PodSandboxStatus, StopPodSandbox, RemovePodSandbox.
//! Checks what a cluster user would: the pod's addresses (both families),
//! host → pod, pod ↔ pod, a hostPort from the node (127.0.0.1 and the
//! gateway) and from the pod itself (hairpin), and after Stop + Remove no
//! lease, veth, nftables element, cache file or namespace left.

use conformance::containerd::{Containerd, CNI_CACHE};
use conformance::{tcp, witness};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    LinuxPodSandboxConfig, PodSandboxConfig, PodSandboxMetadata, PodSandboxStatusRequest, PortMapping, Protocol,
    RemovePodSandboxRequest, RunPodSandboxRequest, StopPodSandboxRequest,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tonic::transport::{Channel, Endpoint, Uri};

const CONFLIST: &str = "kubernetes/10-containerd-net.conflist";
const GW4: &str = "10.88.0.1";
const GW6: &str = "fd00:88::1";
const HOST_PORT: i32 = 18082;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn conflist() -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo().join("cni-conf").join(CONFLIST)).unwrap()).unwrap()
}

// ---- a CRI client, as the kubelet is one ----

struct Cri {
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
}

/// A running pod sandbox as the test sees it.
struct Pod {
    id: String,
    /// The sandbox's pause process: its namespace is the pod's.
    pid: u64,
    /// Pod IPs from PodSandboxStatus (primary first).
    ips: Vec<String>,
}

impl Pod {
    /// The pod's network namespace, reachable from the test's own mount
    /// namespace (containerd mounts it in its own).
    fn netns(&self) -> String {
        format!("/proc/{}/ns/net", self.pid)
    }

    fn ip(&self, v6: bool) -> String {
        self.ips.iter().find(|a| a.contains(':') == v6).cloned().unwrap_or_else(|| panic!("no pod IP: {:?}", self.ips))
    }

    /// Runs a command in the pod's network namespace.
    fn exec(&self, argv: &[&str]) -> Output {
        Command::new("nsenter").arg(format!("--net={}", self.netns())).args(argv).output().unwrap()
    }

    fn ping(&self, addr: &str) -> bool {
        self.exec(&["ping", "-c", "1", "-W", "2", addr]).status.success()
    }
}

impl Cri {
    fn connect(c: &Containerd) -> Cri {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let sock = c.socket();
        let channel = rt
            .block_on(Endpoint::try_from("http://[::]").unwrap().connect_with_connector(tower::service_fn(
                move |_: Uri| {
                    let sock = sock.clone();
                    async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(sock).await?)) }
                },
            )))
            .expect("connecting to containerd's CRI socket");
        Cri { rt, client: RuntimeServiceClient::new(channel) }
    }

    /// RunPodSandbox then PodSandboxStatus (verbose, for the pause PID).
    fn run_pod(&mut self, c: &Containerd, name: &str, ports: Vec<PortMapping>) -> Result<Pod, tonic::Status> {
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}-{}", std::process::id()),
                namespace: "cnitest".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            port_mappings: ports,
            linux: Some(LinuxPodSandboxConfig { cgroup_parent: c.cgroup_parent(), ..Default::default() }),
            ..Default::default()
        };
        let req = RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() };
        let id = self.rt.block_on(self.client.run_pod_sandbox(req))?.into_inner().pod_sandbox_id;
        let status = self
            .rt
            .block_on(
                self.client.pod_sandbox_status(PodSandboxStatusRequest { pod_sandbox_id: id.clone(), verbose: true }),
            )?
            .into_inner();
        let net = status.status.and_then(|s| s.network).expect("PodSandboxStatus has no network status");
        let mut ips = vec![net.ip];
        ips.extend(net.additional_ips.into_iter().map(|p| p.ip));
        let info: Value = serde_json::from_str(status.info.get("info").expect("verbose info")).unwrap();
        let pid = info["pid"].as_u64().expect("sandbox pid in the verbose info");
        Ok(Pod { id, pid, ips })
    }

    fn stop(&mut self, id: &str) {
        let req = StopPodSandboxRequest { pod_sandbox_id: id.into() };
        self.rt.block_on(self.client.stop_pod_sandbox(req)).expect("StopPodSandbox");
    }

    fn remove(&mut self, id: &str) {
        let req = RemovePodSandboxRequest { pod_sandbox_id: id.into() };
        self.rt.block_on(self.client.remove_pod_sandbox(req)).expect("RemovePodSandbox");
    }
}

fn tcp_map(host_port: i32, container_port: i32) -> PortMapping {
    PortMapping { protocol: Protocol::Tcp as i32, container_port, host_port, host_ip: String::new() }
}

// ---- what must be gone ----

fn leases(c: &Containerd) -> Vec<String> {
    std::fs::read_dir(c.ipam_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip") && !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

fn cache_files(id: &str) -> Vec<String> {
    std::fs::read_dir(CNI_CACHE)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.contains(id)).collect())
        .unwrap_or_default()
}

/// Stop + Remove, as the kubelet does, then nothing of any pod may remain.
fn stop_remove_and_check_clean(c: &Containerd, cri: &mut Cri, pods: &[Pod]) {
    for p in pods {
        cri.stop(&p.id);
        cri.remove(&p.id);
    }
    assert_eq!(leases(c), Vec::<String>::new(), "host-local leases left");
    assert_eq!(witness::veths(&c.ns), Vec::<String>::new(), "veths left");
    assert_eq!(witness::suite_elements(&c.ns), Vec::<String>::new(), "nftables elements left");
    for p in pods {
        assert_eq!(cache_files(&p.id), Vec::<String>::new(), "libcni cache files left for {}", p.id);
    }
    assert_eq!(c.mounts_under(&c.netns_dir()), Vec::<String>::new(), "pod network namespaces still mounted");
}

fn serve(pod: &Pod) -> tcp::Server {
    tcp::Server::start(&pod.netns(), "[::]:80", "hi").expect("a listener on the pod's port 80")
}

fn answers(from: &str, to: &str) -> Result<(), String> {
    match tcp::request(from, to) {
        Ok(s) if s == "hi" => Ok(()),
        other => Err(format!("{to} from {from}: {other:?}")),
    }
}

#[test]
fn pods_without_port_mappings_are_dual_stack_reachable_and_leave_nothing() {
    let c = Containerd::start("cri", conflist());
    let mut cri = Cri::connect(&c);
    let a = cri.run_pod(&c, "a", vec![]).unwrap_or_else(|e| panic!("RunPodSandbox a: {e}\n{}", c.log()));
    let b = cri.run_pod(&c, "b", vec![]).unwrap_or_else(|e| panic!("RunPodSandbox b: {e}\n{}", c.log()));
    for p in [&a, &b] {
        assert_eq!(p.ips.len(), 2, "pod IPs (v4 and v6): {:?}", p.ips);
        assert!(p.ip(false).starts_with("10.88."), "{:?}", p.ips);
        assert!(p.ip(true).starts_with("fd00:88::"), "{:?}", p.ips);
        assert!(c.ns.ping(&p.ip(false)) && c.ns.ping(&p.ip(true)), "host -> pod {:?}", p.ips);
    }
    for (x, y) in [(&a, &b), (&b, &a)] {
        assert!(x.ping(&y.ip(false)), "pod -> pod over IPv4: {:?} -> {:?}", x.ips, y.ips);
        assert!(x.ping(&y.ip(true)), "pod -> pod over IPv6: {:?} -> {:?}", x.ips, y.ips);
    }
    let server = serve(&b);
    answers(&a.netns(), &format!("{}:80", b.ip(false))).unwrap();
    answers(&a.netns(), &format!("[{}]:80", b.ip(true))).unwrap();
    drop(server);
    stop_remove_and_check_clean(&c, &mut cri, &[a, b]);
}

/// Depends on Go's case-insensitive key matching: containerd sends the
/// mappings as `{"HostPort":18082,"ContainerPort":80,...}`.
#[test]
fn a_host_port_pod_is_reachable_from_the_node_and_from_itself() {
    let c = Containerd::start("crihp", conflist());
    let mut cri = Cri::connect(&c);
    // The hostPort 0 mapping is dropped by containerd: portmap never sees it.
    let web = cri
        .run_pod(&c, "web", vec![tcp_map(HOST_PORT, 80), tcp_map(0, 8080)])
        .unwrap_or_else(|e| panic!("RunPodSandbox with port_mappings: {e}"));
    assert_eq!(web.ips.len(), 2, "pod IPs (v4 and v6): {:?}", web.ips);
    let _server = serve(&web);
    let node = c.ns.name.clone();
    answers(&node, &format!("127.0.0.1:{HOST_PORT}")).unwrap();
    answers(&node, &format!("{GW4}:{HOST_PORT}")).unwrap();
    answers(&node, &format!("[{GW6}]:{HOST_PORT}")).unwrap();
    // Hairpin: the pod reaches itself through its own host port.
    answers(&web.netns(), &format!("{GW4}:{HOST_PORT}")).unwrap();
    answers(&web.netns(), &format!("[{GW6}]:{HOST_PORT}")).unwrap();
    let elements = witness::suite_elements(&c.ns);
    assert!(elements.iter().any(|e| e.contains(&HOST_PORT.to_string())), "no element for {HOST_PORT}: {elements:?}");
    assert!(!elements.iter().any(|e| e.contains("8080")), "the hostPort 0 mapping reached portmap: {elements:?}");
    stop_remove_and_check_clean(&c, &mut cri, &[web]);
}
