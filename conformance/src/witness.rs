//! Kernel state read through `ip -j` and `nft -j`: a witness independent
//! of the code under test.

use crate::netns::TestNs;
use serde_json::Value;

fn json(out: &str, what: &str) -> Value {
    if out.trim().is_empty() {
        return Value::Array(Vec::new());
    }
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{what} printed invalid JSON ({e}): {out}"))
}

/// `ip -j <args>` inside `ns`.
pub fn ip(ns: &TestNs, args: &[&str]) -> Value {
    let mut argv = vec!["ip", "-j"];
    argv.extend_from_slice(args);
    json(&ns.ok(&argv), "ip -j")
}

/// The link called `name` in `ns` (`ip -j -d link show`), if any.
pub fn link(ns: &TestNs, name: &str) -> Option<Value> {
    let out = ns.exec(&["ip", "-j", "-d", "link", "show", "dev", name]);
    if !out.status.success() {
        return None;
    }
    json(&String::from_utf8_lossy(&out.stdout), "ip -j link").as_array().and_then(|a| a.first().cloned())
}

/// Names of every link in `ns`.
pub fn link_names(ns: &TestNs) -> Vec<String> {
    ip(ns, &["link", "show"])
        .as_array()
        .map(|a| a.iter().filter_map(|l| l["ifname"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Addresses (`addr/prefix`) on `dev` in `ns`.
pub fn addresses(ns: &TestNs, dev: &str) -> Vec<String> {
    let v = ip(ns, &["addr", "show", "dev", dev]);
    let mut out = Vec::new();
    for l in v.as_array().into_iter().flatten() {
        for a in l["addr_info"].as_array().into_iter().flatten() {
            if let (Some(ip), Some(p)) = (a["local"].as_str(), a["prefixlen"].as_u64()) {
                out.push(format!("{ip}/{p}"));
            }
        }
    }
    out
}

/// `nft -j list ruleset` inside `ns`, as the array under `nftables`.
pub fn nft_ruleset(ns: &TestNs) -> Vec<Value> {
    let v = json(&ns.ok(&["nft", "-j", "list", "ruleset"]), "nft -j");
    v["nftables"].as_array().cloned().unwrap_or_default()
}

/// The keys of the elements of set or map `set` in table `table` (any
/// family), as `nft -j` prints them (addresses as text); empty when the
/// set does not exist.
pub fn nft_elements(ns: &TestNs, table: &str, set: &str) -> Vec<String> {
    let mut out = Vec::new();
    for item in nft_ruleset(ns) {
        let s = item.get("set").or_else(|| item.get("map"));
        let Some(s) = s.filter(|s| s["table"] == table && s["name"] == set) else { continue };
        for e in s["elem"].as_array().into_iter().flatten() {
            // Plain keys are strings; map entries are [key, value]; keys
            // with a comment are {"elem": {"val": key, ...}}.
            let key = match e {
                Value::Array(pair) => pair[0].clone(),
                other => other.clone(),
            };
            let key = key.get("elem").map(|x| x["val"].clone()).unwrap_or(key);
            out.push(match key {
                Value::String(s) => s,
                other => other.to_string(),
            });
        }
    }
    out
}

/// Whether the global IPv6 address of `dev` skipped duplicate address
/// detection (`nodad`): usable the moment the plugin returns.
pub fn v6_nodad(ns: &TestNs, dev: &str) -> bool {
    let v = ip(ns, &["-6", "addr", "show", "dev", dev, "scope", "global"]);
    v[0]["addr_info"][0]["nodad"] == Value::Bool(true)
}

/// Names of the veths in `ns`.
pub fn veths(ns: &TestNs) -> Vec<String> {
    ip(ns, &["-d", "link", "show", "type", "veth"])
        .as_array()
        .map(|a| a.iter().filter_map(|l| l["ifname"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Every element in the suite's nftables sets and maps (tables named
/// `cnirs-*`), except the per-network masquerade exemptions, which belong
/// to the network: what must be gone once every container is.
pub fn suite_elements(ns: &TestNs) -> Vec<String> {
    let mut out = Vec::new();
    for item in nft_ruleset(ns) {
        let Some(s) = item.get("set").or_else(|| item.get("map")) else { continue };
        let table = s["table"].as_str().unwrap_or_default();
        let name = s["name"].as_str().unwrap_or_default();
        if table.starts_with("cnirs-") && !name.contains("exempt") {
            for e in s["elem"].as_array().into_iter().flatten() {
                out.push(format!("{table} {name}: {e}"));
            }
        }
    }
    out
}
