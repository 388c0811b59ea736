//! Opt-in phase timing: where a plugin process spends its milliseconds
//! (process start, config parse, netlink requests, nftables batches, IPAM
//! delegation, exit), for `make bench PROFILE=1`.
//!
//! Off unless `CNI_RS_PROFILE` names a file; the variable is read once per
//! process, after which a disabled probe is one atomic load. When on, each
//! event is one line appended to that file with a single `write(2)`
//! (`O_APPEND`, so the processes of one chain can share the file):
//!
//! ```text
//! <pid> <program> <phase> <start ns> <end ns> [<detail>]
//! ```
//!
//! Times are `CLOCK_MONOTONIC`, the same clock in every process, so the
//! runner's spawn time and the child's first instruction in `main` can be
//! subtracted (that difference is the process start: exec, dynamic loader,
//! std's runtime set-up).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;

/// The variable naming the file events go to.
pub const ENV: &str = "CNI_RS_PROFILE";

struct Sink {
    file: std::fs::File,
    program: String,
}

static SINK: OnceLock<Option<Sink>> = OnceLock::new();

fn sink() -> Option<&'static Sink> {
    SINK.get_or_init(|| {
        let path = std::env::var_os(ENV).filter(|p| !p.is_empty())?;
        let file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).ok()?;
        let program = std::env::args_os()
            .next()
            .and_then(|a| std::path::Path::new(&a).file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "?".into());
        Some(Sink { file, program })
    })
    .as_ref()
}

/// Whether this process records phases.
pub fn enabled() -> bool {
    sink().is_some()
}

/// Now on `CLOCK_MONOTONIC`, in nanoseconds.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes only into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Records a phase that ran from `start` to `end` (from [`now_ns`]).
pub fn record(phase: &str, start: u64, end: u64, detail: &str) {
    let Some(s) = sink() else { return };
    let line = format!("{} {} {phase} {start} {end} {detail}\n", std::process::id(), s.program);
    let _ = (&s.file).write_all(line.as_bytes());
}

/// Records an instant (start = end).
pub fn mark(phase: &str) {
    if enabled() {
        let t = now_ns();
        record(phase, t, t, "");
    }
}

/// Times `f` as `phase` when enabled; otherwise just runs it.
pub fn time<T>(phase: &str, detail: impl FnOnce() -> String, f: impl FnOnce() -> T) -> T {
    if !enabled() {
        return f();
    }
    let start = now_ns();
    let out = f();
    record(phase, start, now_ns(), &detail());
    out
}

/// One parsed event line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The process that recorded it.
    pub pid: u32,
    /// Its program name (argv\[0\]'s file name).
    pub program: String,
    /// `main`, `parse`, `netlink`, `nft`, `ipam`, `exec`, `exit`...
    pub phase: String,
    /// Start, ns on `CLOCK_MONOTONIC`.
    pub start: u64,
    /// End, ns on `CLOCK_MONOTONIC`.
    pub end: u64,
    /// Free text (a request count, a child pid...).
    pub detail: String,
}

/// Parses the lines of a profile file (malformed lines are skipped).
pub fn parse(text: &str) -> Vec<Event> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(6, ' ');
            Some(Event {
                pid: it.next()?.parse().ok()?,
                program: it.next()?.to_string(),
                phase: it.next()?.to_string(),
                start: it.next()?.parse().ok()?,
                end: it.next()?.parse().ok()?,
                detail: it.next().unwrap_or("").trim().to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_skips_garbage() {
        let e = parse("12 bridge netlink 100 250 3 requests\nnonsense\n13 host-local main 5 5 \n");
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].pid, e[0].program.as_str(), e[0].phase.as_str()), (12, "bridge", "netlink"));
        assert_eq!((e[0].start, e[0].end, e[0].detail.as_str()), (100, 250, "3 requests"));
        assert_eq!(e[1].detail, "");
    }

    #[test]
    fn off_without_the_variable() {
        // The test runner does not set CNI_RS_PROFILE.
        if std::env::var_os(ENV).is_none() {
            assert!(!enabled());
            assert_eq!(time("x", || unreachable!(), || 7), 7);
        }
    }
}
