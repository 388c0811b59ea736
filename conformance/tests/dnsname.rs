//! dnsname: containers on one network reach each other by name, through
//! cnitool with `cni-conf/60-dnsname.conflist` (bridge + host-local +
//! dnsname, dual-stack), each test in a host namespace of its own with the
//! records under its scratch dir and an upstream resolver it runs in a
//! namespace behind the host. Queries are sent from inside the container
//! namespaces to the name server their result names.

use conformance::dns::{self, Rcode, Type, Upstream};
use conformance::fixture::Host;
use conformance::{bin_dir, TestNs};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

const FILE: &str = "60-dnsname.conflist";
const NET: &str = "dnsnet";
/// The network's IPv4 gateway, where its server listens.
const GW4: &str = "10.89.60.1";
const GW6: &str = "fd00:89:60::1";
/// What the test's upstream resolver answers for `example.test`.
const EXTERNAL: &str = "192.0.2.77";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A host namespace with the example network installed (its stores in
/// the scratch dir), and an upstream resolver in a namespace behind it.
struct Setup {
    host: Host,
    confdir: PathBuf,
    _upstream_ns: TestNs,
    upstream: Upstream,
}

impl Setup {
    fn new(prefix: &str) -> Setup {
        let host = Host::new(prefix);
        let up = TestNs::new(&format!("{prefix}u"));
        host.ns.ok(&["ip", "link", "add", "up0", "type", "veth", "peer", "name", "u0", "netns", &up.name]);
        host.ns.ok(&["ip", "addr", "add", "192.168.53.1/24", "dev", "up0"]);
        host.ns.ok(&["ip", "link", "set", "up0", "up"]);
        up.ok(&["ip", "addr", "add", "192.168.53.2/24", "dev", "u0"]);
        up.ok(&["ip", "link", "set", "u0", "up"]);
        up.ok(&["ip", "link", "set", "lo", "up"]);
        let upstream = Upstream::start(&up.name, &[("example.test.", EXTERNAL.parse().unwrap())]);
        std::fs::write(host.dir.join("resolv.conf"), "nameserver 192.168.53.2\n").unwrap();
        let confdir = host.dir.join("net.d");
        std::fs::create_dir_all(&confdir).unwrap();
        std::fs::create_dir_all(host.dir.join("cache")).unwrap();
        let s = Setup { host, confdir, _upstream_ns: up, upstream };
        s.install(NET, "cni-dns0", "10.89.60", "fd00:89:60");
        s
    }

    /// Installs the example as network `name` on `bridge`, subnets
    /// `<v4>.0/24` and `<v6>::/64`.
    fn install(&self, name: &str, bridge: &str, v4: &str, v6: &str) {
        let mut list: Value =
            serde_json::from_slice(&std::fs::read(repo().join("cni-conf").join(FILE)).unwrap()).unwrap();
        conformance::demo::point_stores_at(&mut list, &self.host.ipam_dir());
        list["name"] = json!(name);
        list["plugins"][0]["bridge"] = json!(bridge);
        list["plugins"][0]["ipam"]["ranges"] = json!([
            [{"subnet": format!("{v4}.0/24"), "gateway": format!("{v4}.1")}],
            [{"subnet": format!("{v6}::/64"), "gateway": format!("{v6}::1")}]
        ]);
        list["plugins"][1]["dataDir"] = json!(self.data().display().to_string());
        list["plugins"][1]["upstreamResolvConf"] = json!(self.host.dir.join("resolv.conf").display().to_string());
        std::fs::write(self.confdir.join(format!("{name}.conflist")), list.to_string()).unwrap();
    }

    fn data(&self) -> PathBuf {
        self.host.dir.join("dnsname")
    }

    /// `cnitool <cmd> <net> <ctr>` for container `cid` named `name`, with
    /// these aliases on `net`, as Podman runs it.
    fn cnitool(&self, cmd: &str, net: &str, ctr: &TestNs, cid: &str, name: &str, aliases: &[&str]) -> Output {
        self.cnitool_if(cmd, net, &ctr.path(), cid, "eth0", name, aliases)
    }

    /// [`Setup::cnitool`] with a namespace path (may be empty) and an ifname.
    #[allow(clippy::too_many_arguments)]
    fn cnitool_if(
        &self,
        cmd: &str,
        net: &str,
        ctr: &str,
        cid: &str,
        ifname: &str,
        name: &str,
        aliases: &[&str],
    ) -> Output {
        std::process::Command::new("ip")
            .args(["netns", "exec", &self.host.ns.name])
            .arg(bin_dir().join("cnitool"))
            .args([cmd, net, ctr])
            .env("NETCONFPATH", &self.confdir)
            .env("CNI_PATH", bin_dir())
            .env("CNI_CACHE_DIR", self.host.dir.join("cache"))
            .env("CNI_CONTAINERID", cid)
            .env("CNI_IFNAME", ifname)
            .env("CNI_ARGS", format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={name};K8S_POD_NAME={name}"))
            .env("CAP_ARGS", json!({"aliases": {net: aliases}}).to_string())
            .output()
            .unwrap()
    }

    fn ok(&self, cmd: &str, net: &str, ctr: &TestNs, cid: &str, name: &str, aliases: &[&str]) -> Value {
        let out = self.cnitool(cmd, net, ctr, cid, name, aliases);
        assert!(out.status.success(), "cnitool {cmd} {cid}: {out:?}");
        if out.stdout.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&out.stdout).unwrap()
        }
    }

    fn netdir(&self, net: &str) -> PathBuf {
        self.data().join(net)
    }

    fn server_pid(&self, net: &str) -> u32 {
        std::fs::read_to_string(self.netdir(net).join("server.pid")).unwrap().trim().parse().unwrap()
    }

    fn records(&self, net: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.netdir(net).join("records"))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// What is left of a network's server: files besides `lock`, and
    /// sockets listening on port 53 in the host namespace.
    fn leftovers(&self, net: &str) -> (Vec<String>, String) {
        let mut files: Vec<String> = std::fs::read_dir(self.netdir(net))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        files.retain(|f| f != "lock");
        let udp = self.host.ns.ok(&["ss", "-H", "-lnu", "sport = :53"]);
        let tcp = self.host.ns.ok(&["ss", "-H", "-lnt", "sport = :53"]);
        (files, format!("{udp}{tcp}"))
    }
}

