//! The two plugin suites under test and the plugin-less floor: where each
//! one's binaries are, whether a scenario can run with them, their sizes
//! and versions.
//!
//! Our binaries are linked (or copied) into the bench's scratch space
//! before the first scenario, so a rebuild of `target/` during a long run
//! cannot swap the binaries under measurement.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Who does the work in one column of the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SuiteKind {
    /// This repository's plugins.
    Ours,
    /// The reference Go plugins (Debian's `containernetworking-plugins`).
    Reference,
    /// No plugin: the same kernel work by one `ip -batch` per container.
    Floor,
    /// The floor of the whole chain: the runtime execs each of our binaries
    /// of the chain as a no-op (`CNI_COMMAND=VERSION`: process start and
    /// exit, nothing else), then the floor's kernel work.
    ChainFloor,
}

impl SuiteKind {
    /// Short name for tables and JSON.
    pub fn label(self) -> &'static str {
        match self {
            SuiteKind::Ours => "ours",
            SuiteKind::Reference => "reference",
            SuiteKind::Floor => "floor",
            SuiteKind::ChainFloor => "chain floor",
        }
    }
}

/// Where the plugins of each suite are.
#[derive(Debug, Clone)]
pub struct Suites {
    /// Our binaries (the snapshot in the scratch space).
    pub ours: PathBuf,
    /// The reference binaries, when installed.
    pub reference: Option<PathBuf>,
}

impl Suites {
    /// The plugin directory of `kind` (`None` for the floor or a missing
    /// reference).
    pub fn dir(&self, kind: SuiteKind) -> Option<&Path> {
        match kind {
            SuiteKind::Ours => Some(&self.ours),
            SuiteKind::Reference => self.reference.as_deref(),
            SuiteKind::Floor | SuiteKind::ChainFloor => None,
        }
    }

    /// The plugins of `names` that `kind` lacks (all of them when the
    /// suite itself is missing; none for the floor).
    pub fn missing(&self, kind: SuiteKind, names: &[&str]) -> Vec<String> {
        let kind = match kind {
            SuiteKind::Floor => return Vec::new(),
            // Needs our binaries, to exec them as no-ops.
            SuiteKind::ChainFloor => SuiteKind::Ours,
            k => k,
        };
        match self.dir(kind) {
            Some(d) => names.iter().filter(|n| !d.join(n).is_file()).map(|n| n.to_string()).collect(),
            None => names.iter().map(|n| n.to_string()).collect(),
        }
    }

    /// Size in bytes of each plugin binary of `kind` among `names`.
    pub fn sizes(&self, kind: SuiteKind, names: &[&str]) -> Vec<(String, u64)> {
        let Some(d) = self.dir(kind) else { return Vec::new() };
        names.iter().filter_map(|n| std::fs::metadata(d.join(n)).ok().map(|m| (n.to_string(), m.len()))).collect()
    }
}

/// Links (or, across filesystems, copies) each of `names` found in `src`
/// into `dst`; returns how many were taken.
pub fn snapshot_binaries(src: &Path, dst: &Path, names: &[&str]) -> Result<usize, String> {
    std::fs::create_dir_all(dst).map_err(|e| format!("creating {}: {e}", dst.display()))?;
    let mut n = 0;
    for name in names {
        let from = src.join(name);
        if !from.is_file() {
            continue;
        }
        let to = dst.join(name);
        // Never write through an existing name: it may be a link to a
        // built binary, which a copy would overwrite.
        match std::fs::remove_file(&to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("removing {}: {e}", to.display())),
        }
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(|e| format!("copying {}: {e}", from.display()))?;
        }
        n += 1;
    }
    Ok(n)
}

fn first_line(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok().filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout).lines().next()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The reference suite's version: the Debian package's, else unknown.
pub fn reference_version() -> String {
    first_line(Command::new("dpkg-query").args(["-W", "-f=${Version}", "containernetworking-plugins"]))
        .map(|v| format!("containernetworking-plugins {v}"))
        .unwrap_or_else(|| "unknown".into())
}

/// Our version: the crate version and, inside a git checkout, the commit.
pub fn ours_version(repo: &Path) -> String {
    let base = format!("cni-rs {}", env!("CARGO_PKG_VERSION"));
    match first_line(Command::new("git").arg("-C").arg(repo).args(["rev-parse", "--short", "HEAD"])) {
        Some(rev) => format!("{base} (git {rev})"),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_sizes() {
        let d = std::env::temp_dir().join(format!("bench-suite-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("bridge"), b"12345").unwrap();
        let s = Suites { ours: d.clone(), reference: None };
        assert_eq!(s.missing(SuiteKind::Ours, &["bridge", "portmap"]), ["portmap"]);
        assert_eq!(s.missing(SuiteKind::Reference, &["bridge"]), ["bridge"]);
        assert!(s.missing(SuiteKind::Floor, &["bridge"]).is_empty());
        assert_eq!(s.sizes(SuiteKind::Ours, &["bridge", "portmap"]), [("bridge".to_string(), 5)]);
        let snap = d.join("snap");
        assert_eq!(snapshot_binaries(&d, &snap, &["bridge", "portmap"]).unwrap(), 1);
        assert!(snap.join("bridge").is_file());
        // A second snapshot from elsewhere replaces the link, never writes
        // through it into the first source.
        let other = d.join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("bridge"), b"xy").unwrap();
        snapshot_binaries(&other, &snap, &["bridge"]).unwrap();
        assert_eq!(std::fs::read(d.join("bridge")).unwrap(), b"12345");
        assert_eq!(std::fs::read(snap.join("bridge")).unwrap(), b"xy");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
