//! Names built from long ids must fit a file name: a chain of bridge +
//! host-local + tuning through cnitool on a network with a 200-byte name
//! and a container id of the longest length ADD accepts (128 bytes), so
//! libcni's cache name `<net>-<id>-<ifname>` and tuning's state name would
//! pass 255 bytes, must ADD, CHECK and DEL like a short one, and DEL must
//! leave nothing: no veth, no eth0, no lease, no tuning state, no cache
//! file. Ids of 250 and 1,000 bytes are refused at ADD (code 4) with
//! nothing made, and their DEL succeeds. (A file name built from such an
//! id used to fail tuning's ADD and then every DEL with "File name too
//! long", so the chain's DEL never reached bridge.)

use conformance::fixture::Host;
use conformance::{witness, TestNs};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

/// A 200-byte network name.
fn net() -> String {
    format!("longid{}", "n".repeat(194))
}

fn files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

fn cnitool(host: &Host, confdir: &Path, cmd: &str, ctr: &TestNs, id: &str) -> Output {
    host.cnitool(confdir, &[cmd, &net(), &ctr.path()], &[("CNI_CONTAINERID", id), ("CNI_IFNAME", "eth0")])
}

#[test]
fn a_chain_with_a_long_container_id_adds_and_deletes_everything() {
    let host = Host::new("longid");
    let confdir = host.dir.join("net.d");
    std::fs::create_dir_all(&confdir).unwrap();
    let tuning_dir = host.dir.join("tuning");
    let net = net();
    let mut list = json!({"cniVersion": "1.0.0", "name": net, "plugins": [
        {"type": "bridge", "bridge": "lidbr0", "isGateway": true,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.93.0.0/24"}]]}},
        {"type": "tuning", "mtu": 1400, "dataDir": tuning_dir}]});
    std::fs::write(confdir.join("10-longid.conflist"), host.conf(list.take())).unwrap();
    let id_of = |len: usize| -> String { (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect() };
    for len in [250, 1000] {
        let id = id_of(len);
        let ctr = TestNs::new("longid-c");
        let out = cnitool(&host, &confdir, "add", &ctr, &id);
        assert!(!out.status.success(), "ADD with a {len}-byte id must be refused: {out:?}");
        let err: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        assert_eq!(err["code"], 4, "{out:?}");
        assert!(err["msg"].as_str().unwrap_or_default().contains("at most 128"), "{err}");
        assert!(witness::link(&ctr, "eth0").is_none() && host.veths().is_empty() && host.leases(&net).is_empty());
        for _ in 0..2 {
            let out = cnitool(&host, &confdir, "del", &ctr, &id);
            assert!(out.status.success(), "DEL with a {len}-byte id: {out:?}");
        }
    }
    {
        let len = 128;
        let id = id_of(len);
        let ctr = TestNs::new("longid-c");
        let out = cnitool(&host, &confdir, "add", &ctr, &id);
        assert!(out.status.success(), "ADD with a {len}-byte id: {out:?}");
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(witness::link(&ctr, "eth0").expect("eth0 in the container")["mtu"], 1400);
        assert_eq!(host.leases(&net).len(), 1, "{result}");
        let out = cnitool(&host, &confdir, "check", &ctr, &id);
        assert!(out.status.success(), "CHECK with a {len}-byte id: {out:?}");

        let out = cnitool(&host, &confdir, "del", &ctr, &id);
        assert!(out.status.success(), "DEL with a {len}-byte id: {out:?}");
        assert!(witness::link(&ctr, "eth0").is_none(), "eth0 left in the container");
        assert!(host.veths().is_empty(), "host veths left: {:?}", host.veths());
        assert!(host.leases(&net).is_empty(), "leases left: {:?}", host.leases(&net));
        assert!(files(&tuning_dir.join(&net)).is_empty(), "tuning state left: {:?}", files(&tuning_dir.join(&net)));
        assert!(files(&host.dir.join("cache")).is_empty(), "cache left: {:?}", files(&host.dir.join("cache")));
        // DEL again: still success.
        let out = cnitool(&host, &confdir, "del", &ctr, &id);
        assert!(out.status.success(), "second DEL with a {len}-byte id: {out:?}");
    }
}
