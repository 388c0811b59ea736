//! vxlan on etcd: simulated hosts run `vxlan agent`, which takes each
//! host's subnet from a real etcd (Debian's `etcd-server`) and programs
//! the others as peers; the containers they attach reach each other.
//!
//! The lab is the one of `vxlan.rs`: a "lab" namespace holding the
//! underlay bridge `ul0`, and per host a namespace whose leg `ul` holds
//! `192.168.77.<n>/24`. Each etcd member runs in a namespace of its own
//! on the same underlay (`192.168.77.<250 + m>`), with its data dir in
//! the test's temp dir, and is killed by PID when the test ends; so are
//! the agents. Every test uses its own key prefix, and checks that a key
//! outside it is never touched.

use conformance::overlay_lab::*;
use conformance::TestNs;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

#[test]
fn hosts_join_reach_each_other_and_leave_no_key() {
    const N: usize = 16;
    // A long TTL: a host dropped within 3 s was revoked, not expired.
    let mut lab = Lab::build(N, 1, false, json!({"etcd.leaseTTL": 10}));
    let foreign = format!("{}-other/keep", lab.prefix);
    lab.etcdctl(&["put", &foreign, "untouched"]);
    for n in 1..=N {
        lab.start_agent(n);
    }
    let subnets: Vec<String> = (1..=N).map(|n| lab.wait_running(n)).collect();
    let distinct: BTreeSet<&String> = subnets.iter().collect();
    assert_eq!(distinct.len(), N, "pairwise distinct subnets: {subnets:?}");
    for n in 1..=N {
        assert!(wait_peers(&lab, n, &others(n, N), Duration::from_secs(10)), "host {n}: {:?}", lab.fdb_peers(n));
        assert_eq!(lab.vtep_routes(n).len(), N - 1, "host {n}: {:?}", lab.vtep_routes(n));
    }
    let keys = lab.keys(&lab.subnets_prefix());
    assert_eq!(keys.len(), N, "{keys:?}");
    let leases: BTreeSet<&String> = keys.iter().map(|(_, l, _)| l).filter(|l| *l != "0").collect();
    assert_eq!(leases.len(), N, "one live lease per host: {keys:?}");
    let ctrs: Vec<Ctr> = (1..=N).map(|n| attach(&lab, n)).collect();
    for (i, c) in ctrs.iter().enumerate() {
        let net: ipnetwork_like::Net = subnets[i].parse().unwrap();
        assert!(net.contains(&c.ip()), "host {}'s container {} is in its subnet {}", i + 1, c.ip(), subnets[i]);
    }
    for (i, a) in ctrs.iter().enumerate() {
        for (j, b) in ctrs.iter().enumerate() {
            if i != j {
                assert!(reaches(&a.ns, &b.ip()), "host {} -> host {}", i + 1, j + 1);
            }
        }
    }
    // CHECK passes with the agent running.
    let c = &ctrs[0];
    let r = lab.run(1, "CHECK", &c.ns.path(), &c.cid, &with_prev(&lab.conf(1), &c.add));
    assert_eq!(r.code, 0, "{r:?}");
    let (code, st) = lab.status(1);
    assert_eq!(code, 0, "{st}");
    assert_eq!(st["peers"], N - 1);
    assert_eq!(st["healthy"], true);

    // One host stops: the others drop it at once (its lease is revoked).
    assert_eq!(lab.stop_agent(N, libc::SIGTERM), Some(0), "{}", lab.log_of(N));
    for n in 1..N {
        assert!(wait_peers(&lab, n, &others(n, N - 1), Duration::from_secs(3)), "host {n} dropped host {N}");
    }
    assert!(lab.log_of(1).contains(&format!("leave: host {}", underlay_ip(N))), "{}", lab.log_of(1));
    // ADD on the stopped host fails and names the agent.
    let ns = TestNs::new("vxecx");
    let r = lab.run(N, "ADD", &ns.path(), "vxe-stopped", &lab.conf(N));
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("vxlan agent") && r.stdout.contains("stopped"), "{r:?}");
    // DEL works with the agent gone.
    let c = &ctrs[N - 1];
    let r = lab.run(N, "DEL", &c.ns.path(), &c.cid, &with_prev(&lab.conf(N), &c.add));
    assert_eq!(r.code, 0, "{r:?}");

    for n in 1..N {
        assert_eq!(lab.stop_agent(n, libc::SIGTERM), Some(0), "{}", lab.log_of(n));
    }
    assert_eq!(lab.keys(&lab.subnets_prefix()), vec![], "no key of the agents is left");
    let f = lab.keys(&foreign);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].2, "untouched");
}

