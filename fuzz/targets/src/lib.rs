//! Fuzz target bodies. Each takes arbitrary bytes and must return normally
//! for every input: a panic, or an invariant below that does not hold, is a
//! finding. The libFuzzer binaries in `fuzz/` call these (built on the
//! stable toolchain by `make fuzz`), and the smoke tests here replay the
//! seed corpus plus a few thousand mutations of it on every `cargo test`.
//!
//! Invariants checked besides "no panic":
//! - every failed plugin call prints one JSON error object with a numeric
//!   `code` and a `msg`; a successful one prints nothing or one JSON document;
//! - a result this suite prints in any version parses back in that version;
//! - host-local never hands out an address whose lease file existed before
//!   the ADD, whatever that file held.

#![warn(missing_docs)]

use cni::skel::{execute, Command, Context, Outcome};
use cni::{CniArgs, CniResult, Error, NetConfList, Plugin, Version};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub mod mutate;

/// Every version, oldest first.
fn versions() -> impl Iterator<Item = Version> {
    cni::version::SUPPORTED.iter().filter_map(|s| Version::parse(s))
}

/// Asserts the protocol's output rules on one outcome.
fn assert_outcome(o: &Outcome, what: &str) {
    if o.exit == 0 {
        if !o.stdout.is_empty() {
            let v: Value = serde_json::from_str(&o.stdout)
                .unwrap_or_else(|e| panic!("{what}: success printed non-JSON ({e}): {:?}", o.stdout));
            assert!(v.is_object(), "{what}: success printed {v}");
        }
        return;
    }
    let v: Value = serde_json::from_str(&o.stdout)
        .unwrap_or_else(|e| panic!("{what}: failure printed non-JSON ({e}): {:?}", o.stdout));
    assert!(v["code"].is_u64(), "{what}: error without a numeric code: {v}");
    assert!(v["msg"].is_string(), "{what}: error without a msg: {v}");
    assert_ne!(v["code"], 999, "{what}: an internal error: {v}");
}

/// A plugin that runs every parser a real plugin runs on its stdin, without
/// touching the system: the shared fields, the capabilities, `args.cni`,
/// `prevResult`, GC's valid list, and host-local's whole IPAM config.
struct Probe;

impl Probe {
    fn ipam(ctx: &Context, mode: host_local::config::Mode) -> Result<(), Error> {
        if ctx.raw.get("ipam").is_some_and(Value::is_object) {
            host_local::config::Config::load(ctx, mode)?;
        }
        Ok(())
    }
}

impl Plugin for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn add(&self, ctx: &Context) -> Result<CniResult, Error> {
        ctx.conf.runtime_config()?;
        ctx.conf.args_cni()?;
        Self::ipam(ctx, host_local::config::Mode::Add)?;
        let prev = ctx.prev_result()?;
        // Echo the previous result: the skeleton converts it to the
        // config's version, as a chained plugin's result is converted.
        Ok(prev.unwrap_or_else(|| CniResult {
            ips: vec![cni::result::IpConfig {
                interface: None,
                address: "10.1.2.3/24".parse().expect("literal"),
                gateway: None,
            }],
            ..Default::default()
        }))
    }
    fn del(&self, ctx: &Context) -> Result<(), Error> {
        ctx.prev_result()?;
        Self::ipam(ctx, host_local::config::Mode::Release)
    }
    fn check(&self, ctx: &Context) -> Result<(), Error> {
        let prev = ctx.require_prev_result()?;
        let _ = prev.container_ips(&ctx.ifname);
        Self::ipam(ctx, host_local::config::Mode::Verify)
    }
    fn gc(&self, ctx: &Context) -> Result<(), Error> {
        ctx.valid_attachments()?;
        Self::ipam(ctx, host_local::config::Mode::Release)
    }
    fn status(&self, ctx: &Context) -> Result<(), Error> {
        Self::ipam(ctx, host_local::config::Mode::Verify)
    }
}

