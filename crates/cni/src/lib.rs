//! The CNI protocol, with no system calls beyond reading the environment and
//! stdin in [`skel`]: everything a plugin and a runtime must agree on, kept in
//! one place so that every binary of the suite speaks it the same way.

pub mod args;
pub mod build_info;
pub mod caller;
pub mod config;
pub mod error;
pub mod filename;
pub mod gojson;
pub mod limits;
pub mod result;
pub mod skel;
pub mod testing;
pub mod validate;
pub mod version;

pub use args::CniArgs;
pub use config::{NetConf, NetConfList, RuntimeConfig};
pub use error::Error;
pub use result::CniResult;
pub use skel::{Command, Context, Plugin};
pub use version::Version;
