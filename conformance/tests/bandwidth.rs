//! bandwidth: traffic shaping of a bridge container, through cnitool with
//! the example `cni-conf/60-bandwidth.conflist` (bridge + host-local +
//! bandwidth, 10 Mbit/s into the container, 20 Mbit/s out of it, the
//! subnet 10.89.100.0/24 unshaped). Real TCP transfers between namespaces
//! (a client and a server run by this test) measure each direction: within
//! ±15 % of the configured rate when shaped, far above it when unshaped
//! (another subnet, IPv4 and IPv6; the plugin's DEL; no plugin at all).
//! The capability overrides the config; CHECK reports drift; bad input is
//! code 7 with nothing changed; DEL (also with the container gone, or
//! with neither namespace nor prevResult), parallel ADD/DEL and GC leave
//! no qdisc and no ifb that is not someone else's.

use conformance::fixture::{json_of, with_prev, Host};
use conformance::{witness, TestNs};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

const FILE: &str = "60-bandwidth.conflist";
const NET: &str = "shaped";
const GATEWAY: &str = "10.89.0.1";
const PEER: &str = "10.89.100.2";
const PORT: u16 = 5201;
/// How long each shaped transfer runs (a behaviour check, not a benchmark).
const SHAPED_SECS: f64 = 2.5;
/// Unshaped transfers only need to show they are far above the limit.
const FAST_SECS: f64 = 1.0;

fn example() -> Value {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    serde_json::from_slice(&std::fs::read(repo.join("cni-conf").join(FILE)).unwrap()).unwrap()
}

fn install(host: &Host, list: &Value) -> PathBuf {
    let mut list = list.clone();
    conformance::demo::point_stores_at(&mut list, &host.ipam_dir());
    host.install(FILE, &list)
}

fn cnitool(host: &Host, confdir: &Path, cmd: &str, ctr: &TestNs, cid: &str, cap_args: &str) -> Output {
    host.cnitool(confdir, &[cmd, NET, &ctr.path()], &[("CNI_CONTAINERID", cid), ("CAP_ARGS", cap_args)])
}

/// A host with a peer namespace on 10.89.100.0/24 (the example's unshaped
/// subnet), routed to and from the containers' subnet.
fn host_with_peer() -> (Host, TestNs) {
    let host = Host::new("bwh");
    let peer = TestNs::new("bwp");
    host.ns.ok(&["ip", "link", "add", "bwup", "type", "veth", "peer", "name", "p0", "netns", &peer.name]);
    host.ns.ok(&["ip", "addr", "add", "10.89.100.1/24", "dev", "bwup"]);
    host.ns.ok(&["ip", "link", "set", "bwup", "up"]);
    peer.ok(&["ip", "link", "set", "lo", "up"]);
    peer.ok(&["ip", "addr", "add", &format!("{PEER}/24"), "dev", "p0"]);
    peer.ok(&["ip", "link", "set", "p0", "up"]);
    peer.ok(&["ip", "route", "add", "default", "via", "10.89.100.1"]);
    (host, peer)
}

fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    // SAFETY: setns on a valid fd; it changes only the calling thread.
    assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {ns}");
}

/// Sends as fast as TCP goes for `secs` from namespace `client` to a
/// server in namespace `server` reached at `addr`, and returns the rate the
/// server received, in bits per second (from its first byte to the end).
fn transfer(server: &TestNs, client: &TestNs, addr: &str, secs: f64) -> f64 {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let sname = server.name.clone();
    let srv = std::thread::spawn(move || {
        enter(&sname);
        // Dual-stack: IPv4 clients arrive as mapped addresses.
        let l = TcpListener::bind(("::", PORT)).unwrap();
        ready_tx.send(()).unwrap();
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let (mut total, mut start) = (0u64, None);
        loop {
            let n = c.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            start.get_or_insert_with(Instant::now);
            total += n as u64;
        }
        let elapsed = start.map(|s| s.elapsed().as_secs_f64()).unwrap_or(1.0);
        total as f64 * 8.0 / elapsed
    });
    ready_rx.recv().unwrap();
    let addr = if addr.contains(':') { format!("[{addr}]:{PORT}") } else { format!("{addr}:{PORT}") };
    let cname = client.name.clone();
    let cli = std::thread::spawn(move || {
        enter(&cname);
        let mut c = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(5)).unwrap();
        let chunk = vec![0x5au8; 1 << 16];
        let end = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < end {
            c.write_all(&chunk).unwrap();
        }
        c.shutdown(Shutdown::Write).unwrap();
    });
    cli.join().unwrap();
    srv.join().unwrap()
}

