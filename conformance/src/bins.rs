//! Where the built binaries are and how to exec one as a runtime would.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The directory holding the built binaries (`target/<profile>`), found
/// from the test executable's own path (`target/<profile>/deps/<test>`).
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("CNI_TEST_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(|p| p.parent()).expect("target/<profile>").to_path_buf()
}

/// The path of a built binary; fails the test with a hint when missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.exists(), "{} is not built: run `cargo build --workspace` (make test does)", p.display());
    p
}

/// What one plugin invocation returned.
#[derive(Debug)]
pub struct PluginRun {
    /// Exit status code.
    pub code: i32,
    /// stdout as text.
    pub stdout: String,
    /// stderr as text.
    pub stderr: String,
}

impl PluginRun {
    /// stdout parsed as JSON (fails the test when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts success and returns self.
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "plugin failed: {self:?}");
        self
    }

    /// Asserts a CNI error with `code` and returns the error object.
    pub fn err(self, code: u64) -> serde_json::Value {
        assert_ne!(self.code, 0, "expected an error, got success: {self:?}");
        let v = self.json();
        assert_eq!(v["code"].as_u64(), Some(code), "wrong error code: {v}");
        v
    }
}

/// Execs `plugin` with exactly `env` (plus PATH) and `stdin`, optionally
/// inside the named network namespace (as the host).
pub fn run_plugin(host_ns: Option<&str>, plugin: &str, env: &[(&str, &str)], stdin: &str) -> PluginRun {
    run_binary(host_ns, &bin(plugin), env, stdin)
}

/// [`run_plugin`] for any binary at `path`: the reference plugins in
/// `/usr/lib/cni`, run side by side with ours to compare.
pub fn run_binary(host_ns: Option<&str>, path: &Path, env: &[(&str, &str)], stdin: &str) -> PluginRun {
    let mut cmd = match host_ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(path);
            c
        }
        None => Command::new(path),
    };
    cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn plugin");
    let _ = child.stdin.take().expect("stdin").write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("wait plugin");
    PluginRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The directory of the running binary itself (the demo and the benchmark
/// sit beside the plugins), unless `CNI_TEST_BIN_DIR` says otherwise.
pub fn bin_dir_of_exe() -> PathBuf {
    if let Ok(d) = std::env::var("CNI_TEST_BIN_DIR") {
        return PathBuf::from(d);
    }
    std::env::current_exe().expect("own path").parent().expect("bin dir").to_path_buf()
}