/// Runs `plugin` for `command` with a plausible environment plus `extra`.
fn call<P: Plugin>(plugin: &P, command: Command, stdin: &[u8], extra: &[(&str, &str)]) -> Outcome {
    let mut env: HashMap<String, String> = [
        ("CNI_COMMAND", command.as_str()),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/nonexistent/netns"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/nonexistent/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let get = move |k: &str| env.get(k).cloned();
    execute(plugin, &get, &mut &stdin[..])
}

const ATTACHMENT_COMMANDS: [Command; 3] = [Command::Add, Command::Check, Command::Del];

/// Capability arguments a runtime might offer.
fn capabilities() -> Map<String, Value> {
    match json!({
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        "ips": ["10.1.2.3/24"],
        "ipRanges": [[{"subnet": "10.250.0.0/24"}]],
        "mac": "c2:11:22:33:44:55",
    }) {
        Value::Object(m) => m,
        _ => unreachable!("an object literal"),
    }
}

/// Config and conflist parsing: the bytes as a conflist (both parsers), as
/// a single `.conf`, and as the stdin of every command; every plugin of a
/// list that parses as the stdin a runtime builds for it.
pub fn conf(data: &[u8]) {
    let _ = runtime::config::conflist_from_bytes(data, None);
    let _ = NetConfList::from_bytes(data, true);
    let list = NetConfList::from_bytes(data, false);
    for command in [Command::Add, Command::Check, Command::Del, Command::Gc, Command::Status] {
        assert_outcome(&call(&Probe, command, data, &[]), "raw stdin");
    }
    let Ok(list) = list else { return };
    let version = list.selected_version().unwrap_or(Version::V110);
    let _ = list.selected_version();
    let caps = capabilities();
    let prev = CniResult {
        ips: vec![cni::result::IpConfig {
            interface: None,
            address: "10.1.2.3/24".parse().expect("literal"),
            gateway: None,
        }],
        ..Default::default()
    }
    .to_value(version)
    .ok();
    for plugin in list.plugins.iter().take(8) {
        let _ = NetConfList::declared_capabilities(plugin);
        for command in ATTACHMENT_COMMANDS {
            let prev = if command == Command::Add { None } else { prev.as_ref() };
            let Ok(req) = runtime::request::attachment_request(plugin, &list.name, version, &caps, prev) else {
                continue;
            };
            let bytes = serde_json::to_vec(&req).expect("a Value serializes");
            assert_outcome(&call(&Probe, command, &bytes, &[]), "runtime request");
        }
        let valid = [cni::config::Attachment { container_id: "c1".into(), ifname: "eth0".into() }];
        if let Ok(req) = runtime::request::gc_request(plugin, &list.name, version, &valid) {
            let bytes = serde_json::to_vec(&req).expect("a Value serializes");
            assert_outcome(&call(&Probe, Command::Gc, &bytes, &[]), "GC request");
        }
    }
}

/// `CNI_ARGS` and the other environment variables: the input is split at
/// newlines into `CNI_ARGS`, `CNI_CONTAINERID`, `CNI_IFNAME` and `CNI_PATH`.
pub fn cni_args(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let args = parts.next().unwrap_or_default();
    if let Ok(a) = CniArgs::parse(args) {
        let _ = a.get("IP");
        let _ = a.check_known(&["IP", "MAC"]);
    }
    let _ = runtime::attachment::parse_cni_args(args);
    let conf = br#"{"cniVersion":"1.0.0","name":"n","type":"probe",
        "ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00:1::/64"}]]}}"#;
    let mut extra = vec![("CNI_ARGS", args)];
    for (key, value) in ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"].into_iter().zip(parts) {
        extra.push((key, value));
    }
    for command in ATTACHMENT_COMMANDS {
        assert_outcome(&call(&Probe, command, conf, &extra), "CNI_ARGS");
    }
}

/// Result parsing and conversion: the bytes as a result declared in every
/// version, printed in every version, and what is printed parsed back.
pub fn result(data: &[u8]) {
    for declared in versions() {
        let _ = invoke::parse_result(data, declared);
    }
    let _ = invoke::plugin_error("exit status 1", data, data);
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    for declared in versions() {
        let Ok(r) = CniResult::parse(&value, declared) else { continue };
        let _ = r.container_ips("eth0");
        let _ = r.sandbox_interface("eth0");
        for out in versions() {
            let Ok(printed) = r.to_value(out) else { continue };
            let back = CniResult::parse(&printed, out)
                .unwrap_or_else(|e| panic!("a {out} result we printed does not parse back: {e}: {printed}"));
            // What survives one conversion survives it again unchanged.
            let again = back.to_value(out).expect("converted once, converts again");
            assert_eq!(again, printed, "conversion to {out} is not stable");
            let _ = r.to_pretty(out);
        }
    }
}

