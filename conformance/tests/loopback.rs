//! loopback: ADD brings `lo` up in the container, CHECK verifies it, DEL is
//! idempotent also when the namespace is gone; directly and through cnitool.

use conformance::witness;
use conformance::{bin_dir, run_plugin, TestNs};

fn env<'a>(cmd: &'a str, ns: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("CNI_COMMAND", cmd), ("CNI_CONTAINERID", "lo-ctr"), ("CNI_NETNS", ns), ("CNI_IFNAME", "eth0")]
}

fn lo_is_up(ns: &TestNs) -> bool {
    let l = witness::link(ns, "lo").expect("lo exists");
    l["flags"].as_array().unwrap().iter().any(|f| f == "UP")
}

fn conf(version: &str) -> String {
    format!(r#"{{"cniVersion":"{version}","name":"lo","type":"loopback"}}"#)
}

#[test]
fn add_brings_lo_up_and_reports_it() {
    let ns = TestNs::new("lo-add");
    let path = ns.path();
    assert!(!lo_is_up(&ns));
    let v = run_plugin(None, "loopback", &env("ADD", &path), &conf("1.0.0")).ok().json();
    assert!(lo_is_up(&ns));
    assert!(ns.ping("127.0.0.1"));
    assert_eq!(v["cniVersion"], "1.0.0");
    assert_eq!(v["interfaces"][0]["name"], "lo");
    assert_eq!(v["interfaces"][0]["mac"], "00:00:00:00:00:00");
    assert_eq!(v["interfaces"][0]["sandbox"], path.as_str());
    assert_eq!(v["ips"][0]["address"], "127.0.0.1/8");
    assert_eq!(v["ips"][0]["interface"], 0);
    assert_eq!(v["ips"][1]["address"], "::1/128");
    assert!(witness::addresses(&ns, "lo").contains(&"127.0.0.1/8".to_string()));
}

#[test]
fn add_result_follows_the_config_version() {
    for (version, check) in
        [("0.2.0", "ip4"), ("0.3.1", "interfaces"), ("0.4.0", "interfaces"), ("1.1.0", "interfaces")]
    {
        let ns = TestNs::new("lo-ver");
        let v = run_plugin(None, "loopback", &env("ADD", &ns.path()), &conf(version)).ok().json();
        assert_eq!(v["cniVersion"], version);
        assert!(v.get(check).is_some(), "{version}: {v}");
        if version == "0.2.0" {
            assert_eq!(v["ip4"]["ip"], "127.0.0.1/8");
        }
        if version.starts_with("0.") && version != "0.2.0" {
            assert_eq!(v["ips"][0]["version"], "4");
        }
    }
}

#[test]
fn check_verifies_lo_is_up() {
    let ns = TestNs::new("lo-check");
    let path = ns.path();
    let add = run_plugin(None, "loopback", &env("ADD", &path), &conf("1.0.0")).ok();
    let with_prev = format!(r#"{{"cniVersion":"1.0.0","name":"lo","type":"loopback","prevResult":{}}}"#, add.stdout);
    let r = run_plugin(None, "loopback", &env("CHECK", &path), &with_prev).ok();
    assert!(r.stdout.is_empty());
    ns.ok(&["ip", "link", "set", "lo", "down"]);
    let v = run_plugin(None, "loopback", &env("CHECK", &path), &with_prev).err(100);
    assert!(v["msg"].as_str().unwrap().contains("down"), "{v}");
}

#[test]
fn del_is_idempotent_and_succeeds_without_a_namespace() {
    let ns = TestNs::new("lo-del");
    let path = ns.path();
    run_plugin(None, "loopback", &env("ADD", &path), &conf("1.0.0")).ok();
    for _ in 0..2 {
        let r = run_plugin(None, "loopback", &env("DEL", &path), &conf("1.0.0")).ok();
        assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{r:?}");
    }
    assert!(!lo_is_up(&ns));
    // containerd sends DEL with an empty CNI_NETNS.
    run_plugin(None, "loopback", &env("DEL", ""), &conf("1.0.0")).ok();
    // The namespace is already gone.
    let gone = ns.path();
    drop(ns);
    let r = run_plugin(None, "loopback", &env("DEL", &gone), &conf("1.0.0")).ok();
    assert!(r.stdout.is_empty());
}

#[test]
fn add_to_a_missing_namespace_fails_cleanly() {
    let v = run_plugin(None, "loopback", &env("ADD", "/run/netns/no-such-ns-lo"), &conf("1.0.0")).err(3);
    assert!(v["msg"].as_str().unwrap().contains("no-such-ns-lo"), "{v}");
}

#[test]
fn works_through_cnitool() {
    let ns = TestNs::new("lo-tool");
    let confdir = std::env::temp_dir().join(format!("lo-tool-{}", std::process::id()));
    let cache = confdir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::copy(repo.join("cni-conf/99-loopback.conf"), confdir.join("99-loopback.conf")).unwrap();
    let tool = |cmd: &str| {
        std::process::Command::new(bin_dir().join("cnitool"))
            .args([cmd, "lo", &ns.path()])
            .env("NETCONFPATH", &confdir)
            .env("CNI_PATH", bin_dir())
            .env("CNI_CACHE_DIR", &cache)
            .output()
            .unwrap()
    };
    let out = tool("add");
    assert!(out.status.success(), "{out:?}");
    assert!(lo_is_up(&ns));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ips"][0]["address"], "127.0.0.1/8");
    assert!(tool("check").status.success());
    assert!(tool("del").status.success());
    assert!(!lo_is_up(&ns));
    assert!(tool("del").status.success());
    let _ = std::fs::remove_dir_all(&confdir);
}

#[test]
fn missing_cni_version_means_010() {
    let ns = TestNs::new("lo-v010");
    let v = run_plugin(None, "loopback", &env("ADD", &ns.path()), r#"{"name":"lo","type":"loopback"}"#).ok().json();
    assert_eq!(v["cniVersion"], "0.1.0");
    assert_eq!(v["ip4"]["ip"], "127.0.0.1/8");
    assert_eq!(v["ip6"]["ip"], "::1/128");
}

#[test]
fn kubelet_cni_args_and_a_prev_result_in_the_config_version() {
    let ns = TestNs::new("lo-k8s");
    let path = ns.path();
    let mut e = env("ADD", &path);
    e.push(("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web1;K8S_POD_NAMESPACE=default;IP=10.89.77.50"));
    for version in ["0.4.0", "1.0.0"] {
        let add = run_plugin(None, "loopback", &e, &conf(version)).ok();
        let prev: serde_json::Value = serde_json::from_str(&add.stdout).unwrap();
        assert_eq!(prev["cniVersion"], version);
        let with_prev =
            format!(r#"{{"cniVersion":"{version}","name":"lo","type":"loopback","prevResult":{}}}"#, add.stdout);
        let mut check = e.clone();
        check[0] = ("CNI_COMMAND", "CHECK");
        run_plugin(None, "loopback", &check, &with_prev).ok();
        let mut del = e.clone();
        del[0] = ("CNI_COMMAND", "DEL");
        run_plugin(None, "loopback", &del, &with_prev).ok();
    }
}
