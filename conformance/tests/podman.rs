//! `cni-conf/87-podman.conflist`, the conflist `podman network create
//! --subnet 10.89.77.0/24 mynet` writes (CNI backend, cniVersion 0.4.0:
//! bridge + host-local, portmap, firewall, tuning), run unchanged through
//! cnitool as Podman runs it: `-p`-style port mappings in CAP_ARGS, a
//! static address in `CNI_ARGS IP=`, on a host whose iptables FORWARD
//! policy is DROP (Docker installed beside Podman). ADD, CHECK, DEL, and
//! nothing left behind.

use conformance::fixture::{json_of, Host};
use conformance::{witness, TestNs};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;

const CONFLIST: &str = "87-podman.conflist";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `podman run -p 8080:80 -p 198.51.100.1:8443:80`, as Podman's CNI
/// backend passes it (no `hostIP` when none was given).
const PORTS: &str = r#"{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},{"hostPort":8443,"containerPort":80,"protocol":"tcp","hostIP":"198.51.100.1"}]}"#;

struct Podman<'a> {
    host: &'a Host,
    confdir: PathBuf,
}

impl Podman<'_> {
    /// `cnitool <cmd> mynet <netns>` in the host namespace, with the
    /// variables Podman's CNI backend sets for a container.
    /// `ports`: whether the container publishes [`PORTS`].
    fn cnitool(&self, cmd: &str, ctr: &TestNs, id: &str, static_ip: Option<&str>, ports: bool) -> Output {
        let mut args =
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={id};K8S_POD_NAME={id};K8S_POD_INFRA_CONTAINER_ID={id}");
        if let Some(ip) = static_ip {
            args.push_str(&format!(";IP={ip}"));
        }
        let env = [
            ("CNI_CONTAINERID", id),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", &args),
            ("CAP_ARGS", if ports { PORTS } else { "" }),
        ];
        self.host.cnitool(&self.confdir, &[cmd, "mynet", &ctr.path()], &env)
    }

    fn ok(&self, cmd: &str, ctr: &TestNs, id: &str, static_ip: Option<&str>, ports: bool) -> Value {
        json_of(self.cnitool(cmd, ctr, id, static_ip, ports), &format!("cnitool {cmd} {id}"))
    }
}

// ---- a TCP service in a namespace, a client in another ----

/// A listener in `ns` on port 80 that answers every connection with "hi",
/// until the guard is dropped.
fn serve(ns: &TestNs) -> conformance::tcp::Server {
    conformance::tcp::Server::start(&ns.name, "0.0.0.0:80", "hi").expect("listening on :80")
}

fn connect(ns: &TestNs, to: &str) -> bool {
    conformance::tcp::request(&ns.name, to).is_ok_and(|s| s == "hi")
}

/// Elements left in any of the suite's own nftables sets and maps.
fn our_elements(ns: &TestNs) -> Vec<String> {
    let mut out = Vec::new();
    for item in witness::nft_ruleset(ns) {
        let Some(s) = item.get("set").or_else(|| item.get("map")) else { continue };
        let table = s["table"].as_str().unwrap_or_default();
        if table.starts_with("cnirs-") && s.get("elem").is_some_and(|e| !e.as_array().unwrap().is_empty()) {
            // Per-network exemption sets of masquerade are not per container.
            if !s["name"].as_str().unwrap_or_default().contains("exempt") {
                out.push(format!("{table} {}: {}", s["name"], s["elem"]));
            }
        }
    }
    out
}

#[test]
fn the_conflist_is_what_podman_writes() {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("cni-conf").join(CONFLIST)).unwrap()).unwrap();
    assert_eq!(v["cniVersion"], "0.4.0");
    assert_eq!(v["name"], "mynet");
    let types: Vec<&str> = v["plugins"].as_array().unwrap().iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["bridge", "portmap", "firewall", "tuning"]);
    let br = &v["plugins"][0];
    assert_eq!(br["bridge"], "cni-podman1");
    assert_eq!((&br["isGateway"], &br["ipMasq"], &br["hairpinMode"]), (&json!(true), &json!(true), &json!(true)));
    assert_eq!(br["ipam"]["ranges"], json!([[{"subnet": "10.89.77.0/24", "gateway": "10.89.77.1"}]]));
    assert_eq!(v["plugins"][1]["capabilities"], json!({"portMappings": true}));
    assert_eq!(v["plugins"][2], json!({"type": "firewall", "backend": ""}));
    assert_eq!(v["plugins"][3], json!({"type": "tuning"}));
}

