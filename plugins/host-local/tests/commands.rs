//! ADD, DEL and CHECK through the built binary: results, idempotency, the
//! on-disk layout, requested addresses, and every config form.

mod common;

use common::*;
use serde_json::json;

#[test]
fn add_returns_one_address_per_set_with_reference_defaults() {
    let d = DataDir::new("add");
    let c = conf(
        "1.0.0",
        "net",
        &d,
        json!({"ranges": [[{"subnet": "10.55.0.0/24"}], [{"subnet": "fd00:55::/64"}]],
               "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00:55::1"}]}),
    );
    let out = Call::new("ADD", "c1").run(&c);
    assert_eq!(
        out.stdout,
        "{\n    \"cniVersion\": \"1.0.0\",\n    \"ips\": [\n        {\n            \"address\": \"10.55.0.2/24\",\n            \
         \"gateway\": \"10.55.0.1\"\n        },\n        {\n            \"address\": \"fd00:55::2/64\",\n            \
         \"gateway\": \"fd00:55::1\"\n        }\n    ],\n    \"routes\": [\n        {\n            \"dst\": \"0.0.0.0/0\"\n        },\n        \
         {\n            \"dst\": \"::/0\",\n            \"gw\": \"fd00:55::1\"\n        }\n    ],\n    \"dns\": {}\n}"
    );
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let store = d.store("net");
    let want: Vec<(&str, &str)> = vec![("10.55.0.2", "c1\r\neth0"), ("fd00:55::2", "c1\r\neth0")];
    let got = leases(&store);
    assert_eq!(got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(), want);
    assert_eq!(std::fs::read_to_string(store.join("last_reserved_ip.0")).unwrap(), "10.55.0.2");
    assert_eq!(std::fs::read_to_string(store.join("last_reserved_ip.1")).unwrap(), "fd00:55::2");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(store.join("lock")).unwrap().len(), 0);
    assert_eq!(std::fs::metadata(&store).unwrap().permissions().mode() & 0o777, 0o755);

    // Round-robin: the next container gets the next address.
    assert_eq!(Call::new("ADD", "c2").run(&c).ips(), ["10.55.0.3/24", "fd00:55::3/64"]);
}

#[test]
fn repeated_add_is_idempotent() {
    let d = DataDir::new("idem");
    let c = dual("net", &d);
    let first = Call::new("ADD", "c1").run(&c);
    let again = Call::new("ADD", "c1").run(&c);
    assert_eq!(first.stdout, again.stdout);
    assert_eq!(leases(&d.store("net")).len(), 2, "never a second lease");
    // Another interface of the same container is another attachment.
    assert_eq!(Call::new("ADD", "c1").ifname("net1").run(&c).ips(), ["10.55.0.3/24", "fd00:55::3/64"]);
    // Asking for a different address while holding one is a conflict.
    let e = Call::new("ADD", "c1").args("IP=10.55.0.77").run(&c).err(102);
    assert!(e["msg"].as_str().unwrap().contains("already holds 10.55.0.2"), "{e}");
    // Asking for the held one is fine.
    assert_eq!(Call::new("ADD", "c1").args("IP=10.55.0.2").run(&c).ips(), ["10.55.0.2/24", "fd00:55::2/64"]);
    assert_eq!(leases(&d.store("net")).len(), 4);
}

#[test]
fn del_releases_by_attachment_and_is_idempotent() {
    let d = DataDir::new("del");
    let c = dual("net", &d);
    Call::new("ADD", "c1").run(&c).ok();
    Call::new("ADD", "c1").ifname("net1").run(&c).ok();
    Call::new("ADD", "c2").run(&c).ok();
    let out = Call::new("DEL", "c1").run(&c);
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (Some(0), "", ""));
    let left: Vec<String> = leases(&d.store("net")).into_values().collect();
    assert_eq!(left.len(), 4);
    assert!(left.iter().all(|o| o != "c1\r\neth0"));
    assert_eq!(Call::new("DEL", "c1").run(&c).ok(), serde_json::Value::Null);
    // Never added, and a network never used: both succeed, nothing created.
    Call::new("DEL", "nobody").run(&c).ok();
    let other = dual("never-used", &d);
    Call::new("DEL", "c1").run(&other).ok();
    assert!(!d.store("never-used").exists());
    // The released address is not reused right away (round-robin).
    assert_eq!(Call::new("ADD", "c3").run(&c).ips(), ["10.55.0.5/24", "fd00:55::5/64"]);
}

