//! Writes a run's files: `bench.json` (every figure and sample),
//! `bench.svg` (the plot) and `bench.md` (the table for the README), in one
//! output directory.

use super::results::BenchResult;
use super::{plot, report};
use std::path::{Path, PathBuf};

/// File name of the plot, also referenced from the Markdown.
const PLOT_FILE: &str = "bench.svg";

/// Where a run's files went.
#[derive(Debug, Clone)]
pub struct Written {
    /// The JSON file.
    pub json: PathBuf,
    /// The plot, when any scenario had figures.
    pub plot: Option<PathBuf>,
    /// The Markdown table.
    pub markdown: PathBuf,
}

/// Writes the three files into `dir` (created if needed).
pub fn write(r: &BenchResult, dir: &Path) -> Result<Written, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let put = |name: &str, body: &[u8]| -> Result<PathBuf, String> {
        let p = dir.join(name);
        std::fs::write(&p, body).map_err(|e| format!("writing {}: {e}", p.display()))?;
        Ok(p)
    };
    let json = put("bench.json", serde_json::to_string_pretty(&report::json(r)).expect("JSON").as_bytes())?;
    let plot = match plot::svg(r) {
        Some(svg) => Some(put(PLOT_FILE, svg.as_bytes())?),
        None => None,
    };
    let markdown = put("bench.md", report::markdown(r, PLOT_FILE).as_bytes())?;
    Ok(Written { json, plot, markdown })
}
