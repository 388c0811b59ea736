//! The namespaces of a bench run. Made and removed in batches by one
//! `ip -batch` process (a thousand containers cost a fraction of a second),
//! entered by `setns()` of the bench thread so that the plugins it execs
//! start inside the "host" namespace without an `ip netns exec` in front of
//! them, and registered so that every one is removed on drop, also after a
//! failure or a panic.

use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

/// Where named namespaces are mounted.
const NETNS_DIR: &str = "/run/netns";

/// Runs `ip [-n ns] -force -batch -` with `lines` on stdin; `-force` goes on
/// past a failed line, and the first error is returned.
pub fn ip_batch(ns: Option<&str>, lines: &[String]) -> Result<(), String> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd
        .args(["-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running ip -batch: {e}"))?;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let _ = child.stdin.take().expect("stdin is piped").write_all(text.as_bytes());
    let out = child.wait_with_output().map_err(|e| format!("waiting for ip -batch: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip{} -batch failed: {}",
            ns.map(|n| format!(" -n {n}")).unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Every namespace the run made, by name; all are removed on drop.
#[derive(Debug)]
pub struct Registry {
    prefix: String,
    names: Vec<String>,
}

impl Registry {
    /// A registry whose namespaces all start with `prefix` (so leftovers of
    /// this run can be found by name).
    pub fn new(prefix: impl Into<String>) -> Registry {
        Registry { prefix: prefix.into(), names: Vec::new() }
    }

    /// The prefix of every name.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Creates the namespaces `names` (each must start with the prefix).
    /// They are registered before the attempt, so a partial failure is
    /// still cleaned up.
    pub fn create(&mut self, names: &[String]) -> Result<(), String> {
        if let Some(bad) = names.iter().find(|n| !n.starts_with(&self.prefix)) {
            return Err(format!("namespace {bad:?} does not start with {:?}", self.prefix));
        }
        self.names.extend(names.iter().cloned());
        let lines: Vec<String> = names.iter().map(|n| format!("netns add {n}")).collect();
        ip_batch(None, &lines)
    }

    /// Removes the namespaces `names` (missing ones are not an error).
    pub fn delete(&mut self, names: &[String]) {
        let lines: Vec<String> = names.iter().filter(|n| exists(n)).map(|n| format!("netns del {n}")).collect();
        if let Err(e) = ip_batch(None, &lines) {
            eprintln!("bench: {e}");
        }
        self.names.retain(|n| !names.contains(n));
    }

    /// Removes every registered namespace.
    pub fn delete_all(&mut self) {
        let all = std::mem::take(&mut self.names);
        self.delete(&all);
    }

    /// Namespaces with this run's prefix that still exist.
    pub fn leftovers(&self) -> Vec<String> {
        list().into_iter().filter(|n| n.starts_with(&self.prefix)).collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.delete_all();
    }
}

/// Names under /run/netns.
pub fn list() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether a namespace of this name exists.
pub fn exists(name: &str) -> bool {
    std::path::Path::new(NETNS_DIR).join(name).exists()
}

/// The path a runtime passes as `CNI_NETNS`.
pub fn path(name: &str) -> String {
    format!("{NETNS_DIR}/{name}")
}

/// An open named namespace that the bench thread can enter.
#[derive(Debug)]
pub struct Netns {
    /// The name under /run/netns.
    pub name: String,
    file: File,
    ino: u64,
}

impl Netns {
    /// Opens /run/netns/`name`.
    pub fn open(name: &str) -> Result<Netns, String> {
        let file = File::open(path(name)).map_err(|e| format!("opening namespace {name}: {e}"))?;
        let ino = file.metadata().map_err(|e| format!("stat of namespace {name}: {e}"))?.ino();
        Ok(Netns { name: name.to_string(), file, ino })
    }
}

/// The namespace the bench thread started in (the machine's own, never
/// changed by the bench), to come back to after each step.
#[derive(Debug)]
pub struct Home {
    file: File,
    ino: u64,
}

fn current_ino() -> Result<u64, String> {
    std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .map_err(|e| format!("reading this thread's namespace: {e}"))
}

impl Home {
    /// The calling thread's current namespace.
    pub fn current() -> Result<Home, String> {
        let file = File::open("/proc/thread-self/ns/net").map_err(|e| format!("opening own namespace: {e}"))?;
        let ino = file.metadata().map_err(|e| e.to_string())?.ino();
        Ok(Home { file, ino })
    }

    /// Moves the calling thread into `ns` until the guard is dropped; checks
    /// that the move happened, so no plugin ever runs in the wrong place.
    pub fn enter(&self, ns: &Netns) -> Result<Inside<'_>, String> {
        setns(&ns.file, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns into {}: {e}", ns.name))?;
        let guard = Inside { home: self };
        if current_ino()? != ns.ino {
            return Err(format!("setns into {} did not take effect", ns.name));
        }
        Ok(guard)
    }

    /// Runs `f` inside the namespace `name` (opened for the call only).
    pub fn within<T>(&self, name: &str, f: impl FnOnce() -> T) -> Result<T, String> {
        let ns = Netns::open(name)?;
        let _inside = self.enter(&ns)?;
        Ok(f())
    }
}

/// The calling thread is inside another namespace while this lives.
#[derive(Debug)]
pub struct Inside<'a> {
    home: &'a Home,
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        // Staying in a foreign namespace would make every later step wrong:
        // a failure here is fatal.
        setns(&self.home.file, CloneFlags::CLONE_NEWNET).expect("setns back to the bench's own namespace");
        assert_eq!(current_ino().ok(), Some(self.home.ino), "back in the bench's own namespace");
    }
}

/// Names of the links in the calling thread's namespace
/// (`/proc/thread-self/net/dev`: no process, no netlink).
pub fn links_here() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_default();
    let mut v: Vec<String> =
        text.lines().skip(2).filter_map(|l| l.split(':').next()).map(|n| n.trim().to_string()).collect();
    v.sort();
    v
}

/// IPv4 routes of the main table in the calling thread's namespace, as
/// `/proc/thread-self/net/route` lines (interface and destination).
pub fn v4_routes_here() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/thread-self/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespace_has_lo() {
        assert!(links_here().iter().any(|l| l == "lo"));
    }

    #[test]
    fn registry_refuses_foreign_names() {
        let mut r = Registry::new("cnib-test-");
        assert!(r.create(&["other".to_string()]).is_err());
        assert!(r.leftovers().is_empty());
    }
}
