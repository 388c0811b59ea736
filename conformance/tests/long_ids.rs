//! Container ids far longer than a file name (the spec's pattern bounds
//! neither): a chain of bridge + host-local + tuning through cnitool with
//! ids of 250 and 1,000 bytes must ADD, CHECK and DEL like a short one, and
//! DEL must leave nothing: no veth, no eth0, no lease, no tuning state, no
//! cache file. (A file name built from such an id used to fail tuning's ADD
//! and then every DEL with "File name too long", so the chain's DEL never
//! reached bridge.)

use conformance::fixture::Host;
use conformance::{bin_dir, witness, TestNs};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

const NET: &str = "longid";

fn files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

fn cnitool(host: &Host, confdir: &Path, cmd: &str, ctr: &TestNs, id: &str) -> Output {
    Command::new("ip")
        .args(["netns", "exec", &host.ns.name])
        .arg(bin_dir().join("cnitool"))
        .args([cmd, NET, &ctr.path()])
        .env("NETCONFPATH", confdir)
        .env("CNI_PATH", bin_dir())
        .env("CNI_CACHE_DIR", host.dir.join("cache"))
        .env("CNI_CONTAINERID", id)
        .env("CNI_IFNAME", "eth0")
        .output()
        .unwrap()
}

#[test]
fn a_chain_with_a_long_container_id_adds_and_deletes_everything() {
    let host = Host::new("longid");
    let confdir = host.dir.join("net.d");
    std::fs::create_dir_all(&confdir).unwrap();
    let tuning_dir = host.dir.join("tuning");
    let mut list = json!({"cniVersion": "1.0.0", "name": NET, "plugins": [
        {"type": "bridge", "bridge": "lidbr0", "isGateway": true,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.93.0.0/24"}]]}},
        {"type": "tuning", "mtu": 1400, "dataDir": tuning_dir}]});
    std::fs::write(confdir.join("10-longid.conflist"), host.conf(list.take())).unwrap();
    for len in [250, 1000] {
        let id: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let ctr = TestNs::new("longid-c");
        let out = cnitool(&host, &confdir, "add", &ctr, &id);
        assert!(out.status.success(), "ADD with a {len}-byte id: {out:?}");
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(witness::link(&ctr, "eth0").expect("eth0 in the container")["mtu"], 1400);
        assert_eq!(host.leases(NET).len(), 1, "{result}");
        let out = cnitool(&host, &confdir, "check", &ctr, &id);
        assert!(out.status.success(), "CHECK with a {len}-byte id: {out:?}");

        let out = cnitool(&host, &confdir, "del", &ctr, &id);
        assert!(out.status.success(), "DEL with a {len}-byte id: {out:?}");
        assert!(witness::link(&ctr, "eth0").is_none(), "eth0 left in the container");
        assert!(host.veths().is_empty(), "host veths left: {:?}", host.veths());
        assert!(host.leases(NET).is_empty(), "leases left: {:?}", host.leases(NET));
        assert!(files(&tuning_dir.join(NET)).is_empty(), "tuning state left: {:?}", files(&tuning_dir.join(NET)));
        assert!(files(&host.dir.join("cache")).is_empty(), "cache left: {:?}", files(&host.dir.join("cache")));
        // DEL again: still success.
        let out = cnitool(&host, &confdir, "del", &ctr, &id);
        assert!(out.status.success(), "second DEL with a {len}-byte id: {out:?}");
    }
}
