//! A "host" for plugin tests: its own namespace (the plugins run inside
//! it, never in the machine's own), a private IPAM store, and helpers to
//! run one plugin as a runtime would and to read what it left behind.

use crate::bins::{bin, bin_dir, run_plugin, PluginRun};
use crate::netns::TestNs;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A host namespace plus scratch space, removed on drop.
pub struct Host {
    /// The namespace the plugins run in.
    pub ns: TestNs,
    /// Scratch space: the host-local store lives in `<dir>/ipam`.
    pub dir: PathBuf,
}

impl Host {
    /// A new host namespace (`lo` up) and scratch directory.
    pub fn new(prefix: &str) -> Host {
        let ns = TestNs::new(prefix);
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        let dir = std::env::temp_dir().join(format!("cni-test-{}", ns.name));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Host { ns, dir }
    }

    /// The host-local store of this host.
    pub fn ipam_dir(&self) -> PathBuf {
        self.dir.join("ipam")
    }

    /// Serialises a config, pointing any host-local IPAM at this host's store.
    pub fn conf(&self, mut v: Value) -> String {
        crate::demo::point_stores_at(&mut v, &self.ipam_dir());
        v.to_string()
    }

    /// Runs `plugin` with `cmd` for (`cid`, `ifname`) in container `ctr`
    /// (its path, or "" for none), with our binaries as `CNI_PATH`.
    pub fn run(&self, plugin: &str, cmd: &str, ctr: &str, cid: &str, ifname: &str, stdin: &str) -> PluginRun {
        self.run_env(plugin, cmd, ctr, cid, ifname, stdin, &[])
    }

    /// [`Host::run`] with extra variables (e.g. `CNI_ARGS`).
    #[allow(clippy::too_many_arguments)]
    pub fn run_env(
        &self,
        plugin: &str,
        cmd: &str,
        ctr: &str,
        cid: &str,
        ifname: &str,
        stdin: &str,
        extra: &[(&str, &str)],
    ) -> PluginRun {
        run_attachment(&self.ns, plugin, (cmd, ctr, cid, ifname), stdin, extra)
    }

    /// The addresses host-local holds for network `net` in this host's store.
    pub fn leases(&self, net: &str) -> Vec<String> {
        crate::bench::snapshot::leases(&self.ipam_dir(), net)
    }

    /// Writes `list` as `file`, the only config of the conf dir
    /// `<dir>/net.d`, makes cnitool's cache dir, and returns the conf dir.
    pub fn install(&self, file: &str, list: &Value) -> PathBuf {
        let dir = self.dir.join("net.d");
        std::fs::create_dir_all(&dir).expect("conf dir");
        std::fs::create_dir_all(self.dir.join("cache")).expect("cache dir");
        std::fs::write(dir.join(file), list.to_string()).expect("writing the config");
        dir
    }

    /// `cnitool <args>` in this host's namespace, as a runtime on it runs
    /// it: configs from `confdir`, our binaries, this host's cache; `env`
    /// adds the rest (`CNI_CONTAINERID`, `CNI_IFNAME`, `CAP_ARGS`, ...).
    pub fn cnitool(&self, confdir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns.name])
            .arg(bin("cnitool"))
            .args(args)
            .env("NETCONFPATH", confdir)
            .env("CNI_PATH", bin_dir())
            .env("CNI_CACHE_DIR", self.dir.join("cache"))
            .envs(env.iter().copied())
            .output()
            .expect("running cnitool")
    }

    /// An "outside" namespace `name` on a link of its own (host
    /// 198.51.100.1/24 on `up0`, client .2 on `up1`) with no route to the
    /// containers: only masquerade or a port mapping connects them.
    pub fn outside(&self, name: &str) -> TestNs {
        let client = TestNs::new(name);
        client.ok(&["ip", "link", "set", "lo", "up"]);
        let h = &self.ns;
        h.ok(&["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", &client.name]);
        h.ok(&["ip", "addr", "add", "198.51.100.1/24", "dev", "up0"]);
        h.ok(&["ip", "link", "set", "up0", "up"]);
        client.ok(&["ip", "addr", "add", "198.51.100.2/24", "dev", "up1"]);
        client.ok(&["ip", "link", "set", "up1", "up"]);
        client
    }

    /// Names of the links in the host namespace that are veths.
    pub fn veths(&self) -> Vec<String> {
        crate::witness::veths(&self.ns)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `plugin` in namespace `ns` as a runtime runs an attachment
/// command: `(command, container netns path or "", container id, ifname)`,
/// our binaries as `CNI_PATH`, `extra` added.
pub fn run_attachment(
    ns: &TestNs,
    plugin: &str,
    (cmd, ctr, cid, ifname): (&str, &str, &str, &str),
    stdin: &str,
    extra: &[(&str, &str)],
) -> PluginRun {
    let path = bin_dir().display().to_string();
    let mut env = vec![
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", cid),
        ("CNI_NETNS", ctr),
        ("CNI_IFNAME", ifname),
        ("CNI_PATH", path.as_str()),
    ];
    env.extend_from_slice(extra);
    run_plugin(Some(&ns.name), plugin, &env, stdin)
}

/// What a command that must succeed printed, as JSON (`Null` for
/// nothing); fails the test with `what` and the whole output otherwise.
pub fn json_of(out: Output, what: &str) -> Value {
    assert!(out.status.success(), "{what}: {out:?}");
    if out.stdout.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {out:?}"))
}

/// Adds a prevResult to a config, as a runtime does for CHECK and DEL.
pub fn with_prev(conf: &str, prev: &Value) -> String {
    let mut v: Value = serde_json::from_str(conf).expect("config JSON");
    v["prevResult"] = prev.clone();
    v.to_string()
}

/// Plants in `dir` what a writer killed between its temp file and the
/// rename leaves (`name`, e.g. `.tmp.4242.0`), last changed two hours
/// ago, so a GC's sweep takes it for a leftover; returns its path.
pub fn plant_stale_temp(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, "half a write").expect("planting a temp file");
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    let f = std::fs::File::options().write(true).open(&path).expect("opening the planted file");
    f.set_modified(two_hours_ago).expect("backdating the planted file");
    path
}
