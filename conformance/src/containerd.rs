//! containerd 1.6 with its CRI plugin, as a Kubernetes node runs it, started
//! by a test: its own root, state and socket under a scratch directory, our
//! binaries as the CRI plugin's `bin_dir`, a conflist of the test's as its
//! `conf_dir`, and a pause image built here (no registry is reachable). It
//! runs inside a network namespace of the test, and a mount namespace of
//! its own, so the bridge, the veths and nftables stay out of the machine's
//! namespace and every mount it makes (snapshots, pod namespaces) dies
//! with it. Everything it started is
//! killed by PID on drop, also on panic.

use crate::netns::TestNs;
use serde_json::{json, Value};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pause image every pod sandbox runs, imported under this name.
const PAUSE_IMAGE: &str = "localhost/cni-test-pause:1";

/// The libcni cache containerd's CNI library writes (it sets no other).
pub const CNI_CACHE: &str = "/var/lib/cni/results";

/// Where shims of every containerd 1.6 put their sockets (fixed path).
const SHIM_SOCKETS: &str = "/run/containerd/s";

/// A running containerd and everything needed to take it down again.
pub struct Containerd {
    /// The namespace containerd, its shims and so the plugins run in: the
    /// node's "host" namespace as far as the pods can tell.
    pub ns: TestNs,
    /// Scratch space: root, state, socket, conf_dir, the IPAM store.
    pub dir: PathBuf,
    /// The name of the CNI network (unique per test).
    pub network: String,
    child: Child,
    cgroup: String,
    sockets_before: Vec<String>,
    // Last: removed after drop has killed everything that used it.
    _scratch: Scratch,
}

/// The scratch directory and the cgroup tree, removed on drop, so a
/// failure while starting leaves nothing either.
struct Scratch {
    dir: PathBuf,
    cgroup: String,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // runc made the pods' cgroups in every hierarchy under ours.
        for h in list(Path::new("/sys/fs/cgroup")) {
            rmdir_tree(&Path::new("/sys/fs/cgroup").join(h).join(&self.cgroup));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Containerd {
    /// Starts containerd with `conflist` as its only network (renamed to a
    /// name of its own, host-local pointed at the scratch directory), the
    /// pause image imported, ready for CRI calls.
    pub fn start(prefix: &str, mut conflist: Value) -> Containerd {
        let ns = TestNs::new(prefix);
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        let dir = std::env::temp_dir().join(format!("cni-test-{}", ns.name));
        let cgroup = ns.name.clone();
        let scratch = Scratch { dir: dir.clone(), cgroup: cgroup.clone() };
        std::fs::create_dir_all(dir.join("net.d")).expect("scratch dir");
        let network = format!("k8s-{}", ns.name);
        conflist["name"] = json!(network);
        crate::demo::point_stores_at(&mut conflist, &dir.join("ipam"));
        std::fs::write(dir.join("net.d/10-containerd-net.conflist"), conflist.to_string()).expect("conflist");
        std::fs::write(dir.join("config.toml"), config_toml(&dir)).expect("config.toml");
        let image = build_pause_image(&dir);

        let pids_cg = Path::new("/sys/fs/cgroup/pids").join(&cgroup);
        std::fs::create_dir_all(&pids_cg).expect("a pids cgroup for containerd");
        let log = std::fs::File::create(dir.join("containerd.log")).expect("log file");
        let netns = std::fs::File::open(ns.path()).expect("opening the test namespace");
        let mut cmd = Command::new("containerd");
        cmd.arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        // Not `ip netns exec`: it mounts a fresh /sys, without the cgroup
        // mounts runc needs. The same isolation by hand: a mount namespace
        // of its own (slave, so nothing it mounts shows outside and all of
        // it goes when its last process dies), then the test namespace.
        // SAFETY: only async-signal-safe calls on values made before fork;
        // they change the child alone.
        unsafe {
            cmd.pre_exec(move || {
                if libc::unshare(libc::CLONE_NEWNS) != 0
                    || libc::mount(
                        c"none".as_ptr(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_SLAVE,
                        std::ptr::null(),
                    ) != 0
                    || libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                // containerd dies with the test, even on SIGKILL.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let sockets_before = list(Path::new(SHIM_SOCKETS));
        let child = cmd.spawn().expect("starting containerd (Debian package containerd; make test installs it)");
        // Before containerd starts anything: the shims and the pods it
        // starts later inherit this cgroup, so drop finds them all.
        let _ = std::fs::write(pids_cg.join("cgroup.procs"), child.id().to_string());
        let c = Containerd { ns, dir, network, child, cgroup, sockets_before, _scratch: scratch };
        c.wait_ready();
        let out = c.ctr(&["-n", "k8s.io", "images", "import", &image.display().to_string()]);
        assert!(out.status.success(), "ctr images import: {out:?}\n{}", c.log());
        c
    }

    /// The CRI (and containerd) socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// The `cgroup_parent` to give pods, so their processes sit in the
    /// cgroup tree drop kills.
    pub fn cgroup_parent(&self) -> String {
        format!("/{}", self.cgroup)
    }

    /// containerd's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `ctr` against this containerd.
    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr").arg("-a").arg(self.socket()).args(args).output().expect("running ctr")
    }

    /// containerd's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// Mount points in containerd's own mount namespace under `under`
    /// (pod namespaces, snapshots), as its `/proc/<pid>/mountinfo` says.
    pub fn mounts_under(&self, under: &Path) -> Vec<String> {
        let info = std::fs::read_to_string(format!("/proc/{}/mountinfo", self.pid())).unwrap_or_default();
        let under = under.display().to_string();
        info.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&under)).map(str::to_string).collect()
    }

    /// The directory containerd's CRI mounts pod network namespaces in
    /// (`netns_mounts_under_state_dir`).
    pub fn netns_dir(&self) -> PathBuf {
        self.dir.join("state/io.containerd.grpc.v1.cri/netns")
    }

    /// The host-local store of the network.
    pub fn ipam_dir(&self) -> PathBuf {
        self.dir.join("ipam").join(&self.network)
    }

    /// Every PID in containerd's cgroup tree (containerd, shims, pods).
    fn pids(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let mut stack = vec![Path::new("/sys/fs/cgroup/pids").join(&self.cgroup)];
        while let Some(d) = stack.pop() {
            if let Ok(s) = std::fs::read_to_string(d.join("cgroup.procs")) {
                out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                }
            }
        }
        out
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.socket().exists() && self.ctr(&["version"]).status.success() {
                return;
            }
            assert!(Instant::now() < deadline, "containerd did not come up in 30 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Sandboxes never removed (a failed test) leave libcni cache files.
        let sandboxes = list(&self.dir.join("root/io.containerd.grpc.v1.cri/sandboxes"));
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::SIGKILL);
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for p in pids {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for s in list(Path::new(SHIM_SOCKETS)) {
            if !self.sockets_before.contains(&s) {
                let _ = std::fs::remove_file(Path::new(SHIM_SOCKETS).join(s));
            }
        }
        let _ = std::fs::remove_dir(SHIM_SOCKETS);
        let _ = std::fs::remove_dir("/run/containerd");
        for f in list(Path::new(CNI_CACHE)) {
            if f.starts_with(&format!("{}-", self.network)) || sandboxes.iter().any(|id| f.contains(id.as_str())) {
                let _ = std::fs::remove_file(Path::new(CNI_CACHE).join(f));
            }
        }
    }
}

/// Names in a directory (empty when it does not exist).
fn list(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// Removes a cgroup directory and its children, deepest first.
fn rmdir_tree(d: &Path) {
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            rmdir_tree(&e.path());
        }
    }
    let _ = std::fs::remove_dir(d);
}

/// containerd's config: the CRI plugin on, everything under `dir` (also
/// runc's state and the pods' network namespaces), no registry needed.
fn config_toml(dir: &Path) -> String {
    let d = dir.display();
    let bins = crate::bins::bin_dir();
    let bins = bins.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  disable_apparmor = true
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bins}"
    conf_dir = "{d}/net.d"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{d}/runc"
"#
    )
}