/// A scratch directory per thread, emptied for each input.
fn scratch() -> PathBuf {
    thread_local! {
        static DIR: PathBuf = std::env::temp_dir().join(format!(
            "cni-fuzz-store-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ).replace(['(', ')'], ""));
    }
    let dir = DIR.with(Clone::clone);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// Addresses of the fuzzed store's /29 (10.9.0.1 is the gateway).
const STORE_IPS: [&str; 6] = ["10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"];

/// The host-local store reader (and the runtime cache reader) on a store
/// whose files hold the input: chunks separated by NUL bytes become, in
/// order, the lease files of 10.9.0.2..6, `last_reserved_ip.0`, the index
/// entry of (c1, eth0) (a symlink text), the index seal, and the cache
/// file of (net, c1, eth0). Then DEL, CHECK, ADD and GC run on it.
pub fn store(data: &[u8]) {
    let dir = scratch();
    let store_dir = dir.join("net");
    let index_dir = store_dir.join(host_local::store::INDEX_DIR);
    std::fs::create_dir_all(&index_dir).expect("index directory");
    let mut chunks = data.split(|b| *b == 0);
    for ip in &STORE_IPS[1..] {
        if let Some(c) = chunks.next().filter(|c| !c.is_empty()) {
            std::fs::write(store_dir.join(ip), c).expect("lease");
        }
    }
    if let Some(c) = chunks.next().filter(|c| !c.is_empty()) {
        std::fs::write(store_dir.join("last_reserved_ip.0"), c).expect("marker");
    }
    if let Some(c) = chunks.next().filter(|c| !c.is_empty()) {
        use std::os::unix::ffi::OsStrExt;
        let _ = std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(c), index_dir.join("c1:eth0"));
    }
    if let Some(c) = chunks.next().filter(|c| !c.is_empty()) {
        std::fs::write(index_dir.join("seal"), c).expect("seal");
    }
    let cache = runtime::cache::Cache::new(dir.join("cache"));
    if let Some(c) = chunks.next().filter(|c| !c.is_empty()) {
        std::fs::create_dir_all(cache.dir()).expect("cache directory");
        std::fs::write(cache.dir().join("net-c1-eth0"), c).expect("cache file");
    }
    if let Ok(Some(entry)) = cache.read("net", "c1", "eth0") {
        let _ = entry.config_list();
        let _ = entry.attachment();
        for v in versions() {
            let _ = entry.result_in(v);
        }
    }
    let _ = cache.list(None);

    // Direct reads first.
    if let Ok(Some(s)) = host_local::store::Store::open(&dir, "net", host_local::store::Open::Existing) {
        let _ = s.last_reserved(0);
        for ip in STORE_IPS {
            let _ = s.lease(ip.parse().expect("literal"));
        }
        if s.ensure_index().is_ok() {
            let _ = s.held("c1", "eth0");
            let _ = s.candidates("c1", None);
        }
    }

    // Then the commands, as a runtime sends them.
    let conf = json!({"cniVersion": "1.1.0", "name": "net", "type": "probe",
        "ipam": {"type": "host-local", "dataDir": dir, "ranges": [[{"subnet": "10.9.0.0/29"}]]}});
    let bytes = serde_json::to_vec(&conf).expect("serializes");
    let hl = host_local::HostLocal;
    let mut check = conf.clone();
    check["prevResult"] = json!({"cniVersion": "1.1.0", "ips": [{"address": "10.9.0.2/29"}]});
    let check = serde_json::to_vec(&check).expect("serializes");
    assert_outcome(&call(&hl, Command::Check, &check, &[]), "CHECK on a fuzzed store");
    assert_outcome(&call(&hl, Command::Del, &bytes, &[]), "DEL on a fuzzed store");
    // Whatever DEL left is taken, whatever the files hold.
    let preexisting: Vec<String> = std::fs::read_dir(&store_dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let add = call(&hl, Command::Add, &bytes, &[("CNI_CONTAINERID", "fresh")]);
    assert_outcome(&add, "ADD on a fuzzed store");
    if add.exit == 0 {
        let v: Value = serde_json::from_str(&add.stdout).expect("checked above");
        let got = v["ips"][0]["address"].as_str().expect("an address").split('/').next().unwrap_or_default();
        assert!(!preexisting.iter().any(|p| p == got), "ADD handed out {got}, whose lease file already existed");
        assert_ne!(got, STORE_IPS[0], "ADD handed out the gateway");
        let lease = std::fs::read(store_dir.join(got)).expect("the new lease exists");
        assert_eq!(lease, b"fresh\r\neth0");
    }
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "fresh", "ifname": "eth0"}]);
    let gc = serde_json::to_vec(&gc).expect("serializes");
    assert_outcome(&call(&hl, Command::Gc, &gc, &[]), "GC on a fuzzed store");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The seed corpus of `target`: `fuzz/seeds/<target>/*`, and for `conf`
/// also every example in `cni-conf/`.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut dirs = vec![root.join("fuzz/seeds").join(target)];
    if target == "conf" {
        dirs.push(root.join("cni-conf"));
    }
    let mut files: Vec<PathBuf> =
        dirs.iter().filter_map(|d| std::fs::read_dir(d).ok()).flatten().flatten().map(|e| e.path()).collect();
    files.sort();
    files.into_iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeds, then `rounds` deterministic mutations of them: a smoke run
    /// on the stable toolchain (the long runs are `make fuzz`).
    fn smoke(target: &str, f: fn(&[u8]), rounds: usize) {
        let seeds = seeds(target);
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for s in &seeds {
            f(s);
        }
        let mut m = mutate::Mutator::new(0x5eed ^ target.len() as u64);
        for _ in 0..rounds {
            let input = m.mutate(&seeds);
            f(&input);
        }
    }

    #[test]
    fn conf_smoke() {
        smoke("conf", conf, 1500);
    }

    #[test]
    fn cni_args_smoke() {
        smoke("cni_args", cni_args, 3000);
    }

    #[test]
    fn result_smoke() {
        smoke("result", result, 3000);
    }

    #[test]
    fn store_smoke() {
        smoke("store", store, 300);
    }
}
