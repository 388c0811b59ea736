//! The Debian package (`make deb`) installed and removed with dpkg, with
//! Podman (its conflist through cnitool, and Podman itself running a
//! container) and a cnitool flow through the installed binaries in
//! between, and nothing left after `dpkg -r`.
//!
//! This machine has Debian's containernetworking-plugins installed, and
//! other tests run its binaries from /usr/lib/cni at the same time. So the
//! package is installed for real with the real dpkg, but in a private mount
//! namespace where /usr, /var, /etc and /opt are overlays whose writes land
//! in a scratch directory: the machine's own files and dpkg database are
//! never changed, and what the round trip left is exactly what the
//! overlays' upper directories hold afterwards.

use conformance::release::{self, assert_names_build, dist_file, makefile_list, Flow, VERSION};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const OVERLAID: [&str; 4] = ["usr", "var", "etc", "opt"];

/// A process holding a private mount namespace with the overlays; commands
/// run in it through `nsenter`. Its mounts are slaves of the machine's, so
/// the namespaces the tests make under /run/netns afterwards are seen
/// inside, and nothing mounted inside is seen outside. Killed (by its pid)
/// on drop, which takes the namespace and its mounts with it.
struct Sandbox {
    child: Child,
    scratch: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let scratch = tempfile::Builder::new().prefix("cnirs-deb-").tempdir_in("/dev/shm").unwrap();
        let s = scratch.path().display();
        let mut script = String::from("set -e\n");
        for d in OVERLAID {
            script.push_str(&format!(
                "mkdir -p {s}/{d}.up {s}/{d}.work\n\
                 mount -t overlay overlay -o lowerdir=/{d},upperdir={s}/{d}.up,workdir={s}/{d}.work /{d}\n"
            ));
        }
        // A bounded life: the test kills it long before.
        script.push_str("echo ready\nexec sleep 900\n");
        let mut child = Command::new("unshare")
            .args(["--mount", "--propagation", "slave", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("unshare");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the overlays are mounted");
        Sandbox { child, scratch }
    }

    /// `nsenter` into the namespace: a prefix for commands.
    fn wrap(&self) -> Vec<String> {
        vec!["nsenter".into(), format!("--mount=/proc/{}/ns/mnt", self.child.id()), "--".into()]
    }

    fn run(&self, argv: &[&str]) -> Output {
        let w = self.wrap();
        Command::new(&w[0]).args(&w[1..]).args(argv).env("DEBIAN_FRONTEND", "noninteractive").output().unwrap()
    }

    fn ok(&self, argv: &[&str]) -> String {
        let out = self.run(argv);
        assert!(out.status.success(), "{argv:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    }

    /// Whether `path` exists (as anything, a dangling link too) inside.
    fn exists(&self, path: &str) -> bool {
        self.run(&["sh", "-c", &format!("[ -e {path} ] || [ -L {path} ]")]).status.success()
    }

    fn status(&self, package: &str) -> String {
        let out = self.run(&["dpkg-query", "-W", "-f=${Status}", package]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// What the overlays' upper directories hold that is not a whiteout (a
    /// deletion) nor a directory, outside what dpkg and Podman keep.
    fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        for d in OVERLAID {
            walk(&self.scratch.path().join(format!("{d}.up")), &format!("/{d}"), &mut found);
        }
        // dpkg's own bookkeeping; Podman's cache; the IPAM store host-local
        // kept for Podman's network (`/var/lib/cni`, as the reference does).
        const NOT_OURS: [&str; 5] =
            ["/var/lib/dpkg/", "/var/log/", "/var/cache/", "/var/lib/containers/", "/var/lib/cni/"];
        found.retain(|p| !NOT_OURS.iter().any(|k| p.starts_with(k)));
        found
    }
}

fn walk(dir: &Path, shown: &str, found: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        let name = format!("{shown}/{}", e.file_name().to_string_lossy());
        if t.is_dir() {
            walk(&e.path(), &name, found);
        } else if !(t.is_char_device() && std::fs::metadata(e.path()).map(|m| m.len() == 0).unwrap_or(false)) {
            found.push(name);
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dpkg -r cni-rs`. Podman's `golang-github-containers-common` depends on
/// `container-network-stack`, which we provide as the reference package
/// does: with Podman installed dpkg refuses to remove the last provider
/// unless told (`apt-get install containernetworking-plugins` is the way
/// back on a real node; the test has no package mirror to use).
fn remove() -> [&'static str; 4] {
    ["dpkg", "--force-depends", "-r", "cni-rs"]
}

/// Podman itself (4.x, its CNI backend, plugins from /usr/lib/cni) runs a
/// container on a network it creates, from an image imported from
/// busybox-static (no registry here), in `host`'s network namespace; its
/// storage, state and network configs in `dir`. The container sees its
/// address on eth0; after `podman run --rm` no veth is left. (`nsenter
/// --net` rather than `ip netns exec`, which would mount a /sys without
/// the cgroup file systems the OCI runtime needs; runc, which `make test`
/// installs, as crun refuses this machine's hybrid cgroup layout.)
fn podman_run(sb: &Sandbox, host: &conformance::TestNs, dir: &Path) {
    let d = dir.display();
    std::fs::create_dir_all(dir.join("rootfs/bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("rootfs/bin/busybox")).unwrap();
    std::fs::write(
        dir.join("containers.conf"),
        "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"/usr/lib/cni\"]\n",
    )
    .unwrap();
    let podman = format!(
        "export CONTAINERS_CONF={d}/containers.conf TMPDIR={d}; \
         podman() {{ command podman --root {d}/graph --runroot {d}/run --storage-driver vfs \
           --network-config-dir {d}/net.d \"$@\"; }}; "
    );
    let script = format!(
        "{podman} set -e; mkdir -p {d}/net.d; \
         tar -C {d}/rootfs -c . | podman import - localhost/cnirs-bb:1 >/dev/null; \
         podman network create --subnet 10.89.79.0/24 cnirs-deb >/dev/null; \
         podman --runtime \"$(command -v runc)\" run --rm --network cnirs-deb --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
           localhost/cnirs-bb:1 /bin/busybox ip -4 -o addr show eth0; \
         podman network rm cnirs-deb >/dev/null; podman rmi -a >/dev/null"
    );
    let out = sb.ok(&["nsenter", &format!("--net={}", host.path()), "sh", "-c", &script]);
    assert!(out.contains("inet 10.89.79."), "the container has its address: {out}");
    let veths = host.ok(&["ip", "-o", "link", "show", "type", "veth"]);
    assert!(veths.trim().is_empty(), "podman run --rm left a veth: {veths}");
}

fn deb() -> PathBuf {
    dist_file(&format!("cni-rs_{VERSION}_amd64.deb"))
}

#[test]
fn dpkg_install_then_remove_with_podman_and_cnitool_flows_in_between_leaves_nothing() {
    let deb = deb().display().to_string();
    let plugins = makefile_list("PLUGINS");
    let sb = Sandbox::new();
    // As on a node without containerd: no /opt/cni/bin yet.
    sb.ok(&["rm", "-rf", "/opt/cni"]);
    let reference_was = sb.status("containernetworking-plugins");

    let log = sb.ok(&["dpkg", "-i", &deb]);
    assert_eq!(sb.status("cni-rs"), "install ok installed", "{log}");
    if reference_was.contains("installed") {
        assert_ne!(sb.status("containernetworking-plugins"), "install ok installed", "replaced: {log}");
    }
    for p in &plugins {
        let out = sb.run(&[&format!("/usr/lib/cni/{p}")]);
        assert!(out.status.success(), "{p}: {out:?}");
        assert_names_build(&String::from_utf8_lossy(&out.stderr), p);
        let link = sb.ok(&["readlink", &format!("/opt/cni/bin/{p}")]);
        assert_eq!(link.trim(), format!("/usr/lib/cni/{p}"), "the /opt/cni/bin link of {p}");
    }
    for t in makefile_list("TOOLS") {
        assert_names_build(&sb.ok(&[&format!("/usr/bin/{t}"), "--version"]), &t);
    }
    assert!(sb.exists("/usr/share/doc/cni-rs/examples/87-podman.conflist"));
    assert!(sb.exists("/usr/share/doc/cni-rs/copyright"));
    // Installing again (what an upgrade runs: old prerm, new postinst) keeps
    // the links, and the package still counts them as its own.
    sb.ok(&["dpkg", "-i", &deb]);
    assert_eq!(sb.status("cni-rs"), "install ok installed");
    let again = sb.ok(&["readlink", "/opt/cni/bin/bridge"]);
    assert_eq!(again.trim(), "/usr/lib/cni/bridge", "links kept over a reinstall");

    // Podman's conflist from Podman's directory; a flow through the links
    // containerd and the kubelet use.
    let wrap = sb.wrap();
    let cnitool = PathBuf::from("/usr/bin/cnitool");
    release::podman_flow("deb-pod", &Flow { wrap: &wrap, cnitool: &cnitool, cni_path: Path::new("/usr/lib/cni") });
    release::bridge_portmap_flow(
        "deb-opt",
        &Flow { wrap: &wrap, cnitool: &cnitool, cni_path: Path::new("/opt/cni/bin") },
    );
    // And Podman itself, in a namespace of its own (never the machine's).
    let podman_host = conformance::TestNs::new("deb-podman");
    podman_host.ok(&["ip", "link", "set", "lo", "up"]);
    let podman_dir = tempfile::Builder::new().prefix("cnirs-deb-podman-").tempdir_in("/dev/shm").unwrap();
    podman_run(&sb, &podman_host, podman_dir.path());

    let log = sb.ok(&remove());
    assert!(!sb.status("cni-rs").contains("installed") || sb.status("cni-rs").contains("not-installed"), "{log}");
    for path in ["/usr/lib/cni/bridge", "/usr/bin/cnitool", "/usr/share/doc/cni-rs", "/opt/cni", "/var/lib/cni-rs"] {
        assert!(!sb.exists(path), "{path} is left after dpkg -r");
    }
    assert_eq!(sb.leftovers(), Vec::<String>::new(), "files left by the install/remove round trip");
}

#[test]
fn opt_cni_bin_holding_other_plugins_is_left_alone() {
    let deb = deb().display().to_string();
    let sb = Sandbox::new();
    sb.ok(&["mkdir", "-p", "/opt/cni/bin"]);
    sb.ok(&["sh", "-c", "echo theirs > /opt/cni/bin/flannel && chmod 755 /opt/cni/bin/flannel"]);
    let log = sb.ok(&["dpkg", "-i", &deb]);
    assert!(log.contains("holds other plugins"), "{log}");
    assert!(!sb.exists("/opt/cni/bin/bridge"), "no link beside another vendor's plugins");
    assert!(sb.exists("/usr/lib/cni/bridge"));
    sb.ok(&remove());
    assert_eq!(sb.ok(&["cat", "/opt/cni/bin/flannel"]).trim(), "theirs");
    assert!(!sb.exists("/var/lib/cni-rs"));
}
