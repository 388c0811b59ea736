//! Network configuration: the per-plugin request (`NetConf`), the on-disk
//! conflist, and the well-known `runtimeConfig` capabilities.
//!
//! Only the fields every plugin shares are typed here; each plugin reads its
//! own options from the same JSON with [`crate::Context::config`].

use crate::error::Error;
use crate::validate;
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Deserialises `v` with Go's key matching ([`crate::gojson`]), naming the
/// offending field in the code-7 error
/// (`field "mtu": invalid type: string "big", expected i64`).
pub fn from_value<T: serde::de::DeserializeOwned>(v: &Value, what: &str) -> Result<T, Error> {
    crate::gojson::from_value_with_path(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            Error::invalid_config(format!("invalid {what} config: {inner}"))
        } else {
            Error::invalid_config(format!("invalid {what} config: field {path:?}: {inner}"))
        }
    })
}

/// The fields of a plugin request that the spec defines for every plugin.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct NetConf {
    /// The version the runtime selected; empty means 0.1.0.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// The network name; a directory and nftables key, so validated.
    #[serde(default)]
    pub name: String,
    /// The plugin binary.
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// The IPAM section; `{}` (no type) means no addresses.
    #[serde(default)]
    pub ipam: Option<IpamConf>,
    /// DNS for the result.
    #[serde(default)]
    pub dns: Option<Dns>,
    /// Whether to masquerade traffic leaving the network.
    #[serde(rename = "ipMasq", default)]
    pub ip_masq: bool,
    /// Capability arguments injected by the runtime (parsed lazily).
    #[serde(rename = "runtimeConfig", default)]
    pub runtime_config: Option<Value>,
    /// The previous plugin's result (ADD) or the final result (DEL/CHECK).
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<Value>,
    /// Conventional `args` (e.g. `args.cni.ips`).
    #[serde(default)]
    pub args: Option<Value>,
}

/// The IPAM section of a config: only `type` is common.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct IpamConf {
    /// The IPAM plugin binary; empty means no IPAM.
    #[serde(rename = "type", default)]
    pub ipam_type: String,
}

/// DNS settings as results and configs carry them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Dns {
    /// Name servers, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether nothing is set (an empty `dns` is printed as `{}`).
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty() && self.domain.is_empty() && self.search.is_empty() && self.options.is_empty()
    }
}

/// One `portMappings` entry (`-p 8888:80/tcp`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PortMapping {
    /// Port on the host; signed so that a bad value gets our message.
    #[serde(rename = "hostPort")]
    pub host_port: i64,
    /// Port in the container.
    #[serde(rename = "containerPort")]
    pub container_port: i64,
    /// `tcp`, `udp` or `sctp`; empty means tcp.
    #[serde(default)]
    pub protocol: String,
    /// The host address the mapping answers on; empty means all.
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// One range of an `ipRanges` capability or a host-local `ranges` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct IpRange {
    /// The subnet addresses come from.
    pub subnet: IpNetwork,
    /// First address handed out (inclusive).
    #[serde(rename = "rangeStart", default, skip_serializing_if = "Option::is_none")]
    pub range_start: Option<IpAddr>,
    /// Last address handed out (inclusive).
    #[serde(rename = "rangeEnd", default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<IpAddr>,
    /// Gateway; never handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// The `bandwidth` capability (bits per second, bursts in bits).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Bandwidth {
    /// Ingress rate.
    #[serde(rename = "ingressRate", default)]
    pub ingress_rate: u64,
    /// Ingress burst.
    #[serde(rename = "ingressBurst", default)]
    pub ingress_burst: u64,
    /// Egress rate.
    #[serde(rename = "egressRate", default)]
    pub egress_rate: u64,
    /// Egress burst.
    #[serde(rename = "egressBurst", default)]
    pub egress_burst: u64,
}

/// The `dns` capability; note its key names differ from the result's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct RuntimeDns {
    /// Name servers.
    #[serde(default)]
    pub servers: Vec<String>,
    /// Search domains.
    #[serde(default)]
    pub searches: Vec<String>,
    /// Resolver options.
    #[serde(default)]
    pub options: Vec<String>,
}