#[test]
fn podman_network_runs_add_check_del_on_a_forward_drop_host() {
    let host = Host::new("pod");
    // Docker's policy, in this host namespace only.
    host.ns.ok(&["iptables", "-P", "FORWARD", "DROP"]);
    host.ns.ok(&["ip6tables", "-P", "FORWARD", "DROP"]);
    // The outside: a client on the host's uplink with no route back to the
    // containers, so replies need the masquerade and inbound needs -p.
    let client = host.outside("pod-out");

    // The conflist, unchanged but for where host-local keeps its leases.
    let confdir = host.dir.join("net.d");
    std::fs::create_dir_all(&confdir).unwrap();
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("cni-conf").join(CONFLIST)).unwrap()).unwrap();
    conformance::demo::point_stores_at(&mut v, &host.ipam_dir());
    std::fs::write(confdir.join(CONFLIST), serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let podman = Podman { host: &host, confdir };

    // podman run --ip 10.89.77.50 -p 8080:80 -p 198.51.100.1:8443:80 web
    let web = TestNs::new("pod-web");
    let r = podman.ok("add", &web, "web", Some("10.89.77.50"), true);
    assert_eq!(r["cniVersion"], "0.4.0", "{r}");
    assert_eq!(r["interfaces"][0]["name"], "cni-podman1");
    assert_eq!(r["ips"][0]["address"], "10.89.77.50/24");
    assert_eq!(r["ips"][0]["version"], "4");
    assert_eq!(r["ips"][0]["gateway"], "10.89.77.1");
    assert_eq!(host.leases("mynet"), vec!["10.89.77.50".to_string()]);
    let _server = serve(&web);
    // podman run db: no static address, no published ports.
    let db = TestNs::new("pod-db");
    let rdb = podman.ok("add", &db, "db", None, false);
    let db_ip = rdb["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_string();

    // Traffic: published ports from outside, container to container and
    // out to the world, all through FORWARD DROP.
    assert!(connect(&client, "198.51.100.1:8080"), "-p 8080:80 from another namespace");
    assert!(connect(&client, "198.51.100.1:8443"), "-p 198.51.100.1:8443:80");
    assert!(db.ping("10.89.77.50"), "db -> web on the bridge");
    assert!(web.ping(&db_ip), "web -> db");
    assert!(web.ping("198.51.100.2"), "web -> outside (masquerade)");
    assert!(connect(&db, "10.89.77.50:80"), "db -> web:80 directly");
    let fwd = host.ns.ok(&["iptables", "-S", "FORWARD"]);
    assert!(fwd.lines().any(|l| l.contains("cnirs-firewall") && l.ends_with("-j ACCEPT")), "{fwd}");

    for (ctr, id, ports) in [(&web, "web", true), (&db, "db", false)] {
        let out = podman.cnitool("check", ctr, id, None, ports);
        assert!(out.status.success(), "cnitool check {id}: {out:?}");
    }

    // podman rm: DEL in reverse order; everything per container is gone.
    podman.ok("del", &web, "web", Some("10.89.77.50"), true);
    assert!(!connect(&client, "198.51.100.1:8080"), "the port is closed after DEL");
    assert!(!db.ping("10.89.77.50"));
    podman.ok("del", &db, "db", None, false);
    podman.ok("del", &db, "db", None, false);
    assert!(host.leases("mynet").is_empty(), "{:?}", host.leases("mynet"));
    assert!(host.veths().iter().all(|v| v == "up0"), "{:?}", host.veths());
    assert!(our_elements(&host.ns).is_empty(), "{:?}", our_elements(&host.ns));
    assert_eq!(witness::link_names(&web), vec!["lo"]);
    // The chain is still listed cleanly by iptables.
    host.ns.ok(&["iptables", "-S"]);
    host.ns.ok(&["iptables-save"]);
}
