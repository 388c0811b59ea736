//! `chaos`: the chaos test as a program (`make chaos STEPS=1000 SEED=...`).
//! Runs as root; everything it makes lives in namespaces it removes.

use conformance::chaos::{fresh_seed, run, Options};
use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: chaos [--steps N] [--seed N] [--slots N] [--parallel N] [--kill-percent P] [--max-kill-delay-ms MS] \
         [--no-portmap] [--no-macvlan] [-v]\n\
         The binaries are taken from the directory of this program (or CNI_TEST_BIN_DIR)."
    );
    std::process::exit(2)
}

fn main() {
    let mut opts = Options { seed: fresh_seed(), ..Options::default() };
    if let Some(s) = std::env::var("CHAOS_SEED").ok().and_then(|s| s.parse().ok()) {
        opts.seed = s;
    }
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> u64 {
            args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{what} needs a number");
                usage()
            })
        };
        match a.as_str() {
            "--steps" => opts.steps = num("--steps") as usize,
            "--seed" => opts.seed = num("--seed"),
            "--slots" => opts.slots = num("--slots").max(1) as usize,
            "--parallel" => opts.parallel = num("--parallel").max(1) as usize,
            "--kill-percent" => opts.kill_percent = num("--kill-percent").min(100),
            "--max-kill-delay-ms" => opts.max_kill_delay = Duration::from_millis(num("--max-kill-delay-ms").max(1)),
            "--no-portmap" => opts.portmap = false,
            "--no-macvlan" => opts.macvlan = false,
            "-v" | "--verbose" => opts.verbose = true,
            _ => usage(),
        }
    }
    if std::env::var("CNI_TEST_BIN_DIR").is_err() {
        std::env::set_var("CNI_TEST_BIN_DIR", conformance::bin_dir_of_exe());
    }
    eprintln!(
        "chaos: seed {} ({} steps, {} slots, up to {} at once, {}% of operations killed)",
        opts.seed, opts.steps, opts.slots, opts.parallel, opts.kill_percent
    );
    match run(&opts) {
        Ok(report) => println!("chaos: PASS seed {}: {report}", opts.seed),
        Err(e) => {
            eprintln!("{e}");
            println!("chaos: FAIL seed {}", opts.seed);
            std::process::exit(1);
        }
    }
}
