//! The performance targets the project set itself, checked against a run
//! and printed as "met / missed" lines. Informational: a missed target is
//! reported, never a failure of the bench (only a failed operation or
//! leaked state fails it).

use super::results::{BenchResult, Column, ScenarioResult};
use super::stats::{ratio, window, Summary};

/// "Flat": the mean of the last containers is within this factor of the
/// mean of the first ones (either way).
const FLAT: f64 = 1.25;

/// One target and what the run showed.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The target, in words.
    pub what: String,
    /// The measured figure, in words.
    pub measured: String,
    /// Met, missed, or `None` when the scenario did not run.
    pub met: Option<bool>,
}

fn flat(s: &Summary) -> bool {
    let g = s.growth();
    (1.0 / FLAT..=FLAT).contains(&g)
}

fn sum_p50(a: &[f64], b: &[f64]) -> f64 {
    Summary::of(a).p50 + Summary::of(b).p50
}

fn growth_text(s: &Summary) -> String {
    let w = window(s.n);
    format!("first {w} mean {:.2} ms, last {w} mean {:.2} ms ({:.2}x)", s.first_mean, s.last_mean, s.growth())
}

/// [`growth_text`], and with a floor the floor's own growth and ours over
/// the floor in the first and the last window: what the kernel makes
/// slower apart from what we do.
fn density_text(s: &Summary, floor: Option<&Summary>) -> String {
    let mut t = growth_text(s);
    if let Some(f) = floor.filter(|f| f.n > 0) {
        t.push_str(&format!(
            "; floor {:.2} -> {:.2} ms ({:.2}x); ours / floor {:.2}x first, {:.2}x last",
            f.first_mean,
            f.last_mean,
            f.growth(),
            ratio(s.first_mean, f.first_mean),
            ratio(s.last_mean, f.last_mean)
        ));
    }
    t
}

fn pair<'a>(
    r: &'a BenchResult,
    scenario: &str,
    a: &str,
    b: &str,
) -> Option<(&'a ScenarioResult, &'a Column, &'a Column)> {
    let s = r.completed(scenario)?;
    Some((s, s.column(a)?, s.column(b)?))
}

fn missing(what: &str) -> Target {
    Target { what: what.to_string(), measured: "not measured (scenario did not run)".into(), met: None }
}

