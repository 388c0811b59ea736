//! GC and STATUS (spec 1.1) through the built binary.

mod common;

use common::*;
use serde_json::{json, Value};

fn gc_conf(d: &DataDir, key: Option<(&str, Value)>) -> Value {
    let mut c =
        conf("1.1.0", "net", d, json!({"ranges": [[{"subnet": "10.80.0.0/24"}], [{"subnet": "fd00:80::/64"}]]}));
    if let Some((k, v)) = key {
        c[k] = v;
    }
    c
}

fn gc(c: &Value) -> Out {
    Call::new("GC", "").run(c)
}

#[test]
fn gc_releases_what_no_valid_attachment_owns() {
    let d = DataDir::new("gc");
    let c = gc_conf(&d, None);
    for (cid, ifname) in [("c1", "eth0"), ("c1", "net1"), ("c2", "eth0"), ("c3", "eth0")] {
        Call::new("ADD", cid).ifname(ifname).run(&c).ok();
    }
    let store = d.store("net");
    std::fs::write(store.join("10.80.0.100"), "old-kept").unwrap();
    std::fs::write(store.join("10.80.0.101"), "old-gone").unwrap();
    std::fs::write(store.join("10.80.0.102"), "").unwrap();
    let before = leases(&store);

    // No list at all: do nothing.
    gc(&c).ok();
    assert_eq!(leases(&store), before);

    let valid = json!([{"containerID": "c1", "ifname": "eth0"}, {"containerID": "c3", "ifname": "eth0"},
                       {"containerID": "old-kept", "ifname": "eth0"}]);
    assert_eq!(gc(&gc_conf(&d, Some(("cni.dev/valid-attachments", valid)))).ok(), Value::Null);
    let mut left: Vec<String> = leases(&store).into_values().collect();
    left.sort();
    assert_eq!(left, ["c1\r\neth0", "c1\r\neth0", "c3\r\neth0", "c3\r\neth0", "old-kept"]);
    for kept in ["lock", "last_reserved_ip.0", "last_reserved_ip.1", ".host-local-index/seal"] {
        assert!(store.join(kept).exists(), "{kept}");
    }

    // The index followed: ADD of a kept attachment is idempotent, DEL of a
    // collected one has nothing to do, and new ADDs never reuse kept leases.
    let again = Call::new("ADD", "c1").run(&c).ips();
    assert_eq!(again, ["10.80.0.2/24", "fd00:80::2/64"]);
    Call::new("DEL", "c2").run(&c).ok();
    Call::new("ADD", "c9").run(&c).ok();
    assert_eq!(leases(&store).len(), 7);

    // The legacy key works too; an empty list means nothing is valid.
    gc(&gc_conf(&d, Some(("cni.dev/attachments", json!([{"containerID": "c9", "ifname": "eth0"}]))))).ok();
    assert_eq!(leases(&store).len(), 2);
    gc(&gc_conf(&d, Some(("cni.dev/valid-attachments", json!([]))))).ok();
    assert!(leases(&store).is_empty());
    assert!(store.join("lock").exists() && store.join("last_reserved_ip.0").exists());
}

#[test]
fn gc_needs_1_1_and_tolerates_a_missing_store() {
    let d = DataDir::new("gc-old");
    let mut c = gc_conf(&d, Some(("cni.dev/valid-attachments", json!([]))));
    gc(&c).ok();
    assert!(!d.store("net").exists(), "GC does not create stores");
    c["cniVersion"] = json!("1.0.0");
    gc(&c).err(1);
}

#[test]
fn status_reports_an_unusable_store() {
    let d = DataDir::new("status");
    let c = gc_conf(&d, None);
    assert_eq!(Call::new("STATUS", "").run(&c).ok(), Value::Null);
    assert!(d.store("net").join("lock").exists());

    let file = d.0.join("a-file");
    std::fs::write(&file, "").unwrap();
    let bad = conf("1.1.0", "net", &d, json!({"ranges": [[{"subnet": "10.80.0.0/24"}]], "dataDir": file.join("sub")}));
    let e = Call::new("STATUS", "").run(&bad).err(50);
    assert!(e["msg"].as_str().unwrap().contains("not usable"), "{e}");

    // A broken config is a config error, not "unavailable".
    let broken = conf("1.1.0", "net", &d, json!({"ranges": [[{"subnet": "10.80.0.0/31"}]]}));
    Call::new("STATUS", "").run(&broken).err(7);
}
