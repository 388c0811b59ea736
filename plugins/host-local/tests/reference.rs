//! On-disk compatibility with the reference plugin
//! (/usr/lib/cni/host-local, containernetworking-plugins 1.1.1): a node can
//! switch between the two, either way, without losing or duplicating a
//! lease. Skipped when the reference is not installed.

mod common;

use common::*;
use serde_json::json;

#[test]
fn reference_leases_are_released_by_our_del() {
    if !have_reference() {
        return;
    }
    let d = DataDir::new("ref-add");
    let c = dual("net", &d);
    assert_eq!(Call::new("ADD", "r1").reference().run(&c).ips(), ["10.55.0.2/24", "fd00:55::2/64"]);
    assert_eq!(Call::new("ADD", "r2").reference().ifname("net1").run(&c).ips(), ["10.55.0.3/24", "fd00:55::3/64"]);
    let store = d.store("net");
    assert!(!store.join(".host-local-index").exists());

    // Our CHECK finds them, our ADD is idempotent on them and never reuses them.
    let mut chk = c.clone();
    chk["prevResult"] =
        json!({"cniVersion": "1.0.0", "ips": [{"address": "10.55.0.2/24"}, {"address": "fd00:55::2/64"}]});
    Call::new("CHECK", "r1").run(&chk).ok();
    assert_eq!(Call::new("ADD", "r1").run(&c).ips(), ["10.55.0.2/24", "fd00:55::2/64"]);
    assert_eq!(Call::new("ADD", "o1").run(&c).ips(), ["10.55.0.4/24", "fd00:55::4/64"]);

    Call::new("DEL", "r1").run(&c).ok();
    Call::new("DEL", "r2").ifname("net1").run(&c).ok();
    let left: Vec<String> = leases(&store).into_values().collect();
    assert_eq!(left, ["o1\r\neth0", "o1\r\neth0"]);
}

#[test]
fn our_leases_are_read_and_released_by_the_reference() {
    if !have_reference() {
        return;
    }
    let d = DataDir::new("ref-del");
    let c = dual("net", &d);
    Call::new("ADD", "o1").run(&c).ok();
    Call::new("ADD", "o2").run(&c).ok();
    let store = d.store("net");
    let index_before = snapshot(&store.join(".host-local-index"));

    // The reference sees our lease: same (cid, ifname) is a duplicate to it,
    // its CHECK passes, and its ADD takes the next free address.
    let e = Call::new("ADD", "o1").reference().run(&c).err(999);
    assert!(e["msg"].as_str().unwrap().contains("duplicate allocation is not allowed"), "{e}");
    let mut chk = c.clone();
    chk["prevResult"] = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.55.0.2/24"}]});
    Call::new("CHECK", "o1").reference().run(&chk).ok();
    assert_eq!(Call::new("ADD", "r3").reference().run(&c).ips(), ["10.55.0.4/24", "fd00:55::4/64"]);

    // Its DEL removes our leases and nothing of the index.
    Call::new("DEL", "o1").reference().run(&c).ok();
    assert!(leases(&store).values().all(|o| o != "o1\r\neth0"));
    assert_eq!(snapshot(&store.join(".host-local-index")), index_before);

    // Back to us: the stale index entry of o1 is not mistaken for a lease,
    // the reference's r3 is found, and round-robin continues after it.
    Call::new("CHECK", "o1").run(&chk).err(100);
    assert_eq!(Call::new("ADD", "o1").run(&c).ips(), ["10.55.0.5/24", "fd00:55::5/64"]);
    Call::new("DEL", "r3").run(&c).ok();
    Call::new("DEL", "o1").run(&c).ok();
    Call::new("DEL", "o2").reference().run(&c).ok();
    assert!(leases(&store).is_empty(), "{:?}", leases(&store));
}

#[test]
fn interleaved_implementations_never_share_an_address() {
    if !have_reference() {
        return;
    }
    let d = DataDir::new("ref-mix");
    let c = conf("1.0.0", "mix", &d, json!({"ranges": [[{"subnet": "10.90.0.0/28"}]]}));
    let mut rng = Rng::new();
    let mut held: Vec<String> = Vec::new();
    for i in 0..60 {
        let use_ref = rng.below(2) == 0;
        let add = rng.below(3) != 0 || held.is_empty();
        if add {
            let cid = format!("m{i}");
            let call = Call::new("ADD", &cid);
            let out = if use_ref { call.reference().run(&c) } else { call.run(&c) };
            if out.code == Some(0) {
                held.push(cid);
            } else {
                // A /28 has 13 addresses; only exhaustion may fail.
                assert!(out.stdout.contains("no IP addresses available"), "{out:?}");
                assert_eq!(held.len(), 13);
            }
        } else {
            let cid = held.remove(rng.below(held.len() as u64) as usize);
            let call = Call::new("DEL", &cid);
            if use_ref { call.reference().run(&c) } else { call.run(&c) }.ok();
        }
        let l = leases(&d.store("mix"));
        let mut owners: Vec<&String> = l.values().collect();
        owners.sort();
        let mut want: Vec<String> = held.iter().map(|c| format!("{c}\r\neth0")).collect();
        want.sort();
        assert_eq!(owners, want.iter().collect::<Vec<_>>(), "step {i}");
    }
}

#[test]
fn the_index_is_rebuilt_only_after_a_foreign_writer() {
    if !have_reference() {
        return;
    }
    let d = DataDir::new("ref-seal");
    let mut c = dual("net", &d);
    let rebuilt = |out: &Out| out.stderr.contains("rebuilding");
    assert!(rebuilt(&Call::new("ADD", "o1").log("info").run(&c)), "first use builds the index");
    for cid in ["o2", "o3"] {
        let out = Call::new("ADD", cid).log("info").run(&c);
        assert!(!rebuilt(&out), "{out:?}");
    }
    // Per-call ipRanges change the config, not the store: still sealed.
    c["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "10.56.0.0/24"}]]});
    assert!(!rebuilt(&Call::new("ADD", "o4").log("info").run(&c)));
    assert!(!rebuilt(&Call::new("DEL", "o4").log("info").run(&c)));
    c.as_object_mut().unwrap().remove("runtimeConfig");
    assert!(!rebuilt(&Call::new("DEL", "never-added").log("info").run(&c)));
    // The reference writes behind our back: one rebuild, then sealed again.
    Call::new("ADD", "r1").reference().run(&c).ok();
    assert!(rebuilt(&Call::new("DEL", "o1").log("info").run(&c)));
    assert!(!rebuilt(&Call::new("DEL", "r1").log("info").run(&c)));
    assert_eq!(leases(&d.store("net")).len(), 4);
}
