//! vxlan: containers on three simulated hosts talk over a VXLAN overlay.
//!
//! Each test builds its own lab: a "lab" namespace holding the underlay
//! bridge `ul0`, and per host a namespace whose only leg `ul` (a veth whose
//! other end is a port of `ul0`) holds `192.168.77.<n>/24`. An nftables
//! bridge-family chain in the lab namespace counts the UDP packets to the
//! VXLAN port per destination host, so a test can see that overlay
//! traffic crosses the underlay encapsulated, and only to the host it is
//! for (nothing is flooded). The plugin runs inside each host namespace,
//! IPAM is this repo's host-local with a data dir per host. Nothing here
//! touches the machine's own namespace; everything is removed on drop.

use conformance::{bin_dir, run_plugin, witness, PluginRun, TestNs};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

const NET: &str = "ovl";
const CLUSTER: &str = "10.244.0.0/16";
const CLUSTER6: &str = "fd44::/48";

fn underlay_ip(n: usize) -> String {
    format!("192.168.77.{n}")
}

fn subnet(n: usize) -> String {
    format!("10.244.{n}.0/24")
}

fn subnet6(n: usize) -> String {
    format!("fd44:0:0:{n}::/64")
}

/// The lab: underlay bridge, hosts, scratch space, and the VXLAN port the
/// counters watch.
struct Lab {
    lab: TestNs,
    hosts: Vec<TestNs>,
    dir: PathBuf,
    port: u16,
}

