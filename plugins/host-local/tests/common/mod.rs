//! Helpers shared by the integration tests: run the built binary (or the
//! reference one) with CNI_* variables and a config on stdin, in a private
//! temp data directory, and look at the store it leaves.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// Our binary.
pub const OURS: &str = env!("CARGO_BIN_EXE_host-local");
/// The reference Go binary (containernetworking-plugins 1.1.1).
pub const REFERENCE: &str = "/usr/lib/cni/host-local";

/// A throwaway data directory, removed on drop.
pub struct DataDir(pub PathBuf);

impl DataDir {
    /// A fresh directory under the system temp dir, unique per test.
    pub fn new(tag: &str) -> DataDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "hl-it-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        DataDir(p)
    }

    /// The data dir as a string, for configs.
    pub fn s(&self) -> String {
        self.0.display().to_string()
    }

    /// The store directory of `network`.
    pub fn store(&self, network: &str) -> PathBuf {
        self.0.join(network)
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A network config: `ipam` gets `type` and `dataDir` added.
pub fn conf(version: &str, network: &str, dir: &DataDir, mut ipam: Value) -> Value {
    ipam["type"] = json!("host-local");
    if ipam.get("dataDir").is_none() {
        ipam["dataDir"] = json!(dir.s());
    }
    json!({"cniVersion": version, "name": network, "type": "bridge", "ipam": ipam})
}

/// A dual-stack config with a /24 and a /64.
pub fn dual(network: &str, dir: &DataDir) -> Value {
    conf("1.0.0", network, dir, json!({"ranges": [[{"subnet": "10.55.0.0/24"}], [{"subnet": "fd00:55::/64"}]]}))
}

/// What one run printed.
#[derive(Debug)]
pub struct Out {
    /// Exit status (None when killed).
    pub code: Option<i32>,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Out {
    /// The stdout JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts success and returns the result JSON (or Null for empty stdout).
    pub fn ok(&self) -> Value {
        assert_eq!(self.code, Some(0), "{self:?}");
        if self.stdout.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts an error with `code` and returns the error object.
    pub fn err(&self, code: u64) -> Value {
        assert_ne!(self.code, Some(0), "expected error {code}: {self:?}");
        let v = self.json();
        assert_eq!(v["code"], code, "{self:?}");
        v
    }

    /// The addresses of an ADD result.
    pub fn ips(&self) -> Vec<String> {
        self.ok()["ips"].as_array().unwrap().iter().map(|i| i["address"].as_str().unwrap().to_string()).collect()
    }
}

/// One invocation.
pub struct Call<'a> {
    pub bin: &'a str,
    pub command: &'a str,
    pub cid: &'a str,
    pub ifname: &'a str,
    pub args: &'a str,
    pub log_level: &'a str,
    pub env: Vec<(&'a str, String)>,
}

impl<'a> Call<'a> {
    /// `command` of our binary for (cid, eth0).
    pub fn new(command: &'a str, cid: &'a str) -> Call<'a> {
        Call { bin: OURS, command, cid, ifname: "eth0", args: "", log_level: "", env: Vec::new() }
    }

    /// The same with the reference binary.
    pub fn reference(mut self) -> Self {
        self.bin = REFERENCE;
        self
    }

    /// Sets the interface name.
    pub fn ifname(mut self, ifname: &'a str) -> Self {
        self.ifname = ifname;
        self
    }

    /// Sets CNI_ARGS.
    pub fn args(mut self, args: &'a str) -> Self {
        self.args = args;
        self
    }

    /// Sets CNI_LOG_LEVEL (logs go to stderr).
    pub fn log(mut self, level: &'a str) -> Self {
        self.log_level = level;
        self
    }

    /// Sets one more variable.
    pub fn env(mut self, key: &'a str, value: impl Into<String>) -> Self {
        self.env.push((key, value.into()));
        self
    }

    /// Starts the process with `stdin` written and closed.
    pub fn spawn(&self, stdin: &Value) -> Child {
        let mut cmd = Command::new(self.bin);
        cmd.env_clear()
            .env("CNI_COMMAND", self.command)
            .env("CNI_PATH", "/usr/lib/cni")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        if !self.cid.is_empty() {
            cmd.env("CNI_CONTAINERID", self.cid)
                .env("CNI_IFNAME", self.ifname)
                .env("CNI_NETNS", "/var/run/netns/hl-test");
        }
        if !self.args.is_empty() {
            cmd.env("CNI_ARGS", self.args);
        }
        if !self.log_level.is_empty() {
            cmd.env("CNI_LOG_LEVEL", self.log_level);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child =
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn plugin");
        let body = stdin.to_string();
        let mut pipe = child.stdin.take().unwrap();
        // A process killed early closes its end; that is fine.
        let _ = pipe.write_all(body.as_bytes());
        drop(pipe);
        child
    }

    /// Runs to completion.
    pub fn run(&self, stdin: &Value) -> Out {
        wait(self.spawn(stdin))
    }
}

/// Waits for a child and collects what it printed.
pub fn wait(child: Child) -> Out {
    let o = child.wait_with_output().unwrap();
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Every file under `root` with its content, except the index seal (which
/// records times and so changes whenever the store is touched).
pub fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                out.insert(rel, std::fs::read_link(&p).unwrap().into_os_string().into_vec());
            } else if ft.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(root, &p, out);
            } else if !rel.ends_with(".host-local-index/seal") {
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// The lease files of a store: address -> content.
pub fn leases(store: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(store) else { return out };
    for e in rd.flatten() {
        let name = e.file_name().into_string().unwrap();
        if name.parse::<std::net::IpAddr>().is_ok() {
            out.insert(name, std::fs::read_to_string(e.path()).unwrap());
        }
    }
    out
}

/// Whether the reference binary is installed (its tests are skipped if not).
pub fn have_reference() -> bool {
    let ok = Path::new(REFERENCE).exists();
    if !ok {
        eprintln!("skipping: {REFERENCE} is not installed");
    }
    ok
}

/// A small deterministic pseudo-random generator (xorshift), seeded from
/// the clock; the seed is printed so a failure can be replayed.
pub struct Rng(u64);

impl Rng {
    /// Seeds from `HL_SEED` or the clock.
    pub fn new() -> Rng {
        let seed = std::env::var("HL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        eprintln!("HL_SEED={seed}");
        Rng(seed)
    }

    /// The next number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
