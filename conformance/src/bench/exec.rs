//! Plugin execution with a meter: every plugin process the runtime starts is
//! run by the suite's one runner (`invoke`), which reaps it with `wait4`, so
//! the bench learns its wall time and its peak resident set (`ru_maxrss`)
//! without a second tool around it.
//!
//! Both suites go through this one implementation, so whatever it costs
//! beyond a plain spawn is the same for ours and for the reference.

use runtime::{Error, PluginExec};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// One finished plugin process.
#[derive(Debug, Clone)]
pub struct ExecRecord {
    /// The binary's file name (the plugin type).
    pub plugin: String,
    /// `CNI_COMMAND` it ran.
    pub command: String,
    /// From spawn to reaped.
    pub wall: Duration,
    /// Peak resident set in KiB, of the process or of the largest child it
    /// waited for (the kernel's `ru_maxrss` after `wait4`).
    pub max_rss_kib: u64,
}

/// A [`PluginExec`] that runs real processes and records an
/// [`ExecRecord`] for each; the bench drains them after every operation.
#[derive(Debug, Default)]
pub struct MeteredExec {
    records: Mutex<Vec<ExecRecord>>,
}

impl MeteredExec {
    /// Removes and returns what was recorded since the last call.
    pub fn take(&self) -> Vec<ExecRecord> {
        std::mem::take(&mut *self.records.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn env_value<'a>(env: &'a [(String, String)], key: &str) -> &'a str {
    env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_default()
}

impl PluginExec for MeteredExec {
    fn exec_plugin(&self, plugin: &Path, stdin: &[u8], env: &[(String, String)]) -> runtime::Result<Vec<u8>> {
        let req = invoke::Request::new(plugin, stdin, env);
        let out =
            invoke::run(&req).map_err(|e| Error::io(format!("failed to exec plugin {}: {e}", plugin.display())))?;
        self.records.lock().unwrap_or_else(|p| p.into_inner()).push(ExecRecord {
            plugin: plugin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            command: env_value(env, "CNI_COMMAND").to_string(),
            wall: out.wall,
            max_rss_kib: out.max_rss_kib,
        });
        out.into_stdout(&req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    use std::path::PathBuf;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn records_each_process_and_keeps_errors() {
        let d = std::env::temp_dir().join(format!("bench-exec-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let ok = script(&d, "ok", "read -r l; printf '%s' \"$CNI_COMMAND:$l\"");
        let bad = script(&d, "bad", r#"echo '{"code": 11, "msg": "later"}'; exit 1"#);
        let exec = MeteredExec::default();
        let env = vec![("CNI_COMMAND".to_string(), "ADD".to_string())];
        assert_eq!(exec.exec_plugin(&ok, b"{}\n", &env).unwrap(), b"ADD:{}");
        let e = exec.exec_plugin(&bad, b"{}", &env).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (11, "later"));
        let recs = exec.take();
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].plugin.as_str(), recs[0].command.as_str()), ("ok", "ADD"));
        assert!(recs[0].max_rss_kib > 0);
        assert!(exec.take().is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
