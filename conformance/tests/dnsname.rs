//! dnsname: containers on one network reach each other by name, through
//! cnitool with `cni-conf/60-dnsname.conflist` (bridge + host-local +
//! dnsname, dual-stack), each test in a host namespace of its own with the
//! records under its scratch dir and an upstream resolver it runs in a
//! namespace behind the host. Queries are sent from inside the container
//! namespaces to the name server their result names.

use conformance::dns::{self, Rcode, Type, Upstream};
use conformance::fixture::{json_of, Host};
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
        let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={name};K8S_POD_NAME={name}");
        let caps = json!({"aliases": {net: aliases}}).to_string();
        let env = [("CNI_CONTAINERID", cid), ("CNI_IFNAME", ifname), ("CNI_ARGS", &args), ("CAP_ARGS", &caps)];
        self.host.cnitool(&self.confdir, &[cmd, net, ctr], &env)
    }

    fn ok(&self, cmd: &str, net: &str, ctr: &TestNs, cid: &str, name: &str, aliases: &[&str]) -> Value {
        json_of(self.cnitool(cmd, net, ctr, cid, name, aliases), &format!("cnitool {cmd} {cid}"))
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
    // resolv.conf is re-read when it changes: no upstream left, SERVFAIL; back, answers.
    let resolv = s.host.dir.join("resolv.conf");
    std::fs::write(&resolv, "# no nameserver\n").unwrap();
    let m = dns::query(&cli.name, server, "example.test", Type::A).unwrap();
    assert_eq!(dns::rcode(&m), Rcode::ServFail);
    std::fs::write(&resolv, "nameserver 192.168.53.2\n").unwrap();
    assert_eq!(a(&cli, server, "example.test"), (Rcode::NoError, vec![EXTERNAL.to_string()]));

    s.ok("check", NET, &web, "ctr-web", "web", &["www"]);
    let pid = s.server_pid(NET);
    assert!(running(pid));
    // `dnsname status <dir>` tells the server's state.
    let status = |dir: &Path| {
        let out = std::process::Command::new(bin_dir().join("dnsname")).arg("status").arg(dir).output().unwrap();
        (out.status.success(), serde_json::from_slice::<Value>(&out.stdout).unwrap())
    };
    let (up, st) = status(&s.netdir(NET));
    assert!(up, "{st}");
    assert_eq!(
        (st["pid"].as_u64(), st["records"].as_u64(), st["names"].as_u64()),
        (Some(pid as u64), Some(2), Some(3))
    );

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
    assert_eq!(status(&s.netdir(NET)).1["running"], false);
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

#[test]
fn a_hundred_containers_added_in_parallel_all_resolve() {
    let s = std::sync::Arc::new(Setup::new("dnsp"));
    let ctrs: Vec<std::sync::Arc<TestNs>> = (0..100).map(|_| std::sync::Arc::new(TestNs::new("dnsp-c"))).collect();
    let adds: Vec<_> = ctrs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (s, c) = (s.clone(), c.clone());
            std::thread::spawn(move || s.ok("add", NET, &c, &format!("ctr-{i}"), &format!("c{i}"), &[]))
        })
        .collect();
    let results: Vec<Value> = adds.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(s.records(NET).len(), 100);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(a(&ctrs[0], GW4, &format!("c{i}.dns.podman")), (Rcode::NoError, vec![ip_of(r, 0)]), "c{i}");
    }
    let pid = s.server_pid(NET);
    let dels: Vec<_> = ctrs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (s, c) = (s.clone(), c.clone());
            std::thread::spawn(move || s.ok("del", NET, &c, &format!("ctr-{i}"), &format!("c{i}"), &[]))
        })
        .collect();
    for t in dels {
        t.join().unwrap();
    }
    assert!(gone(pid), "server {pid} still runs");
    assert_eq!(s.leftovers(NET), (vec![], String::new()));
}

