//! The chaos test: random sequences of ADD, CHECK, DEL and GC over four
//! networks (bridge + host-local + portmap; a second bridge network on the
//! same Linux bridge and subnet, split by range; macvlan + host-local;
//! ptp + host-local with ipMasq), run
//! through the runtime library as a container runtime runs them, several
//! operations at once, with SIGKILL injected into plugin processes at
//! random moments. A killed ADD or DEL is followed up as a runtime does
//! (DEL until it succeeds). Two operations aim at what one network may do
//! to another and at a runtime that restarts: GC of one network while the
//! other keeps containers on the same bridge, and a DEL racing the ADD of
//! the same attachment. After every step the invariants are checked:
//!
//! - no address is held by two containers, and each running container has
//!   exactly the addresses of its ADD result in its namespace;
//! - CHECK passes for every running container;
//! - nothing of a container that is not running remains: no lease, no host
//!   veth, no nftables element naming it or its address, no route to its
//!   address, no cache entry; and at the end, after DEL of everything and
//!   a GC with an empty valid list, nothing at all.
//!
//! Everything runs in a "host" namespace made for the run and in container
//! namespaces made per slot, all removed at the end. The sequence of
//! operations, kill points and delays is a function of the seed, which is
//! printed; the moment a kill lands depends on scheduling, so a replay runs
//! the same program against the same kill schedule.
//!
//! Split by concern: [`generator`] (the seeded choice of operations),
//! [`exec`] (plugin processes and the kills), `lab` (the namespaces,
//! networks and what each operation does), `invariants` (the checks).

pub mod exec;
pub mod generator;
mod invariants;
mod lab;
mod net;

pub use exec::runtime_in;
pub use generator::{fresh_seed, Rng};

use generator::Step;
use lab::Lab;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Steps; each is one to `parallel` operations at once, or one GC.
    pub steps: usize,
    /// The seed of every random choice.
    pub seed: u64,
    /// Container slots (each holds at most one running container).
    pub slots: usize,
    /// Most operations run at once in one step.
    pub parallel: usize,
    /// Percentage of operations that get a SIGKILL scheduled.
    pub kill_percent: u64,
    /// Longest delay before a scheduled kill.
    pub max_kill_delay: Duration,
    /// Whether the bridge network chains portmap.
    pub portmap: bool,
    /// Whether the macvlan network takes part.
    pub macvlan: bool,
    /// Whether the ptp network takes part.
    pub ptp: bool,
    /// Print one line per step.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            steps: 100,
            seed: 1,
            slots: 6,
            parallel: 3,
            kill_percent: 30,
            max_kill_delay: Duration::from_millis(12),
            portmap: true,
            macvlan: true,
            ptp: true,
            verbose: false,
        }
    }
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Steps run.
    pub steps: usize,
    /// Operations run, by kind (follow-up DELs included).
    pub ops: BTreeMap<&'static str, usize>,
    /// Kills scheduled.
    pub kills_scheduled: usize,
    /// Plugin processes that died of a scheduled SIGKILL.
    pub kills_landed: usize,
    /// Invariant checks passed.
    pub checks: usize,
    /// Wall time.
    pub elapsed: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ops: Vec<String> = self.ops.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(
            f,
            "{} steps in {:.1}s: {}; {} kills scheduled, {} landed; invariants checked {} times",
            self.steps,
            self.elapsed.as_secs_f64(),
            ops.join(" "),
            self.kills_scheduled,
            self.kills_landed,
            self.checks
        )
    }
}

/// Runs the chaos test; `Err` describes the first broken invariant with the
/// seed and the operations that led to it.
pub fn run(opts: &Options) -> Result<Report, String> {
    let start = Instant::now();
    let lab = Lab::new(opts.clone());
    let mut rng = Rng::new(opts.seed);
    let nets = lab.nets();
    for step in 1..=opts.steps {
        let live = |i: usize| lab.slots[i].lock().unwrap_or_else(|p| p.into_inner()).live.is_some();
        let next = generator::next_step(&mut rng, &nets, opts.slots, opts.parallel, live);
        let line = match &next {
            Step::Gc(net) => format!("step {step}: GC {}", net.name()),
            Step::DelAll => format!("step {step}: DEL all + GC"),
            Step::Ops(batch) => {
                let ops: Vec<String> = batch.iter().map(|(i, op, _)| format!("{op:?}@{i}")).collect();
                format!("step {step}: {}", ops.join(" "))
            }
        };
        lab.note(line.clone());
        let outcome = match next {
            Step::Gc(net) => lab.gc(net, &mut rng),
            Step::DelAll => lab.del_all(&mut rng),
            Step::Ops(batch) => {
                let lab = &lab;
                let results: Vec<Result<(), String>> = std::thread::scope(|s| {
                    let handles: Vec<_> =
                        batch.iter().map(|&(i, op, seed)| s.spawn(move || lab.op(i, op, seed))).collect();
                    handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("operation panicked".into()))).collect()
                });
                results.into_iter().collect()
            }
        };
        if opts.verbose {
            eprintln!("{line}");
        }
        outcome.and_then(|()| lab.verify()).map_err(|e| lab.fail(step, e))?;
    }
    lab.note("final: DEL all + GC".into());
    lab.del_all(&mut rng).and_then(|()| lab.verify()).map_err(|e| lab.fail(opts.steps + 1, e))?;
    let mut report = lab.report.lock().unwrap_or_else(|p| p.into_inner()).clone();
    report.steps = opts.steps;
    report.elapsed = start.elapsed();
    Ok(report)
}
