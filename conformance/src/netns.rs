//! A named network namespace per test, removed on drop (also on panic), so
//! tests never touch the machine's own namespace and never leak one.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace created for one test.
#[derive(Debug)]
pub struct TestNs {
    /// The name under /run/netns.
    pub name: String,
}

impl TestNs {
    /// Creates `<prefix>-<pid>-<n>`, as the kernel makes it (`lo` down).
    pub fn new(prefix: &str) -> TestNs {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        let out = Command::new("ip").args(["netns", "add", &name]).output().expect("running ip netns add");
        assert!(out.status.success(), "ip netns add {name}: {}", String::from_utf8_lossy(&out.stderr));
        TestNs { name }
    }

    /// The path a runtime passes as `CNI_NETNS`.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
            .unwrap_or_else(|e| panic!("running {argv:?} in {}: {e}", self.name))
    }

    /// Runs a command inside the namespace and fails the test if it fails;
    /// returns its stdout.
    pub fn ok(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        assert!(
            out.status.success(),
            "{argv:?} in {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether `ping -c1` from this namespace reaches `addr` (v4 or v6).
    pub fn ping(&self, addr: &str) -> bool {
        self.exec(&["ping", "-c", "1", "-W", "2", addr]).status.success()
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Whether a namespace of this name exists.
pub fn exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}
