//! `make bench PROFILE=1`: one ADD and one DEL of the bridge chain with the
//! plugins' phase recording on; the profile names each process of the
//! chain (host-local under bridge), counts real netlink requests and an
//! nftables batch, and the run leaves nothing behind. Timings are
//! printed, never asserted.

use conformance::bench::{run, Options, REFERENCE_DIR};

#[test]
fn profile_shows_every_process_of_the_chain_and_its_phases() {
    // Set before the run starts any thread of its own; the plugins inherit
    // it (this file holds this one test, so nothing else reads the
    // environment meanwhile).
    let file = std::env::temp_dir().join(format!("bench-profile-test-{}", std::process::id()));
    std::env::set_var(phases::ENV, &file);
    let have_reference = std::path::Path::new(REFERENCE_DIR).join("bridge").exists();
    let r = run(&Options {
        n: 2,
        quick: true,
        ours_dir: conformance::bin_dir(),
        reference_dir: if have_reference { REFERENCE_DIR.into() } else { conformance::bin_dir() },
        only: vec!["bridge".into()],
        repo: None,
        command: "test".into(),
        progress: false,
        profile: true,
        no_reference: false,
        containers_without_ipv6: false,
    });
    std::env::remove_var(phases::ENV);
    let _ = std::fs::remove_file(&file);
    println!("{}", r.profile);
    assert!(r.ok(), "run failed or left state: {:?} {:?}", r.scenarios, r.leftovers);
    let lines: Vec<&str> = r.profile.lines().collect();
    let add = lines.iter().position(|l| l.starts_with("bridge + host-local — ours ADD")).expect("an ADD profile");
    let del = lines.iter().position(|l| l.starts_with("bridge + host-local — ours DEL")).expect("a DEL profile");
    let bridge_add = lines[add + 1];
    assert!(bridge_add.starts_with("  bridge") && !bridge_add.contains("not instrumented"), "{}", r.profile);
    // The veth pair, addresses, routes: several rtnetlink requests; the
    // masquerade element: one nftables batch.
    let requests: usize = bridge_add
        .split(" requests)")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a request count");
    assert!(requests >= 3, "{bridge_add}");
    assert!(bridge_add.contains("(1 batches"), "{bridge_add}");
    // host-local puts the lease on disk before ADD returns.
    let hl = lines[add + 2];
    assert!(hl.starts_with("    host-local"), "{}", r.profile);
    let syncs: usize = hl
        .split("fsync ")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .and_then(|n| n.parse().ok())
        .expect("an fsync count");
    assert!(syncs >= 1, "{hl}");
    assert!(lines[del + 1].starts_with("  bridge") && lines[del + 2].starts_with("    host-local"), "{}", r.profile);
}
