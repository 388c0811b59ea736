//! libcni semantics in Rust: what a container runtime does around the
//! plugins, so that the suite can be driven (and tested, and benchmarked)
//! exactly as containerd, CRI-O or `cnitool` drive it.
//!
//! - [`config`]: find a network by name in a directory of `.conflist`,
//!   `.conf` and `.json` files, the way libcni does.
//! - [`request`]: build the stdin of one plugin of a chain (name and version
//!   injected, `runtimeConfig` filtered by declared capabilities,
//!   `prevResult`).
//! - [`exec`]: the seam between the chain and plugin processes; real
//!   binaries run through the suite's one runner, the `invoke` crate (find
//!   in `CNI_PATH`, exec with the `CNI_*` environment, stdout/stderr/exit
//!   status into a result or an error).
//! - [`cache`]: the result cache libcni keeps under `/var/lib/cni/results`,
//!   which DEL, CHECK and GC depend on.
//! - [`chain`]: [`Runtime`] with ADD, DEL, CHECK, GC and STATUS over a whole
//!   list.
//! - [`cli`]: the `cnitool` command line.
//!
//! Errors are [`cni::Error`] throughout: a plugin's own error object comes
//! back with its code, prefixed with which plugin failed.

#![warn(missing_docs)]

pub mod attachment;
pub mod cache;
pub mod chain;
pub mod cli;
pub mod config;
pub mod exec;
pub mod request;

pub use attachment::Attachment;
pub use cache::CacheEntry;
pub use chain::Runtime;
pub use cni::config::Attachment as GcAttachment;
pub use cni::{CniResult, Error, NetConfList, Version};
pub use exec::{PluginExec, ProcessExec};

/// Shorthand for the crate's results.
pub type Result<T> = std::result::Result<T, Error>;
