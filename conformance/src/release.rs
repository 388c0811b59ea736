//! What the packaging tests share: the Makefile's lists of binaries, where
//! `make dist` and `make deb` put their output, and a bridge + portmap flow
//! through cnitool that proves a set of installed binaries programs the
//! kernel (netlink and nftables), whatever directory they were installed in.

use crate::fixture::Host;
use crate::netns::TestNs;
use crate::witness;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

/// The words of the Makefile's `NAME :=` list (and of any `NAME +=`), so
/// the tests follow PLUGINS and TOOLS as plugins are added.
pub fn makefile_list(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("Makefile")).expect("Makefile");
    let mut words = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else { continue };
        let rest = rest.trim_start();
        let value = rest.strip_prefix(":=").or_else(|| rest.strip_prefix("+=")).or_else(|| rest.strip_prefix('='));
        if let Some(v) = value {
            words.extend(v.split_whitespace().map(String::from));
        }
    }
    assert!(!words.is_empty(), "no {name} list in the Makefile");
    words
}

/// The workspace version (the same for every crate).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where `make dist` and `make deb` write (`CNIRS_DIST_DIR` overrides).
pub fn dist_dir() -> PathBuf {
    std::env::var_os("CNIRS_DIST_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("dist"))
}

/// A file of `dist/`, or a failed test saying how to make it.
pub fn dist_file(name: &str) -> PathBuf {
    let p = dist_dir().join(name);
    assert!(p.exists(), "{} is missing: run `make dist deb` (make test does)", p.display());
    p
}

/// The commit `git` says HEAD is.
fn head_commit() -> String {
    let out = Command::new("git").arg("-C").arg(repo()).args(["rev-parse", "HEAD"]).output().expect("git");
    assert!(out.status.success(), "git rev-parse: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Checks that `text` names this version and a commit that HEAD's id starts
/// with (`(git <hex>[-dirty])`); a stale build fails with a hint.
pub fn assert_names_build(text: &str, what: &str) {
    let want = format!("version {VERSION} (git ");
    let at = text.find(&want).unwrap_or_else(|| panic!("{what}: no {want:?} in {text:?}"));
    let rest = &text[at + want.len()..];
    let commit = rest.split(')').next().unwrap_or_default();
    let hex = commit.trim_end_matches("-dirty");
    assert!(hex.len() >= 7 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "{what}: commit {commit:?} in {text:?}");
    assert!(
        head_commit().starts_with(hex),
        "{what}: built from {hex}, HEAD is {}: run `make dist deb` again",
        head_commit()
    );
}

/// Where and how the flow runs its cnitool.
pub struct Flow<'a> {
    /// A command prefix (e.g. `nsenter --mount=...`), or empty.
    pub wrap: &'a [String],
    /// The cnitool binary.
    pub cnitool: &'a Path,
    /// `CNI_PATH`: the plugins under test.
    pub cni_path: &'a Path,
}

/// One run of the flow's cnitool in `host`'s namespace, for container `ctr`.
fn cnitool(f: &Flow, host: &Host, cmd: &str, net: &str, ctr: &TestNs) -> Output {
    let mut argv: Vec<String> = f.wrap.to_vec();
    argv.extend(["ip", "netns", "exec", &host.ns.name].map(String::from));
    Command::new(&argv[0])
        .args(&argv[1..])
        .arg(f.cnitool)
        .args([cmd, net, &ctr.path()])
        .env("NETCONFPATH", host.dir.join("net.d"))
        .env("CNI_PATH", f.cni_path)
        .env("CNI_CACHE_DIR", host.dir.join("cache"))
        .env("CNI_CONTAINERID", format!("ctr-{}", ctr.name))
        .env("CAP_ARGS", r#"{"portMappings":[{"hostPort":18080,"containerPort":80,"protocol":"tcp"}]}"#)
        .output()
        .expect("exec cnitool")
}

/// Whether any nftables object of `host` mentions `needle`.
fn nft_mentions(host: &Host, needle: &str) -> bool {
    witness::nft_ruleset(&host.ns).iter().any(|o| o.to_string().contains(needle))
}

/// bridge (gateway, masquerade) + host-local + portmap through the flow's
/// cnitool and plugins: see [`conflist_flow`].
pub fn bridge_portmap_flow(tag: &str, f: &Flow) {
    let list = json!({
        "cniVersion": "1.0.0",
        "name": format!("{tag}-net"),
        "plugins": [
            {"type": "bridge", "bridge": "br-rel", "isGateway": true, "ipMasq": true,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.231.7.0/24"}]]}},
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    });
    conflist_flow(tag, f, list, "10.231.7.", "10.231.7.1");
}

/// `cni-conf/87-podman.conflist` (what `podman network create` writes:
/// bridge, host-local, portmap, firewall, tuning) as Podman's CNI backend
/// runs it, through the flow's cnitool and plugins: see [`conflist_flow`].
pub fn podman_flow(tag: &str, f: &Flow) {
    let text = std::fs::read(repo().join("cni-conf").join("87-podman.conflist")).expect("the Podman example");
    let list: Value = serde_json::from_slice(&text).expect("JSON");
    conflist_flow(tag, f, list, "10.89.77.", "10.89.77.1");
}

/// Runs `list` through the flow's cnitool in a host namespace of its own,
/// with a port mapping 18080 -> 80 as a runtime passes it: ADD gives the
/// container an address (starting with `prefix`) that reaches `gateway`,
/// a masquerade element and the mapping in nftables; CHECK passes; DEL
/// removes all three and the container's interface.
fn conflist_flow(tag: &str, f: &Flow, list: Value, prefix: &str, gateway: &str) {
    let host = Host::new(tag);
    let ctr = TestNs::new(&format!("{tag}c"));
    let net = list["name"].as_str().expect("a name").to_string();
    std::fs::create_dir_all(host.dir.join("net.d")).unwrap();
    std::fs::create_dir_all(host.dir.join("cache")).unwrap();
    std::fs::write(host.dir.join("net.d").join("10-rel.conflist"), host.conf(list)).unwrap();

    let out = cnitool(f, &host, "add", &net, &ctr);
    assert!(out.status.success(), "cnitool add: {out:?}");
    let result: Value = serde_json::from_slice(&out.stdout).expect("ADD result");
    let addr = result["ips"][0]["address"].as_str().expect("an address").split('/').next().unwrap().to_string();
    assert!(addr.starts_with(prefix), "{result}");
    assert!(ctr.ping(gateway), "the container reaches its gateway");
    assert!(nft_mentions(&host, "18080"), "the port mapping is in nftables");
    assert!(nft_mentions(&host, &addr), "the masquerade element is in nftables");
    let out = cnitool(f, &host, "check", &net, &ctr);
    assert!(out.status.success(), "cnitool check: {out:?}");

    let out = cnitool(f, &host, "del", &net, &ctr);
    assert!(out.status.success(), "cnitool del: {out:?}");
    assert!(!nft_mentions(&host, "18080"), "DEL removed the mapping");
    assert!(!nft_mentions(&host, &addr), "DEL removed the masquerade element");
    assert_eq!(witness::link_names(&ctr), vec!["lo"], "DEL removed the container's interface");
}
