//! `bench_etcd` (run by `make bench`): the overlay's control plane on etcd,
//! measured on the lab of the conformance test (`conformance::overlay_lab`):
//!
//! - join: 15 hosts run; the 16th starts its agent; time until every other
//!   host has programmed it, and until its container answers a ping from
//!   the containers of all 15 (repeated; the agent is stopped between runs);
//! - change: a record written straight into etcd (its HTTP gateway, so the
//!   clock starts at the write, not at a client's start-up) to its route
//!   in the kernel of a host (seen by `ip monitor`), and its deletion to the
//!   route's removal; p50/p99, with a few peers and with 1,000;
//! - 1,000 peers: an agent started on a store holding 1,000 records, until
//!   all 1,000 routes are in the kernel; its RSS then and its CPU when idle.
//!
//! Targets (from issue 17): join < 1 s, change p99 < 50 ms, 1,000 peers
//! < 1 s, RSS < 20 MB, idle CPU ~0. Prints a table and writes
//! `bench-out/bench-etcd.json`.

use conformance::overlay_lab::{enter, underlay_ip, Gateway, Lab, VNI};
use kernel::netlink::{Family, Handle};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `i`-th fake host's record (key, value, subnet): `10.(100 + i / 256).(i % 256).0/24`.
fn fake(lab: &Lab, i: usize) -> (String, String, String) {
    let subnet = format!("10.{}.{}.0/24", 100 + i / 256, i % 256);
    let key = format!("{}{}", lab.subnets_prefix(), subnet.replace('/', "-"));
    let value = json!({"underlayIP": format!("172.16.{}.{}", i / 250, 1 + i % 250), "subnet": [subnet]}).to_string();
    (key, value, subnet)
}

/// Host 1's own subnet (a fake record must not take it).
fn own(lab: &Lab) -> String {
    lab.state(1)["subnets"][0].as_str().unwrap_or_default().to_string()
}

/// `ip -4 monitor route` on a host: each line with the time it arrived.
fn monitor(ns: &str) -> (std::process::Child, mpsc::Receiver<(Instant, String)>) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "ip", "-4", "monitor", "route"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ip monitor");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(l) = line else { break };
            if tx.send((Instant::now(), l)).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    (child, rx)
}

fn wait_line(rx: &mpsc::Receiver<(Instant, String)>, f: impl Fn(&str) -> bool) -> Option<Instant> {
    let end = Instant::now() + Duration::from_secs(5);
    while let Ok((t, l)) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        if f(&l) {
            return Some(t);
        }
    }
    None
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Change-to-kernel latencies (ms) of `n` records put then deleted on host 1.
fn changes(lab: &Lab, gw: &mut Gateway, base: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut mon, rx) = monitor(&lab.host(1).name);
    let (mut add, mut del) = (Vec::new(), Vec::new());
    let mine = own(lab);
    for i in base..base + n {
        let (key, value, subnet) = fake(lab, i);
        if subnet == mine {
            continue;
        }
        while rx.try_recv().is_ok() {}
        let t0 = Instant::now();
        gw.put(&key, &value);
        let dst = subnet.clone();
        match wait_line(&rx, |l| l.starts_with(&format!("{dst} via"))) {
            Some(t) => add.push((t - t0).as_secs_f64() * 1e3),
            None => eprintln!("route to {subnet} never came"),
        }
        let t0 = Instant::now();
        gw.delete(&key);
        match wait_line(&rx, |l| l.starts_with(&format!("Deleted {dst} via"))) {
            Some(t) => del.push((t - t0).as_secs_f64() * 1e3),
            None => eprintln!("route to {subnet} never went"),
        }
    }
    let _ = mon.kill();
    let _ = mon.wait();
    (add, del)
}

/// Routes through the VTEP of the namespace `ns`.
fn vtep_routes(ns: &str) -> usize {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter(&ns);
        let h = Handle::new().unwrap();
        let Ok(Some(vtep)) = h.link_by_name(&format!("vxlan.{VNI}")) else { return 0 };
        h.routes(Family::V4)
            .map(|r| r.iter().filter(|r| r.oif == Some(vtep.index) && r.gw.is_some()).count())
            .unwrap_or(0)
    })
    .join()
    .unwrap()
}

/// Watches host `h`'s VTEP (in-process netlink, every millisecond) until
/// the FDB entry of `peer` is there; the time it appeared.
fn watch_fdb(ns: String, peer: std::net::IpAddr) -> std::thread::JoinHandle<Option<Instant>> {
    std::thread::spawn(move || {
        enter(&ns);
        let h = Handle::new().ok()?;
        let vtep = h.link_by_name(&format!("vxlan.{VNI}")).ok()??;
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if h.fdb(vtep.index).is_ok_and(|f| f.iter().any(|e| e.dst == Some(peer))) {
                return Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    })
}

/// Whether every host but the last has host `n`'s FDB entry.
fn programmed_everywhere(lab: &Lab, n: usize, present: bool) -> bool {
    let want = underlay_ip(n);
    (1..n).all(|h| lab.fdb_peers(h).contains(&want) == present)
}

fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(") ").map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok()))
        .unwrap_or(0)
}

