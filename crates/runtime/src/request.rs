//! The stdin each plugin of a chain receives, built as libcni builds it:
//! the plugin's own config with the list's `name` and the selected
//! `cniVersion` injected, `runtimeConfig` holding only the capability
//! arguments the plugin declared, and `prevResult` where the command has one.
//!
//! `capabilities` is kept in the request, as libcni 1.1 sends it (see the
//! reference captures in `chain-*-portmap.json`); the 1.1 spec text says a
//! runtime should strip it, and plugins ignore it either way. Keeping it
//! makes what our runtime sends identical to what the reference sends.
//!
//! Existing keys keep their place; injected keys that were absent are
//! appended in the order `cniVersion`, `name`, `runtimeConfig`,
//! `prevResult`, the order the reference captures show.

use crate::GcAttachment;
use cni::{Error, NetConfList, Version};
use serde_json::{Map, Value};

/// The capability arguments a plugin may see: those it declared `true` in
/// its `capabilities` and that the runtime offers. Nothing else leaks.
pub fn runtime_config(plugin: &Value, capability_args: &Map<String, Value>) -> Map<String, Value> {
    let mut rc = Map::new();
    for (cap, enabled) in NetConfList::declared_capabilities(plugin) {
        if !enabled {
            continue;
        }
        if let Some(v) = capability_args.get(&cap) {
            rc.insert(cap, v.clone());
        }
    }
    rc
}

fn base(plugin: &Value, name: &str, version: Version) -> crate::Result<Map<String, Value>> {
    let Some(obj) = plugin.as_object() else {
        return Err(Error::invalid_config(format!("network {name:?}: a plugin config is not a JSON object")));
    };
    let mut out = obj.clone();
    out.insert("cniVersion".into(), Value::String(version.as_str().into()));
    out.insert("name".into(), Value::String(name.into()));
    Ok(out)
}

/// The stdin of one plugin for ADD, DEL or CHECK. `prev_result` is the
/// result JSON already in `version` (the previous plugin's on ADD, the
/// cached final one on DEL and CHECK).
pub fn attachment_request(
    plugin: &Value,
    name: &str,
    version: Version,
    capability_args: &Map<String, Value>,
    prev_result: Option<&Value>,
) -> crate::Result<Value> {
    let mut out = base(plugin, name, version)?;
    let rc = runtime_config(plugin, capability_args);
    if !rc.is_empty() {
        out.insert("runtimeConfig".into(), Value::Object(rc));
    }
    if let Some(prev) = prev_result {
        out.insert("prevResult".into(), prev.clone());
    }
    Ok(Value::Object(out))
}

/// The stdin of one plugin for GC: `cni.dev/valid-attachments` lists what
/// must be kept, and the legacy key `cni.dev/attachments` carries the same
/// list, as libcni sends both.
pub fn gc_request(plugin: &Value, name: &str, version: Version, valid: &[GcAttachment]) -> crate::Result<Value> {
    let mut out = base(plugin, name, version)?;
    let list = serde_json::to_value(valid).map_err(|e| Error::decode(e.to_string()))?;
    out.insert("cni.dev/valid-attachments".into(), list.clone());
    out.insert("cni.dev/attachments".into(), list);
    Ok(Value::Object(out))
}

/// The stdin of one plugin for STATUS: the config with name and version.
pub fn status_request(plugin: &Value, name: &str, version: Version) -> crate::Result<Value> {
    base(plugin, name, version).map(Value::Object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caps() -> Map<String, Value> {
        json!({
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
            "ips": ["10.0.0.5/24"],
            "mac": "c2:11:22:33:44:55"
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn only_declared_capabilities_are_injected() {
        let plugin =
            json!({"type": "portmap", "capabilities": {"portMappings": true, "mac": false, "bandwidth": true}});
        let rc = runtime_config(&plugin, &caps());
        assert_eq!(rc.keys().collect::<Vec<_>>(), ["portMappings"]);
        assert_eq!(rc["portMappings"][0]["hostPort"], 8080);
        assert!(runtime_config(&json!({"type": "bridge"}), &caps()).is_empty());
        assert!(runtime_config(&json!({"type": "x", "capabilities": "bogus"}), &caps()).is_empty());
    }

    #[test]
    fn request_matches_the_reference_shape() {
        let plugin = json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true});
        let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.88.0.2/24"}]});
        let req = attachment_request(&plugin, "pmnet", Version::V100, &caps(), Some(&prev)).unwrap();
        let keys: Vec<&String> = req.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["type", "capabilities", "snat", "cniVersion", "name", "runtimeConfig", "prevResult"]);
        assert_eq!(req["cniVersion"], "1.0.0");
        assert_eq!(req["name"], "pmnet");
        assert_eq!(req["prevResult"], prev);
        assert_eq!(req["runtimeConfig"].as_object().unwrap().len(), 1);
    }

    #[test]
    fn injected_fields_override_the_plugin_s() {
        let plugin = json!({"cniVersion": "0.3.1", "name": "other", "type": "bridge", "runtimeConfig": {"x": 1}});
        let req = attachment_request(&plugin, "net", Version::V040, &Map::new(), None).unwrap();
        assert_eq!(req["cniVersion"], "0.4.0");
        assert_eq!(req["name"], "net");
        // No capability matched: an on-disk runtimeConfig is left alone, as libcni.
        assert_eq!(req["runtimeConfig"], json!({"x": 1}));
        assert!(req.get("prevResult").is_none());
        let keys: Vec<&String> = req.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["cniVersion", "name", "type", "runtimeConfig"]);
    }

    #[test]
    fn gc_request_has_both_keys() {
        let valid = vec![GcAttachment { container_id: "c1".into(), ifname: "eth0".into() }];
        let req = gc_request(&json!({"type": "bridge"}), "n", Version::V110, &valid).unwrap();
        assert_eq!(req["cni.dev/valid-attachments"], json!([{"containerID": "c1", "ifname": "eth0"}]));
        assert_eq!(req["cni.dev/attachments"], req["cni.dev/valid-attachments"]);
        let empty = gc_request(&json!({"type": "bridge"}), "n", Version::V110, &[]).unwrap();
        assert_eq!(empty["cni.dev/valid-attachments"], json!([]));
        let st = status_request(&json!({"type": "bridge"}), "n", Version::V110).unwrap();
        assert_eq!(st, json!({"type": "bridge", "cniVersion": "1.1.0", "name": "n"}));
    }

    #[test]
    fn non_object_plugin_is_an_error() {
        assert_eq!(attachment_request(&json!([1]), "n", Version::V100, &Map::new(), None).unwrap_err().code, 7);
    }
}
