//! What a bench run found, as plain data: the latencies of every column of
//! every scenario, and the facts about the machine and the versions that
//! the report prints next to them. Filled by [`super::runner`], read by
//! the report, the plot and the target checks.

use super::stats::Summary;
use super::suite::SuiteKind;
use serde_json::Value;
use std::collections::BTreeMap;

/// The measurements of one column (a suite with its config) of a scenario.
#[derive(Debug, Clone)]
pub struct Column {
    /// `ours`, `reference`, `floor`, `1 peer`...
    pub label: String,
    /// Whose binaries ran.
    pub kind: SuiteKind,
    /// Latency of the k-th ADD (index k-1), ms, as the network grew.
    pub add_ms: Vec<f64>,
    /// Latency of the k-th DEL, ms (containers removed oldest first).
    pub del_ms: Vec<f64>,
    /// The warm-up ADD, which also made the shared state (bridge, tables).
    pub cold_add_ms: Option<f64>,
    /// The scenario's timed plugin alone (its own process), per ADD.
    pub timed_add_ms: Vec<f64>,
    /// The same per DEL.
    pub timed_del_ms: Vec<f64>,
    /// Peak resident set per plugin binary, KiB (largest process seen).
    pub rss_kib: BTreeMap<String, u64>,
    /// Size of each binary of the chain, bytes.
    pub sizes: Vec<(String, u64)>,
}

impl Column {
    /// An empty column.
    pub fn new(label: &str, kind: SuiteKind) -> Column {
        Column {
            label: label.to_string(),
            kind,
            add_ms: Vec::new(),
            del_ms: Vec::new(),
            cold_add_ms: None,
            timed_add_ms: Vec::new(),
            timed_del_ms: Vec::new(),
            rss_kib: BTreeMap::new(),
            sizes: Vec::new(),
        }
    }

    /// Summary of the ADDs.
    pub fn add(&self) -> Summary {
        Summary::of(&self.add_ms)
    }

    /// Summary of the DELs.
    pub fn del(&self) -> Summary {
        Summary::of(&self.del_ms)
    }

    /// Peak RSS of one plugin process, KiB (0 for the floor).
    pub fn peak_rss_kib(&self) -> u64 {
        self.rss_kib.values().copied().max().unwrap_or(0)
    }

    /// Total size of the chain's binaries, bytes (0 for the floor).
    pub fn binary_bytes(&self) -> u64 {
        self.sizes.iter().map(|(_, b)| b).sum()
    }
}

/// How a scenario ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Every operation succeeded and nothing was left behind.
    Ok,
    /// Not run (a binary is missing, or it was not selected).
    Skipped(String),
    /// An operation failed or state was left behind: the run fails.
    Failed(String),
}

/// One scenario's outcome.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    /// Key (`bridge`...).
    pub name: String,
    /// Heading.
    pub title: String,
    /// How it ended.
    pub status: Status,
    /// The columns, in the scenario's order (the ratio row is second / first).
    pub columns: Vec<Column>,
    /// The plugin whose own time is in [`Column::timed_add_ms`].
    pub timed_plugin: Option<String>,
    /// The config list of each plugin column, as run.
    pub configs: Vec<(String, Value)>,
    /// Wall time of the scenario, seconds.
    pub seconds: f64,
}

impl ScenarioResult {
    /// The column labelled `label`.
    pub fn column(&self, label: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.label == label)
    }
}

/// Where and with what the run happened.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// When (UTC).
    pub date: String,
    /// Kernel release.
    pub kernel: String,
    /// CPU model.
    pub cpu: String,
    /// CPUs available.
    pub cores: usize,
    /// Memory, MiB.
    pub mem_mib: u64,
    /// Our version.
    pub ours: String,
    /// The reference's version.
    pub reference: String,
    /// Containers per network.
    pub n: usize,
    /// `--quick` was given.
    pub quick: bool,
    /// The command that reproduces the run.
    pub command: String,
}

/// A whole run.
#[derive(Debug, Clone, Default)]
pub struct BenchResult {
    /// Context.
    pub meta: Meta,
    /// Every scenario, run or not.
    pub scenarios: Vec<ScenarioResult>,
    /// What the final cleanup check found (empty: nothing left).
    pub leftovers: Vec<String>,
    /// Wall time of the run, seconds.
    pub total_seconds: f64,
    /// The prefix of every namespace name of the run.
    pub prefix: String,
    /// With `--profile`: the per-phase profile of one ADD and one DEL of
    /// each scenario (text); the scenarios then measure nothing else.
    pub profile: String,
}

impl BenchResult {
    /// No scenario failed and nothing was left behind.
    pub fn ok(&self) -> bool {
        self.leftovers.is_empty() && !self.scenarios.iter().any(|s| matches!(s.status, Status::Failed(_)))
    }

    /// The scenario called `name`, if it ran to the end.
    pub fn completed(&self, name: &str) -> Option<&ScenarioResult> {
        self.scenarios.iter().find(|s| s.name == name && s.status == Status::Ok)
    }
}
