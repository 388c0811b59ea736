//! The measurement itself. For each scenario: a fresh host namespace per
//! column (so ours and the reference never share a bridge or a table), the
//! same config file in each, one warm-up attachment that makes the shared
//! state, a snapshot of it; then N ADDs and N DELs, interleaved column by
//! column (the order rotates with k) so a drift in machine speed hits every
//! suite alike; then the leak check and the removal of the hosts.
//!
//! Plugins run as a runtime runs them: the bench thread enters the host
//! namespace with `setns()` and the runtime library execs the chain from
//! there; the time of an operation is the runtime's whole ADD or DEL call,
//! plugin execs included.
//!
//! Containers are namespaces made once per run (one set per column slot,
//! N+1 each, the first for the warm-up) and reused by every scenario;
//! each scenario checks that it leaves them as empty as it found them.

use super::exec::MeteredExec;
use super::floor;
use super::namespaces::{self, ip_batch, links_here, Home, Netns, Registry};
use super::results::{BenchResult, Column, Meta, ScenarioResult, Status};
use super::scenarios::{self, Participant, Scenario, MAX_N};
use super::snapshot::{self, HostState};
use super::stats::Summary;
use super::suite::{self, SuiteKind, Suites};
use kernel::netlink::Family;
use kernel::sysctl;
use runtime::{NetConfList, Runtime};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set (by a Ctrl-C handler) to stop after the current operation; the run
/// then cleans up and reports the scenario as failed.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Runs started by this process, to name each one's namespaces apart.
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// How to run the bench.
#[derive(Debug, Clone)]
pub struct Options {
    /// Containers per network.
    pub n: usize,
    /// Recorded in the report (`--quick` chose a small N).
    pub quick: bool,
    /// Directory of our plugin binaries.
    pub ours_dir: PathBuf,
    /// Directory of the reference binaries (`/usr/lib/cni`).
    pub reference_dir: PathBuf,
    /// Only these scenarios (all when empty).
    pub only: Vec<String>,
    /// The repository, for our version (git commit).
    pub repo: Option<PathBuf>,
    /// The command line that reproduces the run, for the report.
    pub command: String,
    /// Print progress on stderr.
    pub progress: bool,
    /// Only profile one ADD and one DEL of each scenario with our plugins
    /// (needs `CNI_RS_PROFILE` set in this process's environment before
    /// any thread starts; see [`super::profile`]).
    pub profile: bool,
    /// Leave out the reference columns (a density run of ours alone: the
    /// reference takes most of a long run's time, and its ptp fails by
    /// itself before 1,000 containers).
    pub no_reference: bool,
    /// Container namespaces get IPv6 turned off before any plugin runs: a
    /// diagnostic that takes the kernel's flooding of every new
    /// container's IPv6 link-local chatter (MLD reports, router
    /// solicitations) to all the others out of a density run.
    pub containers_without_ipv6: bool,
}

/// One column while it runs.
struct Live {
    spec: Participant,
    slot: usize,
    host: Netns,
    plugin: Option<(Runtime, NetConfList, Arc<MeteredExec>)>,
    data_dir: PathBuf,
    baseline: HostState,
    result: Column,
}

/// ADD or DEL.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Add,
    Del,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Add => "ADD",
            Op::Del => "DEL",
        }
    }
}

/// Progress lines on stderr: at the start and end of a phase, and at every
/// tenth or every 15 s in between.
struct Progress {
    on: bool,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn line(&mut self, text: &str) {
        if self.on {
            let s = self.started.elapsed().as_secs();
            eprintln!("bench [{:>2}:{:02}] {text}", s / 60, s % 60);
        }
        self.last = Instant::now();
    }

    fn step(&mut self, what: &str, op: Op, k: usize, n: usize, cols: &[Live]) {
        let tenth = (n / 10).max(1);
        if !(k == 1 || k == n || k.is_multiple_of(tenth) || self.last.elapsed() > Duration::from_secs(15)) {
            return;
        }
        let parts: Vec<String> = cols
            .iter()
            .map(|c| {
                let s = if op == Op::Add { &c.result.add_ms } else { &c.result.del_ms };
                format!("{} {:.2} ms", c.spec.label, Summary::of(s).p50)
            })
            .collect();
        self.line(&format!("{what}: {} {k} of {n} (p50 so far: {})", op.name(), parts.join(", ")));
    }
}

/// The state of a run: its namespaces, scratch space and suites.
struct Bench<'o> {
    opts: &'o Options,
    home: Home,
    reg: Registry,
    work: PathBuf,
    suites: Suites,
    slots: usize,
    progress: Progress,
    profile: String,
}

