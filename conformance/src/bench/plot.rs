//! The plot: for each scenario, the latency of the k-th ADD as the network
//! grows to N containers and of the k-th DEL as it shrinks, one line per
//! column (ours, reference, floor), on a log scale so a 2 ms and a 40 ms
//! line are both readable. Hand-written SVG, no plotting crate.

use super::results::{BenchResult, Column, Status};
use std::fmt::Write;

const PANEL_W: f64 = 470.0;
const PANEL_H: f64 = 200.0;
const LEFT: f64 = 56.0;
const GAP: f64 = 40.0;
const TITLE: f64 = 42.0;
const COLORS: &[&str] = &["#1f77b4", "#e8590c", "#7f7f7f", "#2f9e44"];
/// Candidate axis ticks, ms.
const TICKS: &[f64] =
    &[0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The y range of a panel: from the largest tick at or below the smallest
/// sample to the smallest tick at or above the largest.
fn y_range(samples: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::MAX, 0.0f64);
    for v in samples.filter(|v| *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if hi <= 0.0 {
        return (0.1, 1.0);
    }
    let lo = TICKS.iter().rev().copied().find(|t| *t <= lo).unwrap_or(TICKS[0]);
    let hi = TICKS.iter().copied().find(|t| *t >= hi).unwrap_or(TICKS[TICKS.len() - 1]);
    if hi <= lo {
        (lo, lo * 2.0)
    } else {
        (lo, hi)
    }
}

/// At most this many groups of samples per line, so the picture stays
/// small at any N.
const BUCKETS: usize = 250;

/// The samples as (k, ms) points: all of them when there are at most
/// `buckets`, else the lowest and the highest of each of `buckets` groups,
/// in order of k.
fn envelope(v: &[f64], buckets: usize) -> Vec<(usize, f64)> {
    let size = v.len().div_ceil(buckets.max(1)).max(1);
    if size == 1 {
        return v.iter().enumerate().map(|(j, m)| (j + 1, *m)).collect();
    }
    let mut out = Vec::new();
    for (b, chunk) in v.chunks(size).enumerate() {
        let base = b * size + 1;
        let (lo, hi) = chunk.iter().enumerate().fold((0, 0), |(lo, hi), (j, m)| {
            (if *m < chunk[lo] { j } else { lo }, if *m > chunk[hi] { j } else { hi })
        });
        let (first, second) = (lo.min(hi), lo.max(hi));
        out.push((base + first, chunk[first]));
        if second != first {
            out.push((base + second, chunk[second]));
        }
    }
    out
}

/// The median of the `2*half+1` samples around each one (fewer at the ends).
fn running_median(v: &[f64], half: usize) -> Vec<f64> {
    (0..v.len())
        .map(|i| {
            let mut w = v[i.saturating_sub(half)..(i + half + 1).min(v.len())].to_vec();
            w.sort_by(f64::total_cmp);
            w[w.len() / 2]
        })
        .collect()
}

fn fmt_tick(t: f64) -> String {
    if t >= 1.0 {
        format!("{t:.0}")
    } else {
        format!("{t}")
    }
}

/// One panel at (`x0`, `y0`): axes, ticks, a line per column.
fn panel(s: &mut String, x0: f64, y0: f64, title: &str, cols: &[(&Column, &[f64])], n: usize) {
    let (lo, hi) = y_range(cols.iter().flat_map(|(_, v)| v.iter().copied()));
    let (llo, lhi) = (lo.log10(), hi.log10());
    let px = |k: usize| x0 + if n > 1 { (k - 1) as f64 / (n - 1) as f64 * PANEL_W } else { PANEL_W / 2.0 };
    let py = |v: f64| y0 + PANEL_H - (v.max(lo).log10() - llo) / (lhi - llo) * PANEL_H;
    let _ = writeln!(s, r#"<text x="{x0}" y="{}" font-weight="bold">{}</text>"#, y0 - 8.0, esc(title));
    let _ =
        writeln!(s, r##"<rect x="{x0}" y="{y0}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#888"/>"##);
    for t in TICKS.iter().copied().filter(|t| *t >= lo && *t <= hi) {
        let y = py(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 + PANEL_W,
            x0 - 6.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    for k in [1, n.div_ceil(2), n] {
        let _ =
            writeln!(s, r#"<text x="{:.1}" y="{}" text-anchor="middle">{k}</text>"#, px(k.max(1)), y0 + PANEL_H + 16.0);
    }
    for (i, (_, v)) in cols.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let line = |pts: &[(usize, f64)]| -> String {
            pts.iter().map(|(k, ms)| format!("{:.0},{:.0}", px(*k), py(*ms))).collect::<Vec<_>>().join(" ")
        };
        // Every sample (as the low and high of each of at most BUCKETS
        // groups, so a spike stays visible), faint; over it the running
        // median, which shows the trend through single slow operations.
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-opacity="0.35" stroke-width="0.8" points="{}"/>"#,
            line(&envelope(v, BUCKETS))
        );
        let median = running_median(v, (n / 50).max(1));
        let step = v.len().div_ceil(BUCKETS).max(1);
        let thinned: Vec<(usize, f64)> = median
            .iter()
            .enumerate()
            .filter(|(j, _)| j % step == 0 || j + 1 == v.len())
            .map(|(j, m)| (j + 1, *m))
            .collect();
        let _ =
            writeln!(s, r#"<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{}"/>"#, line(&thinned));
    }
    // The legend on the title line, right-aligned, clear of the lines.
    let mut lx = x0 + PANEL_W;
    for (i, (c, _)) in cols.iter().enumerate().rev() {
        lx -= 26.0 + 6.5 * c.label.chars().count() as f64;
        let color = COLORS[i % COLORS.len()];
        let _ = writeln!(
            s,
            r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="3" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            y0 - 12.0,
            lx + 16.0,
            y0 - 8.0,
            esc(&c.label)
        );
    }
}

/// A scenario's title without its parenthesised detail, for a panel.
fn short(title: &str) -> &str {
    title.split(" (").next().unwrap_or(title)
}

/// The whole picture for a run; `None` when no scenario has figures.
pub fn svg(r: &BenchResult) -> Option<String> {
    let n = r.meta.n;
    let done: Vec<_> = r
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Ok && !s.columns.is_empty() && s.columns.iter().all(|c| c.add_ms.len() == n))
        .collect();
    if done.is_empty() {
        return None;
    }
    let width = LEFT + 2.0 * PANEL_W + GAP + 20.0;
    let row_h = PANEL_H + TITLE + 24.0;
    let top = 70.0;
    let height = top + done.len() as f64 * row_h;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="20" y="24" font-size="15" font-weight="bold">Latency of the k-th ADD (network growing to N={n}) and k-th DEL (oldest first), ms, log scale</text>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="20" y="44">{} · {} · ours: {} · reference: {}</text>"#,
        esc(&r.meta.date),
        esc(&format!("{} ({} CPUs), Linux {}", r.meta.cpu, r.meta.cores, r.meta.kernel)),
        esc(&r.meta.ours),
        esc(&r.meta.reference)
    );
    for (i, sc) in done.iter().enumerate() {
        let y0 = top + i as f64 * row_h + TITLE;
        let adds: Vec<(&Column, &[f64])> = sc.columns.iter().map(|c| (c, c.add_ms.as_slice())).collect();
        let dels: Vec<(&Column, &[f64])> = sc.columns.iter().map(|c| (c, c.del_ms.as_slice())).collect();
        panel(&mut s, LEFT, y0, &format!("{}: ADD", short(&sc.title)), &adds, n);
        panel(&mut s, LEFT + PANEL_W + GAP, y0, &format!("{}: DEL", short(&sc.title)), &dels, n);
    }
    s.push_str("</svg>\n");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::results::ScenarioResult;
    use crate::bench::suite::SuiteKind;

    #[test]
    fn envelope_keeps_spikes_and_bounds_points() {
        let v: Vec<f64> = (0..1000).map(|i| if i == 437 { 90.0 } else { 1.0 + (i % 3) as f64 }).collect();
        let e = envelope(&v, 250);
        assert!(e.len() <= 500);
        assert!(e.contains(&(438, 90.0)));
        assert!(e.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(envelope(&[5.0, 6.0], 250), [(1, 5.0), (2, 6.0)]);
    }

    #[test]
    fn running_median_drops_single_spikes() {
        assert_eq!(running_median(&[1.0, 9.0, 1.0, 1.0], 1), [9.0, 1.0, 1.0, 1.0]);
        assert_eq!(running_median(&[1.0, 2.0, 3.0], 0), [1.0, 2.0, 3.0]);
    }

    #[test]
    fn ranges_snap_to_ticks() {
        assert_eq!(y_range([1.5, 23.0].into_iter()), (1.0, 50.0));
        assert_eq!(y_range(std::iter::empty()), (0.1, 1.0));
        assert_eq!(y_range([2.0, 2.0].into_iter()), (2.0, 4.0));
    }

    #[test]
    fn draws_a_line_per_column() {
        let mut r = BenchResult::default();
        r.meta.n = 3;
        let mut a = Column::new("ours", SuiteKind::Ours);
        a.add_ms = vec![1.0, 1.1, 1.2];
        a.del_ms = vec![10.0, 11.0, 12.0];
        let mut b = Column::new("ref <go>", SuiteKind::Reference);
        b.add_ms = vec![20.0, 21.0, 22.0];
        b.del_ms = vec![30.0, 31.0, 32.0];
        r.scenarios.push(ScenarioResult {
            name: "bridge".into(),
            title: "bridge".into(),
            status: Status::Ok,
            columns: vec![a, b],
            timed_plugin: None,
            configs: Vec::new(),
            seconds: 0.0,
        });
        let pic = svg(&r).unwrap();
        assert_eq!(pic.matches("<polyline").count(), 8);
        assert!(pic.contains("ref &lt;go&gt;"));
        assert!(pic.trim_end().ends_with("</svg>"));
        assert!(svg(&BenchResult::default()).is_none());
    }
}
