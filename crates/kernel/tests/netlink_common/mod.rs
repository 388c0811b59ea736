//! Throwaway network namespaces for the netlink integration tests: unique
//! names (`nct-<pid>-<n>`), deleted on drop even when a test panics, plus the
//! `ip`/`bridge -j` witnesses the tests assert with. Nothing here touches the
//! root namespace.
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use kernel::netlink::Handle;
use kernel::netns::Netns;
use serde_json::Value;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A namespace made with `ip netns add`, removed on drop.
pub struct TestNs {
    pub name: String,
}

impl TestNs {
    /// Creates a namespace with a name unique to this process and test.
    pub fn new() -> TestNs {
        let name = format!("nct-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        run("ip", &["netns", "add", &name]);
        TestNs { name }
    }

    /// Its bind-mount path.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Opens it.
    pub fn open(&self) -> Netns {
        Netns::open(self.path()).expect("open test netns")
    }

    /// A netlink handle bound to it.
    pub fn handle(&self) -> Handle {
        Handle::in_netns(&self.open()).expect("handle in test netns")
    }

    /// Runs `ip -n <ns> <args>` and expects success (test setup).
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// `ip -n <ns> -j -d <args>` parsed: the independent witness.
    pub fn ip_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["-n", &self.name, "-j", "-d"];
        all.extend_from_slice(args);
        json(&output("ip", &all))
    }

    /// The addresses `ip` shows on `dev`, as `address/prefix`.
    pub fn addresses(&self, dev: &str) -> Vec<String> {
        let v = self.ip_json(&["addr", "show", "dev", dev]);
        v[0]["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
            .collect()
    }

    /// `bridge -n <ns> -j <args>` parsed.
    pub fn bridge_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["-n", &self.name, "-j"];
        all.extend_from_slice(args);
        json(&output("bridge", &all))
    }

    /// `ip -j -d link show dev <name>`, or `None` when the link does not exist.
    pub fn link_json(&self, name: &str) -> Option<Value> {
        let out =
            Command::new("ip").args(["-n", &self.name, "-j", "-d", "link", "show", "dev", name]).output().unwrap();
        if !out.status.success() {
            return None;
        }
        json(&String::from_utf8_lossy(&out.stdout)).as_array().and_then(|a| a.first().cloned())
    }

    /// Reads a file of /proc/sys from inside the namespace via `ip netns exec`.
    pub fn sysctl(&self, rel: &str) -> String {
        output("ip", &["netns", "exec", &self.name, "cat", &format!("/proc/sys/{rel}")]).trim().to_string()
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

fn json(s: &str) -> Value {
    if s.trim().is_empty() {
        return Value::Array(vec![]);
    }
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad json {s:?}: {e}"))
}

fn output(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command and expects success.
pub fn run(cmd: &str, args: &[&str]) {
    output(cmd, args);
}

/// The flags array of an `ip -j link` entry contains `flag`.
pub fn has_flag(link: &Value, flag: &str) -> bool {
    link["flags"].as_array().is_some_and(|f| f.iter().any(|x| x == flag))
}
