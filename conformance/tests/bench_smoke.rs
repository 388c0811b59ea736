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
            if c.kind != conformance::bench::suite::SuiteKind::Floor {
                assert!(c.peak_rss_kib() > 0 && c.binary_bytes() > 0, "{} {}", s.name, c.label);
            }
        }
    }
    let bridge = r.completed("bridge").unwrap();
    assert!(bridge.column("floor").is_some() && bridge.column("reference").is_some());

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
    let prefix = format!("cnib{}-", std::process::id());
    let left: Vec<String> =
        conformance::bench::namespaces::list().into_iter().filter(|n| n.starts_with(&prefix)).collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
}
