//! `CNI_NETNS` naming something that is not a network namespace: a FIFO
//! (opening one for reading blocks until a writer comes), a regular file
//! (what an unmounted bind mount leaves), a directory, `/dev/null`. Every
//! plugin that opens the namespace must answer at once: ADD with an error
//! naming the path and leaving nothing behind, CHECK with an error, DEL with success
//! (nothing of the container can be reached through such a path, so DEL
//! cleans up what it keys by name, as for a namespace that is gone).
//! Each plugin runs under `timeout`, so a hang fails the test instead of
//! blocking it.

use conformance::fixture::{with_prev, Host};
use conformance::{bin, witness, PluginRun};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Seconds after which a plugin counts as hung (exit 124 from `timeout`).
const HANG: &str = "20";

/// Runs `plugin` in `host`'s namespace as [`Host::run`] does, killed after
/// [`HANG`] seconds.
fn run_bounded(host: &Host, plugin: &str, cmd: &str, netns: &str, stdin: &str) -> PluginRun {
    let path = bin(plugin);
    let dir = path.parent().unwrap().display().to_string();
    let mut child = Command::new("timeout")
        .args(["-s", "KILL", HANG, "ip", "netns", "exec", &host.ns.name])
        .arg(&path)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", "nsp1")
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn timeout");
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("wait");
    let run = PluginRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        run.code != 124 && run.code != 137 && run.code != -1,
        "{plugin} {cmd} with CNI_NETNS={netns} hung (killed after {HANG} s): {run:?}"
    );
    run
}

/// The non-namespace paths every plugin is tried with.
fn hostile_paths(dir: &Path) -> Vec<PathBuf> {
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let file = dir.join("file");
    std::fs::write(&file, b"").unwrap();
    let sub = dir.join("dir");
    std::fs::create_dir_all(&sub).unwrap();
    vec![fifo, file, sub, PathBuf::from("/dev/null")]
}

/// Every plugin that opens `CNI_NETNS`, with a config that makes it do so.
fn configs(host: &Host, netns: &str) -> Vec<(&'static str, Value)> {
    let ipam = json!({"type": "host-local", "ranges": [[{"subnet": "10.91.0.0/24"}]]});
    let prev = json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:5b:00:02", "sandbox": netns}],
        "ips": [{"address": "10.91.0.2/24", "interface": 0}]});
    let tuning = json!({"cniVersion": "1.0.0", "name": "nsp", "type": "tuning", "mtu": 1400,
        "dataDir": host.dir.join("tuning"), "prevResult": prev});
    vec![
        ("loopback", json!({"cniVersion": "1.0.0", "name": "nsp", "type": "loopback"})),
        ("bridge", json!({"cniVersion": "1.0.0", "name": "nsp", "type": "bridge", "bridge": "nspbr0", "ipam": ipam})),
        ("macvlan", json!({"cniVersion": "1.0.0", "name": "nsp", "type": "macvlan", "master": "m0", "ipam": ipam})),
        ("tuning", tuning),
        (
            "vxlan",
            json!({"cniVersion": "1.0.0", "name": "nsp", "type": "vxlan", "vni": 42, "underlayInterface": "m0",
                   "clusterCIDR": "10.128.0.0/9", "subnet": "10.200.1.0/24", "peers": [],
                   "ipam": {"type": "host-local"}}),
        ),
    ]
}

#[test]
fn a_path_that_is_not_a_netns_is_an_error_at_once_and_del_succeeds() {
    let host = Host::new("nsp");
    host.ns.ok(&["ip", "link", "add", "m0", "type", "veth", "peer", "name", "m0p"]);
    host.ns.ok(&["ip", "addr", "add", "192.0.2.1/24", "dev", "m0"]);
    host.ns.ok(&["ip", "link", "set", "m0", "up"]);
    let links_before = witness::link_names(&host.ns);
    for path in hostile_paths(&host.dir) {
        let netns = path.display().to_string();
        for (plugin, conf) in configs(&host, &netns) {
            let conf = host.conf(conf);
            for cmd in ["ADD", "CHECK"] {
                let stdin = if cmd == "CHECK" {
                    with_prev(
                        &conf,
                        &json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": netns}]}),
                    )
                } else {
                    conf.clone()
                };
                let run = run_bounded(&host, plugin, cmd, &netns, &stdin);
                assert_ne!(run.code, 0, "{plugin} {cmd} with CNI_NETNS={netns} succeeded: {run:?}");
                let msg = run.json()["msg"].as_str().unwrap_or_default().to_string();
                // CHECK may fail earlier, on what it checks first (the lease).
                if cmd == "ADD" {
                    assert!(msg.contains(&netns), "{plugin} ADD: the error does not name {netns}: {msg}");
                }
            }
            let run = run_bounded(&host, plugin, "DEL", &netns, &conf);
            assert_eq!(run.code, 0, "{plugin} DEL with CNI_NETNS={netns}: {run:?}");
            assert_eq!(witness::link_names(&host.ns), links_before, "{plugin} with {netns} left a link");
            assert!(host.leases("nsp").is_empty(), "{plugin} with {netns} left a lease");
        }
    }
}
