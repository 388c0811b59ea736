//! Summaries of a series of latencies: percentiles, maximum, and the mean
//! of the first and last containers, which shows whether the cost grows
//! with the number of containers on the network.

use serde_json::{json, Value};

/// How many of the first and last samples the growth means use: 100, or
/// half the series when it is shorter than 200.
pub fn window(n: usize) -> usize {
    (n / 2).clamp(1, 100)
}

/// A summary of one series (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median (nearest rank).
    pub p50: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// Largest sample.
    pub max: f64,
    /// Mean of all samples.
    pub mean: f64,
    /// Mean of the first [`window`] samples, in order of the series.
    pub first_mean: f64,
    /// Mean of the last [`window`] samples.
    pub last_mean: f64,
}

/// The nearest-rank percentile `p` (0–100) of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

impl Summary {
    /// Summarises `series` (in the order it was measured).
    pub fn of(series: &[f64]) -> Summary {
        if series.is_empty() {
            return Summary::default();
        }
        let mut sorted = series.to_vec();
        sorted.sort_by(f64::total_cmp);
        let w = window(series.len());
        Summary {
            n: series.len(),
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            max: sorted[sorted.len() - 1],
            mean: mean(series),
            first_mean: mean(&series[..w]),
            last_mean: mean(&series[series.len() - w..]),
        }
    }

    /// Last-window mean over first-window mean: 1.0 is flat.
    pub fn growth(&self) -> f64 {
        ratio(self.last_mean, self.first_mean)
    }

    /// As JSON (milliseconds, rounded to microseconds).
    pub fn to_json(&self) -> Value {
        json!({
            "n": self.n, "p50": round(self.p50), "p90": round(self.p90), "max": round(self.max),
            "mean": round(self.mean), "first_mean": round(self.first_mean), "last_mean": round(self.last_mean),
            "window": window(self.n),
        })
    }
}

/// `a / b`, or 0 when `b` is not positive.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Rounds milliseconds to the microsecond for output.
pub fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 5.0);
        assert_eq!(percentile(&v, 90.0), 9.0);
        assert_eq!(percentile(&v, 100.0), 10.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn summary_and_growth() {
        let series: Vec<f64> = (0..400).map(|i| if i < 200 { 1.0 } else { 2.0 }).collect();
        let s = Summary::of(&series);
        assert_eq!((s.n, s.first_mean, s.last_mean, s.max), (400, 1.0, 2.0, 2.0));
        assert_eq!(s.growth(), 2.0);
        assert_eq!(window(20), 10);
        assert_eq!(window(1), 1);
        assert_eq!(ratio(1.0, 0.0), 0.0);
    }
}
