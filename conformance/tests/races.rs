//! Calls for one attachment that overlap, as a runtime that restarts may
//! send them: a DEL started while its ADD still runs. Whatever the
//! interleaving, the attachment ends whole or gone (lease, host veth,
//! container address and masquerade element together), and an address a
//! container holds is never handed to another one.

use conformance::fixture::Host;
use conformance::{witness, TestNs};
use netcore::attachment_lock::{lock_path, LOCK_DIR};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// The address host-local holds for `cid` in network `net`, if any.
fn lease_of(host: &Host, net: &str, cid: &str) -> Option<String> {
    let dir = host.ipam_dir().join(net);
    host.leases(net)
        .into_iter()
        .find(|ip| std::fs::read_to_string(dir.join(ip)).is_ok_and(|c| c.split("\r\n").next() == Some(cid)))
}

/// The IPv4 address of `eth0` in the container, if it has one.
fn container_address(ctr: &TestNs) -> Option<String> {
    witness::link(ctr, "eth0")?;
    witness::addresses(ctr, "eth0")
        .into_iter()
        .find(|a| a.contains('.'))
        .map(|a| a.split('/').next().unwrap().to_string())
}

#[test]
fn del_racing_add_leaves_the_attachment_whole_or_gone_and_never_duplicates_an_address() {
    let host = Host::new("race");
    let conf = host.conf(json!({
        "cniVersion": "1.0.0", "name": "racenet", "type": "bridge", "bridge": "race0",
        "isGateway": true, "ipMasq": true,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.59.0.0/24"}]]}
    }));
    let mut whole = 0;
    let mut gone = 0;
    for trial in 0..50u64 {
        let ctr = TestNs::new("race-c");
        let cid = format!("race{trial}");
        let delay = Duration::from_millis(trial % 5);
        let (add, del) = std::thread::scope(|s| {
            let add = s.spawn(|| host.run("bridge", "ADD", &ctr.path(), &cid, "eth0", &conf));
            std::thread::sleep(delay);
            let del = s.spawn(|| host.run("bridge", "DEL", &ctr.path(), &cid, "eth0", &conf));
            (add.join().unwrap(), del.join().unwrap())
        });
        assert_eq!(del.code, 0, "trial {trial}: DEL failed: {del:?}");
        let lease = lease_of(&host, "racenet", &cid);
        let in_ctr = container_address(&ctr);
        let veths = host.veths();
        let masq = witness::nft_elements(&host.ns, "cnirs-nat", "masq-src4");
        let state = format!(
            "trial {trial}: ADD {add:?}; lease {lease:?}, container {in_ctr:?}, veths {veths:?}, masq {masq:?}"
        );
        if add.code == 0 && lease.is_some() {
            // ADD's result stands: everything it reported is held.
            let ip = lease.clone().unwrap();
            let reported = add.json()["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_string();
            assert_eq!(ip, reported, "{state}");
            assert_eq!(in_ctr.as_deref(), Some(ip.as_str()), "{state}");
            assert_eq!(veths.len(), 1, "{state}");
            assert!(masq.iter().any(|e| e.contains(&ip)), "{state}");
            whole += 1;
        } else {
            // ADD failed, or the DEL undid it: nothing of it remains.
            assert_eq!(lease, None, "{state}");
            assert_eq!(in_ctr, None, "{state}");
            assert!(veths.is_empty(), "{state}");
            assert!(masq.is_empty(), "{state}");
            gone += 1;
        }
        // The address the container holds is not given to another one.
        if let Some(ip) = &in_ctr {
            let other = TestNs::new("race-o");
            let args = format!("IP={ip}");
            let r = host.run_env("bridge", "ADD", &other.path(), "other", "eth0", &conf, &[("CNI_ARGS", &args)]);
            assert_ne!(r.code, 0, "trial {trial}: {ip} handed out twice: {r:?}");
            host.run("bridge", "DEL", &other.path(), "other", "eth0", &conf).ok();
        }
        host.run("bridge", "DEL", &ctr.path(), &cid, "eth0", &conf).ok();
        assert!(!lock_path(Path::new(LOCK_DIR), "racenet", &cid, "eth0").exists(), "DEL removes the lock file");
    }
    eprintln!("{whole} trials ended whole (DEL first), {gone} ended gone");
    assert!(host.leases("racenet").is_empty(), "{:?}", host.leases("racenet"));
}

#[test]
fn gc_removes_the_lock_files_of_attachments_it_collects() {
    let host = Host::new("race-gc");
    let mut v = json!({
        "cniVersion": "1.1.0", "name": "racegc", "type": "bridge", "bridge": "racegc0",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.59.1.0/24"}]]}
    });
    let conf = host.conf(v.clone());
    let (kept, gone) = (TestNs::new("race-gc-k"), TestNs::new("race-gc-g"));
    host.run("bridge", "ADD", &kept.path(), "kept", "eth0", &conf).ok();
    host.run("bridge", "ADD", &gone.path(), "gone", "eth0", &conf).ok();
    let lock = |cid: &str| lock_path(Path::new(LOCK_DIR), "racegc", cid, "eth0");
    assert!(lock("kept").exists() && lock("gone").exists());
    v["cni.dev/valid-attachments"] = json!([{"containerID": "kept", "ifname": "eth0"}]);
    host.run("bridge", "GC", "", "", "", &host.conf(v)).ok();
    assert!(lock("kept").exists(), "a valid attachment's lock file stays");
    assert!(!lock("gone").exists(), "GC left the lock file of a collected attachment");
    host.run("bridge", "DEL", &kept.path(), "kept", "eth0", &conf).ok();
    assert!(!lock("kept").exists());
}
