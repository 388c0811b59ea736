//! The demo's machinery: scenes run in namespaces it makes, each command
//! it runs is shown, each proof prints PASS or FAIL, and everything it made
//! is removed at the end (also after Ctrl-C) and checked to be gone.

use crate::netns::TestNs;
use crate::topology::Topology;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the SIGINT handler; scenes stop early and cleanup runs.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Routes Ctrl-C (and SIGTERM) to a flag so the demo can clean up before
/// exiting.
pub fn catch_ctrl_c() {
    // SAFETY: the handler only stores to an atomic, which is signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_sigint as *const () as libc::sighandler_t);
    }
}

/// State of one demo run.
pub struct Demo {
    /// Where the plugin binaries and cnitool are.
    pub bin_dir: PathBuf,
    /// Scratch space: configs, IPAM store, result cache.
    pub work: PathBuf,
    /// Where topology pictures go.
    pub out_dir: PathBuf,
    namespaces: Vec<TestNs>,
    /// Hosts whose configs are not the shared `net.d` (a simulated node of
    /// a cluster has its own).
    conf_dirs: std::collections::HashMap<usize, PathBuf>,
    /// The machine's own links and nftables tables when the demo started,
    /// to prove at the end that the demo changed neither.
    root_before: (Vec<String>, String),
    /// Number of failed proofs.
    pub failures: u32,
    /// Number of passed proofs.
    pub passes: u32,
}

/// The prefix of every namespace the demo makes, so the final check can
/// find leftovers.
pub const NS_PREFIX: &str = "demo";

impl Demo {
    /// Prepares scratch space and copies the bundled configs into it, with
    /// every host-local store pointed inside the scratch space.
    pub fn new(bin_dir: PathBuf, conf_src: &Path, out_dir: PathBuf) -> Demo {
        let work = std::env::temp_dir().join(format!("cni-demo-{}", std::process::id()));
        let conf = work.join("net.d");
        std::fs::create_dir_all(&conf).expect("scratch dir");
        std::fs::create_dir_all(&out_dir).expect("output dir");
        for entry in std::fs::read_dir(conf_src).expect("cni-conf dir").flatten() {
            let p = entry.path();
            let Ok(text) = std::fs::read_to_string(&p) else { continue };
            let Ok(mut v) = serde_json::from_str::<Value>(&text) else { continue };
            point_stores_at(&mut v, &work.join("ipam"));
            std::fs::write(conf.join(entry.file_name()), serde_json::to_string_pretty(&v).unwrap()).unwrap();
        }
        Demo {
            bin_dir,
            work,
            out_dir,
            namespaces: Vec::new(),
            conf_dirs: Default::default(),
            root_before: root_state(),
            failures: 0,
            passes: 0,
        }
    }

    /// The demo's scratch space (removed by [`Demo::cleanup`]).
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// A namespace for this scene (a host or a container).
    pub fn ns(&mut self, role: &str) -> usize {
        self.namespaces.push(TestNs::new(&format!("{NS_PREFIX}-{role}")));
        self.namespaces.len() - 1
    }

    /// The namespace made by [`Demo::ns`].
    pub fn get(&self, i: usize) -> &TestNs {
        &self.namespaces[i]
    }

    /// Prints a scene heading.
    pub fn heading(&self, n: usize, title: &str, what: &str) {
        println!("\n=== {n}. {title} ===\n{what}");
    }

    /// Runs `cnitool <cmd> <net> <container netns>` inside the host namespace.
    pub fn cnitool(
        &self,
        host: usize,
        cmd: &str,
        net: &str,
        ctr: usize,
        ifname: &str,
        cap_args: &str,
    ) -> Option<Value> {
        self.cnitool_args(host, cmd, net, ctr, ifname, cap_args, "")
    }

