//! The seam between the chain logic and plugin processes: [`PluginExec`]
//! finds and runs a plugin; [`ProcessExec`] runs real binaries through the
//! suite's one plugin runner (the `invoke` crate); tests record requests
//! and answer them without a process, or run plugins in another network
//! namespace.

use cni::Error;
use std::path::{Path, PathBuf};

/// How plugins are found and run. `Send + Sync` so one runtime can serve
/// concurrent operations.
pub trait PluginExec: Send + Sync + std::fmt::Debug {
    /// The binary for plugin `name` in `dirs`.
    fn find_plugin(&self, name: &str, dirs: &[PathBuf]) -> crate::Result<PathBuf> {
        invoke::find("type", name, dirs)
    }
    /// Runs `plugin` with `stdin` and the `env` pairs added to the inherited
    /// environment. `Ok` is the plugin's stdout after a zero exit; a failure
    /// is the plugin's error object, or one built from its stderr.
    fn exec_plugin(&self, plugin: &Path, stdin: &[u8], env: &[(String, String)]) -> crate::Result<Vec<u8>>;
}

/// Runs real plugin binaries as child processes, with no deadline (as
/// libcni without a context deadline).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessExec;

impl PluginExec for ProcessExec {
    fn exec_plugin(&self, plugin: &Path, stdin: &[u8], env: &[(String, String)]) -> Result<Vec<u8>, Error> {
        invoke::run_plugin(&invoke::Request::new(plugin, stdin, env))
    }
}
