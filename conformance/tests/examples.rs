//! Every example in `cni-conf/` is exercised: the bridge and loopback ones
//! here, through cnitool in a fresh host (ADD, CHECK, DEL, nothing left);
//! the ones that need a special topology (an underlay, peers) by the test
//! of their plugin, which must name the file.

use conformance::fixture::Host;
use conformance::{witness, TestNs};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("cni-conf"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("conf" | "conflist")))
        .collect();
    v.sort();
    v
}

fn first_type(v: &Value) -> String {
    let p = v.get("plugins").and_then(|p| p.get(0)).unwrap_or(v);
    p["type"].as_str().unwrap_or_default().to_string()
}

fn cnitool(host: &Host, confdir: &Path, args: &[&str]) -> std::process::Output {
    let env = [
        ("CAP_ARGS", r#"{"portMappings":[{"hostPort":18080,"containerPort":80,"protocol":"tcp"}]}"#),
        // The container's name, as Podman and kubelet send it (dnsname needs it).
        ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=ex"),
    ];
    host.cnitool(confdir, args, &env)
}

#[test]
fn bridge_and_loopback_examples_run_through_cnitool() {
    for path in examples() {
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if !matches!(first_type(&v).as_str(), "bridge" | "loopback") {
            continue;
        }
        let host = Host::new("ex");
        let confdir = host.dir.join("net.d");
        std::fs::create_dir_all(&confdir).unwrap();
        conformance::demo::point_stores_at(&mut v, &host.ipam_dir());
        // dnsname's records and server files go to the scratch dir too.
        for p in v["plugins"].as_array_mut().into_iter().flatten() {
            if p["type"] == "dnsname" {
                p["dataDir"] = host.dir.join("dnsname").display().to_string().into();
            }
        }
        std::fs::write(confdir.join(path.file_name().unwrap()), v.to_string()).unwrap();
        let name = v["name"].as_str().unwrap().to_string();
        let ctr = TestNs::new("ex-c");
        for cmd in ["add", "check", "del"] {
            let out = cnitool(&host, &confdir, &[cmd, &name, &ctr.path()]);
            assert!(out.status.success(), "{}: cnitool {cmd}: {out:?}", path.display());
        }
        assert!(host.veths().is_empty(), "{}: veths left", path.display());
        let dns_left = host.dir.join("dnsname").join(&name);
        let left: Vec<_> =
            std::fs::read_dir(&dns_left).into_iter().flatten().flatten().map(|e| e.file_name()).collect();
        assert!(left.iter().all(|f| f == "lock"), "{}: dnsname left {left:?}", path.display());
        assert_eq!(host.ns.ok(&["ss", "-H", "-lnu", "sport = :53"]), "", "{}: a name server left", path.display());
        assert!(host.leases(&name).is_empty(), "{}: leases left", path.display());
        assert_eq!(
            witness::ip(&host.ns, &["link", "show", "type", "ifb"]),
            serde_json::json!([]),
            "{}: ifb left",
            path.display()
        );
        assert_eq!(witness::link_names(&ctr), vec!["lo"], "{}: container not clean", path.display());
    }
}

#[test]
fn every_other_example_is_named_by_a_test() {
    let tests: String = std::fs::read_dir(repo().join("conformance/tests"))
        .unwrap()
        .flatten()
        .filter(|e| e.path() != Path::new(file!()))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    for path in examples() {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if matches!(first_type(&v).as_str(), "bridge" | "loopback") {
            continue;
        }
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(tests.contains(&file), "no test exercises cni-conf/{file}");
    }
}