#[test]
fn a_killed_server_is_reported_by_check_and_restarted() {
    let s = Setup::new("dnsk");
    let (web, cli) = (TestNs::new("dnsw"), TestNs::new("dnsc"));
    let rweb = s.ok("add", NET, &web, "ctr-web", "web", &[]);
    s.ok("add", NET, &cli, "ctr-cli", "client", &[]);
    let pid = s.server_pid(NET);
    // A second server for the same network refuses to run.
    let second = std::process::Command::new("ip")
        .args(["netns", "exec", &s.host.ns.name])
        .arg(bin_dir().join("dnsname"))
        .arg("serve")
        .arg(s.netdir(NET))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success() && said.contains(&format!("already runs (pid {pid})")), "{said}");
    assert!(running(pid));
    // SAFETY: kill(2) of the server our test's ADD started, by its pid.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    assert!(gone(pid));
    assert!(dns::query(&cli.name, GW4, "web", Type::A).is_none());

    let out = s.cnitool("check", NET, &web, "ctr-web", "web", &[]);
    assert!(!out.status.success(), "CHECK passed with the server dead: {out:?}");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("was not running"), "{said}");
    // CHECK restarted it: names resolve again, and CHECK passes.
    assert_eq!(a(&cli, GW4, "web"), (Rcode::NoError, vec![ip_of(&rweb, 0)]));
    let pid2 = s.server_pid(NET);
    assert_ne!(pid, pid2);
    s.ok("check", NET, &web, "ctr-web", "web", &[]);

    // Killed again, the next ADD restarts it; DEL with the server gone works.
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid2 as i32, libc::SIGKILL) }, 0);
    assert!(gone(pid2));
    s.ok("del", NET, &cli, "ctr-cli", "client", &[]);
    let db = TestNs::new("dnsd");
    let rdb = s.ok("add", NET, &db, "ctr-db", "db", &[]);
    assert_eq!(a(&web, GW4, "db"), (Rcode::NoError, vec![ip_of(&rdb, 0)]));
    assert_eq!(a(&web, GW4, "client").0, Rcode::NXDomain);
    let pid3 = s.server_pid(NET);
    s.ok("del", NET, &db, "ctr-db", "db", &[]);
    s.ok("del", NET, &web, "ctr-web", "web", &[]);
    assert!(gone(pid3));
    assert_eq!(s.leftovers(NET), (vec![], String::new()));
}

#[test]
fn port_53_taken_is_a_clear_error_and_leaves_nothing_half_made() {
    let s = Setup::new("dnst");
    // Another process (this test) holds UDP port 53 on every address of the host namespace.
    let ns = s.host.ns.name.clone();
    let squatter = std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
        // SAFETY: setns of this thread only.
        assert_eq!(unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) }, 0);
        std::net::UdpSocket::bind("0.0.0.0:53").unwrap()
    })
    .join()
    .unwrap();
    let web = TestNs::new("dnsw");
    let out = s.cnitool("add", NET, &web, "ctr-web", "web", &[]);
    assert!(!out.status.success(), "ADD passed with port 53 taken: {out:?}");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let want = format!("port 53/udp on {GW4}:53 is already taken by pid {}", std::process::id());
    assert!(said.contains(&want), "{said}");
    assert_eq!(s.leftovers(NET).0, Vec::<String>::new());
    assert_eq!(s.host.ns.ok(&["ss", "-H", "-lnt", "sport = :53"]), "", "a TCP listener was left");
    assert!(s.records(NET).is_empty());

    // Freed, the same container is added and resolves.
    drop(squatter);
    s.cnitool("del", NET, &web, "ctr-web", "web", &[]);
    let r = s.ok("add", NET, &web, "ctr-web", "web", &[]);
    assert_eq!(a(&web, GW4, "web"), (Rcode::NoError, vec![ip_of(&r, 0)]));
    s.ok("del", NET, &web, "ctr-web", "web", &[]);
    assert_eq!(s.leftovers(NET), (vec![], String::new()));
}