/// Whether a process runs (a zombie waiting for its reaper does not count).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rsplit(')').next().and_then(|r| r.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Waits (bounded) until `pid` has been reaped by whoever adopted it.
fn gone(pid: u32) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while running(pid) {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

fn a(ns: &TestNs, server: &str, name: &str) -> (Rcode, Vec<String>) {
    let m = dns::query(&ns.name, server, name, Type::A).unwrap_or_else(|| panic!("no answer for {name}"));
    (dns::rcode(&m), dns::answers(&m))
}

fn ip_of(result: &Value, i: usize) -> String {
    result["ips"][i]["address"].as_str().unwrap().split('/').next().unwrap().to_string()
}

#[test]
fn names_and_aliases_resolve_from_a_second_container_and_go_with_del() {
    let s = Setup::new("dnsh");
    let (web, cli) = (TestNs::new("dnsw"), TestNs::new("dnsc"));
    let rweb = s.ok("add", NET, &web, "ctr-web", "web", &["www", "bad alias"]);
    let rcli = s.ok("add", NET, &cli, "ctr-cli", "client", &[]);
    let (web4, web6) = (ip_of(&rweb, 0), ip_of(&rweb, 1));

    // The result tells the runtime what to write in resolv.conf.
    assert_eq!(rcli["dns"], json!({"nameservers": [GW4, GW6], "search": ["dns.podman"]}), "{rcli}");
    let server = rcli["dns"]["nameservers"][0].as_str().unwrap();

    for name in ["web", "web.dns.podman", "WEB.Dns.Podman.", "www", "www.dns.podman"] {
        assert_eq!(a(&cli, server, name), (Rcode::NoError, vec![web4.clone()]), "{name}");
        let m = dns::query(&cli.name, server, name, Type::AAAA).unwrap();
        assert_eq!(dns::answers(&m), vec![web6.clone()], "{name} AAAA");
        assert!(m.answers.iter().all(|r| r.ttl == 0));
    }
    // Over TCP, and over IPv6 to the IPv6 gateway.
    let m = dns::query_tcp(&cli.name, server, "web.dns.podman", Type::A).unwrap();
    assert_eq!(dns::answers(&m), vec![web4.clone()]);
    let m = dns::query(&cli.name, GW6, "web", Type::AAAA).expect("an answer over IPv6");
    assert_eq!(dns::answers(&m), vec![web6.clone()]);
    // The alias that is no DNS label was skipped; the container still started.
    assert_eq!(a(&cli, server, "bad.dns.podman").0, Rcode::NXDomain);
    // PTR names the container under the domain.
    let m = dns::query(&cli.name, server, &dns::arpa(&web4), Type::PTR).unwrap();
    assert_eq!(dns::answers(&m), vec!["web.dns.podman.".to_string()]);
    let m = dns::query(&cli.name, server, &dns::arpa(&web6), Type::PTR).unwrap();
    assert_eq!(dns::answers(&m), vec!["web.dns.podman.".to_string()]);
    // NODATA for a type the name has not, NXDOMAIN for an unknown name.
    let m = dns::query(&cli.name, server, "web.dns.podman", Type::MX).unwrap();
    assert_eq!((dns::rcode(&m), m.answers.len()), (Rcode::NoError, 0));
    assert_eq!(a(&cli, server, "nobody.dns.podman"), (Rcode::NXDomain, vec![]));
    // Other names go to the upstream resolver (which the test runs).
    assert_eq!(a(&cli, server, "example.test"), (Rcode::NoError, vec![EXTERNAL.to_string()]));
    assert_eq!(a(&cli, server, "nowhere.test").0, Rcode::NXDomain);
    assert!(s.upstream.asked.lock().unwrap().contains(&"example.test.".to_string()));
    assert!(!s.upstream.asked.lock().unwrap().iter().any(|n| n.contains("dns.podman")));

    s.ok("check", NET, &web, "ctr-web", "web", &["www"]);
    let pid = s.server_pid(NET);
    assert!(running(pid));

    // DEL: the name is gone when DEL returns; the server stays for the client.
    s.ok("del", NET, &web, "ctr-web", "web", &["www"]);
    assert_eq!(a(&cli, server, "web.dns.podman"), (Rcode::NXDomain, vec![]));
    assert_eq!(a(&cli, server, "www.dns.podman"), (Rcode::NXDomain, vec![]));
    assert_eq!(a(&cli, server, "client.dns.podman"), (Rcode::NoError, vec![ip_of(&rcli, 0)]));
    // DEL again is fine.
    s.ok("del", NET, &web, "ctr-web", "web", &["www"]);

    // After the last DEL: no server, no record, no socket.
    s.ok("del", NET, &cli, "ctr-cli", "client", &[]);
    assert!(gone(pid), "server {pid} still runs");
    assert_eq!(s.leftovers(NET), (vec![], String::new()));
}

#[test]
fn another_network_cannot_resolve_nor_query_and_a_container_on_both_is_found_on_both() {
    let s = Setup::new("dnsn");
    s.install("dnsnet2", "cni-dns1", "10.89.61", "fd00:89:61");
    let (web, other, both) = (TestNs::new("dnsw"), TestNs::new("dnso"), TestNs::new("dnsb"));
    s.ok("add", NET, &web, "ctr-web", "web", &[]);
    let ro = s.ok("add", "dnsnet2", &other, "ctr-other", "other", &[]);
    let own = ro["dns"]["nameservers"][0].as_str().unwrap().to_string();
    assert_eq!(own, "10.89.61.1");

    // Its own server knows no "web" (the upstream says NXDOMAIN).
    assert_eq!(a(&other, &own, "web.dns.podman").0, Rcode::NXDomain);
    assert_eq!(a(&other, &own, "web").0, Rcode::NXDomain);
    // The first network's server does not answer it at all (it is routed there).
    assert!(other.ping(GW4), "the other network reaches the gateway address");
    assert!(dns::query(&other.name, GW4, "web", Type::A).is_none(), "answered a client of another network");
    assert!(dns::query_tcp(&other.name, GW4, "web", Type::A).is_none(), "TCP answered another network");

    // Two servers, one per network.
    assert_ne!(s.server_pid(NET), s.server_pid("dnsnet2"));

    // A container on both networks is found on both, by its address there.
    let out = s.cnitool_if("add", "dnsnet2", &both.path(), "ctr-both", "eth1", "both", &[]);
    assert!(out.status.success(), "{out:?}");
    let r2: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r1 = s.ok("add", NET, &both, "ctr-both", "both", &[]);
    assert_eq!(a(&other, &own, "both").1, vec![ip_of(&r2, 0)]);
    assert_eq!(a(&web, GW4, "both.dns.podman").1, vec![ip_of(&r1, 0)]);

    // DEL of each, the last ones without the namespace.
    for (net, ctr, cid, ifname) in [
        ("dnsnet2", both.path(), "ctr-both", "eth1"),
        (NET, both.path(), "ctr-both", "eth0"),
        (NET, String::new(), "ctr-web", "eth0"),
        ("dnsnet2", String::new(), "ctr-other", "eth0"),
    ] {
        let out = s.cnitool_if("del", net, &ctr, cid, ifname, "x", &[]);
        assert!(out.status.success(), "del {net} {cid}: {out:?}");
    }
    assert_eq!(s.leftovers(NET).0, Vec::<String>::new());
    assert_eq!(s.leftovers("dnsnet2"), (vec![], String::new()));
}