/// sha256 of a file, hex (coreutils `sha256sum`).
fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    assert!(out.status.success(), "sha256sum {}: {out:?}", path.display());
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("digest").to_string()
}

/// Stores `path` as a blob of the OCI layout at `oci`; (digest, size).
fn blob(oci: &Path, path: &Path) -> (String, u64) {
    let digest = sha256(path);
    let size = std::fs::metadata(path).expect("blob").len();
    std::fs::rename(path, oci.join("blobs/sha256").join(&digest)).expect("moving blob");
    (format!("sha256:{digest}"), size)
}

fn json_blob(oci: &Path, name: &str, v: &Value) -> (String, u64) {
    let p = oci.join(name);
    std::fs::write(&p, v.to_string()).expect("writing blob");
    blob(oci, &p)
}

/// A one-layer OCI image archive whose only file is Debian
/// `busybox-static`'s `/bin/busybox`, running `sleep` forever: all a
/// sandbox needs from its pause image.
fn build_pause_image(dir: &Path) -> PathBuf {
    let (rootfs, oci) = (dir.join("image/rootfs"), dir.join("image/oci"));
    std::fs::create_dir_all(rootfs.join("bin")).expect("rootfs");
    std::fs::create_dir_all(oci.join("blobs/sha256")).expect("oci layout");
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("/bin/busybox (Debian package busybox-static; make test installs it)");
    let layer = dir.join("image/layer.tar");
    let ok = Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer)
        .arg("bin")
        .status()
        .expect("tar");
    assert!(ok.success(), "tar of the layer failed");
    let diff_id = format!("sha256:{}", sha256(&layer));
    let (layer_digest, layer_size) = blob(&oci, &layer);
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/busybox", "sleep", "2147483647"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}
    });
    let (config_digest, config_size) = json_blob(&oci, "config.json", &config);
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}]
    });
    let (manifest_digest, manifest_size) = json_blob(&oci, "manifest.json", &manifest);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest_size,
            "annotations": {"io.containerd.image.name": PAUSE_IMAGE}
        }]
    });
    std::fs::write(oci.join("index.json"), index.to_string()).expect("index.json");
    std::fs::write(oci.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    let archive = dir.join("image/pause.tar");
    let ok = Command::new("tar").arg("-C").arg(&oci).arg("-cf").arg(&archive).arg(".").status().expect("tar");
    assert!(ok.success(), "tar of the image failed");
    archive
}
