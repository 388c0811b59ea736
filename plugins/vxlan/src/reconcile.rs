//! `vxlan reconcile <config>`: the host side of the overlay brought in
//! line with the config and the peer table, without a container. A watch
//! on the peers file or a timer runs it, so a host learns of a new peer
//! (or forgets a removed one) without waiting for the next pod.
//!
//! `<config>` is a network config file: a single plugin config, or a
//! conflist whose `vxlan` entry is used (taking the list's `name` and
//! `cniVersion`); `-` reads it from stdin. It runs in the caller's network
//! namespace, as the plugin does. On success it prints a JSON summary on
//! stdout and exits 0; on failure the CNI error object and exit 1.

use crate::{config, lock, overlay, peers, underlay};
use cni::version::CURRENT;
use cni::Error;
use kernel::netlink::Handle;
use serde_json::{json, Value};
use std::io::Read;

/// Largest config read.
const MAX_CONFIG: u64 = 1 << 20;

/// Reads the config at `path` (`-` for stdin).
pub fn read(path: &str) -> Result<Value, Error> {
    let mut buf = Vec::new();
    let res = if path == "-" {
        std::io::stdin().lock().take(MAX_CONFIG + 1).read_to_end(&mut buf)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(MAX_CONFIG + 1).read_to_end(&mut buf))
    };
    res.map_err(|e| Error::io(format!("reading {path}: {e}")))?;
    if buf.len() as u64 > MAX_CONFIG {
        return Err(Error::decode(format!("{path} is larger than {MAX_CONFIG} bytes")));
    }
    serde_json::from_slice(&buf).map_err(|e| Error::decode(format!("{path} is not valid JSON: {e}")))
}

/// The vxlan plugin config in `v`: `v` itself, or the conflist entry of
/// type `vxlan` with the list's name and version.
fn plugin_conf(v: &Value) -> Result<Value, Error> {
    let Some(list) = v.get("plugins") else {
        return Ok(v.clone());
    };
    let entries = list.as_array().ok_or_else(|| Error::decode("\"plugins\" is not a list"))?;
    let mut p = entries
        .iter()
        .find(|p| p.get("type").and_then(Value::as_str) == Some("vxlan"))
        .cloned()
        .ok_or_else(|| Error::invalid_config("the conflist has no plugin of type \"vxlan\""))?;
    for key in ["name", "cniVersion"] {
        if let Some(x) = v.get(key) {
            p[key] = x.clone();
        }
    }
    Ok(p)
}

/// The vxlan entry of the config file at `path`, with its name checked.
pub fn load(path: &str) -> Result<Value, Error> {
    let raw = plugin_conf(&read(path)?)?;
    if let Some(name) = raw.get("name").and_then(Value::as_str) {
        cni::validate::network_name(name)?;
    }
    Ok(raw)
}

fn reconcile(path: &str) -> Result<Value, Error> {
    apply(&config::from_raw(&load(path)?)?)
}

/// Brings this namespace's host side in line with `conf` and its peer
/// table, comparing every entry (also what the agent runs on each change).
pub fn apply(conf: &config::VxConf) -> Result<Value, Error> {
    let host = Handle::new()?;
    let ul = underlay::resolve(&host, conf)?;
    let table = peers::read(conf, ul.ip)?;
    let peers = table.parse()?;
    let _held = lock::lock()?;
    let side = overlay::ensure(&host, conf, &ul, overlay::Peers::Reconcile(&table, &peers))?;
    Ok(json!({
        "vtep": side.vtep.name,
        "bridge": side.bridge.name,
        "underlayIP": ul.ip.to_string(),
        "peers": peers.len(),
        "added": side.added,
        "removed": side.removed,
    }))
}

/// Writes only the difference between the peer sets `before` and `after`
/// (already checked; `after` is what `conf`'s peers file holds), without
/// reading the kernel's entries: the agent's path for one change among
/// thousands of peers. A VTEP that had to be (re)created gets everything.
pub fn apply_diff(conf: &config::VxConf, before: &[peers::Peer], after: &[peers::Peer]) -> Result<Value, Error> {
    let host = Handle::new()?;
    let ul = underlay::resolve(&host, conf)?;
    let table = peers::read(conf, ul.ip)?;
    let _held = lock::lock()?;
    let side = overlay::ensure(&host, conf, &ul, overlay::Peers::Diff { table: &table, before, after })?;
    Ok(json!({"peers": after.len(), "added": side.added, "removed": side.removed}))
}

/// Runs the mode with the arguments after `reconcile`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    cni::skel::init_logging();
    let [path] = args else {
        eprintln!("usage: vxlan reconcile <network config file | ->");
        return 2;
    };
    match reconcile(path) {
        Ok(summary) => {
            println!("{summary}");
            0
        }
        Err(e) => {
            println!("{}", cni::result::pretty(&e.to_json(CURRENT)));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_vxlan_entry_of_a_conflist() {
        let list = json!({"cniVersion": "1.0.0", "name": "ov", "plugins": [
            {"type": "vxlan", "vni": 3}, {"type": "portmap"}
        ]});
        let p = plugin_conf(&list).unwrap();
        assert_eq!(p, json!({"type": "vxlan", "vni": 3, "name": "ov", "cniVersion": "1.0.0"}));
        let single = json!({"type": "vxlan", "name": "ov"});
        assert_eq!(plugin_conf(&single).unwrap(), single);
        let none = json!({"name": "ov", "plugins": [{"type": "bridge"}]});
        assert_eq!(plugin_conf(&none).unwrap_err().code, 7);
    }
}