#[test]
fn malformed_queries_and_stalled_tcp_clients_do_not_stop_answers() {
    let s = Setup::new("dnsm");
    let (web, cli) = (TestNs::new("dnsw"), TestNs::new("dnsc"));
    let r = s.ok("add", NET, &web, "ctr-web", "web", &[]);
    s.ok("add", NET, &cli, "ctr-cli", "client", &[]);
    let want = (Rcode::NoError, vec![ip_of(&r, 0)]);
    // Garbage, a header alone, a query cut short.
    dns::send_raw(&cli.name, GW4, vec![0xff; 7]);
    dns::send_raw(&cli.name, GW4, vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    dns::send_raw(&cli.name, GW4, vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'e']);
    assert_eq!(a(&cli, GW4, "web"), want);
    // 100 TCP clients that connect and stall (some after half a frame).
    let mut held = dns::hold_tcp(&cli.name, GW4, 80, vec![]);
    held.extend(dns::hold_tcp(&cli.name, GW4, 20, vec![0, 100, 1, 2]));
    assert_eq!(a(&cli, GW4, "web"), want, "UDP answers while TCP is stalled");
    // Stalled connections are closed after their idle time; TCP answers again.
    std::thread::sleep(Duration::from_secs(3));
    let m = dns::query_tcp(&cli.name, GW4, "web", Type::A).expect("a TCP answer after the stall");
    assert_eq!(dns::answers(&m), want.1);
    drop(held);
    s.ok("del", NET, &cli, "ctr-cli", "client", &[]);
    s.ok("del", NET, &web, "ctr-web", "web", &[]);
    assert_eq!(s.leftovers(NET), (vec![], String::new()));
}

#[test]
fn gc_drops_records_of_attachments_not_in_the_valid_list() {
    let s = Setup::new("dnsg");
    let (web, db) = (TestNs::new("dnsw"), TestNs::new("dnsd"));
    s.ok("add", NET, &web, "ctr-web", "web", &[]);
    let rdb = s.ok("add", NET, &db, "ctr-db", "db", &[]);
    let pid = s.server_pid(NET);
    // A record another tool writes (temp file, rename) is picked up too.
    let rec = json!({"containerID": "ctr-hand", "ifName": "eth0", "name": "byhand", "ips": ["10.89.60.200/24"]});
    let dir = s.netdir(NET).join("records");
    std::fs::write(dir.join(".tmp.hand"), rec.to_string()).unwrap();
    std::fs::rename(dir.join(".tmp.hand"), dir.join("ctr-hand:eth0.json")).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while a(&db, GW4, "byhand").1.is_empty() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(a(&db, GW4, "byhand.dns.podman").1, vec!["10.89.60.200".to_string()]);
    let conf = json!({
        "cniVersion": "1.1.0", "name": NET, "type": "dnsname",
        "dataDir": s.data().display().to_string(),
        "cni.dev/valid-attachments": [{"containerID": "ctr-db", "ifname": "eth0"}]
    });
    // A write killed before its rename left a temp file two hours ago.
    conformance::fixture::plant_stale_temp(&dir, ".tmp.4242.0");
    s.host.run("dnsname", "GC", "", "", "", &conf.to_string()).ok();
    assert_eq!(s.records(NET), vec!["ctr-db:eth0.json".to_string()], "GC removed the leftover too");
    assert_eq!(a(&db, GW4, "web.dns.podman").0, Rcode::NXDomain);
    assert_eq!(a(&db, GW4, "db").1, vec![ip_of(&rdb, 0)]);
    // GC with nothing valid: the server exits, its files go.
    let none = json!({
        "cniVersion": "1.1.0", "name": NET, "type": "dnsname",
        "dataDir": s.data().display().to_string(), "cni.dev/valid-attachments": []
    });
    s.host.run("dnsname", "GC", "", "", "", &none.to_string()).ok();
    assert!(gone(pid));
    assert_eq!(s.leftovers(NET), (vec![], String::new()));
    s.ok("del", NET, &db, "ctr-db", "db", &[]);
    s.ok("del", NET, &web, "ctr-web", "web", &[]);
}

/// A dnsname config with a prevResult, as the runtime sends it after bridge.
fn direct(data: &Path, extra: Value) -> String {
    let mut v = json!({
        "cniVersion": "1.0.0", "name": "badnet", "type": "dnsname",
        "dataDir": data.display().to_string(),
        "prevResult": {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
            "ips": [{"interface": 0, "address": "10.89.62.5/24", "gateway": "10.89.62.1"}]
        }
    });
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    v.to_string()
}

