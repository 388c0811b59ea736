//! The bench's outputs besides the plot: the table on stdout, the same in
//! Markdown with the date, machine, versions and the command (ready for the
//! README), and every figure and sample in JSON.

use super::results::{BenchResult, Column, ScenarioResult, Status};
use super::stats::{ratio, round, Summary};
use super::suite::SuiteKind;
use super::targets::{evaluate, Target};
use serde_json::{json, Value};
use std::fmt::Write;

/// A row of the table.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// A scenario heading.
    Heading(String),
    /// A label and figures.
    Cells(Vec<String>),
    /// A line of text under a scenario.
    Note(String),
}

/// The column headings (milliseconds unless said).
pub const HEADER: &[&str] =
    &["", "ADD p50", "p90", "max", "first→last", "DEL p50", "p90", "max", "first→last", "peak RSS", "binaries"];

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn x(v: f64) -> String {
    if v <= 0.0 {
        "–".into()
    } else if v >= 10.0 {
        format!("{v:.0}x")
    } else {
        format!("{v:.1}x")
    }
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

fn cells(c: &Column) -> Vec<String> {
    let (a, d) = (c.add(), c.del());
    let rss = c.peak_rss_kib();
    let size = c.binary_bytes();
    vec![
        format!("  {}", c.label),
        ms(a.p50),
        ms(a.p90),
        ms(a.max),
        format!("{}→{}", ms(a.first_mean), ms(a.last_mean)),
        ms(d.p50),
        ms(d.p90),
        ms(d.max),
        format!("{}→{}", ms(d.first_mean), ms(d.last_mean)),
        if rss > 0 { mib(rss as f64 * 1024.0) } else { "–".into() },
        if size > 0 { mib(size as f64) } else { "–".into() },
    ]
}

fn ratio_cells(base: &Column, other: &Column) -> Vec<String> {
    let (ba, bd, oa, od) = (base.add(), base.del(), other.add(), other.del());
    vec![
        format!("  {} / {}", other.label, base.label),
        x(ratio(oa.p50, ba.p50)),
        x(ratio(oa.p90, ba.p90)),
        x(ratio(oa.max, ba.max)),
        String::new(),
        x(ratio(od.p50, bd.p50)),
        x(ratio(od.p90, bd.p90)),
        x(ratio(od.max, bd.max)),
        String::new(),
        x(ratio(other.peak_rss_kib() as f64, base.peak_rss_kib() as f64)),
        x(ratio(other.binary_bytes() as f64, base.binary_bytes() as f64)),
    ]
}

/// The rows of one scenario.
fn scenario_rows(s: &ScenarioResult, n: usize) -> Vec<Row> {
    let mut rows = vec![Row::Heading(format!("{} (N={n})", s.title))];
    match &s.status {
        Status::Skipped(why) => {
            rows.push(Row::Note(format!("skipped: {why}")));
            return rows;
        }
        Status::Failed(why) => rows.push(Row::Note(format!("FAILED: {why}"))),
        Status::Ok => {}
    }
    let done: Vec<&Column> = s.columns.iter().filter(|c| c.add_ms.len() == n && c.del_ms.len() == n).collect();
    if done.len() < s.columns.len() {
        return rows;
    }
    for c in &done {
        rows.push(Row::Cells(cells(c)));
    }
    if let [base, other, ..] = done.as_slice() {
        rows.push(Row::Cells(ratio_cells(base, other)));
    }
    // Ours against the floors: how far above what the machine allows.
    if let Some(ours) = done.iter().find(|c| c.kind == SuiteKind::Ours) {
        for kind in [SuiteKind::Floor, SuiteKind::ChainFloor] {
            if let Some(f) = done.iter().find(|c| c.kind == kind) {
                let mut cells = ratio_cells(f, ours);
                cells[9] = "–".into();
                cells[10] = "–".into();
                rows.push(Row::Cells(cells));
            }
        }
    }
    if let Some(p) = &s.timed_plugin {
        let parts: Vec<String> = done
            .iter()
            .filter(|c| !c.timed_add_ms.is_empty())
            .map(|c| {
                let (a, d) = (Summary::of(&c.timed_add_ms), Summary::of(&c.timed_del_ms));
                format!(
                    "{} ADD p50 {} (first→last {}→{}) DEL p50 {}",
                    c.label,
                    ms(a.p50),
                    ms(a.first_mean),
                    ms(a.last_mean),
                    ms(d.p50)
                )
            })
            .collect();
        rows.push(Row::Note(format!("{p} alone (its own process): {}", parts.join("; "))));
    }
    let cold: Vec<String> =
        done.iter().filter_map(|c| c.cold_add_ms.map(|v| format!("{} {}", c.label, ms(v)))).collect();
    if !cold.is_empty() {
        rows.push(Row::Note(format!("first ADD on the network (makes the shared state): {}", cold.join(", "))));
    }
    rows
}

/// Every row of the run.
pub fn rows(r: &BenchResult) -> Vec<Row> {
    r.scenarios.iter().flat_map(|s| scenario_rows(s, r.meta.n)).collect()
}

fn target_line(t: &Target) -> String {
    let verdict = match t.met {
        Some(true) => "MET   ",
        Some(false) => "MISSED",
        None => "n/a   ",
    };
    format!("{verdict} {}: {}", t.what, t.measured)
}

fn context_lines(r: &BenchResult) -> Vec<String> {
    let m = &r.meta;
    vec![
        format!("date: {}", m.date),
        format!("machine: {} ({} CPUs, {} MiB), Linux {}", m.cpu, m.cores, m.mem_mib, m.kernel),
        format!("ours: {}; reference: {}", m.ours, m.reference),
        format!(
            "N={} containers per network{}; latencies in ms, as the runtime sees them (plugin execs included); \
             first→last = mean of the first and of the last {} containers",
            m.n,
            if m.quick { " (--quick)" } else { "" },
            super::stats::window(m.n)
        ),
    ]
}

/// The table on stdout, with the targets and the cleanup verdict.
pub fn text(r: &BenchResult) -> String {
    let rows = rows(r);
    let mut widths: Vec<usize> = HEADER.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        if let Row::Cells(c) = row {
            for (i, cell) in c.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |c: &[String]| -> String {
        let mut s = String::new();
        for (i, cell) in c.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i == 0 {
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str("  ");
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            }
        }
        s.trim_end().to_string()
    };
    let mut out = String::new();
    for l in context_lines(r) {
        let _ = writeln!(out, "{l}");
    }
    let _ = writeln!(out);
    let header: Vec<String> = HEADER.iter().map(|h| h.to_string()).collect();
    let _ = writeln!(out, "{}", line(&header));
    for row in &rows {
        match row {
            Row::Heading(h) => {
                let _ = writeln!(out, "{h}");
            }
            Row::Cells(c) => {
                let _ = writeln!(out, "{}", line(c));
            }
            Row::Note(n) => {
                let _ = writeln!(out, "  · {n}");
            }
        }
    }
    let _ = writeln!(out, "\ntargets (informational):");
    for t in evaluate(r) {
        let _ = writeln!(out, "  {}", target_line(&t));
    }
    let _ = writeln!(
        out,
        "\n{}\ntotal time: {:.1} s",
        if r.leftovers.is_empty() {
            "cleanup: checked, nothing left behind".to_string()
        } else {
            format!("cleanup: LEFT BEHIND: {}", r.leftovers.join(", "))
        },
        r.total_seconds
    );
    out
}

/// The same in Markdown, for the README: context, table, targets, plot.
pub fn markdown(r: &BenchResult, plot_file: &str) -> String {
    let mut out = String::new();
    for l in context_lines(r) {
        let _ = writeln!(out, "- {l}");
    }
    let _ = writeln!(out, "- reproduce: `{}`\n", r.meta.command);
    let _ = writeln!(out, "| {} |", HEADER.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(HEADER.len()));
    for row in rows(r) {
        match row {
            Row::Heading(h) => {
                let _ = writeln!(out, "| **{h}** |{}", " |".repeat(HEADER.len() - 1));
            }
            Row::Cells(c) => {
                let _ = writeln!(out, "| {} |", c.iter().map(|s| s.trim()).collect::<Vec<_>>().join(" | "));
            }
            Row::Note(n) => {
                let _ = writeln!(out, "| *{n}* |{}", " |".repeat(HEADER.len() - 1));
            }
        }
    }
    let _ = writeln!(out, "\nTargets (informational):\n");
    for t in evaluate(r) {
        let _ = writeln!(out, "- {}", target_line(&t).replacen("MET   ", "MET", 1).replacen("n/a   ", "n/a", 1));
    }
    let _ = writeln!(out, "\n![latency of the k-th ADD and DEL, ours vs reference]({plot_file})");
    out
}

fn series(v: &[f64]) -> Value {
    Value::Array(v.iter().map(|x| json!(round(*x))).collect())
}

fn column_json(c: &Column) -> Value {
    json!({
        "label": c.label,
        "suite": c.kind.label(),
        "add": c.add().to_json(),
        "del": c.del().to_json(),
        "cold_add_ms": c.cold_add_ms.map(round),
        "timed_plugin_add": (!c.timed_add_ms.is_empty()).then(|| Summary::of(&c.timed_add_ms).to_json()),
        "timed_plugin_del": (!c.timed_del_ms.is_empty()).then(|| Summary::of(&c.timed_del_ms).to_json()),
        "peak_rss_kib": c.peak_rss_kib(),
        "rss_kib_by_plugin": c.rss_kib,
        "binary_bytes": c.binary_bytes(),
        "binary_bytes_by_plugin": c.sizes.iter().map(|(n, b)| (n.clone(), json!(b))).collect::<serde_json::Map<String, Value>>(),
        "add_ms": series(&c.add_ms),
        "del_ms": series(&c.del_ms),
        "timed_plugin_add_ms": series(&c.timed_add_ms),
        "timed_plugin_del_ms": series(&c.timed_del_ms),
    })
}

fn ratios_json(base: &Column, other: &Column) -> Value {
    let (ba, bd, oa, od) = (base.add(), base.del(), other.add(), other.del());
    let r = |a: f64, b: f64| round(ratio(a, b));
    json!({
        "of": format!("{} / {}", other.label, base.label),
        "add_p50": r(oa.p50, ba.p50), "add_p90": r(oa.p90, ba.p90), "add_max": r(oa.max, ba.max),
        "del_p50": r(od.p50, bd.p50), "del_p90": r(od.p90, bd.p90), "del_max": r(od.max, bd.max),
        "peak_rss": r(other.peak_rss_kib() as f64, base.peak_rss_kib() as f64),
        "binary_size": r(other.binary_bytes() as f64, base.binary_bytes() as f64),
    })
}

/// Every figure and every sample.
pub fn json(r: &BenchResult) -> Value {
    let m = &r.meta;
    let scenarios: Vec<Value> = r
        .scenarios
        .iter()
        .map(|s| {
            let (status, why) = match &s.status {
                Status::Ok => ("ok", String::new()),
                Status::Skipped(w) => ("skipped", w.clone()),
                Status::Failed(w) => ("failed", w.clone()),
            };
            json!({
                "name": s.name, "title": s.title, "status": status, "reason": why,
                "seconds": round(s.seconds),
                "timed_plugin": s.timed_plugin,
                "columns": s.columns.iter().map(column_json).collect::<Vec<_>>(),
                "ratio": match s.columns.as_slice() {
                    [base, other, ..] if s.status == Status::Ok => ratios_json(base, other),
                    _ => Value::Null,
                },
                "configs": s.configs.iter().map(|(l, c)| (l.clone(), c.clone())).collect::<serde_json::Map<String, Value>>(),
            })
        })
        .collect();
    json!({
        "date": m.date,
        "machine": { "cpu": m.cpu, "cores": m.cores, "mem_mib": m.mem_mib, "kernel": m.kernel },
        "versions": { "ours": m.ours, "reference": m.reference },
        "n": m.n, "quick": m.quick, "command": m.command,
        "units": "milliseconds; RSS in KiB; sizes in bytes",
        "scenarios": scenarios,
        "targets": evaluate(r).iter().map(|t| json!({ "target": t.what, "measured": t.measured, "met": t.met })).collect::<Vec<_>>(),
        "leftovers": r.leftovers,
        "ok": r.ok(),
        "total_seconds": round(r.total_seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::suite::SuiteKind;

    fn run() -> BenchResult {
        let mut ours = Column::new("ours", SuiteKind::Ours);
        ours.add_ms = vec![1.0, 2.0];
        ours.del_ms = vec![10.0, 12.0];
        ours.rss_kib.insert("bridge".into(), 2048);
        ours.sizes = vec![("bridge".into(), 2 << 20)];
        let mut refr = Column::new("reference", SuiteKind::Reference);
        refr.add_ms = vec![20.0, 22.0];
        refr.del_ms = vec![30.0, 30.0];
        let mut r = BenchResult::default();
        r.meta.n = 2;
        r.scenarios.push(ScenarioResult {
            name: "bridge".into(),
            title: "bridge + host-local".into(),
            status: Status::Ok,
            columns: vec![ours, refr],
            timed_plugin: None,
            configs: Vec::new(),
            seconds: 1.0,
        });
        r.scenarios.push(ScenarioResult {
            name: "vxlan".into(),
            title: "vxlan".into(),
            status: Status::Skipped("ours has no vxlan".into()),
            columns: Vec::new(),
            timed_plugin: None,
            configs: Vec::new(),
            seconds: 0.0,
        });
        r
    }

    #[test]
    fn table_has_figures_ratio_and_skips() {
        let t = text(&run());
        assert!(t.contains("bridge + host-local (N=2)"), "{t}");
        assert!(t.contains("reference / ours"), "{t}");
        assert!(t.contains("20x"), "{t}"); // 20 / 1 at p50
        assert!(t.contains("skipped: ours has no vxlan"), "{t}");
        assert!(t.contains("2.0 MiB"), "{t}");
        let md = markdown(&run(), "bench.svg");
        assert!(md.contains("| **bridge + host-local (N=2)** |"), "{md}");
        assert!(md.contains("![latency"), "{md}");
    }

    #[test]
    fn json_has_series_and_ratios() {
        let v = json(&run());
        assert_eq!(v["scenarios"][0]["columns"][0]["add_ms"], json!([1.0, 2.0]));
        assert_eq!(v["scenarios"][0]["ratio"]["add_p50"], json!(20.0));
        assert_eq!(v["scenarios"][1]["status"], "skipped");
        assert_eq!(v["ok"], true);
    }
}
