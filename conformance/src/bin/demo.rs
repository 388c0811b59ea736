//! `make demo`: Docker's network models, one scene after another, built
//! from this suite's plugins in namespaces the demo makes and removes.

use conformance::demo::{catch_ctrl_c, Demo, INTERRUPTED};
use conformance::scenes::{Scene, SCENES};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wanted = match args.iter().position(|a| a == "--scene") {
        Some(i) => args.get(i + 1).cloned(),
        None => std::env::var("SCENE").ok().filter(|s| !s.is_empty()),
    };
    let scenes: Vec<&Scene> = SCENES.iter().filter(|s| wanted.as_deref().is_none_or(|w| w == s.name)).collect();
    if scenes.is_empty() {
        let names: Vec<&str> = SCENES.iter().map(|s| s.name).collect();
        eprintln!("unknown scene {wanted:?}; scenes: {}", names.join(", "));
        std::process::exit(2);
    }
    catch_ctrl_c();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf();
    let bin_dir = conformance::bin_dir_of_exe();
    let mut demo = Demo::new(bin_dir, &repo.join("cni-conf"), repo.join("demo-out"));
    let started = std::time::Instant::now();
    for (i, scene) in scenes.iter().enumerate() {
        if INTERRUPTED.load(Ordering::SeqCst) {
            println!("\ninterrupted: skipping the remaining scenes");
            break;
        }
        demo.heading(i + 1, scene.title, scene.about);
        (scene.run)(&mut demo);
    }
    let clean = demo.cleanup();
    println!(
        "\n{} passed, {} failed ({:.1} s)",
        demo.passes,
        demo.failures + u32::from(!clean),
        started.elapsed().as_secs_f64()
    );
    let ok = demo.failures == 0 && clean && !INTERRUPTED.load(Ordering::SeqCst);
    std::process::exit(if ok { 0 } else { 1 });
}
