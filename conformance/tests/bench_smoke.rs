//! The benchmark's smoke run (`N=20`), so it cannot rot: every scenario
//! whose binaries exist runs through both suites and the floor, every
//! operation succeeds, the outputs render, and nothing the run made is
//! left behind. Timings are printed, never asserted.

use conformance::bench::{outputs, plot, report, run, Options, Status, REFERENCE_DIR};

#[test]
fn smoke_run_measures_everything_and_leaves_nothing() {
    // Without the reference installed (`make bench` installs it, `make
    // test` does not), ours stands in for it: the machinery is still run.
    let have_reference = std::path::Path::new(REFERENCE_DIR).join("bridge").exists();
    let opts = Options {
        n: 20,
        quick: true,
        ours_dir: conformance::bin_dir(),
        reference_dir: if have_reference { REFERENCE_DIR.into() } else { conformance::bin_dir() },
        only: Vec::new(),
        repo: None,
        command: "make bench QUICK=1 N=20".into(),
        progress: false,
        profile: false,
        no_reference: false,
        containers_without_ipv6: false,
    };
    let r = run(&opts);
    let table = report::text(&r);
    println!("{table}");
    assert!(r.leftovers.is_empty(), "left behind: {:?}", r.leftovers);
    for s in &r.scenarios {
        assert!(!matches!(s.status, Status::Failed(_)), "scenario {} failed: {:?}\n{table}", s.name, s.status);
    }
    assert!(r.ok());

    // Whatever ran has one measured sample per container and operation.
    let ran: Vec<_> = r.scenarios.iter().filter(|s| s.status == Status::Ok).collect();
    assert!(ran.iter().any(|s| s.name == "bridge"), "the bridge scenario must run: {table}");
    for s in &ran {
        for c in &s.columns {
            assert_eq!((c.add_ms.len(), c.del_ms.len()), (20, 20), "{} {}", s.name, c.label);
            assert!(c.add_ms.iter().chain(&c.del_ms).all(|ms| *ms > 0.0), "{} {}", s.name, c.label);
            // The floors run no plugin of their own (the chain floor's
            // no-op execs are not metered).
            use conformance::bench::suite::SuiteKind;
            if !matches!(c.kind, SuiteKind::Floor | SuiteKind::ChainFloor) {
                assert!(c.peak_rss_kib() > 0 && c.binary_bytes() > 0, "{} {}", s.name, c.label);
            }
        }
    }
    let bridge = r.completed("bridge").unwrap();
    assert!(bridge.column("floor").is_some() && bridge.column("reference").is_some());
    assert!(bridge.column("chain floor").is_some());
    assert!(table.contains("ours / chain floor"), "{table}");

    // The outputs render from the measured figures.
    let out = std::env::temp_dir().join(format!("bench-smoke-out-{}", std::process::id()));
    let w = outputs::write(&r, &out).expect("writing outputs");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&w.json).unwrap()).unwrap();
    assert_eq!(v["n"], 20);
    assert_eq!(v["ok"], true);
    assert!(plot::svg(&r).unwrap().contains("<polyline"));
    assert!(std::fs::read_to_string(&w.markdown).unwrap().contains("bridge + host-local"));
    std::fs::remove_dir_all(&out).unwrap();

    // Nothing of the run is left: no namespace with its prefix.
    assert!(r.prefix.starts_with("cnib"));
    let left: Vec<String> =
        conformance::bench::namespaces::list().into_iter().filter(|n| n.starts_with(&r.prefix)).collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
}

/// A directory holding one fake plugin `loopback` with this shell body.
fn fake_suite(tag: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = std::env::temp_dir().join(format!("bench-fake-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("loopback");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn run_loopback_with(ours: &std::path::Path) -> conformance::bench::BenchResult {
    let have_reference = std::path::Path::new(REFERENCE_DIR).join("loopback").exists();
    run(&Options {
        n: 3,
        quick: true,
        ours_dir: ours.to_path_buf(),
        reference_dir: if have_reference { REFERENCE_DIR.into() } else { conformance::bin_dir() },
        only: vec!["loopback".into()],
        repo: None,
        command: "test".into(),
        progress: false,
        profile: false,
        no_reference: false,
        containers_without_ipv6: false,
    })
}

#[test]
fn a_failing_add_fails_the_run_and_everything_is_still_removed() {
    let dir = fake_suite("fail", r#"echo '{"code": 100, "msg": "boom"}'; exit 1"#);
    let r = run_loopback_with(&dir);
    assert!(!r.ok());
    match &r.scenarios[0].status {
        Status::Failed(why) => assert!(why.contains("boom") && why.contains("ADD"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(r.leftovers.is_empty(), "{:?}", r.leftovers);
    assert!(report::text(&r).contains("FAILED"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn state_left_by_a_del_fails_the_run() {
    // ADD makes a veth pair in the host namespace; DEL forgets it.
    let dir = fake_suite(
        "leak",
        r#"if [ "$CNI_COMMAND" = ADD ]; then
  ip link add "lk$$" type veth peer name "lk$$b" || exit 1
  printf '{"cniVersion":"1.0.0","interfaces":[{"name":"lo","sandbox":"%s"}]}' "$CNI_NETNS"
fi"#,
    );
    let r = run_loopback_with(&dir);
    assert!(!r.ok());
    match &r.scenarios[0].status {
        Status::Failed(why) => assert!(why.contains("left behind") && why.contains("link left: lk"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(r.leftovers.is_empty(), "{:?}", r.leftovers);
    std::fs::remove_dir_all(&dir).unwrap();
}