fn assert_near(measured: f64, rate: f64, what: &str) {
    eprintln!("{what}: {:.2} Mbit/s (configured {:.2})", measured / 1e6, rate / 1e6);
    let (lo, hi) = (rate * 0.85, rate * 1.15);
    assert!(
        (lo..=hi).contains(&measured),
        "{what}: {:.2} Mbit/s, expected {:.2} Mbit/s ± 15 %",
        measured / 1e6,
        rate / 1e6
    );
}

fn assert_fast(measured: f64, limit: f64, what: &str) {
    eprintln!("{what}: {:.2} Mbit/s (limit elsewhere {:.2})", measured / 1e6, limit / 1e6);
    assert!(measured > 3.0 * limit, "{what}: {:.2} Mbit/s, expected far above {:.2}", measured / 1e6, limit / 1e6);
}

/// `tc -j qdisc show` of one device in the host: (kind, handle) pairs.
fn qdiscs(host: &Host, dev: &str) -> Vec<(String, String)> {
    let out = host.ns.ok(&["tc", "-j", "qdisc", "show", "dev", dev]);
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .map(|q| {
            (q["kind"].as_str().unwrap_or_default().to_string(), q["handle"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

/// The rate of class 1:30 of a device as `tc class show` prints it
/// (`10Mbit`; this tc has no JSON output for classes).
fn shaped_class_rate(host: &Host, dev: &str) -> Option<String> {
    let out = host.ns.ok(&["tc", "class", "show", "dev", dev]);
    let line = out.lines().find(|l| l.starts_with("class htb 1:30 "))?;
    let mut words = line.split_whitespace().skip_while(|w| *w != "rate");
    words.nth(1).map(str::to_string)
}

/// Host ends of container veths (the test's own link to the peer aside).
fn container_veths(host: &Host) -> Vec<String> {
    host.veths().into_iter().filter(|v| v.starts_with("veth")).collect()
}

fn ifbs(host: &Host) -> Vec<String> {
    witness::ip(&host.ns, &["link", "show", "type", "ifb"])
        .as_array()
        .map(|a| a.iter().filter_map(|l| l["ifname"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn container_ip(r: &Value) -> String {
    r["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_string()
}

#[test]
fn shapes_both_directions_spares_the_unshaped_subnet_and_del_restores_line_rate() {
    let (host, peer) = host_with_peer();
    let confdir = install(&host, &example());
    let ctr = TestNs::new("bwc");
    let r = json_of(cnitool(&host, &confdir, "add", &ctr, "bw-a", ""), "add");
    let ip = container_ip(&r);
    let hostend = r["interfaces"].as_array().unwrap().iter().find(|i| {
        i["sandbox"].as_str().unwrap_or_default().is_empty() && i["name"].as_str().unwrap().starts_with("veth")
    });
    let hostend = hostend.expect("the host veth in the result")["name"].as_str().unwrap().to_string();
    let ifb = r["interfaces"].as_array().unwrap().last().unwrap()["name"].as_str().unwrap().to_string();
    assert!(ifb.starts_with("bwp") && ifbs(&host) == [ifb.clone()], "{r}");

    // What the kernel holds: htb on the host end and on the ifb, ingress on the host end.
    assert_eq!(qdiscs(&host, &hostend), [("htb".into(), "1:".into()), ("ingress".into(), "ffff:".into())]);
    assert_eq!(qdiscs(&host, &ifb), [("htb".into(), "1:".into())]);
    assert_eq!(shaped_class_rate(&host, &hostend).as_deref(), Some("10Mbit"));
    assert_eq!(shaped_class_rate(&host, &ifb).as_deref(), Some("20Mbit"));
    json_of(cnitool(&host, &confdir, "check", &ctr, "bw-a", ""), "check");

    // Into the container (host -> container) at 10 Mbit/s; out of it
    // (container -> host's gateway address) at 20 Mbit/s.
    assert_near(transfer(&ctr, &host.ns, &ip, SHAPED_SECS), 10e6, "into the container");
    assert_near(transfer(&host.ns, &ctr, GATEWAY, SHAPED_SECS), 20e6, "out of the container");
    // The unshaped subnet, both ways.
    assert_fast(transfer(&ctr, &peer, &ip, FAST_SECS), 10e6, "from the unshaped subnet");
    assert_fast(transfer(&peer, &ctr, PEER, FAST_SECS), 20e6, "to the unshaped subnet");

    // The plugin's own DEL (the veth stays): line rate, no qdisc, no ifb.
    let conf = json!({"cniVersion": "1.0.0", "name": NET, "type": "bandwidth",
        "ingressRate": 10000000, "ingressBurst": 200000, "egressRate": 20000000, "egressBurst": 400000});
    let del = with_prev(&conf.to_string(), &r);
    host.run("bandwidth", "DEL", &ctr.path(), "bw-a", "eth0", &del).ok();
    assert!(ifbs(&host).is_empty());
    assert_eq!(qdiscs(&host, &hostend), [("noqueue".into(), "0:".into())]);
    assert_fast(transfer(&ctr, &host.ns, &ip, FAST_SECS), 10e6, "into the container after DEL");
    assert_fast(transfer(&host.ns, &ctr, GATEWAY, FAST_SECS), 20e6, "out of the container after DEL");
    // Repeated DEL, then the chain's DEL: nothing left.
    host.run("bandwidth", "DEL", &ctr.path(), "bw-a", "eth0", &del).ok();
    json_of(cnitool(&host, &confdir, "del", &ctr, "bw-a", ""), "del");
    assert!(container_veths(&host).is_empty() && ifbs(&host).is_empty());
}

#[test]
fn without_the_plugin_traffic_is_not_limited() {
    let (host, _peer) = host_with_peer();
    let mut list = example();
    list["plugins"].as_array_mut().unwrap().truncate(1);
    let confdir = install(&host, &list);
    let ctr = TestNs::new("bwc");
    let r = json_of(cnitool(&host, &confdir, "add", &ctr, "bw-n", ""), "add");
    assert_fast(transfer(&ctr, &host.ns, &container_ip(&r), FAST_SECS), 10e6, "into an unshaped container");
    assert_fast(transfer(&host.ns, &ctr, GATEWAY, FAST_SECS), 20e6, "out of an unshaped container");
    json_of(cnitool(&host, &confdir, "del", &ctr, "bw-n", ""), "del");
}

#[test]
fn the_capability_overrides_the_config_and_shaped_subnets_limit_only_those() {
    let (host, peer) = host_with_peer();
    let confdir = install(&host, &example());
    let ctr = TestNs::new("bwc");
    // containerd's spelling; 5 Mbit/s in, no egress limit; only the peer's subnet shaped.
    let cap = r#"{"bandwidth":{"IngressRate":5000000,"IngressBurst":100000,"shapedSubnets":["10.89.100.0/24"]}}"#;
    let r = json_of(cnitool(&host, &confdir, "add", &ctr, "bw-c", cap), "add");
    let ip = container_ip(&r);
    assert!(ifbs(&host).is_empty(), "no egress limit, so no ifb");
    assert_near(transfer(&ctr, &peer, &ip, SHAPED_SECS), 5e6, "from the shaped subnet (capability rate)");
    assert_fast(transfer(&ctr, &host.ns, &ip, FAST_SECS), 5e6, "from outside the shaped subnets");
    assert_fast(transfer(&peer, &ctr, PEER, FAST_SECS), 20e6, "out of the container (the config's egress replaced)");
    json_of(cnitool(&host, &confdir, "check", &ctr, "bw-c", cap), "check");
    json_of(cnitool(&host, &confdir, "del", &ctr, "bw-c", cap), "del");
    assert!(container_veths(&host).is_empty() && ifbs(&host).is_empty());
}

#[test]
fn check_reports_drift_and_bad_input_changes_nothing() {
    let (host, _peer) = host_with_peer();
    let confdir = install(&host, &example());
    let ctr = TestNs::new("bwc");
    let r = json_of(cnitool(&host, &confdir, "add", &ctr, "bw-d", ""), "add");
    let hostend = r["interfaces"][0]["name"].as_str().unwrap();
    let hostend = if hostend.starts_with("veth") { hostend } else { r["interfaces"][1]["name"].as_str().unwrap() };
    let ifb = r["interfaces"].as_array().unwrap().last().unwrap()["name"].as_str().unwrap().to_string();

    // A changed rate, a missing redirect, a missing ifb: each named by CHECK.
    host.ns.ok(&["tc", "class", "change", "dev", hostend, "parent", "1:", "classid", "1:30", "htb", "rate", "5mbit"]);
    let out = cnitool(&host, &confdir, "check", &ctr, "bw-d", "");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stdout).contains("rate 5000000 bit/s"), "{out:?}");
    // The plugin's ADD again (the runtime's retry) repairs it.
    let mut again = example()["plugins"][1].clone();
    again["cniVersion"] = json!("1.0.0");
    again["name"] = json!(NET);
    let prev = json!({"cniVersion": "1.0.0", "interfaces": r["interfaces"].as_array().unwrap()[..3], "ips": r["ips"]});
    host.run("bandwidth", "ADD", &ctr.path(), "bw-d", "eth0", &with_prev(&again.to_string(), &prev)).ok();
    assert_eq!(shaped_class_rate(&host, hostend).as_deref(), Some("10Mbit"));
    json_of(cnitool(&host, &confdir, "check", &ctr, "bw-d", ""), "check after repair");
    host.ns.ok(&["tc", "qdisc", "del", "dev", hostend, "ingress"]);
    let out = cnitool(&host, &confdir, "check", &ctr, "bw-d", "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("no longer redirects"), "{out:?}");
    host.ns.ok(&["ip", "link", "del", &ifb]);
    let out = cnitool(&host, &confdir, "check", &ctr, "bw-d", "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("is missing"), "{out:?}");
    json_of(cnitool(&host, &confdir, "del", &ctr, "bw-d", ""), "del");

    // Bad input against a live container: code 7 naming the field, nothing made.
    let list = example();
    let prev = json_of(
        cnitool(
            &host,
            &install(
                &host,
                &json!({"cniVersion": "1.0.0", "name": NET,
        "plugins": [list["plugins"][0]]}),
            ),
            "add",
            &ctr,
            "bw-e",
            "",
        ),
        "add bridge only",
    );
    let hostend = prev["interfaces"][1]["name"].as_str().unwrap().to_string();
    let before = qdiscs(&host, &hostend);
    let big = r#"{"cniVersion":"1.0.0","name":"shaped","type":"bandwidth","egressRate":18446744073709551616,"egressBurst":100000}"#;
    for (conf, field) in [
        (json!({"ingressRate": 0, "ingressBurst": 100000}).to_string(), "ingressRate"),
        (json!({"egressRate": -1000000, "egressBurst": 100000}).to_string(), "egressRate"),
        (json!({"ingressRate": 1000000, "ingressBurst": 8000}).to_string(), "ingressBurst"),
        (big.to_string(), "egressRate"),
    ] {
        let mut v: Value = serde_json::from_str(&conf).unwrap();
        v["cniVersion"] = json!("1.0.0");
        v["name"] = json!(NET);
        v["type"] = json!("bandwidth");
        v["prevResult"] = prev.clone();
        let e = host.run("bandwidth", "ADD", &ctr.path(), "bw-e", "eth0", &v.to_string()).err(7);
        assert!(e["msg"].as_str().unwrap().contains(&format!("{field:?}")), "{conf}: {e}");
        assert_eq!(qdiscs(&host, &hostend), before, "{conf}: qdiscs changed");
        assert!(ifbs(&host).is_empty(), "{conf}: an ifb was made");
    }

    // A failure half-way (the ifb's name taken by someone else's link):
    // the error names it, and the htb already put on the host end is undone.
    let h = netcore::naming::fnv1a64(&["bandwidth", NET, "bw-e", "eth0"]);
    let taken = format!("bwp{:012x}", h >> 16);
    host.ns.ok(&["ip", "link", "add", &taken, "type", "veth", "peer", "name", "bwtaken1"]);
    let mut v = example()["plugins"][1].clone();
    v["cniVersion"] = json!("1.0.0");
    v["name"] = json!(NET);
    v["prevResult"] = prev.clone();
    let e = host.run("bandwidth", "ADD", &ctr.path(), "bw-e", "eth0", &v.to_string()).err(102);
    assert!(e["msg"].as_str().unwrap().contains(&taken), "{e}");
    assert_eq!(qdiscs(&host, &hostend), before, "the half-made shaper was not undone");
    assert!(ifbs(&host).is_empty());
}

#[test]
fn gc_removes_only_this_networks_stale_ifbs() {
    let (host, _peer) = host_with_peer();
    let confdir = install(&host, &example());
    let (a, b) = (TestNs::new("bwc"), TestNs::new("bwc"));
    json_of(cnitool(&host, &confdir, "add", &a, "bw-ga", ""), "add a");
    let rb = json_of(cnitool(&host, &confdir, "add", &b, "bw-gb", ""), "add b");
    let ifb_b = rb["interfaces"].as_array().unwrap().last().unwrap()["name"].as_str().unwrap().to_string();
    // Another network's ifb, and one without an owner: never ours to remove.
    host.ns.ok(&["ip", "link", "add", "bwpother000001", "type", "ifb"]);
    host.ns.ok(&["ip", "link", "set", "bwpother000001", "alias", "othernet/bw-ga/eth0"]);
    host.ns.ok(&["ip", "link", "add", "bwpnoalias0001", "type", "ifb"]);
    let gc = json!({"cniVersion": "1.1.0", "name": NET, "type": "bandwidth",
        "cni.dev/valid-attachments": [{"containerID": "bw-gb", "ifname": "eth0"}]});
    host.run("bandwidth", "GC", "", "", "", &gc.to_string()).ok();
    let mut left = ifbs(&host);
    left.sort();
    let mut want = vec![ifb_b, "bwpnoalias0001".to_string(), "bwpother000001".to_string()];
    want.sort();
    assert_eq!(left, want);
    json_of(cnitool(&host, &confdir, "del", &a, "bw-ga", ""), "del a");
    json_of(cnitool(&host, &confdir, "del", &b, "bw-gb", ""), "del b");
    assert_eq!(ifbs(&host).len(), 2);
}

#[test]
fn del_cleans_up_with_the_container_gone_and_without_a_cache() {
    let (host, _peer) = host_with_peer();
    let confdir = install(&host, &example());
    // Through cnitool (cached result), the container's namespace deleted first.
    let ctr = TestNs::new("bwc");
    json_of(cnitool(&host, &confdir, "add", &ctr, "bw-x", ""), "add");
    assert_eq!(ifbs(&host).len(), 1);
    let path = ctr.path();
    drop(ctr);
    assert!(!Path::new(&path).exists());
    let gone = TestNs { name: path.trim_start_matches("/run/netns/").to_string() };
    json_of(cnitool(&host, &confdir, "del", &gone, "bw-x", ""), "del without the namespace");
    std::mem::forget(gone);
    assert!(ifbs(&host).is_empty(), "ifb left: {:?}", ifbs(&host));

    // The plugin alone, with neither a namespace path nor a prevResult.
    let ctr = TestNs::new("bwc");
    let r = json_of(cnitool(&host, &confdir, "add", &ctr, "bw-y", ""), "add");
    let hostend = r["interfaces"][1]["name"].as_str().unwrap().to_string();
    let conf = json!({"cniVersion": "1.0.0", "name": NET, "type": "bandwidth"});
    host.run("bandwidth", "DEL", "", "bw-y", "eth0", &conf.to_string()).ok();
    assert!(ifbs(&host).is_empty(), "ifb left: {:?}", ifbs(&host));
    // Without the container or prevResult the host end is not known: its
    // qdiscs stay until the veth goes with the chain's DEL.
    assert!(qdiscs(&host, &hostend).iter().any(|q| q.0 == "htb"));
    json_of(cnitool(&host, &confdir, "del", &ctr, "bw-y", ""), "del");
    assert!(container_veths(&host).is_empty() && ifbs(&host).is_empty());
}

#[test]
fn parallel_adds_and_dels_each_get_their_own_shaper() {
    let (host, _peer) = host_with_peer();
    let confdir = install(&host, &example());
    let ctrs: Vec<TestNs> = (0..6).map(|_| TestNs::new("bwc")).collect();
    let results: Vec<Value> = std::thread::scope(|s| {
        let jobs: Vec<_> = ctrs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (host, confdir) = (&host, &confdir);
                s.spawn(move || json_of(cnitool(host, confdir, "add", c, &format!("bw-p{i}"), ""), "parallel add"))
            })
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    let mut names: Vec<String> =
        results.iter().map(|r| r["interfaces"].as_array().unwrap().last().unwrap()["name"].to_string()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 6);
    assert_eq!(ifbs(&host).len(), 6);
    for (i, c) in ctrs.iter().enumerate() {
        json_of(cnitool(&host, &confdir, "check", c, &format!("bw-p{i}"), ""), "check");
    }
    std::thread::scope(|s| {
        for (i, c) in ctrs.iter().enumerate() {
            let (host, confdir) = (&host, &confdir);
            s.spawn(move || json_of(cnitool(host, confdir, "del", c, &format!("bw-p{i}"), ""), "parallel del"));
        }
    });
    assert!(container_veths(&host).is_empty() && ifbs(&host).is_empty());
}

#[test]
fn ipv6_subnets_are_matched_too() {
    let (host, peer) = host_with_peer();
    host.ns.ok(&["ip", "addr", "add", "fd00:89:100::1/64", "dev", "bwup", "nodad"]);
    peer.ok(&["ip", "addr", "add", "fd00:89:100::2/64", "dev", "p0", "nodad"]);
    peer.ok(&["ip", "-6", "route", "add", "default", "via", "fd00:89:100::1"]);
    host.ns.ok(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    let mut list = example();
    list["plugins"][0]["ipam"]["ranges"] = json!([[{"subnet": "fd00:89::/64"}]]);
    list["plugins"][1]["unshapedSubnets"] = json!(["fd00:89:100::/64"]);
    let confdir = install(&host, &list);
    let ctr = TestNs::new("bwc");
    let r = json_of(cnitool(&host, &confdir, "add", &ctr, "bw-6", ""), "add");
    let ip = container_ip(&r);
    assert!(ip.starts_with("fd00:89::"), "{r}");
    json_of(cnitool(&host, &confdir, "check", &ctr, "bw-6", ""), "check");
    assert_near(transfer(&ctr, &host.ns, &ip, SHAPED_SECS), 10e6, "into the container over IPv6");
    assert_fast(transfer(&ctr, &peer, &ip, FAST_SECS), 10e6, "from the unshaped IPv6 subnet");
    assert_fast(transfer(&peer, &ctr, "fd00:89:100::2", FAST_SECS), 20e6, "to the unshaped IPv6 subnet");
    json_of(cnitool(&host, &confdir, "del", &ctr, "bw-6", ""), "del");
    assert!(container_veths(&host).is_empty() && ifbs(&host).is_empty());
}