/// A tiny IPv4 CIDR check, so the test needs no extra crate.
mod ipnetwork_like {
    pub struct Net(u32, u32);
    impl std::str::FromStr for Net {
        type Err = ();
        fn from_str(s: &str) -> Result<Net, ()> {
            let (ip, len) = s.split_once('/').ok_or(())?;
            let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| ())?;
            let len: u32 = len.parse().map_err(|_| ())?;
            Ok(Net(u32::from(ip), if len == 0 { 0 } else { u32::MAX << (32 - len) }))
        }
    }
    impl Net {
        pub fn contains(&self, ip: &str) -> bool {
            ip.parse::<std::net::Ipv4Addr>().is_ok_and(|a| u32::from(a) & self.1 == self.0)
        }
    }
}

#[test]
fn killed_agent_is_dropped_after_its_ttl_and_a_quick_restart_changes_nothing() {
    let mut lab = Lab::new(3, 1);
    for n in 1..=3 {
        lab.start_agent(n);
    }
    for n in 1..=3 {
        lab.wait_running(n);
    }
    for n in 1..=3 {
        assert!(wait_peers(&lab, n, &others(n, 3), Duration::from_secs(10)));
    }
    let ctrs: Vec<Ctr> = (1..=3).map(|n| attach(&lab, n)).collect();

    // Restarted before its lease expired: same subnet, same lease, no entry changes anywhere.
    let before: Vec<_> = (1..=3).map(|n| (lab.fdb_peers(n), lab.vtep_routes(n))).collect();
    let st2 = lab.state(2);
    lab.stop_agent(2, libc::SIGKILL);
    // An agent killed mid-write long ago left a temp file: the next start sweeps it.
    let leftover = conformance::fixture::plant_stale_temp(&lab.state_dir(2), ".state.json.tmp.4242.0");
    lab.start_agent(2);
    assert!(wait_for(Duration::from_secs(10), || {
        let s = lab.state(2);
        s["status"] == "running" && s["pid"] != st2["pid"]
    }));
    let st2b = lab.state(2);
    assert!(!leftover.exists(), "the restarted agent swept the old temp file");
    assert_eq!(st2b["subnets"], st2["subnets"], "same subnet back");
    assert_eq!(st2b["lease"], st2["lease"], "the live lease was adopted");
    let end = Instant::now() + Duration::from_secs(TTL + 1);
    while Instant::now() < end {
        for n in 1..=3 {
            assert_eq!((lab.fdb_peers(n), lab.vtep_routes(n)), before[n - 1], "host {n}'s entries changed");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(reaches(&ctrs[1].ns, &ctrs[0].ip()), "host 2's container still works");

    // SIGKILLed: the others drop it within TTL + 2 s.
    lab.stop_agent(3, libc::SIGKILL);
    let t0 = Instant::now();
    for n in 1..=2 {
        assert!(
            wait_peers(
                &lab,
                n,
                &others(n, 2),
                Duration::from_secs(TTL + 2) - t0.elapsed().min(Duration::from_secs(TTL + 2))
            ),
            "host {n} still has host 3 after {:?}: {:?}",
            t0.elapsed(),
            lab.fdb_peers(n)
        );
    }
    assert!(!lab.vtep_routes(1).iter().any(|r| r.starts_with(lab.state(3)["subnets"][0].as_str().unwrap())));
    // CHECK on host 3 says its agent is gone.
    let c = &ctrs[2];
    let r = lab.run(3, "CHECK", &c.ns.path(), &c.cid, &with_prev(&lab.conf(3), &c.add));
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("not running"), "{r:?}");
}

#[test]
fn hostile_records_are_skipped_and_never_routed() {
    let mut lab = Lab::new(2, 1);
    let (s1, c1) = lab.up(1);
    let (s2, c2) = lab.up(2);
    // The hostile keys take subnets no host holds (the agents pick theirs
    // at random): bad JSON, 0.0.0.0/0, host 1's subnet, an impersonation of
    // host 1, 1 MB of junk, and last a good record.
    let [k_json, k_any, k_own, k_imp, k_big, k_good]: [String; 6] = (1..=253u8)
        .rev()
        .map(|o| format!("10.244.{o}.0"))
        .filter(|net| ![&s1, &s2].iter().any(|s| s.starts_with(&format!("{net}/"))))
        .take(6)
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    assert!(wait_peers(&lab, 1, &[2], Duration::from_secs(10)) && wait_peers(&lab, 2, &[1], Duration::from_secs(10)));
    let sp = lab.subnets_prefix();
    lab.etcdctl(&["put", &format!("{sp}{k_json}-24"), "not json"]);
    lab.etcdctl(&["put", &format!("{sp}10.245.1.0-24"), r#"{"underlayIP":"192.168.77.9","subnet":["10.245.1.0/24"]}"#]);
    lab.etcdctl(&["put", &format!("{sp}{k_any}-24"), r#"{"underlayIP":"192.168.77.9","subnet":["0.0.0.0/0"]}"#]);
    let own = format!(r#"{{"underlayIP":"192.168.77.9","subnet":["{s1}"]}}"#);
    lab.etcdctl(&["put", &format!("{sp}{k_own}-24"), &own]);
    // An impersonation of host 1 (its underlay address, another subnet).
    let imp = format!(r#"{{"underlayIP":"192.168.77.1","subnet":["{k_imp}/24"]}}"#);
    lab.etcdctl(&["put", &format!("{sp}{k_imp}-24"), &imp]);
    lab.etcdctl(&["put", &format!("{sp}junk"), "{}"]);
    lab.put_file(&format!("{sp}{k_big}-24"), &vec![b'x'; 1 << 20]);
    // The last record is a good one: once it is applied, every bad one was read.
    lab.etcdctl(&[
        "put",
        &format!("{sp}{k_good}-24"),
        &format!(r#"{{"underlayIP":"192.168.77.9","subnet":["{k_good}/24"]}}"#),
    ]);
    let want: BTreeSet<String> = [underlay_ip(2), "192.168.77.9".to_string()].into();
    assert!(wait_for(Duration::from_secs(5), || lab.fdb_peers(1) == want), "{:?}\n{}", lab.fdb_peers(1), lab.log_of(1));
    for n in 1..=2 {
        assert!(lab.agent_alive(n), "agent {n} survived: {}", lab.log_of(n));
        for r in lab.vtep_routes(n) {
            assert!(r.starts_with("10.244.") && r.contains("/24 via 10.244."), "host {n}: {r}");
            assert!(![&k_json, &k_any, &k_big].iter().any(|k| r.starts_with(&format!("{k}/"))), "{r}");
        }
    }
    assert_eq!(lab.vtep_routes(1).len(), 2, "host 2 and the good record: {:?}", lab.vtep_routes(1));
    let log = lab.log_of(1);
    let skipped = [format!("{k_json}-24"), "10.245.1.0-24".into(), format!("{k_any}-24"), format!("{k_own}-24")];
    for k in skipped.iter().chain([&"junk".to_string(), &format!("{k_big}-24")]) {
        assert!(log.contains(&format!("skipping {sp}{k}")), "{k} not skipped with a warning:\n{log}");
    }
    assert!(log.contains(&format!("skipping {sp}{k_imp}-24")), "the impersonation of host 1 is skipped\n{log}");
    // Host 2 believes host 1's own (older) record, not the impersonation.
    assert!(lab.fdb_peers(2).contains(&underlay_ip(1)));
    assert!(!lab.vtep_routes(2).iter().any(|r| r.starts_with(&format!("{k_imp}/24"))), "{:?}", lab.vtep_routes(2));
    assert!(reaches(&c1.ns, &c2.ip()) && reaches(&c2.ns, &c1.ip()));
}

#[test]
fn an_exhausted_cluster_cidr_is_named_with_its_host_count() {
    let mut lab = Lab::build(3, 1, false, json!({"clusterCIDR": "10.244.0.0/23"}));
    lab.start_agent(1);
    lab.start_agent(2);
    lab.wait_running(1);
    lab.wait_running(2);
    lab.start_agent(3);
    assert!(wait_for(Duration::from_secs(10), || lab.state(3)["message"]
        .as_str()
        .is_some_and(|m| m.contains("exhausted"))));
    let msg = lab.state(3)["message"].as_str().unwrap().to_string();
    assert!(msg.contains("10.244.0.0/23") && msg.contains("2 hosts"), "{msg}");
    assert_eq!(lab.state(3)["status"], "starting");
    assert!(lab.log_of(3).contains("exhausted"), "{}", lab.log_of(3));
    let ns = TestNs::new("vxecx");
    let r = lab.run(3, "ADD", &ns.path(), "vxe-full", &lab.conf(3));
    assert_eq!(r.code, 1, "{r:?}");
    let e: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(e["code"], 11, "try again later: {e}");
    assert!(e["msg"].as_str().unwrap().contains("10.244.0.0/23"), "{e}");
    // STATUS: not available (50) without a subnet, available with one.
    let status = |n: usize| {
        let mut c = lab.conf(n);
        c["cniVersion"] = "1.1.0".into();
        lab.run(n, "STATUS", "", "", &c)
    };
    let r = status(3);
    assert_eq!(r.code, 1, "{r:?}");
    let e: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(e["code"], 50, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("exhausted"), "{e}");
    let r = status(1);
    assert_eq!(r.code, 0, "{r:?}");
    // One host leaves: the waiting one gets its subnet.
    lab.stop_agent(1, libc::SIGTERM);
    lab.wait_running(3);
    assert!(wait_peers(&lab, 2, &[3], Duration::from_secs(5)));
}

#[test]
fn etcd_down_keeps_the_data_path_and_agents_resync_when_it_returns() {
    let mut lab = Lab::new(3, 1);
    let (s1, c1) = lab.up(1);
    let (s2, c2) = lab.up(2);
    assert!(wait_peers(&lab, 1, &[2], Duration::from_secs(10)));
    lab.members[0].kill();
    assert!(wait_for(Duration::from_secs(10), || lab.state(1)["etcdConnected"] == false), "{}", lab.state(1));
    assert_eq!(lab.state(1)["status"], "running");
    assert!(reaches(&c1.ns, &c2.ip()), "the data path does not need etcd");
    // ADD and DEL on a host with a subnet keep working.
    let c1b = attach(&lab, 1);
    assert!(reaches(&c1b.ns, &c2.ip()));
    let r = lab.run(1, "DEL", &c1b.ns.path(), &c1b.cid, &with_prev(&lab.conf(1), &c1b.add));
    assert_eq!(r.code, 0, "{r:?}");
    // A host joins meanwhile: it waits for etcd.
    lab.start_agent(3);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(lab.state(3)["status"], "starting");
    lab.members[0].start();
    let s3 = lab.wait_running(3);
    for n in 1..=3 {
        assert!(wait_peers(&lab, n, &others(n, 3), Duration::from_secs(10)), "host {n}: {:?}", lab.fdb_peers(n));
    }
    assert!(wait_for(Duration::from_secs(10), || lab.state(1)["etcdConnected"] == true));
    assert_eq!(lab.state(1)["subnets"][0], s1.as_str(), "kept its subnet");
    assert_eq!(lab.state(2)["subnets"][0], s2.as_str());
    assert_ne!(s3, s1);
    let c3 = attach(&lab, 3);
    assert!(reaches(&c1.ns, &c3.ip()) && reaches(&c3.ns, &c2.ip()));
    assert!(lab.log_of(1).contains("etcd reachable again"), "{}", lab.log_of(1));
}

#[test]
fn one_member_of_three_killed_goes_unnoticed() {
    let mut lab = Lab::new(3, 3);
    let (_, c1) = lab.up(1);
    let (_, c2) = lab.up(2);
    lab.members[0].kill();
    let (_, c3) = lab.up(3);
    for n in 1..=3 {
        assert!(wait_peers(&lab, n, &others(n, 3), Duration::from_secs(10)), "host {n}: {:?}", lab.fdb_peers(n));
        assert_eq!(lab.state(n)["status"], "running");
    }
    assert!(reaches(&c1.ns, &c3.ip()) && reaches(&c2.ns, &c3.ip()));
    // Leases are still kept alive through the remaining members.
    std::thread::sleep(Duration::from_secs(TTL + 1));
    assert_eq!(lab.keys(&lab.subnets_prefix()).len(), 3);
    for n in 1..=3 {
        assert_eq!(lab.fdb_peers(n).len(), 2);
    }
}

#[test]
fn a_lease_lost_to_another_host_is_given_up_loudly() {
    let mut lab = Lab::new(2, 1);
    let (s1, c1) = lab.up(1);
    lab.up(2);
    let key = format!("{}{}", lab.subnets_prefix(), s1.replace('/', "-"));
    // Host 1 loses etcd (its packets to the store are dropped) past its TTL.
    let block =
        "table inet vxeblock {\n chain o {\n  type filter hook output priority 0;\n  tcp dport 2379 drop\n }\n}\n";
    let f = lab.dir.join("block.nft");
    std::fs::write(&f, block).unwrap();
    lab.host(1).ok(&["nft", "-f", f.to_str().unwrap()]);
    assert!(
        wait_for(Duration::from_secs(TTL + 5), || lab.keys(&key).is_empty()),
        "host 1's key expired with its lease"
    );
    // Another host takes the subnet meanwhile.
    let other = format!(r#"{{"underlayIP":"192.168.77.99","subnet":["{s1}"]}}"#);
    lab.etcdctl(&["put", &key, &other]);
    lab.host(1).ok(&["nft", "delete", "table", "inet", "vxeblock"]);
    assert!(
        wait_for(Duration::from_secs(20), || lab.state(1)["status"] == "lost"),
        "{}\n{}",
        lab.state(1),
        lab.log_of(1)
    );
    assert!(lab.log_of(1).contains("LOST subnet"), "{}", lab.log_of(1));
    std::thread::sleep(Duration::from_secs(1));
    let k = lab.keys(&key);
    assert_eq!(k.len(), 1);
    assert!(k[0].2.contains("192.168.77.99"), "the agent did not take it back: {k:?}");
    assert_eq!(lab.keys(&lab.subnets_prefix()).len(), 2, "host 1 claims nothing else");
    let ns = TestNs::new("vxecx");
    let r = lab.run(1, "ADD", &ns.path(), "vxe-lost", &lab.conf(1));
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("lost") && r.stdout.contains("vxlan agent"), "{r:?}");
    let r = lab.run(1, "CHECK", &c1.ns.path(), &c1.cid, &with_prev(&lab.conf(1), &c1.add));
    assert_ne!(r.code, 0, "CHECK reports it: {r:?}");
    let (code, st) = lab.status(1);
    assert_eq!((code, st["status"].as_str()), (1, Some("lost")), "{st}");
}

#[test]
fn tls_with_client_certificates_from_the_etcd_conflist_example() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("cni-conf/vxlan");
    let example: Value = serde_json::from_str(&std::fs::read_to_string(repo.join("etcd.conflist")).unwrap()).unwrap();
    assert!(example["plugins"][0]["etcd"]["certFile"].is_string());
    let mut lab = Lab::build(2, 1, true, json!({ "example": example }));
    let (_, c1) = lab.up(1);
    let (_, c2) = lab.up(2);
    assert!(wait_peers(&lab, 1, &[2], Duration::from_secs(10)));
    assert!(reaches(&c1.ns, &c2.ip()));
    assert_eq!(lab.keys(&lab.subnets_prefix()).len(), 2);
    // Without a client certificate the server refuses the agent: it
    // says so and claims nothing.
    assert_eq!(lab.stop_agent(2, libc::SIGTERM), Some(0));
    assert!(wait_peers(&lab, 1, &[], Duration::from_secs(3)));
    let mut bad = lab.conf(2);
    bad["etcd"].as_object_mut().unwrap().remove("certFile");
    bad["etcd"].as_object_mut().unwrap().remove("keyFile");
    lab.start_agent_with(2, &bad);
    assert!(wait_for(Duration::from_secs(10), || lab.state(2)["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("etcd: "))));
    assert_eq!(lab.state(2)["status"], "starting", "no subnet without the store: {}", lab.state(2));
    assert_eq!(lab.keys(&lab.subnets_prefix()).len(), 1);
}

#[test]
fn the_periodic_reconcile_repairs_entries_deleted_by_hand_sighup_rereads_and_sigint_revokes() {
    let mut lab = Lab::build(2, 1, false, json!({"etcd.reconcileInterval": 1, "etcd.leaseTTL": 10}));
    let (_, c1) = lab.up(1);
    let (s2, c2) = lab.up(2);
    assert!(wait_peers(&lab, 1, &[2], Duration::from_secs(10)));
    let before = lab.vtep_routes(1);
    assert_eq!(before.len(), 1);
    lab.host(1).ok(&["ip", "route", "del", &s2, "dev", &format!("vxlan.{VNI}")]);
    lab.host(1).ok(&[
        "bridge",
        "fdb",
        "del",
        "02:76:c0:a8:4d:02",
        "dev",
        &format!("vxlan.{VNI}"),
        "dst",
        &underlay_ip(2),
    ]);
    assert!(lab.vtep_routes(1).is_empty());
    assert!(wait_for(Duration::from_secs(3), || lab.vtep_routes(1) == before && lab.fdb_peers(1).len() == 1));
    assert!(lab.log_of(1).contains("repaired"), "{}", lab.log_of(1));
    assert!(reaches(&c1.ns, &c2.ip()));
    // SIGHUP reads the store again; nothing changes.
    let pid = lab.agents[0].as_ref().unwrap().id() as i32;
    // SAFETY: a signal to the agent this test started, by its PID.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    assert!(wait_for(Duration::from_secs(3), || lab.log_of(1).contains("SIGHUP: reading the store again")));
    assert!(lab.agent_alive(1));
    assert_eq!(lab.vtep_routes(1), before);
    // SIGINT, like SIGTERM, revokes the lease: host 1 drops host 2 at once
    // (well before the 10 s TTL).
    assert_eq!(lab.stop_agent(2, libc::SIGINT), Some(0));
    assert!(wait_peers(&lab, 1, &[], Duration::from_secs(3)), "{:?}", lab.fdb_peers(1));
    assert!(lab.log_of(2).contains("SIGINT: revoked lease"), "{}", lab.log_of(2));
}

#[test]
fn a_dual_stack_cluster_gives_each_host_the_matching_v6_subnet() {
    let mut lab = Lab::build(2, 1, false, json!({"clusterCIDR": ["10.244.0.0/16", "fd44::/48"]}));
    let (s1, c1) = lab.up(1);
    let (_, c2) = lab.up(2);
    let st = lab.state(1);
    let v6 = st["subnets"][1].as_str().expect("an IPv6 subnet");
    let third: u32 = s1.split('.').nth(2).unwrap().parse().unwrap();
    assert_eq!(v6, format!("fd44:0:0:{third:x}::/64"), "the /64 of the same slot as {s1}");
    let ip6 = |c: &Ctr| {
        let a = c.add["ips"].as_array().unwrap().iter().find(|i| i["address"].as_str().unwrap().contains(':')).cloned();
        a.expect("an IPv6 address")["address"].as_str().unwrap().split('/').next().unwrap().to_string()
    };
    assert!(wait_peers(&lab, 1, &[2], Duration::from_secs(10)));
    assert!(reaches(&c1.ns, &ip6(&c2)) && reaches(&c2.ns, &ip6(&c1)), "IPv6 across the overlay");
    assert!(reaches(&c1.ns, &c2.ip()));
}

#[test]
fn an_ipv6_underlay_carries_the_overlay() {
    // etcd is reached over IPv4; the VTEPs use each host's IPv6 address.
    let mut lab = Lab::build(2, 1, false, json!({"underlayIP": "fd77::{n}"}));
    for n in 1..=2 {
        lab.host(n).ok(&["ip", "addr", "add", &format!("fd77::{n}/64"), "dev", "ul", "nodad"]);
    }
    let (_, c1) = lab.up(1);
    let (_, c2) = lab.up(2);
    let want: BTreeSet<String> = ["fd77::2".to_string()].into();
    assert!(wait_for(Duration::from_secs(10), || lab.fdb_peers(1) == want), "{:?}", lab.fdb_peers(1));
    let keys = lab.keys(&lab.subnets_prefix());
    assert!(keys.iter().all(|(_, _, v)| v.contains("\"underlayIP\":\"fd77::")), "{keys:?}");
    let eth0 = conformance::witness::link(&c1.ns, "eth0").unwrap();
    assert_eq!(eth0["mtu"], 1430, "underlay 1500 minus 70 for an IPv6 underlay");
    assert!(reaches(&c1.ns, &c2.ip()) && reaches(&c2.ns, &c1.ip()));
}

#[test]
fn a_watch_that_fell_behind_compaction_lists_again() {
    // A long TTL: the agent is frozen for a while.
    let mut lab = Lab::build(3, 1, false, json!({"etcd.leaseTTL": 30}));
    lab.up(1);
    lab.up(2);
    assert!(wait_peers(&lab, 1, &[2], Duration::from_secs(10)));
    let pid = lab.agents[0].as_ref().unwrap().id() as i32;
    // SAFETY: signals to the agent this test started, by its PID.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    // While it is frozen: enough traffic to fill its stream, a host that
    // leaves and one that joins, then the history is compacted away.
    let mut gw = Gateway::connect(&lab.host(2).name, &format!("{}:2379", member_ip(0)));
    let junk = "x".repeat(2000);
    let sp = lab.subnets_prefix();
    for i in 0..3000 {
        gw.put(&format!("{sp}junk-{}", i % 50), &junk);
    }
    assert_eq!(lab.stop_agent(2, libc::SIGTERM), Some(0));
    lab.start_agent(3);
    lab.wait_running(3);
    let rev = gw.post("/v3/kv/range", &json!({"key": b64(b"x")}))["header"]["revision"].as_str().unwrap().to_string();
    lab.etcdctl(&["compact", &rev]);
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(wait_peers(&lab, 1, &[3], Duration::from_secs(10)), "{:?}\n{}", lab.fdb_peers(1), lab.log_of(1));
    assert!(lab.log_of(1).contains("fell behind compaction"), "{}", lab.log_of(1));
    assert!(lab.agent_alive(1));
}