impl Lab {
    /// `n` hosts on the underlay; traffic to `port` is counted per host.
    fn new(n: usize, port: u16) -> Lab {
        let lab = TestNs::new("vxlab");
        lab.ok(&["ip", "link", "add", "ul0", "type", "bridge"]);
        lab.ok(&["ip", "link", "set", "ul0", "up"]);
        let id = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("vx-test-{}-{id}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut hosts = Vec::new();
        let mut nft = String::from("table bridge vxlab {\n chain count {\n  type filter hook forward priority 0;\n");
        for i in 1..=n {
            let h = TestNs::new(&format!("vxh{i}"));
            let leg = format!("h{i}");
            lab.ok(&["ip", "link", "add", &leg, "type", "veth", "peer", "name", "ul", "netns", &h.name]);
            lab.ok(&["ip", "link", "set", &leg, "master", "ul0", "up"]);
            h.ok(&["ip", "link", "set", "lo", "up"]);
            h.ok(&["ip", "addr", "add", &format!("{}/24", underlay_ip(i)), "dev", "ul"]);
            h.ok(&["ip", "link", "set", "ul", "up"]);
            nft += &format!("  ip daddr {} udp dport {port} counter comment \"h{i}\"\n", underlay_ip(i));
            hosts.push(h);
        }
        nft += " }\n}\n";
        let script = dir.join("lab.nft");
        std::fs::write(&script, nft).unwrap();
        lab.ok(&["nft", "-f", script.to_str().unwrap()]);
        Lab { lab, hosts, dir, port }
    }

    fn host(&self, n: usize) -> &TestNs {
        &self.hosts[n - 1]
    }

    /// Encapsulated packets seen on the underlay so far, to host `n`.
    fn to_host(&self, n: usize) -> u64 {
        let v: Value = serde_json::from_str(&self.lab.ok(&["nft", "-j", "list", "chain", "bridge", "vxlab", "count"]))
            .expect("nft -j");
        let want = format!("h{n}");
        for item in v["nftables"].as_array().unwrap() {
            let r = &item["rule"];
            if r["comment"] == want.as_str() {
                for e in r["expr"].as_array().unwrap() {
                    if let Some(p) = e["counter"]["packets"].as_u64() {
                        return p;
                    }
                }
            }
        }
        panic!("no counter {want}: {v}")
    }

    fn peers_path(&self) -> PathBuf {
        self.dir.join("peers.json")
    }

    /// Writes the shared peers file with the hosts in `which` (each
    /// host's own entry is skipped by the plugin).
    fn write_peers(&self, which: &[usize], v6: bool) {
        let list: Vec<Value> = which
            .iter()
            .map(|&i| {
                let s = if v6 { json!([subnet(i), subnet6(i)]) } else { json!(subnet(i)) };
                json!({"underlayIP": underlay_ip(i), "subnet": s})
            })
            .collect();
        // Written whole and renamed, as a tool updating it should.
        let tmp = self.dir.join("peers.json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&list).unwrap()).unwrap();
        std::fs::rename(tmp, self.peers_path()).unwrap();
    }

    /// The config of host `n`; keys of `extra` replace (null removes).
    fn conf(&self, n: usize, vni: u32, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": "1.0.0",
            "name": NET,
            "type": "vxlan",
            "vni": vni,
            "port": self.port,
            "underlayInterface": "ul",
            "clusterCIDR": CLUSTER,
            "subnet": subnet(n),
            "peersFile": self.peers_path(),
            "ipam": {"type": "host-local", "dataDir": self.data_dir(n)},
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    fn data_dir(&self, n: usize) -> PathBuf {
        self.dir.join(format!("ipam-h{n}"))
    }

    /// The addresses host-local holds on host `n`.
    fn leases(&self, n: usize) -> Vec<String> {
        let Ok(d) = std::fs::read_dir(self.data_dir(n).join(NET)) else { return Vec::new() };
        let mut v: Vec<String> = d
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
            .collect();
        v.sort();
        v
    }

    /// Runs the plugin on host `n` for container `cid` (`eth0` in `ctr`).
    fn run(&self, n: usize, cmd: &str, ctr: &str, cid: &str, conf: &Value) -> PluginRun {
        conformance::fixture::run_attachment(self.host(n), "vxlan", (cmd, ctr, cid, "eth0"), &conf.to_string(), &[])
    }

    /// `vxlan reconcile <file>` on host `n` with `conf` written to a file.
    fn reconcile(&self, n: usize, conf: &Value) -> std::process::Output {
        let file = self.dir.join(format!("h{n}.conf"));
        std::fs::write(&file, conf.to_string()).unwrap();
        let bin = bin_dir().join("vxlan");
        self.host(n).exec(&[bin.to_str().unwrap(), "reconcile", file.to_str().unwrap()])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A container attached on one host.
struct Ctr {
    ns: TestNs,
    cid: String,
    add: Value,
}

impl Ctr {
    fn ip(&self, v4: bool) -> String {
        let ips = self.add["ips"].as_array().unwrap();
        let a = ips.iter().find(|i| i["address"].as_str().unwrap().contains('.') == v4).expect("address");
        a["address"].as_str().unwrap().split('/').next().unwrap().to_string()
    }
}

fn attach(lab: &Lab, n: usize, conf: &Value) -> Ctr {
    let id = NEXT.fetch_add(1, Ordering::SeqCst);
    let ns = TestNs::new(&format!("vxc{n}"));
    let cid = format!("vx-{}-{id}", std::process::id());
    let add = lab.run(n, "ADD", &ns.path(), &cid, conf).ok().json();
    Ctr { ns, cid, add }
}

fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

/// `ping` that allows for the first packet waiting on ARP: up to three tries.
fn reaches(from: &TestNs, addr: &str) -> bool {
    (0..3).any(|_| from.ping(addr))
}

/// Moves the calling thread into `ns` (a thread of its own: tests run in parallel).
fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    // SAFETY: setns on a descriptor we own; only this thread moves.
    assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {ns}");
}

/// A TCP exchange: a server on `bind` in `server`, a client in `client`
/// connecting to `connect`; returns the client address the server saw.
fn tcp(server: &TestNs, bind: &str, client: &TestNs, connect: &str) -> SocketAddr {
    let (sname, cname) = (server.name.clone(), client.name.clone());
    let bind: SocketAddr = format!("{bind}:7777").parse().unwrap();
    let connect: SocketAddr = format!("{connect}:7777").parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let srv = std::thread::spawn(move || {
        enter(&sname);
        let l = TcpListener::bind(bind).expect("bind");
        tx.send(()).unwrap();
        l.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match l.accept() {
                Ok((mut s, peer)) => {
                    s.set_nonblocking(false).unwrap();
                    let mut buf = [0u8; 5];
                    s.read_exact(&mut buf).unwrap();
                    s.write_all(&buf).unwrap();
                    return peer;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    });
    rx.recv().unwrap();
    let cli = std::thread::spawn(move || {
        enter(&cname);
        let mut s = TcpStream::connect_timeout(&connect, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
    });
    cli.join().expect("client");
    srv.join().expect("server")
}

fn vtep_json(ns: &TestNs, vni: u32) -> Value {
    witness::link(ns, &format!("vxlan.{vni}")).unwrap_or_else(|| panic!("no VTEP in {}", ns.name))
}

/// `bridge -j fdb show dev <vtep>`.
fn fdb(ns: &TestNs, vni: u32) -> Vec<Value> {
    let out = ns.ok(&["bridge", "-j", "fdb", "show", "dev", &format!("vxlan.{vni}")]);
    serde_json::from_str::<Value>(if out.trim().is_empty() { "[]" } else { &out }).unwrap().as_array().unwrap().clone()
}

/// The peer entries on host `me` are exactly those for hosts `peers`.
fn assert_peer_entries(lab: &Lab, me: usize, vni: u32, peers: &[usize], v6: bool) {
    let ns = lab.host(me);
    let dev = format!("vxlan.{vni}");
    let mac = |i: usize| format!("02:76:c0:a8:4d:{i:02x}");
    let mut f: Vec<(String, String)> = fdb(ns, vni)
        .iter()
        .map(|e| {
            assert_eq!(e["state"], "permanent", "only static FDB entries: {e}");
            (e["mac"].as_str().unwrap().to_string(), e["dst"].as_str().unwrap_or("").to_string())
        })
        .collect();
    f.sort();
    let mut want: Vec<(String, String)> = peers.iter().map(|&i| (mac(i), underlay_ip(i))).collect();
    want.sort();
    assert_eq!(f, want, "FDB of host {me}");
    let neigh = witness::ip(ns, &["neigh", "show", "dev", &dev]);
    let mut n: Vec<String> = neigh
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"].as_array().unwrap().iter().any(|s| s == "PERMANENT"))
        .map(|e| {
            let dst = e["dst"].as_str().unwrap();
            let i: usize = if dst.contains(':') { dst.split(':').nth(3) } else { dst.split('.').nth(2) }
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            assert_eq!(e["lladdr"], mac(i), "the MAC derived from the peer's underlay address: {e}");
            dst.to_string()
        })
        .collect();
    n.sort();
    let mut want: Vec<String> = peers.iter().map(|&i| format!("10.244.{i}.0")).collect();
    if v6 {
        want.extend(peers.iter().map(|&i| format!("fd44:0:0:{i}::")));
    }
    want.sort();
    assert_eq!(n, want, "neighbours of host {me}");
    let mut routes: Vec<String> = Vec::new();
    for fam in if v6 { vec!["-4", "-6"] } else { vec!["-4"] } {
        for r in witness::ip(ns, &[fam, "route", "show", "dev", &dev]).as_array().unwrap() {
            if let Some(gw) = r["gateway"].as_str() {
                assert!(r["flags"].as_array().unwrap().iter().any(|f| f == "onlink"), "{r}");
                assert_eq!(r["dst"].as_str().unwrap().split('/').next().unwrap(), gw, "via the subnet address: {r}");
                routes.push(r["dst"].as_str().unwrap().to_string());
            }
        }
    }
    routes.sort();
    let mut want: Vec<String> = peers.iter().map(|&i| subnet(i)).collect();
    if v6 {
        want.extend(peers.iter().map(|&i| subnet6(i)));
    }
    want.sort();
    assert_eq!(routes, want, "routes of host {me}");
}

#[test]
fn three_hosts_talk_over_the_overlay_and_nothing_is_flooded() {
    let lab = Lab::new(3, 4789);
    lab.write_peers(&[1, 2, 3], false);
    let vni = 42;
    let confs: Vec<Value> = (1..=3).map(|n| lab.conf(n, vni, json!({"port": null}))).collect();
    let ctrs: Vec<Ctr> = (1..=3).map(|n| attach(&lab, n, &confs[n - 1])).collect();

    // The result: bridge, host veth, container; an address of this host's subnet.
    let r = &ctrs[0].add;
    let names: Vec<&str> = r["interfaces"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names[0], "cni-vx42");
    assert_eq!(names[2], "eth0");
    assert_eq!(r["ips"][0]["address"], "10.244.1.2/24");
    assert_eq!(r["ips"][0]["gateway"], "10.244.1.1");
    assert_eq!(r["ips"][0]["interface"], 2);
    let dsts: Vec<&str> = r["routes"].as_array().unwrap().iter().map(|x| x["dst"].as_str().unwrap()).collect();
    assert!(dsts.contains(&"0.0.0.0/0") && dsts.contains(&CLUSTER), "{r}");
    let eth0 = witness::link(&ctrs[0].ns, "eth0").unwrap();
    assert_eq!(eth0["mtu"], 1450, "underlay 1500 minus 50");
    assert_eq!(ctrs[1].ip(true), "10.244.2.2");

    // The VTEP: VNI, port, local address, learning off, derived MAC, MTU.
    for n in 1..=3 {
        let v = vtep_json(lab.host(n), vni);
        let d = &v["linkinfo"]["info_data"];
        assert_eq!(d["id"], vni, "{v}");
        assert_eq!(d["port"], 4789, "the IANA port by default: {v}");
        assert_eq!(d["local"], underlay_ip(n).as_str());
        assert_eq!(d["learning"], false);
        assert_eq!(v["address"], format!("02:76:c0:a8:4d:{n:02x}"));
        assert_eq!(v["mtu"], 1450);
        assert_eq!(witness::addresses(lab.host(n), &format!("vxlan.{vni}"))[0], format!("10.244.{n}.0/32"));
        assert!(witness::addresses(lab.host(n), "cni-vx42").contains(&format!("10.244.{n}.1/24")));
        let peers: Vec<usize> = (1..=3).filter(|&i| i != n).collect();
        assert_peer_entries(&lab, n, vni, &peers, false);
    }

    // Ping and TCP from host 1 to hosts 2 and 3, encapsulated to the right host only.
    let before = [lab.to_host(1), lab.to_host(2), lab.to_host(3)];
    assert!(reaches(&ctrs[0].ns, &ctrs[1].ip(true)), "host 1 -> host 2");
    let mid = [lab.to_host(1), lab.to_host(2), lab.to_host(3)];
    assert!(mid[1] > before[1], "the ping crossed the underlay as UDP to 4789 on host 2: {before:?} {mid:?}");
    assert!(mid[0] > before[0], "and the reply came back encapsulated");
    assert_eq!(mid[2], before[2], "nothing went to host 3 (no flooding)");
    assert!(reaches(&ctrs[0].ns, &ctrs[2].ip(true)), "host 1 -> host 3");
    assert!(lab.to_host(3) > mid[2]);
    assert!(reaches(&ctrs[1].ns, &ctrs[2].ip(true)), "host 2 -> host 3");
    for to in [2, 3] {
        let c2 = lab.to_host(to);
        let seen = tcp(&ctrs[to - 1].ns, "0.0.0.0", &ctrs[0].ns, &ctrs[to - 1].ip(true));
        assert_eq!(seen.ip().to_string(), ctrs[0].ip(true), "pod to pod keeps its source address");
        assert!(lab.to_host(to) > c2, "the TCP exchange was encapsulated");
    }
    // The host reaches remote pods too, from its VTEP address.
    assert!(reaches(lab.host(1), &ctrs[2].ip(true)));

    // Still only the static entries: nothing was learned from the traffic.
    for n in 1..=3 {
        let peers: Vec<usize> = (1..=3).filter(|&i| i != n).collect();
        assert_peer_entries(&lab, n, vni, &peers, false);
    }

    for (i, c) in ctrs.iter().enumerate() {
        let check = lab.run(i + 1, "CHECK", &c.ns.path(), &c.cid, &with_prev(&confs[i], &c.add)).ok();
        assert!(check.stdout.is_empty(), "{check:?}");
    }
    for (i, c) in ctrs.iter().enumerate() {
        for _ in 0..2 {
            let d = lab.run(i + 1, "DEL", &c.ns.path(), &c.cid, &with_prev(&confs[i], &c.add)).ok();
            assert!(d.stdout.is_empty(), "{d:?}");
        }
        assert_eq!(witness::link_names(&c.ns), ["lo"]);
        assert!(lab.leases(i + 1).is_empty(), "lease released on host {}", i + 1);
        assert!(witness::link(lab.host(i + 1), "vxlan.42").is_some(), "the overlay stays for others");
    }
}

#[test]
fn removing_a_peer_and_reconciling_cuts_it_off_and_adding_it_back_restores_it() {
    let lab = Lab::new(3, 8472);
    lab.write_peers(&[1, 2, 3], false);
    let vni = 7;
    let confs: Vec<Value> = (1..=3).map(|n| lab.conf(n, vni, json!({}))).collect();
    let c1 = attach(&lab, 1, &confs[0]);
    let c3 = attach(&lab, 3, &confs[2]);
    assert_eq!(vtep_json(lab.host(1), vni)["linkinfo"]["info_data"]["port"], 8472, "the configured port");
    let before = lab.to_host(3);
    assert!(reaches(&c1.ns, &c3.ip(true)));
    assert!(lab.to_host(3) > before, "encapsulated to the configured port");

    // Host 3 leaves the table; host 1 reconciles without any container ADD.
    lab.write_peers(&[1, 2], false);
    let out = lab.reconcile(1, &confs[0]);
    assert!(out.status.success(), "{out:?}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["peers"], 1, "{summary}");
    assert_eq!(summary["removed"], 3, "neighbour, FDB entry, route: {summary}");
    assert_eq!(summary["added"], 0, "{summary}");
    assert_peer_entries(&lab, 1, vni, &[2], false);
    assert!(!c1.ns.ping(&c3.ip(true)), "host 3 is cut off");
    // CHECK follows the table: host 3 is no longer expected.
    lab.run(1, "CHECK", &c1.ns.path(), &c1.cid, &with_prev(&confs[0], &c1.add)).ok();

    // Reconciling again changes nothing.
    let out = lab.reconcile(1, &confs[0]);
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((again["added"].as_u64(), again["removed"].as_u64()), (Some(0), Some(0)), "{again}");

    // Back in the table: reconcile restores it.
    lab.write_peers(&[1, 2, 3], false);
    let out = lab.reconcile(1, &confs[0]);
    assert!(out.status.success(), "{out:?}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["added"], 3, "{summary}");
    assert_peer_entries(&lab, 1, vni, &[2, 3], false);
    assert!(reaches(&c1.ns, &c3.ip(true)), "host 3 is back");

    // A container ADD reconciles too: drop host 3 again, attach a second
    // container on host 1, and the entries for host 3 are gone.
    lab.write_peers(&[1, 2], false);
    let c1b = attach(&lab, 1, &confs[0]);
    assert_peer_entries(&lab, 1, vni, &[2], false);
    assert!(!c1b.ns.ping(&c3.ip(true)));
    lab.write_peers(&[1, 2, 3], false);
    let out = lab.reconcile(1, &confs[0]);
    assert!(out.status.success(), "{out:?}");
    assert!(reaches(&c1b.ns, &c3.ip(true)));
}

#[test]
fn dual_stack_overlay_over_an_ipv4_underlay() {
    let lab = Lab::new(2, 4789);
    lab.write_peers(&[1, 2], true);
    let vni = 99;
    let confs: Vec<Value> = (1..=2)
        .map(|n| lab.conf(n, vni, json!({"clusterCIDR": [CLUSTER, CLUSTER6], "subnet": [subnet(n), subnet6(n)]})))
        .collect();
    let c1 = attach(&lab, 1, &confs[0]);
    let c2 = attach(&lab, 2, &confs[1]);
    assert_eq!(c2.ip(false), "fd44:0:0:2::2");
    let dsts: Vec<&str> = c1.add["routes"].as_array().unwrap().iter().map(|x| x["dst"].as_str().unwrap()).collect();
    assert!(dsts.contains(&"::/0") && dsts.contains(&CLUSTER6), "{}", c1.add);
    assert_peer_entries(&lab, 1, vni, &[2], true);
    assert!(witness::addresses(lab.host(1), "vxlan.99").contains(&"fd44:0:0:1::/128".to_string()));
    let before = lab.to_host(2);
    assert!(reaches(&c1.ns, &c2.ip(false)), "IPv6 between pods over the IPv4 underlay");
    assert!(lab.to_host(2) > before);
    assert!(reaches(&c1.ns, &c2.ip(true)));
    let seen = tcp(&c2.ns, "[::]", &c1.ns, &format!("[{}]", c2.ip(false)));
    assert_eq!(seen.ip().to_string(), c1.ip(false));
    for (n, c) in [(1, &c1), (2, &c2)] {
        lab.run(n, "CHECK", &c.ns.path(), &c.cid, &with_prev(&confs[n - 1], &c.add)).ok();
        lab.run(n, "DEL", &c.ns.path(), &c.cid, &with_prev(&confs[n - 1], &c.add)).ok();
        assert!(lab.leases(n).is_empty());
    }
}

/// Host state that bad input must leave alone.
fn untouched(lab: &Lab, n: usize, ctr: &TestNs) {
    let links = witness::link_names(lab.host(n));
    assert_eq!(links, ["lo", "ul"], "host {n} unchanged");
    assert!(lab.leases(n).is_empty());
    assert_eq!(witness::link_names(ctr), ["lo"]);
}

#[test]
fn bad_input_is_a_clear_error_and_changes_nothing() {
    let lab = Lab::new(1, 4789);
    let ctr = TestNs::new("vxbad");
    let base = lab.conf(1, 5, json!({"peersFile": null}));
    let two_same = json!([
        {"underlayIP": "192.168.77.2", "subnet": "10.244.2.0/24"},
        {"underlayIP": "192.168.77.3", "subnet": "10.244.2.0/24"}
    ]);
    let cases = [
        (json!({"vni": 0}), "\"vni\""),
        (json!({"vni": 16777216}), "\"vni\""),
        (json!({"subnet": "10.245.1.0/24"}), "\"subnet\""),
        (json!({"peers": two_same.clone()}), "peers[1].subnet"),
        (json!({"underlayIP": "192.168.77.99", "underlayInterface": null}), "\"underlayIP\""),
        (json!({"underlayIP": "192.168.77.99"}), "\"underlayIP\""),
        (json!({"underlayInterface": "nope0"}), "\"underlayInterface\""),
        (json!({"peersFile": lab.dir.join("missing.json")}), "\"peersFile\""),
        (json!({"mtu": 1480}), "\"mtu\""),
    ];
    for (extra, field) in &cases {
        let mut conf = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                conf.as_object_mut().unwrap().remove(k);
            } else {
                conf[k] = v.clone();
            }
        }
        let e = lab.run(1, "ADD", &ctr.path(), "bad-1", &conf).err(7);
        assert!(e["msg"].as_str().unwrap().contains(field), "{extra}: {e}");
        untouched(&lab, 1, &ctr);
        // reconcile refuses the same input the same way
        let out = lab.reconcile(1, &conf);
        assert_eq!(out.status.code(), Some(1), "{extra}: {out:?}");
        let e: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(e["code"], 7, "{e}");
        assert!(e["msg"].as_str().unwrap().contains(field), "{extra}: {e}");
        untouched(&lab, 1, &ctr);
    }
    // The same table in a peers file is named by the file and the entry.
    std::fs::write(lab.peers_path(), two_same.to_string()).unwrap();
    let conf = lab.conf(1, 5, json!({}));
    let e = lab.run(1, "ADD", &ctr.path(), "bad-1", &conf).err(7);
    let msg = e["msg"].as_str().unwrap();
    assert!(msg.contains("peersFile") && msg.contains("peers[1].subnet"), "{e}");
    untouched(&lab, 1, &ctr);
    // STATUS says "not available" while the underlay is missing.
    let mut conf = base.clone();
    conf["cniVersion"] = json!("1.1.0");
    conf["underlayInterface"] = json!("nope0");
    let path = bin_dir().display().to_string();
    let st = run_plugin(
        Some(&lab.host(1).name),
        "vxlan",
        &[("CNI_COMMAND", "STATUS"), ("CNI_PATH", path.as_str())],
        &conf.to_string(),
    );
    assert_eq!(st.err(50)["msg"].as_str().map(|m| m.contains("underlayInterface")), Some(true));
}

#[test]
fn check_names_a_missing_peer_entry_and_add_repairs_it() {
    let lab = Lab::new(2, 4789);
    lab.write_peers(&[1, 2], false);
    let conf = lab.conf(1, 11, json!({}));
    let c1 = attach(&lab, 1, &conf);
    let prev = with_prev(&conf, &c1.add);
    lab.run(1, "CHECK", &c1.ns.path(), &c1.cid, &prev).ok();
    lab.host(1).ok(&["ip", "route", "del", &subnet(2), "dev", "vxlan.11"]);
    let e = lab.run(1, "CHECK", &c1.ns.path(), &c1.cid, &prev).err(100);
    assert!(e["msg"].as_str().unwrap().contains("route to 10.244.2.0/24"), "{e}");
    lab.host(1).ok(&["bridge", "fdb", "del", "02:76:c0:a8:4d:02", "dev", "vxlan.11", "dst", &underlay_ip(2)]);
    let out = lab.reconcile(1, &conf);
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["added"], 2, "only the missing route and FDB entry are written: {s}");
    lab.run(1, "CHECK", &c1.ns.path(), &c1.cid, &prev).ok();
    // A flood entry someone adds is removed too.
    lab.host(1).ok(&["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vxlan.11", "dst", "192.168.77.9"]);
    let out = lab.reconcile(1, &conf);
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["removed"], 1, "{s}");
    assert_peer_entries(&lab, 1, 11, &[2], false);
    // The VTEP recreated with other settings is put back.
    lab.host(1).ok(&["ip", "link", "del", "vxlan.11"]);
    lab.host(1).ok(&[
        "ip", "link", "add", "vxlan.11", "type", "vxlan", "id", "11", "dstport", "5555", "dev", "ul", "learning",
    ]);
    let out = lab.reconcile(1, &conf);
    assert!(out.status.success(), "{out:?}");
    let d = &vtep_json(lab.host(1), 11)["linkinfo"]["info_data"];
    assert_eq!((d["port"].as_u64(), d["learning"].as_bool()), (Some(4789), Some(false)), "{d}");
    assert_peer_entries(&lab, 1, 11, &[2], false);
    lab.run(1, "CHECK", &c1.ns.path(), &c1.cid, &prev).ok();
}

#[test]
fn del_releases_the_address_without_the_namespace() {
    let lab = Lab::new(1, 4789);
    let conf = lab.conf(1, 3, json!({"peersFile": null}));
    let c = attach(&lab, 1, &conf);
    let c2 = attach(&lab, 1, &conf);
    assert_eq!(lab.leases(1).len(), 2);
    // A live attachment added again is refused and keeps its lease.
    lab.run(1, "ADD", &c2.ns.path(), &c2.cid, &conf).err(102);
    assert_eq!(lab.leases(1).len(), 2, "the refused ADD released nothing");
    assert!(lab.leases(1).contains(&c2.ip(true)));
    // The runtime lost the namespace (and sends no prevResult).
    lab.run(1, "DEL", "", &c.cid, &conf).ok();
    let host_veths = witness::ip(lab.host(1), &["link", "show", "type", "veth"]);
    assert_eq!(host_veths.as_array().unwrap().len(), 2, "ul and the second container's veth remain");
    assert_eq!(lab.leases(1), [c2.ip(true)]);
    // DEL after the namespace was deleted, and with the peers file gone.
    let path = c2.ns.path();
    drop(c2.ns);
    let gone = lab.conf(1, 3, json!({"peersFile": lab.dir.join("nowhere.json")}));
    lab.run(1, "DEL", &path, &c2.cid, &gone).ok();
    assert!(lab.leases(1).is_empty());
    assert!(witness::ip(lab.host(1), &["link", "show", "type", "veth"]).as_array().unwrap().len() == 1);
}

#[test]
fn ip_masq_leaves_the_cluster_alone() {
    let lab = Lab::new(2, 4789);
    lab.write_peers(&[1, 2], false);
    let confs: Vec<Value> = (1..=2).map(|n| lab.conf(n, 21, json!({"ipMasq": true}))).collect();
    let c1 = attach(&lab, 1, &confs[0]);
    let c2 = attach(&lab, 2, &confs[1]);
    // Pod to pod across hosts: the source is the pod's own address.
    let seen = tcp(&c2.ns, "0.0.0.0", &c1.ns, &c2.ip(true));
    assert_eq!(seen.ip().to_string(), c1.ip(true));
    // Pod to something outside the cluster (host 2's underlay address):
    // masqueraded to host 1's underlay address.
    let seen = tcp(lab.host(2), &underlay_ip(2), &c1.ns, &underlay_ip(2));
    assert_eq!(seen.ip().to_string(), underlay_ip(1));
    lab.run(1, "CHECK", &c1.ns.path(), &c1.cid, &with_prev(&confs[0], &c1.add)).ok();
    lab.run(1, "DEL", &c1.ns.path(), &c1.cid, &with_prev(&confs[0], &c1.add)).ok();
    let rules = serde_json::to_string(&witness::nft_ruleset(lab.host(1))).unwrap();
    assert!(!rules.contains(&c1.ip(true)), "the masquerade element is gone: {rules}");
}

/// `cni-conf/vxlan/`: three hosts, one shared peers file.
#[test]
fn three_host_example_in_cni_conf() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("cni-conf/vxlan");
    let lab = Lab::new(3, 4789);
    let peers: Value = serde_json::from_str(&std::fs::read_to_string(repo.join("peers.json")).unwrap()).unwrap();
    std::fs::write(lab.peers_path(), peers.to_string()).unwrap();
    let mut ctrs = Vec::new();
    let mut confs = Vec::new();
    for n in 1..=3 {
        let mut list: Value =
            serde_json::from_str(&std::fs::read_to_string(repo.join(format!("host{n}.conflist"))).unwrap()).unwrap();
        let p = &mut list["plugins"][0];
        assert_eq!(p["type"], "vxlan");
        // The example's addresses, on this lab's legs: move the host's
        // underlay address to the example's and point the files here.
        let ip = p["underlayIP"].as_str().unwrap().to_string();
        lab.host(n).ok(&["ip", "addr", "flush", "dev", "ul"]);
        lab.host(n).ok(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "ul"]);
        p["peersFile"] = json!(lab.peers_path());
        p["ipam"]["dataDir"] = json!(lab.data_dir(n));
        let mut conf = p.clone();
        conf["name"] = list["name"].clone();
        conf["cniVersion"] = list["cniVersion"].clone();
        let c = attach(&lab, n, &conf);
        ctrs.push(c);
        confs.push(conf);
    }
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        assert!(reaches(&ctrs[a].ns, &ctrs[b].ip(true)), "host {} -> host {}", a + 1, b + 1);
    }
    // `vxlan reconcile` takes the conflist itself (its vxlan entry).
    let mut list: Value = serde_json::from_str(&std::fs::read_to_string(repo.join("host1.conflist")).unwrap()).unwrap();
    list["plugins"][0]["peersFile"] = json!(lab.peers_path());
    let file = lab.dir.join("host1.conflist");
    std::fs::write(&file, list.to_string()).unwrap();
    let bin = bin_dir().join("vxlan");
    let out = lab.host(1).exec(&[bin.to_str().unwrap(), "reconcile", file.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((s["peers"].as_u64(), s["added"].as_u64(), s["removed"].as_u64()), (Some(2), Some(0), Some(0)), "{s}");
    for (i, c) in ctrs.iter().enumerate() {
        lab.run(i + 1, "DEL", &c.ns.path(), &c.cid, &with_prev(&confs[i], &c.add)).ok();
    }
}

#[test]
fn parallel_adds_on_one_host_converge() {
    let lab = Lab::new(3, 4789);
    lab.write_peers(&[1, 2, 3], false);
    let conf = lab.conf(1, 31, json!({}));
    let ctrs: Vec<Ctr> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| attach(&lab, 1, &conf))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ips: Vec<String> = ctrs.iter().map(|c| c.ip(true)).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 8, "distinct addresses: {ips:?}");
    assert_peer_entries(&lab, 1, 31, &[2, 3], false);
    assert!(reaches(&ctrs[0].ns, &ctrs[7].ip(true)), "containers of one host reach each other on the bridge");
    std::thread::scope(|s| {
        for c in &ctrs {
            let conf = &conf;
            let lab = &lab;
            s.spawn(move || lab.run(1, "DEL", &c.ns.path(), &c.cid, &with_prev(conf, &c.add)).ok());
        }
    });
    assert!(lab.leases(1).is_empty());
}

#[test]
fn gc_removes_what_no_valid_attachment_owns() {
    let lab = Lab::new(1, 4789);
    let conf = lab.conf(1, 41, json!({"peersFile": null, "ipMasq": true, "cniVersion": "1.1.0"}));
    let keep = attach(&lab, 1, &conf);
    let stale = attach(&lab, 1, &conf);
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": keep.cid, "ifname": "eth0"}]);
    let path = bin_dir().display().to_string();
    run_plugin(
        Some(&lab.host(1).name),
        "vxlan",
        &[("CNI_COMMAND", "GC"), ("CNI_PATH", path.as_str())],
        &gc.to_string(),
    )
    .ok();
    assert_eq!(lab.leases(1), [keep.ip(true)]);
    assert_eq!(witness::link_names(&stale.ns), ["lo"], "the stale veth pair is gone");
    let rules = serde_json::to_string(&witness::nft_ruleset(lab.host(1))).unwrap();
    assert!(rules.contains(&keep.ip(true)) && !rules.contains(&stale.ip(true)), "{rules}");
    lab.run(1, "CHECK", &keep.ns.path(), &keep.cid, &with_prev(&conf, &keep.add)).ok();
}

#[test]
fn ipv6_underlay() {
    let lab = Lab::new(2, 4789);
    let peers: Vec<Value> = (1..=2).map(|n| json!({"underlayIP": format!("fd77::{n}"), "subnet": subnet(n)})).collect();
    std::fs::write(lab.peers_path(), Value::Array(peers).to_string()).unwrap();
    let mut confs = Vec::new();
    let mut ctrs = Vec::new();
    for n in 1..=2 {
        lab.host(n).ok(&["ip", "addr", "add", &format!("fd77::{n}/64"), "dev", "ul", "nodad"]);
        let conf = lab.conf(n, 51, json!({"underlayInterface": null, "underlayIP": format!("fd77::{n}")}));
        ctrs.push(attach(&lab, n, &conf));
        confs.push(conf);
    }
    let v = vtep_json(lab.host(1), 51);
    assert_eq!(v["linkinfo"]["info_data"]["local6"], "fd77::1", "{v}");
    assert_eq!(v["mtu"], 1430, "underlay 1500 minus 70 for IPv6");
    let f = fdb(lab.host(1), 51);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["dst"], "fd77::2");
    assert!(reaches(&ctrs[0].ns, &ctrs[1].ip(true)), "IPv4 pods over an IPv6 underlay");
    for (n, c) in ctrs.iter().enumerate() {
        lab.run(n + 1, "CHECK", &c.ns.path(), &c.cid, &with_prev(&confs[n], &c.add)).ok();
        lab.run(n + 1, "DEL", &c.ns.path(), &c.cid, &with_prev(&confs[n], &c.add)).ok();
    }
}
