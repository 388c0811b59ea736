//! The leak check: what a host namespace holds (links, addresses, routes,
//! the nftables ruleset) taken once after a warm-up attachment has made the
//! shared state (bridge, tables), and again after the last DEL; plus the
//! IPAM leases, the runtime's result cache and the containers themselves.
//! Anything that differs is state a suite left behind, and fails the run.
//!
//! Read through `ip -j` and `nft`, independent of the code under test.

use super::namespaces::{links_here, v4_routes_here, Home};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// What a host namespace holds, normalised so that only state that
/// belongs to attachments can differ (no counters, no IPv6 link-local
/// addresses that follow a bridge's changing MAC).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostState {
    /// Link names.
    pub links: BTreeSet<String>,
    /// `dev address/prefix`.
    pub addrs: BTreeSet<String>,
    /// `table type dst via gw dev`.
    pub routes: BTreeSet<String>,
    /// `nft list ruleset`, counters removed.
    pub nft: Vec<String>,
}

fn run_json(cmd: &mut Command) -> Result<Value, String> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Array(Vec::new()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{cmd:?} printed invalid JSON: {e}"))
}

fn ip_json(ns: &str, args: &[&str]) -> Result<Value, String> {
    run_json(Command::new("ip").args(["-n", ns, "-j"]).args(args))
}

fn is_link_local(addr: &str) -> bool {
    addr.starts_with("fe80:") || addr.starts_with("ff")
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Removes `packets N bytes M` after `counter`, which traffic (router
/// solicitations of a new link) may change without anyone leaking state.
fn strip_counters(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        if (words[i] == "packets" || words[i] == "bytes") && i + 1 < words.len() {
            i += 2;
            continue;
        }
        out.push(words[i]);
        i += 1;
    }
    out.join(" ")
}

/// Reads the state of host namespace `ns`.
pub fn host_state(home: &Home, ns: &str) -> Result<HostState, String> {
    let mut st = HostState::default();
    let (links, nft) = home.within(ns, || {
        let nft = Command::new("nft").args(["list", "ruleset"]).output();
        (links_here(), nft)
    })?;
    st.links = links.into_iter().collect();
    let nft = nft.map_err(|e| format!("running nft in {ns}: {e}"))?;
    if !nft.status.success() {
        return Err(format!("nft list ruleset in {ns}: {}", String::from_utf8_lossy(&nft.stderr).trim()));
    }
    st.nft = String::from_utf8_lossy(&nft.stdout).lines().map(strip_counters).filter(|l| !l.is_empty()).collect();
    for link in ip_json(ns, &["addr", "show"])?.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            let local = text(a, "local");
            if !is_link_local(&local) {
                st.addrs.insert(format!("{} {local}/{}", text(link, "ifname"), text(a, "prefixlen")));
            }
        }
    }
    for fam in ["-4", "-6"] {
        for r in ip_json(ns, &[fam, "route", "show", "table", "all"])?.as_array().into_iter().flatten() {
            let dst = text(r, "dst");
            if is_link_local(&dst) {
                continue;
            }
            st.routes.insert(format!(
                "{} {} {dst} via {} dev {}",
                text(r, "table"),
                text(r, "type"),
                text(r, "gateway"),
                text(r, "dev")
            ));
        }
    }
    Ok(st)
}

/// What `after` has that `before` has not, and what it lost, as lines.
pub fn diff(before: &HostState, after: &HostState) -> Vec<String> {
    fn sets(out: &mut Vec<String>, what: &str, a: &BTreeSet<String>, b: &BTreeSet<String>) {
        out.extend(b.difference(a).map(|x| format!("{what} left: {x}")));
        out.extend(a.difference(b).map(|x| format!("{what} gone: {x}")));
    }
    let mut out = Vec::new();
    sets(&mut out, "link", &before.links, &after.links);
    sets(&mut out, "address", &before.addrs, &after.addrs);
    sets(&mut out, "route", &before.routes, &after.routes);
    let a: BTreeSet<String> = before.nft.iter().cloned().collect();
    let b: BTreeSet<String> = after.nft.iter().cloned().collect();
    sets(&mut out, "nftables", &a, &b);
    if out.is_empty() && before.nft != after.nft {
        out.push(format!("nftables ruleset changed ({} lines before, {} after)", before.nft.len(), after.nft.len()));
    }
    out
}

/// Leases still held in a host-local store for `network` (reservation
/// files; the lock, the last-reserved marks and hidden index files are the
/// store's own).
pub fn leases(data_dir: &Path, network: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(data_dir.join(network))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip") && !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What is left in container namespace `ns` beyond a down-or-up `lo`:
/// links and IPv4 routes, read by entering it.
pub fn container_leftovers(home: &Home, ns: &str) -> Result<Vec<String>, String> {
    let (links, routes) = home.within(ns, || (links_here(), v4_routes_here()))?;
    let mut out: Vec<String> = links.into_iter().filter(|l| l != "lo").map(|l| format!("link {l}")).collect();
    out.extend(routes.into_iter().map(|r| format!("route {r}")));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_ignored() {
        assert_eq!(
            strip_counters("\t\tip saddr 10.0.0.2 counter packets 3 bytes 180 masquerade"),
            "ip saddr 10.0.0.2 counter masquerade"
        );
    }

    #[test]
    fn diff_names_both_directions() {
        let mut a = HostState::default();
        a.links.insert("cni0".into());
        let mut b = a.clone();
        b.links.insert("veth1".into());
        b.nft.push("table ip x {".into());
        let d = diff(&a, &b);
        assert!(d.contains(&"link left: veth1".to_string()), "{d:?}");
        assert!(d.contains(&"nftables left: table ip x {".to_string()), "{d:?}");
        assert!(diff(&b, &b).is_empty());
    }
}
