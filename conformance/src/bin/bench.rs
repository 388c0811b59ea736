//! `make bench`: runs every scenario with our plugins and the reference
//! ones, prints the table, writes JSON, SVG and Markdown, and fails when an
//! operation failed or something was left behind.
//!
//! Usage: `bench [--quick] [--n N | N=<n>] [--only a,b] [--out DIR]
//! [--ours DIR] [--reference DIR]`; `N` may also come from the environment.

use conformance::bench::{outputs, report, run, Options, DEFAULT_N, INTERRUPTED, QUICK_N, REFERENCE_DIR};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "bench: {msg}\nusage: bench [--quick] [--profile] [--n N | N=<n>] [--only loopback,host-local,bridge,portmap,macvlan,ptp,static,bandwidth,vxlan] [--no-reference] [--containers-without-ipv6] \
         [--out DIR] [--ours DIR] [--reference DIR]"
    );
    std::process::exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut quick = false;
    let mut profile = false;
    let mut no_reference = false;
    let mut containers_without_ipv6 = false;
    let mut n: Option<String> = std::env::var("N").ok().filter(|v| !v.is_empty());
    let mut only = Vec::new();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf();
    let mut out = repo.join("bench-out");
    let mut ours = conformance::bin_dir_of_exe();
    let mut reference = PathBuf::from(std::env::var("CNI_REF_DIR").unwrap_or_else(|_| REFERENCE_DIR.into()));
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().unwrap_or_else(|| usage(&format!("{name} needs a value")));
        match a.as_str() {
            "--quick" => quick = true,
            "--profile" => profile = true,
            "--no-reference" => no_reference = true,
            "--containers-without-ipv6" => containers_without_ipv6 = true,
            "--n" => n = Some(value("--n")),
            "--only" => only = value("--only").split(',').map(str::to_string).collect(),
            "--out" => out = PathBuf::from(value("--out")),
            "--ours" => ours = PathBuf::from(value("--ours")),
            "--reference" => reference = PathBuf::from(value("--reference")),
            "-h" | "--help" => usage("measures ours against the reference plugins"),
            other if other.starts_with("N=") => n = Some(other[2..].to_string()),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    let n = match n {
        Some(v) => v.parse().unwrap_or_else(|_| usage(&format!("N={v:?} is not a number"))),
        None if quick => QUICK_N,
        None => DEFAULT_N,
    };
    let mut command = "make bench".to_string();
    if quick {
        command.push_str(" QUICK=1");
    }
    if n != if quick { QUICK_N } else { DEFAULT_N } {
        command.push_str(&format!(" N={n}"));
    }
    if !only.is_empty() {
        command.push_str(&format!(" ONLY={}", only.join(",")));
    }
    if no_reference || containers_without_ipv6 {
        // Options `make bench` does not pass: the bench's own command line.
        command = std::env::args().collect::<Vec<_>>().join(" ");
    }
    // SAFETY: the handler only stores to an atomic, which is signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
    let opts = Options {
        n,
        quick,
        ours_dir: ours,
        reference_dir: reference,
        only,
        repo: Some(repo),
        command,
        progress: true,
        profile,
        no_reference,
        containers_without_ipv6,
    };
    if profile {
        // Before any thread starts: every plugin the runner execs inherits
        // it, and the runner's own exec records go to the same file.
        let file = std::env::temp_dir().join(format!("cni-bench-profile-{}", std::process::id()));
        std::env::set_var(phases::ENV, &file);
    }
    let result = run(&opts);
    if profile {
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("cni-bench-profile-{}", std::process::id())));
        println!("Per-phase profile (ms; one ADD and one DEL of container 1 after the warm-up):\n");
        print!("{}", result.profile);
        if !result.ok() {
            eprintln!("bench: FAILED (an operation failed or state was left behind; see above)");
            std::process::exit(1);
        }
        return;
    }
    print!("{}", report::text(&result));
    // A run that measured nothing keeps the files of the last one that did.
    let measured = result.scenarios.iter().any(|s| s.columns.iter().any(|c| !c.add_ms.is_empty()));
    if !measured {
        eprintln!("bench: nothing was measured; {} left as it was", out.display());
        std::process::exit(1);
    }
    match outputs::write(&result, &out) {
        Ok(w) => {
            println!("json: {}", w.json.display());
            if let Some(p) = &w.plot {
                println!("plot: {}", p.display());
            }
            println!("markdown: {}", w.markdown.display());
        }
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    }
    if !result.ok() {
        eprintln!("bench: FAILED (an operation failed or state was left behind; see above)");
        std::process::exit(1);
    }
}