#[test]
fn check_verifies_prev_result_addresses() {
    let d = DataDir::new("check");
    let mut c = dual("net", &d);
    let result = Call::new("ADD", "c1").run(&c).ok();
    Call::new("ADD", "c2").run(&c).ok();
    c["prevResult"] = result.clone();
    assert_eq!(Call::new("CHECK", "c1").run(&c).ok(), serde_json::Value::Null);
    // Someone else's addresses: a conflict.
    let e = Call::new("CHECK", "c2").run(&c).err(102);
    assert!(e["msg"].as_str().unwrap().contains("held by container c1"), "{e}");
    // Released behind the runtime's back: not reserved.
    std::fs::remove_file(d.store("net").join("fd00:55::2")).unwrap();
    let e = Call::new("CHECK", "c1").run(&c).err(100);
    assert!(e["msg"].as_str().unwrap().contains("fd00:55::2"), "{e}");
    // Without prevResult: the attachment must hold something.
    c.as_object_mut().unwrap().remove("prevResult");
    Call::new("CHECK", "c1").run(&c).ok();
    let e = Call::new("CHECK", "ghost").run(&c).err(100);
    assert_eq!(e["msg"], "host-local: Failed to find address added by container ghost");
    // CHECK needs 0.4.0.
    let mut old = c.clone();
    old["cniVersion"] = json!("0.3.1");
    Call::new("CHECK", "c1").run(&old).err(1);
}