#[test]
fn bad_input_is_a_code_7_error_and_writes_nothing() {
    let host = Host::new("dnsbad");
    let data = host.dir.join("dnsname");
    let ctr = TestNs::new("dnsbadc");
    let run = |conf: &str, name: &str| {
        let args = format!("IgnoreUnknown=1;K8S_POD_NAME={name}");
        host.run_env("dnsname", "ADD", &ctr.path(), "ctr-bad", "eth0", conf, &[("CNI_ARGS", &args)])
    };
    let plain = direct(&data, json!({}));
    for name in ["", "a b", &"x".repeat(64), "café", "a..b", "web.example.com", "-web"] {
        let e = run(&plain, name).err(7);
        assert!(e["msg"].as_str().unwrap().contains("K8S_POD_NAME"), "{name:?}: {e}");
    }
    let no_name = host.run("dnsname", "ADD", &ctr.path(), "ctr-bad", "eth0", &plain).err(7);
    // Keys other than containers/dnsname's need IgnoreUnknown (code 4, as the reference).
    let args = [("CNI_ARGS", "K8S_POD_NAME=web;FOO=1")];
    host.run_env("dnsname", "ADD", &ctr.path(), "ctr-bad", "eth0", &plain, &args).err(4);
    assert!(no_name["msg"].as_str().unwrap().contains("K8S_POD_NAME"), "{no_name}");
    for domain in ["a..b", "bad domain", "ünï.de", ".lead"] {
        let e = run(&direct(&data, json!({"domainName": domain})), "web").err(7);
        assert!(e["msg"].as_str().unwrap().contains("domainName"), "{domain:?}: {e}");
    }
    let many: Vec<String> = (0..10_000).map(|i| format!("a{i}")).collect();
    let e = run(&direct(&data, json!({"runtimeConfig": {"aliases": {"badnet": many}}})), "web").err(7);
    assert!(e["msg"].as_str().unwrap().contains("aliases"), "{e}");
    let e = run(&direct(&data, json!({"runtimeConfig": {"aliases": {"badnet": "web"}}})), "web").err(7);
    assert!(e["msg"].as_str().unwrap().contains("aliases"), "{e}");
    let e = run(&direct(&data, json!({"dataDir": "relative/dir"})), "web").err(7);
    assert!(e["msg"].as_str().unwrap().contains("dataDir"), "{e}");
    let mut no_prev: Value = serde_json::from_str(&plain).unwrap();
    no_prev.as_object_mut().unwrap().remove("prevResult");
    run(&no_prev.to_string(), "web").err(7);
    let mut no_gw: Value = serde_json::from_str(&plain).unwrap();
    no_gw["prevResult"]["ips"][0].as_object_mut().unwrap().remove("gateway");
    let e = run(&no_gw.to_string(), "web").err(7);
    assert!(e["msg"].as_str().unwrap().contains("gateway"), "{e}");
    assert!(!data.exists(), "bad input wrote {:?}", std::fs::read_dir(&data).map(|d| d.count()));
    // DEL of what was never added, STATUS of a good and a bad config.
    host.run("dnsname", "DEL", "", "ctr-bad", "eth0", &plain).ok();
    // CHECK of what was never added says so, and creates nothing either.
    let e =
        host.run_env("dnsname", "CHECK", &ctr.path(), "ctr-bad", "eth0", &plain, &[("CNI_ARGS", "K8S_POD_NAME=web")]);
    let e = e.err(100);
    assert!(e["msg"].as_str().unwrap().contains("no record"), "{e}");
    assert!(!data.exists(), "CHECK wrote {:?}", std::fs::read_dir(&data).map(|d| d.count()));
    let v11 = |extra: Value| {
        let mut v: Value = serde_json::from_str(&direct(&data, extra)).unwrap();
        v["cniVersion"] = json!("1.1.0");
        v.as_object_mut().unwrap().remove("prevResult");
        v.to_string()
    };
    host.run("dnsname", "STATUS", "", "", "", &v11(json!({}))).ok();
    host.run("dnsname", "STATUS", "", "", "", &v11(json!({"domainName": "a..b"}))).err(7);
}

/// Real Podman 4 (its CNI backend), rootful, in the test's host namespace
/// (`nsenter --net`, so the host's cgroup tree stays visible to runc),
/// with its storage, state and network configs in the scratch dir and our
/// build directory as its only plugin directory.
struct Podman {
    host: Host,
}