/// The well-known capabilities a runtime may inject into `runtimeConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct RuntimeConfig {
    /// `portMappings`, for portmap.
    #[serde(rename = "portMappings", default)]
    pub port_mappings: Vec<PortMapping>,
    /// `ipRanges`, prepended to host-local's `ranges`.
    #[serde(rename = "ipRanges", default)]
    pub ip_ranges: Vec<Vec<IpRange>>,
    /// `ips`: requested addresses, prefix optional.
    #[serde(default)]
    pub ips: Vec<String>,
    /// `mac`: the container interface's MAC.
    #[serde(default)]
    pub mac: Option<String>,
    /// `dns`.
    #[serde(default)]
    pub dns: Option<RuntimeDns>,
    /// `bandwidth`.
    #[serde(default)]
    pub bandwidth: Option<Bandwidth>,
    /// `aliases`: names for DNS plugins, per network, as Podman and
    /// containers/dnsname send them (`{"<network>": ["alias", ...]}`); a
    /// network mapped to `null` has none (Go decodes it to a nil slice).
    #[serde(default, deserialize_with = "aliases_map")]
    pub aliases: BTreeMap<String, Vec<String>>,
    /// `cgroupPath`.
    #[serde(rename = "cgroupPath", default)]
    pub cgroup_path: Option<String>,
    /// `deviceID`: a PCI address.
    #[serde(rename = "deviceID", default)]
    pub device_id: Option<String>,
    /// `infinibandGUID`.
    #[serde(rename = "infinibandGUID", default)]
    pub infiniband_guid: Option<String>,
}

/// `runtimeConfig.aliases`: a map of network to list, where `null` (for
/// the whole map or one network) means none, as Go's decoder reads it.
fn aliases_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    let raw: Option<BTreeMap<String, Option<Vec<String>>>> = Deserialize::deserialize(d)?;
    Ok(raw.unwrap_or_default().into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect())
}

/// The conventional `args.cni` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ArgsCni {
    /// Requested addresses.
    #[serde(default)]
    pub ips: Vec<String>,
    /// Requested MAC.
    #[serde(default)]
    pub mac: Option<String>,
}

/// One live attachment, as GC's valid list names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub struct Attachment {
    /// The container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface name in the container.
    pub ifname: String,
}

impl NetConf {
    /// The typed capabilities; a malformed one is code 7 naming the key.
    pub fn runtime_config(&self) -> Result<RuntimeConfig, Error> {
        match &self.runtime_config {
            None | Some(Value::Null) => Ok(RuntimeConfig::default()),
            Some(v) => {
                let rc: RuntimeConfig = from_value(v, "runtimeConfig")?;
                crate::limits::check(
                    "runtimeConfig.portMappings",
                    "port mappings",
                    rc.port_mappings.len(),
                    crate::limits::MAX_PORT_MAPPINGS,
                )?;
                crate::limits::check(
                    "runtimeConfig.ipRanges",
                    "range sets",
                    rc.ip_ranges.len(),
                    crate::limits::MAX_RANGE_SETS,
                )?;
                Ok(rc)
            }
        }
    }

    /// `args.cni`, or empty when absent.
    pub fn args_cni(&self) -> Result<ArgsCni, Error> {
        let Some(cni) = self.args.as_ref().and_then(|a| crate::gojson::get(a, "cni")) else {
            return Ok(ArgsCni::default());
        };
        from_value(cni, "args.cni")
    }

    /// The IPAM plugin to delegate to, if any (validated: a file name only).
    pub fn ipam_type(&self) -> Result<Option<&str>, Error> {
        match self.ipam.as_ref().map(|i| i.ipam_type.as_str()) {
            None | Some("") => Ok(None),
            Some(t) => validate::plugin_type("ipam.type", t).map(|_| Some(t)),
        }
    }
}

/// A network configuration list as stored on disk (`.conflist`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NetConfList {
    /// The list's version.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// Versions the list is also valid for (1.1); the runtime picks one.
    #[serde(rename = "cniVersions", default, skip_serializing_if = "Vec::is_empty")]
    pub cni_versions: Vec<String>,
    /// The network name.
    pub name: String,
    /// Runtimes must not call CHECK on this network.
    #[serde(rename = "disableCheck", default)]
    pub disable_check: bool,
    /// Runtimes must not call GC on this network.
    #[serde(rename = "disableGC", default)]
    pub disable_gc: bool,
    /// The plugins, in ADD order, each kept as raw JSON.
    pub plugins: Vec<Value>,
}

