//! A short chaos run inside `make test` (the long one is `make chaos`):
//! random ADD/CHECK/DEL/GC over bridge+host-local+portmap and
//! macvlan+host-local, several at once, with SIGKILLs, every invariant
//! checked after every step. The seed is fixed so CI is repeatable; set
//! CHAOS_SEED to try another, CHAOS_STEPS for a longer run.

use conformance::chaos::{run, Options};

#[test]
fn chaos_short_run_keeps_every_invariant() {
    let seed = std::env::var("CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_261_123);
    let steps = std::env::var("CHAOS_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    eprintln!("chaos: seed {seed}, {steps} steps");
    match run(&Options { seed, steps, ..Options::default() }) {
        Ok(report) => eprintln!("chaos: {report}"),
        Err(e) => panic!("{e}"),
    }
}