impl Podman {
    fn cmd(&self, args: &[&str]) -> Output {
        let d = &self.host.dir;
        std::process::Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.host.ns.name))
            .arg("podman")
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .args(["--root", &d.join("root").display().to_string()])
            .args(["--runroot", &d.join("runroot").display().to_string()])
            .args(["--tmpdir", &d.join("tmp").display().to_string()])
            .args(["--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "none"])
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(out.status.success(), "podman {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "--all", "--force", "--time", "0"]);
    }
}

#[test]
fn real_podman_writes_the_dnsname_entry_and_its_containers_resolve_each_other() {
    let host = Host::new("dnspod");
    let d = host.dir.clone();
    std::fs::create_dir_all(d.join("net.d")).unwrap();
    std::fs::write(
        d.join("containers.conf"),
        format!(
            "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\"]\nnetwork_config_dir = \"{}\"\n",
            bin_dir().display(),
            d.join("net.d").display()
        ),
    )
    .unwrap();
    // An image with busybox (no registry is reachable): sh, sleep, nslookup.
    let rootfs = d.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static installed");
    for c in ["sh", "sleep", "nslookup"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(c)).unwrap();
    }
    let tar = d.join("rootfs.tar");
    let st = std::process::Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".").status().unwrap();
    assert!(st.success());
    let podman = Podman { host };
    podman.ok(&["import", &tar.display().to_string(), "localhost/dnsbox"]);

    // `podman network create` writes the dnsname entry because our dir holds dnsname.
    podman.ok(&["network", "create", "--subnet", "10.89.78.0/24", "podnet"]);
    let path = d.join("net.d").join("podnet.conflist");
    let mut list: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let last = list["plugins"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last, json!({"type": "dnsname", "domainName": "dns.podman", "capabilities": {"aliases": true}}));
    // The stores go to the scratch dir (the machine's own stay untouched).
    conformance::demo::point_stores_at(&mut list, &podman.host.ipam_dir());
    let n = list["plugins"].as_array().unwrap().len();
    list["plugins"][n - 1]["dataDir"] = json!(d.join("dnsname").display().to_string());
    std::fs::write(&path, list.to_string()).unwrap();

    let run = ["run", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "podnet"];
    let mut web = run.to_vec();
    web.extend(["-d", "--name", "web", "--network-alias", "www", "localhost/dnsbox", "sleep", "300"]);
    podman.ok(&web);
    let ip = podman.ok(&["inspect", "web", "--format", "{{(index .NetworkSettings.Networks \"podnet\").IPAddress}}"]);
    let ip = ip.trim().to_string();
    assert!(ip.starts_with("10.89.78."), "{ip}");
    for name in ["web", "www", "web.dns.podman"] {
        let mut q = run.to_vec();
        q.extend(["--rm", "localhost/dnsbox", "nslookup", name]);
        let out = podman.ok(&q);
        assert!(out.contains(&format!("Address: {ip}")), "nslookup {name}: {out}");
    }
    let mut rc = run.to_vec();
    rc.extend(["--rm", "localhost/dnsbox", "sh", "-c", "cat /etc/resolv.conf"]);
    let resolv = podman.ok(&rc);
    assert!(resolv.contains("nameserver 10.89.78.1") && resolv.contains("search dns.podman"), "{resolv}");

    let pid = std::fs::read_to_string(d.join("dnsname/podnet/server.pid")).unwrap().trim().parse::<u32>().unwrap();
    podman.ok(&["rm", "--force", "--time", "0", "web"]);
    assert!(gone(pid), "server {pid} still runs after the last container");
    let left: Vec<_> = std::fs::read_dir(d.join("dnsname/podnet")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("lock")]);
    podman.ok(&["network", "rm", "podnet"]);
}

/// The dnsname bench (`make bench`) runs end to end and leaves nothing
/// (its figures are printed, never asserted).
#[test]
fn the_bench_runs_and_leaves_nothing() {
    let r = conformance::bench::dns::run(&conformance::bin("dnsname"), 20, 1).expect("bench-dns");
    println!("{}", conformance::bench::dns::text(&r));
    assert!(r.qps_ours > 0.0 && r.qps_dnsmasq > 0.0, "{r:?}");
    assert!(r.server_hwm_kib > 0, "{r:?}");
}