fn read_first(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find(|l| l.starts_with(key)).and_then(|l| l.split(':').nth(1)).map(|v| v.trim().to_string())
}

/// Date, machine and versions for the report.
pub fn meta(opts: &Options) -> Meta {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    Meta {
        date,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
        cpu: read_first("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        mem_mib: read_first("/proc/meminfo", "MemTotal")
            .and_then(|v| v.split_whitespace().next().and_then(|k| k.parse::<u64>().ok()))
            .map(|kib| kib / 1024)
            .unwrap_or(0),
        ours: opts.repo.as_deref().map(suite::ours_version).unwrap_or_else(|| suite::ours_version(Path::new("."))),
        reference: suite::reference_version(),
        n: opts.n,
        quick: opts.quick,
        command: opts.command.clone(),
    }
}

/// Runs the bench: every selected scenario, then the final cleanup and its
/// check. Failures are in the result ([`BenchResult::ok`]), never a panic.
pub fn run(opts: &Options) -> BenchResult {
    let started = Instant::now();
    let mut result = BenchResult { meta: meta(opts), ..Default::default() };
    // Unique per run, also for several runs in one process (tests).
    let run_id = format!("cnib{}-{}-", std::process::id(), RUNS.fetch_add(1, Ordering::SeqCst));
    result.prefix = run_id.clone();
    let work = std::env::temp_dir().join(format!("cni-bench-{}", run_id.trim_end_matches('-')));
    let home = match Home::current() {
        Ok(h) => h,
        Err(e) => {
            result.leftovers.push(format!("cannot start: {e}"));
            return result;
        }
    };
    let root_links = links_here();
    let mut bench = Bench {
        opts,
        home,
        reg: Registry::new(run_id),
        work: work.clone(),
        suites: Suites { ours: work.join("ours-bin"), reference: None },
        slots: 0,
        progress: Progress { on: opts.progress, started, last: started },
        profile: String::new(),
    };
    let mut scenarios = scenarios::all();
    scenarios.retain(|s| opts.only.is_empty() || opts.only.iter().any(|o| o == s.name));
    if opts.no_reference {
        for s in &mut scenarios {
            s.participants.retain(|p| p.kind != SuiteKind::Reference);
        }
        scenarios.retain(|s| !s.participants.is_empty());
    }
    let setup = (|| -> Result<(), String> {
        if opts.n == 0 || opts.n > MAX_N {
            return Err(format!(
                "N={} is outside 1..={MAX_N} (a Linux bridge holds at most {MAX_N} ports: one per container)",
                opts.n
            ));
        }
        suite::snapshot_binaries(&opts.ours_dir, &bench.suites.ours, scenarios::PLUGINS)?;
        if opts.reference_dir.is_dir() {
            bench.suites.reference = Some(opts.reference_dir.clone());
        }
        Ok(())
    })();
    if let Err(e) = setup {
        result.leftovers.extend(bench.finish(&root_links));
        result.scenarios.push(ScenarioResult {
            name: "setup".into(),
            title: "setup".into(),
            status: Status::Failed(e),
            columns: Vec::new(),
            timed_plugin: None,
            configs: Vec::new(),
            seconds: 0.0,
        });
        return result;
    }
    let total = scenarios.len();
    for (i, sc) in scenarios.iter().enumerate() {
        if INTERRUPTED.load(Ordering::SeqCst) {
            result.scenarios.push(ScenarioResult {
                name: sc.name.to_string(),
                title: sc.title.to_string(),
                status: Status::Skipped("interrupted".into()),
                columns: Vec::new(),
                timed_plugin: None,
                configs: Vec::new(),
                seconds: 0.0,
            });
            continue;
        }
        let r = bench.scenario(sc, i + 1, total);
        if let Status::Failed(e) = &r.status {
            eprintln!("bench: scenario {} FAILED: {e}", sc.name);
        }
        result.scenarios.push(r);
    }
    result.leftovers.extend(bench.finish(&root_links));
    result.profile = std::mem::take(&mut bench.profile);
    result.total_seconds = started.elapsed().as_secs_f64();
    bench.progress.line(&format!("done in {:.1} s", result.total_seconds));
    result
}

fn container(prefix: &str, slot: usize, k: usize) -> String {
    format!("{prefix}s{slot}-{k}")
}

impl Bench<'_> {
    fn container(&self, slot: usize, k: usize) -> String {
        container(self.reg.prefix(), slot, k)
    }

    fn slot_names(&self, slot: usize) -> Vec<String> {
        (0..=self.opts.n).map(|k| self.container(slot, k)).collect()
    }

    /// Makes the container namespaces of slots up to `count`.
    fn ensure_slots(&mut self, count: usize) -> Result<(), String> {
        while self.slots < count {
            let names = self.slot_names(self.slots);
            self.reg.create(&names)?;
            self.prepare_containers(&names)?;
            self.slots += 1;
        }
        Ok(())
    }

    /// What every fresh container namespace gets before a plugin sees it.
    fn prepare_containers(&self, names: &[String]) -> Result<(), String> {
        if !self.opts.containers_without_ipv6 {
            return Ok(());
        }
        for name in names {
            self.home.within(name, || {
                for scope in ["all", "default"] {
                    let key = sysctl::conf_key(Family::V6, scope, "disable_ipv6");
                    sysctl::set(&key, "1").map_err(|e| format!("{name}: {e}"))?;
                }
                Ok::<(), String>(())
            })??;
        }
        Ok(())
    }

    /// Replaces the containers of `slot` by fresh ones (after a failure
    /// that may have left something in them).
    fn renew_slot(&mut self, slot: usize) -> Result<(), String> {
        let names = self.slot_names(slot);
        self.reg.delete(&names);
        self.reg.create(&names)?;
        self.prepare_containers(&names)
    }

    /// Runs one scenario to a [`ScenarioResult`].
    fn scenario(&mut self, sc: &Scenario, index: usize, total: usize) -> ScenarioResult {
        let started = Instant::now();
        let mut out = ScenarioResult {
            name: sc.name.to_string(),
            title: sc.title.to_string(),
            status: Status::Ok,
            columns: Vec::new(),
            timed_plugin: sc.timed_plugin.map(str::to_string),
            configs: sc.participants.iter().filter_map(|p| p.conflist.clone().map(|c| (p.label.clone(), c))).collect(),
            seconds: 0.0,
        };
        let mut missing = Vec::new();
        for kind in sc.kinds() {
            let m = self.suites.missing(kind, &sc.plugins);
            if !m.is_empty() {
                missing.push(format!("{} has no {}", kind.label(), m.join(", ")));
            }
        }
        if !missing.is_empty() {
            out.status = Status::Skipped(missing.join("; "));
            self.progress.line(&format!("[{index}/{total} {}] skipped: {}", sc.name, missing.join("; ")));
            return out;
        }
        self.progress.line(&format!("[{index}/{total} {}] {} — N={}", sc.name, sc.title, self.opts.n));
        let mut cols: Vec<Live> = Vec::new();
        let r = self.measure(sc, &mut cols, &format!("[{index}/{total} {}]", sc.name));
        let hosts: Vec<String> = cols.iter().map(|c| c.host.name.clone()).collect();
        let slots: Vec<usize> = cols.iter().map(|c| c.slot).collect();
        out.columns = cols.into_iter().map(|c| c.result).collect();
        self.reg.delete(&hosts);
        if let Err(e) = r {
            out.status = Status::Failed(e);
            for slot in slots {
                if let Err(e) = self.renew_slot(slot) {
                    eprintln!("bench: renewing containers: {e}");
                }
            }
        }
        out.seconds = started.elapsed().as_secs_f64();
        out
    }

    /// Makes a column: its host namespace with the scenario's setup, its
    /// config file and store, and a runtime for it.
    fn column(&mut self, sc: &Scenario, slot: usize, spec: &Participant) -> Result<Live, String> {
        let label = spec.label.replace(' ', "");
        let host_name = format!("{}{}-{label}", self.reg.prefix(), sc.name);
        self.reg.create(std::slice::from_ref(&host_name))?;
        ip_batch(Some(&host_name), &sc.host_setup)?;
        let host = Netns::open(&host_name)?;
        let dir = self.work.join(sc.name).join(&label);
        let data_dir = dir.join("ipam");
        let mut result = Column::new(&spec.label, spec.kind);
        result.sizes = self.suites.sizes(spec.kind, &sc.plugins);
        let plugin = match (&spec.conflist, self.suites.dir(spec.kind)) {
            (Some(conf), Some(bin)) => {
                let conf_dir = dir.join("net.d");
                std::fs::create_dir_all(&conf_dir).map_err(|e| format!("creating {}: {e}", conf_dir.display()))?;
                let mut conf = conf.clone();
                crate::demo::point_stores_at(&mut conf, &data_dir);
                let file = conf_dir.join(format!("{}.conflist", sc.network));
                std::fs::write(&file, serde_json::to_vec_pretty(&conf).expect("JSON"))
                    .map_err(|e| format!("writing {}: {e}", file.display()))?;
                let exec = Arc::new(MeteredExec::default());
                let rt = Runtime::new(vec![bin.to_path_buf()], conf_dir, dir.join("cache")).with_exec(exec.clone());
                let net = rt.load_network(sc.network).map_err(|e| format!("loading {}: {e}", file.display()))?;
                Some((rt, net, exec))
            }
            _ => None,
        };
        Ok(Live { spec: spec.clone(), slot, host, plugin, data_dir, baseline: HostState::default(), result })
    }

    /// The chain floor's process cost: each of our binaries of the chain
    /// exec'd by the same runner as the plugins, as a no-op
    /// (`CNI_COMMAND=VERSION`).
    fn noops(&self, sc: &Scenario) -> Result<(), String> {
        let env = [("CNI_COMMAND".to_string(), "VERSION".to_string())];
        for p in &sc.plugins {
            let bin = self.suites.ours.join(p);
            invoke::run_plugin(&invoke::Request::new(&bin, b"{}", &env))
                .map_err(|e| format!("no-op exec of {}: {e}", bin.display()))?;
        }
        Ok(())
    }

    /// One ADD and one DEL of container 1 in each of our columns with the
    /// plugins' phase recording on, formatted into [`Bench::profile`].
    fn profile_once(&mut self, sc: &Scenario, cols: &mut [Live]) -> Result<(), String> {
        let file = std::env::var_os(phases::ENV).map(PathBuf::from).ok_or("CNI_RS_PROFILE is not set")?;
        let mut text = String::new();
        for c in cols.iter_mut().filter(|c| c.spec.kind == SuiteKind::Ours) {
            for op in [Op::Add, Op::Del] {
                std::fs::write(&file, b"").map_err(|e| format!("truncating {}: {e}", file.display()))?;
                let ms = self.op(sc, c, op, 1)?;
                let events = phases::parse(&std::fs::read_to_string(&file).unwrap_or_default());
                text.push_str(&format!(
                    "{} — {} {}: {ms:.2} ms as the runtime saw it\n{}",
                    sc.title,
                    c.spec.label,
                    op.name(),
                    super::profile::format(&events, std::process::id())
                ));
            }
        }
        self.profile.push_str(&text);
        Ok(())
    }

    /// One ADD or DEL of container `k` in column `c`; returns its latency.
    fn op(&self, sc: &Scenario, c: &mut Live, op: Op, k: usize) -> Result<f64, String> {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err("interrupted".into());
        }
        let ctr = self.container(c.slot, k);
        let path = namespaces::path(&ctr);
        // A plugin runs in the host namespace; the floor's `ip` in the
        // container's, as it would be after `ip netns exec`.
        let target = match c.plugin {
            Some(_) => None,
            None => Some(Netns::open(&ctr)?),
        };
        let inside = self.home.enter(target.as_ref().unwrap_or(&c.host))?;
        let t0 = Instant::now();
        let r = match (&c.plugin, op) {
            (Some((rt, net, _)), Op::Add) => {
                rt.add(net, &sc.attachment(k, &path)).map(|_| ()).map_err(|e| e.to_string())
            }
            (Some((rt, net, _)), Op::Del) => rt.del(net, &sc.attachment(k, &path)).map_err(|e| e.to_string()),
            (None, op) => {
                let noops = if c.spec.kind == SuiteKind::ChainFloor { self.noops(sc) } else { Ok(()) };
                noops.and_then(|_| if op == Op::Add { floor::add(&c.host.name, k) } else { floor::del() })
            }
        };
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        drop(inside);
        if let Some((_, _, exec)) = &c.plugin {
            let mut timed = 0.0;
            for rec in exec.take() {
                let e = c.result.rss_kib.entry(rec.plugin.clone()).or_default();
                *e = (*e).max(rec.max_rss_kib);
                if sc.timed_plugin == Some(rec.plugin.as_str()) && rec.command == op.name() {
                    timed += rec.wall.as_secs_f64() * 1000.0;
                }
            }
            if k > 0 && sc.timed_plugin.is_some() {
                match op {
                    Op::Add => c.result.timed_add_ms.push(timed),
                    Op::Del => c.result.timed_del_ms.push(timed),
                }
            }
        }
        r.map(|_| ms).map_err(|e| format!("{} of container {k} by {} failed: {e}", op.name(), c.spec.label))
    }

    /// Everything of one scenario between making the columns and removing
    /// their hosts.
    fn measure(&mut self, sc: &Scenario, cols: &mut Vec<Live>, what: &str) -> Result<(), String> {
        let n = self.opts.n;
        self.ensure_slots(sc.participants.len())?;
        for (slot, p) in sc.participants.iter().enumerate() {
            let c = self.column(sc, slot, p)?;
            cols.push(c);
        }
        // Warm-up: container 0 of each slot makes the shared state.
        for c in cols.iter_mut() {
            let cold = self.op(sc, c, Op::Add, 0)?;
            c.result.cold_add_ms = Some(cold);
            self.op(sc, c, Op::Del, 0)?;
            c.baseline = snapshot::host_state(&self.home, &c.host.name)?;
        }
        if self.opts.profile {
            // Nothing else is measured; the leak check still runs.
            self.profile_once(sc, cols)?;
        }
        for op in [Op::Add, Op::Del].into_iter().filter(|_| !self.opts.profile) {
            for k in 1..=n {
                let len = cols.len();
                for j in 0..len {
                    let c = &mut cols[(k + j) % len];
                    let ms = self.op(sc, c, op, k)?;
                    match op {
                        Op::Add => c.result.add_ms.push(ms),
                        Op::Del => c.result.del_ms.push(ms),
                    }
                }
                self.progress.step(what, op, k, n, cols);
            }
        }
        let mut problems = Vec::new();
        for c in cols.iter() {
            problems.extend(self.leaks(sc, c)?.into_iter().map(|p| format!("{}: {p}", c.spec.label)));
        }
        if problems.is_empty() {
            self.progress.line(&format!("{what}: checked: nothing left behind"));
            Ok(())
        } else {
            let shown = problems.len().min(12);
            Err(format!(
                "state left behind after every DEL ({} findings): {}",
                problems.len(),
                problems[..shown].join("; ")
            ))
        }
    }

    /// What column `c` left behind: host state beyond its warm-up
    /// snapshot, leases, cached results, anything in its containers.
    fn leaks(&self, sc: &Scenario, c: &Live) -> Result<Vec<String>, String> {
        let mut out = snapshot::diff(&c.baseline, &snapshot::host_state(&self.home, &c.host.name)?);
        let leases = snapshot::leases(&c.data_dir, sc.network);
        if !leases.is_empty() {
            out.push(format!(
                "{} leases held: {}",
                leases.len(),
                leases.iter().take(5).cloned().collect::<Vec<_>>().join(" ")
            ));
        }
        if let Some((rt, _, _)) = &c.plugin {
            let cached = rt.cache().list(Some(sc.network)).map(|v| v.len()).unwrap_or(0);
            if cached > 0 {
                out.push(format!("{cached} cached results"));
            }
        }
        let mut dirty = Vec::new();
        for k in 0..=self.opts.n {
            let name = self.container(c.slot, k);
            let left = snapshot::container_leftovers(&self.home, &name)?;
            if !left.is_empty() {
                dirty.push(format!("{name}: {}", left.join(", ")));
            }
        }
        if !dirty.is_empty() {
            out.push(format!("{} containers not empty, e.g. {}", dirty.len(), dirty[0]));
        }
        Ok(out)
    }

    /// Removes every namespace and the scratch space, then checks that
    /// nothing of this run is left and that the machine's own namespace has
    /// no new link. Returns what is left.
    fn finish(&mut self, root_links: &[String]) -> Vec<String> {
        self.reg.delete_all();
        let _ = std::fs::remove_dir_all(&self.work);
        let mut left: Vec<String> = self.reg.leftovers().into_iter().map(|n| format!("namespace {n}")).collect();
        if self.work.exists() {
            left.push(format!("directory {}", self.work.display()));
        }
        // The bench never touches the machine's namespace; a new link there
        // is someone else's doing, or a bug that the setns checks missed.
        for l in links_here().iter().filter(|l| !root_links.contains(l)) {
            eprintln!("bench: warning: a link appeared in the machine's own namespace during the run: {l}");
        }
        self.progress.line(&if left.is_empty() {
            "cleanup: every namespace, link, lease, cache entry and ruleset of the run removed; checked: nothing left"
                .to_string()
        } else {
            format!("cleanup: LEFT BEHIND: {}", left.join(", "))
        });
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_are_per_slot() {
        assert_eq!(container("cnib1-", 2, 30), "cnib1-s2-30");
    }
}