impl NetConfList {
    /// Parses a conflist, or a single `.conf` wrapped as a list of one.
    pub fn from_bytes(bytes: &[u8], single: bool) -> Result<NetConfList, Error> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| Error::decode(format!("error parsing configuration: {e}")))?;
        if single {
            let name = crate::gojson::get(&v, "name").and_then(Value::as_str).unwrap_or_default().to_string();
            let version = crate::gojson::get(&v, "cniVersion").and_then(Value::as_str).unwrap_or_default().to_string();
            let list = NetConfList {
                cni_version: version,
                cni_versions: Vec::new(),
                name,
                disable_check: false,
                disable_gc: false,
                plugins: vec![v],
            };
            list.validate()?;
            return Ok(list);
        }
        let list: NetConfList =
            crate::gojson::from_value(&v).map_err(|e| Error::invalid_config(format!("invalid conflist: {e}")))?;
        list.validate()?;
        Ok(list)
    }

    fn validate(&self) -> Result<(), Error> {
        validate::network_name(&self.name)?;
        if self.plugins.is_empty() {
            return Err(Error::invalid_config(format!("network {:?}: \"plugins\" is empty", self.name)));
        }
        for (i, p) in self.plugins.iter().enumerate() {
            let t = crate::gojson::get(p, "type").and_then(Value::as_str).unwrap_or_default();
            validate::plugin_type(&format!("plugins[{i}].type"), t)?;
        }
        Ok(())
    }

    /// The highest version of `cniVersion` ∪ `cniVersions` this suite speaks,
    /// as libcni selects it.
    pub fn selected_version(&self) -> Result<crate::Version, Error> {
        let mut best = None;
        for v in std::iter::once(&self.cni_version).chain(self.cni_versions.iter()) {
            if let Some(p) = crate::Version::parse(v) {
                best = best.max(Some(p));
            }
        }
        match best {
            Some(v) => Ok(v),
            None if self.cni_version.is_empty() && self.cni_versions.is_empty() => Ok(crate::Version::V010),
            None => Err(crate::version::incompatible(&self.cni_version)),
        }
    }

    /// The capabilities a plugin declared (`"capabilities": {"portMappings": true}`).
    pub fn declared_capabilities(plugin: &Value) -> BTreeMap<String, bool> {
        crate::gojson::get(plugin, "capabilities").and_then(|c| crate::gojson::from_value(c).ok()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_config_typed() {
        let c: NetConf = serde_json::from_value(serde_json::json!({
            "name": "n", "type": "portmap",
            "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
                              "ips": ["10.0.0.5/24"], "mac": "c2:11:22:33:44:55",
                              "ipRanges": [[{"subnet": "10.9.0.0/24"}]], "someOther": 1}
        }))
        .unwrap();
        let rc = c.runtime_config().unwrap();
        assert_eq!(rc.port_mappings[0].host_port, 8080);
        assert_eq!(rc.ips, vec!["10.0.0.5/24"]);
        assert_eq!(rc.mac.as_deref(), Some("c2:11:22:33:44:55"));
        assert_eq!(rc.ip_ranges[0][0].subnet.to_string(), "10.9.0.0/24");
    }

    #[test]
    fn aliases_are_a_map_per_network() {
        let conf = |rc: Value| -> NetConf {
            serde_json::from_value(serde_json::json!({"name": "n", "type": "dnsname", "runtimeConfig": rc})).unwrap()
        };
        let rc = conf(serde_json::json!({"aliases": {"n": ["web", "www"], "other": ["db"], "none": null}}))
            .runtime_config()
            .unwrap();
        assert_eq!(rc.aliases["n"], vec!["web", "www"]);
        assert_eq!(rc.aliases["other"], vec!["db"]);
        assert!(rc.aliases["none"].is_empty());
        assert!(conf(serde_json::json!({"aliases": null})).runtime_config().unwrap().aliases.is_empty());
        let e = conf(serde_json::json!({"aliases": {"n": "web"}})).runtime_config().unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("aliases"), "{e}");
    }

    #[test]
    fn from_value_names_the_field() {
        #[derive(Debug, Deserialize)]
        struct T {
            #[allow(dead_code)]
            mtu: Option<u32>,
        }
        let e = from_value::<T>(&serde_json::json!({"mtu": "big"}), "bridge").unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("field \"mtu\""), "{}", e.msg);
    }

    #[test]
    fn capability_counts_are_bounded() {
        let pm = |n: usize| -> Vec<Value> {
            (0..n).map(|i| serde_json::json!({"hostPort": 1000 + i, "containerPort": 80})).collect()
        };
        let conf = |rc: Value| -> NetConf {
            serde_json::from_value(serde_json::json!({"name": "n", "type": "portmap", "runtimeConfig": rc})).unwrap()
        };
        let max = crate::limits::MAX_PORT_MAPPINGS;
        let ok = conf(serde_json::json!({"portMappings": pm(max)}));
        assert_eq!(ok.runtime_config().unwrap().port_mappings.len(), max);
        let e = conf(serde_json::json!({"portMappings": pm(max + 1)})).runtime_config().unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.starts_with("too many port mappings in \"runtimeConfig.portMappings\""), "{e}");
        let sets: Vec<Value> = (0..=crate::limits::MAX_RANGE_SETS)
            .map(|i| serde_json::json!([{"subnet": format!("10.{i}.0.0/24")}]))
            .collect();
        let e = conf(serde_json::json!({"ipRanges": sets})).runtime_config().unwrap_err();
        assert!(e.msg.starts_with("too many range sets"), "{e}");
    }

    #[test]
    fn bad_runtime_config_names_the_key() {
        let c: NetConf = serde_json::from_value(serde_json::json!({
            "name": "n", "type": "portmap", "runtimeConfig": {"portMappings": [{"hostPort": "x"}]}
        }))
        .unwrap();
        let e = c.runtime_config().unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("runtimeConfig"));
    }

    #[test]
    fn ipam_type_checked() {
        let c: NetConf = serde_json::from_value(serde_json::json!({"ipam": {"type": "../x"}})).unwrap();
        assert!(c.ipam_type().unwrap_err().msg.contains("ipam.type"));
        let c: NetConf = serde_json::from_value(serde_json::json!({"ipam": {}})).unwrap();
        assert_eq!(c.ipam_type().unwrap(), None);
    }

    #[test]
    fn conflist_version_selection() {
        let l = NetConfList::from_bytes(
            br#"{"cniVersion":"1.0.0","cniVersions":["0.4.0","1.1.0","9.0.0"],"name":"n","plugins":[{"type":"bridge"}]}"#,
            false,
        )
        .unwrap();
        assert_eq!(l.selected_version().unwrap(), crate::Version::V110);
        let l = NetConfList::from_bytes(br#"{"cniVersion":"7.0.0","name":"n","plugins":[{"type":"bridge"}]}"#, false)
            .unwrap();
        assert_eq!(l.selected_version().unwrap_err().code, 1);
    }

    #[test]
    fn conflist_validation() {
        assert!(NetConfList::from_bytes(br#"{"name":"n","plugins":[]}"#, false).is_err());
        assert!(NetConfList::from_bytes(br#"{"name":"n","plugins":[{"type":"../x"}]}"#, false).is_err());
        assert!(NetConfList::from_bytes(br#"{"name":"a/b","plugins":[{"type":"x"}]}"#, false).is_err());
        let single = NetConfList::from_bytes(br#"{"cniVersion":"0.4.0","name":"n","type":"bridge"}"#, true).unwrap();
        assert_eq!(single.plugins.len(), 1);
        assert_eq!(single.cni_version, "0.4.0");
    }

    #[test]
    fn args_cni() {
        let c: NetConf = serde_json::from_value(
            serde_json::json!({"args": {"cni": {"ips": ["10.0.0.9"], "mac": "aa:bb:cc:dd:ee:ff"}}}),
        )
        .unwrap();
        let a = c.args_cni().unwrap();
        assert_eq!(a.ips, vec!["10.0.0.9"]);
    }
}