/// Every version with chaining (0.3.0 on): the result passed on in the
/// version asked, with the name servers and search domain; CHECK where the
/// version has it; DEL; and CHECK fails when the record disagrees with the
/// runtime's result.
#[test]
fn every_chained_version_passes_the_result_on() {
    let host = Host::new("dnsver");
    let data = host.dir.join("dnsname");
    let ctr = TestNs::new("dnsverc");
    let args = [("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web")];
    for v in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let ip = if v.starts_with("0.") {
            json!({"version": "4", "interface": 0, "address": "10.89.62.5/24", "gateway": "10.89.62.1"})
        } else {
            json!({"interface": 0, "address": "10.89.62.5/24", "gateway": "10.89.62.1"})
        };
        let prev = json!({"cniVersion": v, "interfaces": [{"name": "eth0", "sandbox": ctr.path()}], "ips": [ip],
                          "dns": {"nameservers": ["192.0.2.53"]}});
        let conf = json!({"cniVersion": v, "name": "vernet", "type": "dnsname",
                          "dataDir": data.display().to_string(), "prevResult": prev});
        let out = host.run_env("dnsname", "ADD", &ctr.path(), "ctr-v", "eth0", &conf.to_string(), &args).ok().json();
        assert_eq!(out["cniVersion"], v, "{out}");
        assert_eq!(out["dns"]["nameservers"], json!(["10.89.62.1", "192.0.2.53"]), "{v}: {out}");
        assert_eq!(out["dns"]["search"], json!(["dns.podman"]), "{v}: {out}");
        assert_eq!(out["ips"][0]["address"], "10.89.62.5/24");
        if v != "0.3.0" && v != "0.3.1" {
            let mut c = conf.clone();
            c["prevResult"] = out.clone();
            host.run_env("dnsname", "CHECK", &ctr.path(), "ctr-v", "eth0", &c.to_string(), &args).ok();
            // The runtime's result and the record disagree: CHECK says so.
            c["prevResult"]["ips"][0]["address"] = json!("10.89.62.6/24");
            host.run_env("dnsname", "CHECK", &ctr.path(), "ctr-v", "eth0", &c.to_string(), &args).err(100);
        }
        host.run_env("dnsname", "DEL", &ctr.path(), "ctr-v", "eth0", &conf.to_string(), &args).ok();
    }
    let left: Vec<_> = std::fs::read_dir(data.join("vernet")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("lock")]);
    assert_eq!(host.ns.ok(&["ss", "-H", "-lnu", "sport = :53"]), "");
}

/// Records change while queries are in flight, and none is dropped: the
/// server never closes its sockets to reload (aardvark-dns users suffer
/// timeouts there).
#[test]
fn record_changes_drop_no_query_in_flight() {
    let s = Setup::new("dnsr");
    let (web, cli) = (TestNs::new("dnsw"), TestNs::new("dnsc"));
    let rweb = s.ok("add", NET, &web, "ctr-web", "web", &[]);
    s.ok("add", NET, &cli, "ctr-cli", "client", &[]);
    let want = ip_of(&rweb, 0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (flag, cname) = (stop.clone(), cli.name.clone());
    let querier = std::thread::spawn(move || {
        let (mut asked, mut wrong) = (0, Vec::new());
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            asked += 1;
            match dns::query(&cname, GW4, "web.dns.podman", Type::A) {
                Some(m) if dns::answers(&m) == [want.clone()] => {}
                other => wrong.push(format!("{:?}", other.map(|m| (dns::rcode(&m), dns::answers(&m))))),
            }
        }
        (asked, wrong)
    });
    let churn = TestNs::new("dnsx");
    for i in 0..15 {
        s.ok("add", NET, &churn, &format!("ctr-x{i}"), &format!("x{i}"), &[]);
        s.ok("del", NET, &churn, &format!("ctr-x{i}"), &format!("x{i}"), &[]);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (asked, wrong) = querier.join().unwrap();
    assert!(asked > 10, "only {asked} queries were sent");
    assert!(wrong.is_empty(), "{} of {asked} queries failed: {wrong:?}", wrong.len());
    s.ok("del", NET, &cli, "ctr-cli", "client", &[]);
    s.ok("del", NET, &web, "ctr-web", "web", &[]);
    assert_eq!(s.leftovers(NET), (vec![], String::new()));
}