/// Every target, evaluated on `r`.
pub fn evaluate(r: &BenchResult) -> Vec<Target> {
    let mut out = Vec::new();
    let mut push = |what: &str, t: Option<(String, bool)>| {
        out.push(match t {
            Some((measured, met)) => Target { what: what.to_string(), measured, met: Some(met) },
            None => missing(what),
        })
    };

    let w = "host-local ADD flat as the store grows (ours, last vs first containers)";
    push(w, pair(r, "host-local", "ours", "reference").map(|(_, o, _)| (growth_text(&o.add()), flat(&o.add()))));
    let w = "host-local DEL flat as the store shrinks (ours, last vs first containers)";
    push(w, pair(r, "host-local", "ours", "reference").map(|(_, o, _)| (growth_text(&o.del()), flat(&o.del()))));

    let w = "bridge ADD >= 5x faster than the reference (p50)";
    push(
        w,
        pair(r, "bridge", "ours", "reference").map(|(_, o, f)| {
            let x = ratio(f.add().p50, o.add().p50);
            (format!("reference {:.2} ms / ours {:.2} ms = {x:.2}x", f.add().p50, o.add().p50), x >= 5.0)
        }),
    );
    let w = "bridge ADD flat from the first to the last container (ours)";
    push(w, pair(r, "bridge", "ours", "reference").map(|(_, o, _)| (growth_text(&o.add()), flat(&o.add()))));
    let w = "bridge DEL within 1.5x of the veth-deletion floor (p50)";
    push(
        w,
        pair(r, "bridge", "ours", "floor").map(|(_, o, f)| {
            let x = ratio(o.del().p50, f.del().p50);
            (format!("ours {:.2} ms / floor {:.2} ms = {x:.2}x", o.del().p50, f.del().p50), x <= 1.5)
        }),
    );

    let w = "portmap ADD of the last mapping costs the same as the first (portmap alone, ours)";
    push(
        w,
        pair(r, "portmap", "ours", "reference").map(|(_, o, _)| {
            let s = Summary::of(&o.timed_add_ms);
            (growth_text(&s), flat(&s))
        }),
    );
    let w = "portmap ADD+DEL >= 10x faster than the reference portmap (portmap alone, p50)";
    push(
        w,
        pair(r, "portmap", "ours", "reference").map(|(_, o, f)| {
            let (a, b) = (sum_p50(&f.timed_add_ms, &f.timed_del_ms), sum_p50(&o.timed_add_ms, &o.timed_del_ms));
            let x = ratio(a, b);
            (format!("reference {a:.2} ms / ours {b:.2} ms = {x:.2}x"), x >= 10.0)
        }),
    );

    let w = "macvlan ADD+DEL >= 5x faster than the reference (p50)";
    push(
        w,
        pair(r, "macvlan", "ours", "reference").map(|(_, o, f)| {
            let (a, b) = (sum_p50(&f.add_ms, &f.del_ms), sum_p50(&o.add_ms, &o.del_ms));
            let x = ratio(a, b);
            (format!("reference {a:.2} ms / ours {b:.2} ms = {x:.2}x"), x >= 5.0)
        }),
    );

    let w = "vxlan ADD+DEL with 100 peers <= 1.5x with 1 peer (p50)";
    push(
        w,
        pair(r, "vxlan", "1 peer", "100 peers").map(|(_, one, many)| {
            let (a, b) = (sum_p50(&many.add_ms, &many.del_ms), sum_p50(&one.add_ms, &one.del_ms));
            let x = ratio(a, b);
            (format!("100 peers {a:.2} ms / 1 peer {b:.2} ms = {x:.2}x"), x > 0.0 && x <= 1.5)
        }),
    );

    // Issue 20 (performance, round two).
    let w = "issue 20: full chain ADD p50 within 1.3x of the chain floor (bridge + host-local + portmap)";
    push(
        w,
        pair(r, "portmap", "ours", "chain floor").map(|(_, o, f)| {
            let x = ratio(o.add().p50, f.add().p50);
            (format!("ours {:.2} ms / chain floor {:.2} ms = {x:.2}x", o.add().p50, f.add().p50), x <= 1.3)
        }),
    );
    let w = "issue 20: full chain ADD p50 >= 10x faster than the reference (bridge + host-local + portmap)";
    push(
        w,
        pair(r, "portmap", "ours", "reference").map(|(_, o, f)| {
            let x = ratio(f.add().p50, o.add().p50);
            (format!("reference {:.2} ms / ours {:.2} ms = {x:.2}x", f.add().p50, o.add().p50), x >= 10.0)
        }),
    );
    let w = "issue 20: full chain DEL p50 within 1.2x of the veth-deletion floor (bridge + host-local + portmap)";
    push(
        w,
        pair(r, "portmap", "ours", "floor").map(|(_, o, f)| {
            let x = ratio(o.del().p50, f.del().p50);
            (format!("ours {:.2} ms / floor {:.2} ms = {x:.2}x", o.del().p50, f.del().p50), x <= 1.2)
        }),
    );
    let w = "issue 20: full chain DEL p50 >= 10x faster than the reference (bridge + host-local + portmap)";
    push(
        w,
        pair(r, "portmap", "ours", "reference").map(|(_, o, f)| {
            let x = ratio(f.del().p50, o.del().p50);
            (format!("reference {:.2} ms / ours {:.2} ms = {x:.2}x", f.del().p50, o.del().p50), x >= 10.0)
        }),
    );
    for (scenario, label) in [("bridge", "ours"), ("macvlan", "ours"), ("ptp", "ours"), ("vxlan", "1 peer")] {
        let w = format!("issue 20: {scenario} ADD flat (last mean <= {ISSUE20_FLAT}x first mean)");
        let sc = r.completed(scenario);
        let col = sc.and_then(|s| s.column(label));
        let floor = sc.and_then(|s| s.column("floor")).map(|f| f.add());
        push(&w, col.map(|o| (density_text(&o.add(), floor.as_ref()), o.add().growth() <= ISSUE20_FLAT)));
    }
    for s in r.scenarios.iter().filter(|s| s.status == super::results::Status::Ok) {
        let (Some(o), Some(f)) = (s.column("ours"), s.column("reference")) else { continue };
        let w = format!("issue 20: peak RSS of every plugin <= the reference's ({})", s.name);
        let worse: Vec<String> = o
            .rss_kib
            .iter()
            .filter_map(|(p, &kib)| f.rss_kib.get(p).filter(|&&r| kib > r).map(|r| format!("{p} {kib} > {r} KiB")))
            .collect();
        let all: Vec<String> = o
            .rss_kib
            .iter()
            .map(|(p, kib)| format!("{p} {kib}/{} KiB", f.rss_kib.get(p).copied().unwrap_or(0)))
            .collect();
        let text = if worse.is_empty() { format!("ours/reference: {}", all.join(", ")) } else { worse.join(", ") };
        push(&w, Some((text, worse.is_empty())));
    }
    out
}

/// Issue 20's "flat": the mean of the last containers at most this factor
/// of the first ones.
const ISSUE20_FLAT: f64 = 1.3;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::results::{Column, ScenarioResult, Status};
    use crate::bench::suite::SuiteKind;

    fn col(label: &str, kind: SuiteKind, add: f64, del: f64) -> Column {
        let mut c = Column::new(label, kind);
        c.add_ms = vec![add; 20];
        c.del_ms = vec![del; 20];
        c
    }

    #[test]
    fn bridge_targets_from_columns() {
        let mut r = BenchResult::default();
        r.scenarios.push(ScenarioResult {
            name: "bridge".into(),
            title: "bridge".into(),
            status: Status::Ok,
            columns: vec![
                col("ours", SuiteKind::Ours, 2.0, 20.0),
                col("reference", SuiteKind::Reference, 20.0, 40.0),
                col("floor", SuiteKind::Floor, 2.0, 16.0),
            ],
            timed_plugin: None,
            configs: Vec::new(),
            seconds: 1.0,
        });
        let t = evaluate(&r);
        let get = |p: &str| t.iter().find(|t| t.what.starts_with(p)).unwrap().clone();
        assert_eq!(get("bridge ADD >= 5x").met, Some(true));
        assert_eq!(get("bridge ADD flat").met, Some(true));
        assert_eq!(get("bridge DEL within").met, Some(true));
        assert_eq!(get("macvlan").met, None);
        let flat20 = get("issue 20: bridge ADD flat");
        assert_eq!(flat20.met, Some(true));
        assert!(flat20.measured.contains("ours / floor 1.00x first, 1.00x last"), "{}", flat20.measured);
    }
}
