//! cnitool with the real reference loopback plugin (/usr/lib/cni) in a
//! network namespace made for the test (root needed), at cniVersion 1.0.0.

use serde_json::Value;
use std::process::Command;

const REFERENCE_DIR: &str = "/usr/lib/cni";

/// A named netns (`ip netns add`), deleted on drop, also on panic.
struct Netns {
    name: String,
}

impl Netns {
    fn new(prefix: &str) -> Netns {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("{prefix}-{}-{nanos:x}", std::process::id());
        let st = Command::new("ip").args(["netns", "add", &name]).status().expect("ip netns add runs");
        assert!(st.success(), "ip netns add {name} failed (root needed)");
        Netns { name }
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip -j link show lo` in the namespace: the independent witness.
    fn lo_flags(&self) -> Vec<String> {
        let out = Command::new("ip").args(["-n", &self.name, "-j", "link", "show", "lo"]).output().unwrap();
        assert!(out.status.success());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["flags"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

fn cnitool(args: &[&str], conf: &std::path::Path, cache: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cnitool"))
        .args(args)
        .env("NETCONFPATH", conf)
        .env("CNI_PATH", REFERENCE_DIR)
        .env("CNI_CACHE_DIR", cache)
        .env("CNI_IFNAME", "lo")
        .env_remove("CAP_ARGS")
        .env_remove("CNI_ARGS")
        .env_remove("CNI_CONTAINERID")
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn reference_loopback_add_check_del_status() {
    assert!(
        std::path::Path::new(REFERENCE_DIR).join("loopback").exists(),
        "the reference plugins are expected in {REFERENCE_DIR}"
    );
    let ns = Netns::new("rt-lo");
    let tmp = tempfile::tempdir().unwrap();
    let (conf, cache) = (tmp.path().join("conf"), tmp.path().join("cache"));
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(
        conf.join("10-lo.conflist"),
        r#"{"cniVersion":"1.0.0","name":"lo-test","plugins":[{"type":"loopback"}]}"#,
    )
    .unwrap();
    assert!(!ns.lo_flags().contains(&"UP".to_string()));

    let (code, out, err) = cnitool(&["add", "lo-test", &ns.path()], &conf, &cache);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["cniVersion"], "1.0.0");
    assert_eq!(r["interfaces"][0]["name"], "lo");
    assert_eq!(r["interfaces"][0]["sandbox"], ns.path());
    let addrs: Vec<&str> = r["ips"].as_array().unwrap().iter().map(|i| i["address"].as_str().unwrap()).collect();
    assert!(addrs.contains(&"127.0.0.1/8"), "{addrs:?}");
    assert!(ns.lo_flags().contains(&"UP".to_string()));
    let cid = runtime::cli::container_id_for(&ns.path());
    assert!(cache.join(format!("lo-test-{cid}-lo")).exists());

    let (code, out, err) = cnitool(&["check", "lo-test", &ns.path()], &conf, &cache);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_eq!(out, "");

    // STATUS at 1.0.0 has nothing to ask: success, as libcni.
    let (code, _, err) = cnitool(&["status", "lo-test"], &conf, &cache);
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = cnitool(&["del", "lo-test", &ns.path()], &conf, &cache);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_eq!(out, "");
    assert!(!ns.lo_flags().contains(&"UP".to_string()));
    assert!(!cache.join(format!("lo-test-{cid}-lo")).exists());

    // A plugin's own error comes back as a CNI error: 1.1.0 is beyond the
    // reference plugins (they stop at 1.0.0).
    std::fs::write(
        conf.join("10-lo.conflist"),
        r#"{"cniVersion":"1.1.0","name":"lo-test","plugins":[{"type":"loopback"}]}"#,
    )
    .unwrap();
    let (code, out, _) = cnitool(&["add", "lo-test", &ns.path()], &conf, &cache);
    assert_eq!(code, 1);
    let e: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["code"], 1, "{out}");
    assert!(e["msg"].as_str().unwrap().starts_with("plugin type=\"loopback\" name=\"lo-test\" failed (add)"));
}