fn main() {
    if std::env::var_os("CNI_TEST_BIN_DIR").is_none() {
        std::env::set_var("CNI_TEST_BIN_DIR", conformance::bins::bin_dir_of_exe());
    }
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let mut report = serde_json::Map::new();

    // Join: 16 hosts.
    const N: usize = 16;
    let mut lab = Lab::new(N, 1);
    let ctrs: Vec<_> = (1..=N).map(|n| lab.up(n).1).collect();
    assert!(
        conformance::overlay_lab::wait_for(Duration::from_secs(20), || programmed_everywhere(&lab, N, true)),
        "the lab did not converge"
    );
    let (mut prog, mut reach) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        lab.stop_agent(N, libc::SIGTERM);
        assert!(conformance::overlay_lab::wait_for(Duration::from_secs(5), || programmed_everywhere(&lab, N, false)));
        let peer: std::net::IpAddr = underlay_ip(N).parse().unwrap();
        let watchers: Vec<_> = (1..N).map(|h| watch_fdb(lab.host(h).name.clone(), peer)).collect();
        let t0 = Instant::now();
        lab.start_agent(N);
        let seen: Vec<Option<Instant>> = watchers.into_iter().map(|w| w.join().unwrap()).collect();
        let last = seen.iter().map(|t| t.expect("host N never joined")).max().unwrap();
        prog.push((last - t0).as_secs_f64() * 1e3);
        let target = ctrs[N - 1].ip();
        let pingers: Vec<_> = ctrs[..N - 1]
            .iter()
            .map(|c| {
                let (ns, to) = (c.ns.name.clone(), target.clone());
                std::thread::spawn(move || {
                    let end = Instant::now() + Duration::from_secs(10);
                    while Instant::now() < end {
                        let ok = Command::new("ip")
                            .args(["netns", "exec", &ns, "ping", "-c1", "-W1", &to])
                            .stdout(Stdio::null())
                            .status()
                            .is_ok_and(|s| s.success());
                        if ok {
                            return true;
                        }
                    }
                    false
                })
            })
            .collect();
        assert!(pingers.into_iter().all(|p| p.join().unwrap()), "not reachable from every host");
        reach.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    report.insert("join_programmed_ms".into(), json!(prog.clone()));
    report.insert("join_reachable_ms".into(), json!(reach.clone()));
    drop(ctrs);
    drop(lab);

    // Changes and 1,000 peers: one host, one member.
    let mut lab = Lab::build(1, 1, false, json!({"clusterCIDR": "10.0.0.0/8"}));
    lab.start_agent(1);
    lab.wait_running(1);
    let mut gw = Gateway::connect(&lab.host(1).name, &format!("{}:2379", conformance::overlay_lab::member_ip(0)));
    let (mut add_few, mut del_few) = changes(&lab, &mut gw, 5000, 100);
    let mine = own(&lab);
    lab.stop_agent(1, libc::SIGTERM);
    let mut written = 0;
    for i in 0.. {
        let (k, v, s) = fake(&lab, i);
        if s != mine {
            gw.put(&k, &v);
            written += 1;
        }
        if written == 1000 {
            break;
        }
    }
    let t0 = Instant::now();
    lab.start_agent(1);
    while vtep_routes(&lab.host(1).name) < 1000 {
        assert!(t0.elapsed() < Duration::from_secs(20), "1,000 peers never applied");
        std::thread::sleep(Duration::from_millis(2));
    }
    let thousand = t0.elapsed().as_secs_f64() * 1e3;
    let (mut add_1k, mut del_1k) = changes(&lab, &mut gw, 5000, 50);
    let pid = lab.agents[0].as_ref().unwrap().id();
    std::thread::sleep(Duration::from_secs(1));
    let rss = rss_kb(pid);
    let c0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(5));
    let idle = (cpu_ticks(pid) - c0) as f64 / 100.0 / 5.0 * 100.0;
    drop(lab);

    let rows = [
        ("join: programmed on all 15 others (p50)", pct(&mut prog, 0.5), 1000.0, "ms"),
        ("join: agent start to reachable from all 15 (p50)", pct(&mut reach.clone(), 0.5), 1000.0, "ms"),
        ("join: agent start to reachable from all 15 (max)", pct(&mut reach, 1.0), 1000.0, "ms"),
        ("change to kernel, few peers (p50)", pct(&mut add_few, 0.5), 50.0, "ms"),
        ("change to kernel, few peers (p99)", pct(&mut add_few, 0.99), 50.0, "ms"),
        ("removal to kernel, few peers (p99)", pct(&mut del_few, 0.99), 50.0, "ms"),
        ("change to kernel among 1,000 peers (p50)", pct(&mut add_1k, 0.5), 50.0, "ms"),
        ("change to kernel among 1,000 peers (p99)", pct(&mut add_1k, 0.99), 50.0, "ms"),
        ("removal to kernel among 1,000 peers (p99)", pct(&mut del_1k, 0.99), 50.0, "ms"),
        ("1,000 peers: agent start to all routes", thousand, 1000.0, "ms"),
        ("agent RSS with 1,000 peers", rss as f64 / 1024.0, 20.0, "MB"),
        ("agent CPU when idle", idle, 1.0, "%"),
    ];
    println!("\nvxlan agent on etcd ({runs} joins of a 16th host; 100 + 50 changes)\n");
    for (what, v, target, unit) in rows {
        let verdict = if v < target { "MET" } else { "MISSED" };
        println!("  {what:<52} {v:>9.1} {unit:<3} (target < {target} {unit}: {verdict})");
        report.insert(what.into(), json!({"value": v, "unit": unit, "target": target, "met": v < target}));
    }
    let _ = std::fs::create_dir_all("bench-out");
    let _ = std::fs::write("bench-out/bench-etcd.json", serde_json::to_string_pretty(&Value::Object(report)).unwrap());
}
