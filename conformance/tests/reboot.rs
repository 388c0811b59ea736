//! What a node reboot leaves, and how it is cleaned: every namespace and
//! everything in the kernel is gone, while the host-local leases and the
//! runtime's result cache stay on disk (as with the reference plugins).
//! After the "reboot" (a fresh host namespace, the same directories), a
//! runtime that DELs the attachments it cached, or one GC with the
//! sandboxes still running as its valid list, releases every stale lease;
//! DEL needs neither the old namespace nor any kernel state.

use conformance::chaos::runtime_in;
use conformance::fixture::Host;
use conformance::{bin_dir, witness, TestNs};
use runtime::{Attachment, GcAttachment, NetConfList};
use serde_json::json;
use std::path::Path;

fn network(host: &Host, dir: &Path) -> NetConfList {
    let list = json!({"cniVersion": "1.1.0", "name": "rebootnet", "plugins": [
        {"type": "bridge", "bridge": "rb0", "isGateway": true, "ipMasq": true,
         "ipam": {"type": "host-local", "dataDir": host.ipam_dir(),
                  "ranges": [[{"subnet": "10.59.0.0/24"}], [{"subnet": "fd00:59::/64"}]]}},
        {"type": "portmap", "capabilities": {"portMappings": true}}]});
    let path = dir.join("rebootnet.conflist");
    std::fs::write(&path, list.to_string()).unwrap();
    runtime::config::load_file(&path).unwrap()
}

/// Adds three containers in a fresh host namespace, then "reboots": all
/// namespaces go, the data and cache directories stay. Returns the
/// attachments and the new host namespace.
fn boot_and_reboot(host: &Host, list: &NetConfList, conf: &Path, cache: &Path) -> (Vec<Attachment>, TestNs) {
    let before = TestNs::new("rb-before");
    before.ok(&["ip", "link", "set", "lo", "up"]);
    let rt = runtime_in(&before.path(), vec![bin_dir()], conf, cache);
    let ctrs: Vec<TestNs> = (0..3).map(|_| TestNs::new("rb-c")).collect();
    let atts: Vec<Attachment> = ctrs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Attachment::new(format!("rb{i}"), c.path(), "eth0").with_capability(
                "portMappings",
                json!([{"hostPort": 18080 + i, "containerPort": 80, "protocol": "tcp"}]),
            )
        })
        .collect();
    for a in &atts {
        rt.add(list, a).unwrap();
    }
    assert_eq!(host.leases("rebootnet").len(), 6);
    drop(ctrs);
    drop(before);
    (atts, TestNs::new("rb-after"))
}

#[test]
fn after_a_reboot_del_of_the_cached_attachments_releases_everything() {
    let host = Host::new("rb-del");
    let (conf, cache) = (host.dir.join("net.d"), host.dir.join("cache"));
    std::fs::create_dir_all(&conf).unwrap();
    let list = network(&host, &conf);
    let (atts, after) = boot_and_reboot(&host, &list, &conf, &cache);
    let rt = runtime_in(&after.path(), vec![bin_dir()], &conf, &cache);
    // What a runtime does at start for sandboxes it knew: DEL, with the
    // netns path it cached (now gone).
    for entry in rt.cache().list(Some("rebootnet")).unwrap() {
        rt.del(&list, &entry.attachment()).unwrap();
    }
    assert_eq!(atts.len(), 3);
    assert!(host.leases("rebootnet").is_empty(), "{:?}", host.leases("rebootnet"));
    assert!(rt.cache().list(None).unwrap().is_empty());
    assert!(witness::link_names(&after).iter().all(|l| l == "lo"), "DEL created nothing");
}

#[test]
fn after_a_reboot_one_gc_releases_what_is_not_running() {
    let host = Host::new("rb-gc");
    let (conf, cache) = (host.dir.join("net.d"), host.dir.join("cache"));
    std::fs::create_dir_all(&conf).unwrap();
    let list = network(&host, &conf);
    let (atts, after) = boot_and_reboot(&host, &list, &conf, &cache);
    // A new container started after the reboot, before the GC.
    let rt = runtime_in(&after.path(), vec![bin_dir()], &conf, &cache);
    let fresh = TestNs::new("rb-new");
    let new = Attachment::new("rbnew", fresh.path(), "eth0");
    let r = rt.add(&list, &new).unwrap();
    let kept: Vec<String> = r.ips.iter().map(|c| c.address.ip().to_string()).collect();
    rt.gc(&list, &[GcAttachment { container_id: "rbnew".into(), ifname: "eth0".into() }]).unwrap();
    let mut left = host.leases("rebootnet");
    left.sort();
    let mut want = kept.clone();
    want.sort();
    assert_eq!(left, want, "only the running container's leases stay");
    assert_eq!(rt.cache().list(None).unwrap().len(), 1);
    rt.check(&list, &new).unwrap();
    assert!(atts.iter().all(|a| rt.cached("rebootnet", a).unwrap().is_none()));
}