#[test]
fn legacy_id_only_leases_are_honoured() {
    let d = DataDir::new("legacy");
    let c = conf("0.4.0", "net", &d, json!({"ranges": [[{"subnet": "10.56.0.0/24"}]]}));
    Call::new("ADD", "seed").run(&c).ok();
    let store = d.store("net");
    std::fs::write(store.join("10.56.0.40"), "old1").unwrap();
    std::fs::write(store.join("10.56.0.41"), "old2\n").unwrap();
    let mut chk = c.clone();
    chk["prevResult"] = json!({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.56.0.40/24"}]});
    Call::new("CHECK", "old1").run(&chk).ok();
    chk.as_object_mut().unwrap().remove("prevResult");
    Call::new("CHECK", "old2").run(&chk).ok();
    Call::new("DEL", "old1").run(&c).ok();
    assert!(!store.join("10.56.0.40").exists());
    assert!(store.join("10.56.0.41").exists());
    Call::new("DEL", "old2").ifname("whatever").run(&c).ok();
    assert!(!store.join("10.56.0.41").exists());
    assert_eq!(leases(&store).len(), 1);
}

#[test]
fn requested_addresses_from_args_capabilities_and_cni_args() {
    let d = DataDir::new("req");
    let mut c = dual("net", &d);
    assert_eq!(
        Call::new("ADD", "a").args("IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.55.0.77").run(&c).ips(),
        ["10.55.0.77/24", "fd00:55::2/64"]
    );
    assert_eq!(
        Call::new("ADD", "b").args("IP=10.55.0.78/24,fd00:55::78").run(&c).ips(),
        ["10.55.0.78/24", "fd00:55::78/64"]
    );
    c["args"] = json!({"cni": {"ips": ["fd00:55::99"]}});
    c["runtimeConfig"] = json!({"ips": ["10.55.0.99/24"]});
    assert_eq!(Call::new("ADD", "c").run(&c).ips(), ["10.55.0.99/24", "fd00:55::99/64"]);
    assert_eq!(std::fs::read_to_string(d.store("net").join("last_reserved_ip.0")).unwrap(), "10.55.0.99");
}

#[test]
fn runtime_ip_ranges_legacy_subnet_and_resolv_conf() {
    let d = DataDir::new("forms");
    let resolv = d.0.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 10.0.0.53\nsearch a.example b.example\noptions ndots:2\ndomain example\n")
        .unwrap();
    let mut c = conf(
        "1.0.0",
        "net",
        &d,
        json!({"subnet": "10.57.0.0/24", "rangeStart": "10.57.0.100", "rangeEnd": "10.57.0.110",
               "gateway": "10.57.0.254", "ranges": [[{"subnet": "fd00:57::/64"}]], "resolvConf": resolv}),
    );
    c["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "10.58.0.0/16", "rangeStart": "10.58.3.0"}]]});
    let r = Call::new("ADD", "c1").run(&c).ok();
    let ips: Vec<(&str, &str)> = r["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["address"].as_str().unwrap(), i["gateway"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ips,
        [("10.58.3.0/16", "10.58.0.1"), ("10.57.0.100/24", "10.57.0.254"), ("fd00:57::2/64", "fd00:57::1")]
    );
    assert_eq!(
        r["dns"],
        json!({"nameservers": ["10.0.0.53"], "domain": "example", "search": ["a.example", "b.example"], "options": ["ndots:2"]})
    );
}

#[test]
fn every_result_version() {
    let d = DataDir::new("versions");
    for (i, v) in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"].iter().enumerate() {
        let c = conf(
            v,
            &format!("n{i}"),
            &d,
            json!({"ranges": [[{"subnet": "10.59.0.0/24"}], [{"subnet": "fd00:59::/64"}]]}),
        );
        let r = Call::new("ADD", "c1").run(&c).ok();
        assert_eq!(r["cniVersion"], *v);
        if v.starts_with("0.1") || v.starts_with("0.2") {
            assert_eq!(r["ip4"], json!({"ip": "10.59.0.2/24", "gateway": "10.59.0.1"}));
            assert_eq!(r["ip6"]["ip"], "fd00:59::2/64");
        } else {
            assert!(r.get("interfaces").is_none(), "IPAM results have no interfaces");
            assert!(r["ips"][0].get("interface").is_none());
            assert_eq!(r["ips"][0].get("version").is_some(), v.starts_with("0."), "{r}");
        }
        assert_eq!(r["dns"], json!({}));
    }
}

#[test]
fn long_container_ids_are_refused_at_add_and_old_leases_still_released() {
    let d = DataDir::new("longid");
    let c = dual("net", &d);
    Call::new("ADD", "short").run(&c).ok();
    let store = d.store("net");
    let max = cni::limits::MAX_CONTAINER_ID;
    assert_eq!(Call::new("ADD", &"x".repeat(max)).run(&c).ips().len(), 2, "at the bound");
    Call::new("DEL", &"x".repeat(max)).run(&c).ok();
    for len in [max + 1, 300, 5000] {
        let long = "x".repeat(len);
        // Refused with nothing written: a lease no later call could release.
        let before = snapshot(&d.0);
        let e = Call::new("ADD", &long).run(&c).err(4);
        assert!(e["msg"].as_str().unwrap().contains(&format!("at most {max}")), "{e}");
        assert_eq!(snapshot(&d.0), before, "{len}: store changed");
        // What an older release wrote for such an id is read, checked and
        // released: by DEL, and by GC when the id is not valid.
        std::fs::write(store.join("10.55.0.200"), format!("{long}\r\neth0")).unwrap();
        let mut check = c.clone();
        check["prevResult"] = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.55.0.200/24"}]});
        Call::new("CHECK", &long).run(&check).ok();
        Call::new("DEL", &long).run(&c).ok();
        assert!(!store.join("10.55.0.200").exists(), "{len}: DEL left the lease");
        std::fs::write(store.join("10.55.0.200"), format!("{long}\r\neth0")).unwrap();
        let gc = |valid: serde_json::Value| {
            let mut g = c.clone();
            g["cniVersion"] = json!("1.1.0");
            g["cni.dev/valid-attachments"] = valid;
            Call::new("GC", "").run(&g).ok();
        };
        gc(json!([{"containerID": "short", "ifname": "eth0"}, {"containerID": long, "ifname": "eth0"}]));
        assert!(store.join("10.55.0.200").exists(), "{len}: GC released a valid lease");
        gc(json!([{"containerID": "short", "ifname": "eth0"}]));
        assert!(!store.join("10.55.0.200").exists(), "{len}: GC kept it");
    }
    assert_eq!(leases(&store).len(), 2, "only short's");
}

#[test]
fn the_round_robin_position_is_rewritten_whole_when_the_address_gets_shorter() {
    let d = DataDir::new("rr-short");
    let c = conf(
        "1.0.0",
        "net",
        &d,
        json!({"ranges": [[{"subnet": "10.57.0.0/24", "rangeStart": "10.57.0.9", "rangeEnd": "10.57.0.10"}]]}),
    );
    let store = d.store("net");
    assert_eq!(Call::new("ADD", "a").run(&c).ips(), ["10.57.0.9/24"]);
    assert_eq!(Call::new("ADD", "b").run(&c).ips(), ["10.57.0.10/24"]);
    assert_eq!(std::fs::read_to_string(store.join("last_reserved_ip.0")).unwrap(), "10.57.0.10");
    Call::new("DEL", "a").run(&c);
    // The search wraps round to .9: the file says "10.57.0.9", not "10.57.0.90".
    assert_eq!(Call::new("ADD", "c").run(&c).ips(), ["10.57.0.9/24"]);
    assert_eq!(std::fs::read_to_string(store.join("last_reserved_ip.0")).unwrap(), "10.57.0.9");
    Call::new("DEL", "b").run(&c);
    assert_eq!(Call::new("ADD", "d").run(&c).ips(), ["10.57.0.10/24"], "the next search starts after .9");
}
