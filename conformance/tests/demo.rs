//! `make demo` cannot rot: every scene runs here and must pass, and nothing
//! the demo made may be left afterwards.

use conformance::bin;
use conformance::demo::{list_namespaces, NS_PREFIX};

#[test]
fn demo_runs_every_scene_and_leaves_nothing() {
    let out = std::process::Command::new(bin("demo"))
        .env("CNI_TEST_BIN_DIR", conformance::bin_dir())
        .output()
        .expect("running the demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.contains("checked: nothing left"), "{text}");
    let left: Vec<String> = list_namespaces().into_iter().filter(|n| n.starts_with(&format!("{NS_PREFIX}-"))).collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
}
