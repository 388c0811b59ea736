//! A "host" for plugin tests: its own namespace (the plugins run inside
//! it, never in the machine's own), a private IPAM store, and helpers to
//! run one plugin as a runtime would and to read what it left behind.

use crate::bins::{bin_dir, run_plugin, PluginRun};
use crate::netns::TestNs;
use serde_json::Value;
use std::path::PathBuf;

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
        let path = bin_dir().display().to_string();
        let mut env = vec![
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", cid),
            ("CNI_NETNS", ctr),
            ("CNI_IFNAME", ifname),
            ("CNI_PATH", path.as_str()),
        ];
        env.extend_from_slice(extra);
        run_plugin(Some(&self.ns.name), plugin, &env, stdin)
    }

    /// The addresses host-local holds for network `net` in this host's store.
    pub fn leases(&self, net: &str) -> Vec<String> {
        let dir = self.ipam_dir().join(net);
        let mut out: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip") && !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Names of the links in the host namespace that are veths.
    pub fn veths(&self) -> Vec<String> {
        crate::witness::ip(&self.ns, &["-d", "link", "show", "type", "veth"])
            .as_array()
            .map(|a| a.iter().filter_map(|l| l["ifname"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Adds a prevResult to a config, as a runtime does for CHECK and DEL.
pub fn with_prev(conf: &str, prev: &Value) -> String {
    let mut v: Value = serde_json::from_str(conf).expect("config JSON");
    v["prevResult"] = prev.clone();
    v.to_string()
}
