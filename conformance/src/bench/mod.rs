//! `make bench`: how fast pods start at density, ours against the
//! reference Go plugins, side by side in one run on the user's machine.
//!
//! Each scenario (loopback; host-local alone; bridge + host-local; with
//! portmap; macvlan; our vxlan with 1 and 100 peers) runs the same config
//! files through the same runtime library once per suite, interleaved
//! container by container, in namespaces the bench makes and removes. The
//! figures (ADD/DEL p50, p90, max; the k-th ADD as the network grows; peak
//! RSS of a plugin process; binary size; the ratios) are measured, never
//! written down; a failed ADD or state left behind fails the run.
//!
//! Modules, one concern each: [`scenarios`] (what is measured),
//! [`suite`] (whose binaries), [`namespaces`] (making and entering
//! namespaces), [`exec`] (running a plugin with a meter), [`floor`] (the
//! kernel work without a plugin), [`snapshot`] (the leak check),
//! [`runner`] (the measurement), [`results`] and [`stats`] (the figures),
//! [`targets`] (the project's goals), [`report`], [`plot`] and
//! [`outputs`] (table, JSON, SVG); [`profile`] (`PROFILE=1`: where the
//! milliseconds of one ADD and one DEL go).

pub mod dns;
pub mod exec;
pub mod floor;
pub mod namespaces;
pub mod outputs;
pub mod plot;
pub mod profile;
pub mod report;
pub mod results;
pub mod runner;
pub mod scenarios;
pub mod snapshot;
pub mod stats;
pub mod suite;
pub mod targets;

pub use results::{BenchResult, Status};
pub use runner::{run, Options, INTERRUPTED};

/// Containers per network by default.
pub const DEFAULT_N: usize = 1000;
/// Containers per network with `--quick`.
pub const QUICK_N: usize = 100;
/// Where Debian installs the reference plugins.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";