    /// [`Demo::cnitool`] with `CNI_ARGS` (e.g. the container's name,
    /// `K8S_POD_NAME=web`, as Podman sends it).
    #[allow(clippy::too_many_arguments)]
    pub fn cnitool_args(
        &self,
        host: usize,
        cmd: &str,
        net: &str,
        ctr: usize,
        ifname: &str,
        cap_args: &str,
        cni_args: &str,
    ) -> Option<Value> {
        let host_idx = host;
        let host = &self.namespaces[host];
        let ctr_path = self.namespaces[ctr].path();
        println!("$ cnitool {cmd} {net} {ctr_path}   (CNI_IFNAME={ifname}, in {})", host.name);
        let out = Command::new("ip")
            .args(["netns", "exec", &host.name])
            .arg(self.bin_dir.join("cnitool"))
            .args([cmd, net, &ctr_path])
            .env("NETCONFPATH", self.conf_dirs.get(&host_idx).cloned().unwrap_or_else(|| self.work.join("net.d")))
            .env("CNI_PATH", &self.bin_dir)
            .env("CNI_CACHE_DIR", self.work.join("cache"))
            .env("CNI_IFNAME", ifname)
            .env("CAP_ARGS", cap_args)
            .env("CNI_ARGS", cni_args)
            .output()
            .expect("running cnitool");
        if !out.status.success() {
            println!(
                "  cnitool {cmd} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        if out.stdout.is_empty() {
            return Some(Value::Null);
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Gives `host` its own config directory holding `configs` (name,
    /// JSON), with host-local stores and `peersFile` paths moved into the
    /// scratch space.
    pub fn host_configs(&mut self, host: usize, configs: &[(&str, Value)]) {
        let dir = self.work.join(format!("net.d-{host}"));
        std::fs::create_dir_all(&dir).expect("config dir");
        for (name, v) in configs {
            let mut v = v.clone();
            point_stores_at(&mut v, &self.work.join(format!("ipam-{host}")));
            std::fs::write(dir.join(name), serde_json::to_string_pretty(&v).expect("JSON")).expect("writing config");
        }
        self.conf_dirs.insert(host, dir);
    }

    /// Shows a command's output in a namespace, indented.
    pub fn show(&self, ns: usize, argv: &[&str]) {
        let ns = &self.namespaces[ns];
        println!("$ {}   (in {})", argv.join(" "), ns.name);
        let out = ns.exec(argv);
        for line in String::from_utf8_lossy(&out.stdout).lines().chain(String::from_utf8_lossy(&out.stderr).lines()) {
            println!("    {line}");
        }
    }

    /// Records and prints one proof.
    pub fn proof(&mut self, what: &str, ok: bool) {
        if ok {
            self.passes += 1;
            println!("  PASS  {what}");
        } else {
            self.failures += 1;
            println!("  FAIL  {what}");
        }
    }

    /// Writes a scene's picture and prints its path.
    pub fn picture(&self, scene: &str, topo: &Topology, heading: &str) {
        let p = self.out_dir.join(format!("{scene}.svg"));
        std::fs::write(&p, topo.to_svg(heading)).expect("writing picture");
        println!("  picture: {}", p.display());
    }

    /// Removes every namespace and the scratch space, then checks that
    /// nothing the demo made is left. Returns whether the check held.
    pub fn cleanup(&mut self) -> bool {
        let n = self.namespaces.len();
        self.namespaces.clear();
        let _ = std::fs::remove_dir_all(&self.work);
        let left: Vec<String> =
            list_namespaces().into_iter().filter(|n| n.starts_with(&format!("{NS_PREFIX}-"))).collect();
        let root_same = root_state() == self.root_before;
        let ok = left.is_empty() && !self.work.exists() && root_same;
        let verdict = if ok {
            "checked: nothing left, and the machine's own links and nftables tables are as before".to_string()
        } else {
            format!("LEFT BEHIND: namespaces {left:?}, root namespace unchanged: {root_same}")
        };
        println!("\ncleanup: removed {n} namespaces and {}; {verdict}", self.work.display());
        ok
    }
}

/// Names under /run/netns.
pub fn list_namespaces() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// Sets `ipam.dataDir` of every host-local block in a config or conflist.
pub fn point_stores_at(v: &mut Value, dir: &Path) {
    let plugins: Vec<&mut Value> = match v.get_mut("plugins").and_then(Value::as_array_mut) {
        Some(list) => list.iter_mut().collect(),
        None => vec![v],
    };
    for p in plugins {
        if let Some(ipam) = p.get_mut("ipam").and_then(Value::as_object_mut) {
            if ipam.get("type").and_then(Value::as_str) == Some("host-local") {
                ipam.insert("dataDir".into(), dir.display().to_string().into());
            }
        }
    }
}

/// The root namespace's link names and `nft list tables` output.
fn root_state() -> (Vec<String>, String) {
    let links = Command::new("ip").args(["-o", "link", "show"]).output().map(|o| o.stdout).unwrap_or_default();
    let mut names: Vec<String> = String::from_utf8_lossy(&links)
        .lines()
        .filter_map(|l| l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_string()))
        .collect();
    names.sort();
    let tables = Command::new("nft").args(["list", "tables"]).output().map(|o| o.stdout).unwrap_or_default();
    (names, String::from_utf8_lossy(&tables).into_owned())
}
