//! One attachment of a container to a network: the per-call parameters that
//! are not in the network config (libcni's `RuntimeConf`).

use cni::validate;
use serde_json::{Map, Value};

/// Who is attached and how: container id, netns path, interface name,
/// `CNI_ARGS` pairs and the capability arguments offered to the plugins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attachment {
    /// `CNI_CONTAINERID`; part of the cache key, so validated before use.
    pub container_id: String,
    /// `CNI_NETNS`, a path such as `/run/netns/x`; may be empty on DEL.
    pub netns: String,
    /// `CNI_IFNAME`; part of the cache key.
    pub ifname: String,
    /// `CNI_ARGS` as ordered pairs, joined with `;` on the way out.
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, `ips`, ...); each plugin gets
    /// only the ones it declared in `capabilities`.
    pub capability_args: Map<String, Value>,
}

impl Attachment {
    /// An attachment with no `CNI_ARGS` and no capability arguments.
    pub fn new(container_id: impl Into<String>, netns: impl Into<String>, ifname: impl Into<String>) -> Attachment {
        Attachment {
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: ifname.into(),
            ..Default::default()
        }
    }

    /// Adds one `CNI_ARGS` pair (builder style, for tests and harnesses).
    pub fn with_arg(mut self, key: impl Into<String>, value: impl Into<String>) -> Attachment {
        self.args.push((key.into(), value.into()));
        self
    }

    /// Sets one capability argument (builder style).
    pub fn with_capability(mut self, key: impl Into<String>, value: Value) -> Attachment {
        self.capability_args.insert(key.into(), value);
        self
    }

    /// The `CNI_ARGS` value: `K=V;K2=V2`.
    pub fn cni_args(&self) -> String {
        self.args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";")
    }

    /// The GC view of this attachment: (container id, ifname).
    pub fn key(&self) -> crate::GcAttachment {
        crate::GcAttachment { container_id: self.container_id.clone(), ifname: self.ifname.clone() }
    }

    /// Checks the parts that reach a file name (the cache key) and the
    /// plugins' environment, as libcni does before it runs ADD.
    pub fn validate(&self) -> crate::Result<()> {
        validate::container_id(&self.container_id)?;
        validate::interface_name(&self.ifname)?;
        Ok(())
    }
}

/// Parses `CNI_ARGS` as `cnitool` reads it: `;`-separated `K=V` pairs,
/// split at the first `=`; empty pairs (a trailing `;`) are skipped, an
/// empty key is an error.
pub fn parse_cni_args(s: &str) -> crate::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in s.split(';').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.push((k.to_string(), v.to_string())),
            _ => {
                return Err(cni::Error::invalid_env(format!("invalid CNI_ARGS pair {pair:?}"))
                    .with_details("CNI_ARGS is a list of K=V pairs separated by ';'"))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_args_round_trip() {
        let pairs = parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.0.0.5;").unwrap();
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs[2], ("IP".to_string(), "10.0.0.5".to_string()));
        let mut a = Attachment::new("c1", "/run/netns/x", "eth0");
        a.args = pairs;
        assert_eq!(a.cni_args(), "IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.0.0.5");
        assert_eq!(Attachment::new("c", "", "eth0").cni_args(), "");
    }

    #[test]
    fn cni_args_errors() {
        assert_eq!(parse_cni_args("FOO").unwrap_err().code, 4);
        assert!(parse_cni_args("=x").is_err());
        assert_eq!(parse_cni_args("").unwrap(), vec![]);
        assert_eq!(parse_cni_args("A=b=c").unwrap()[0].1, "b=c");
    }

    #[test]
    fn validation() {
        assert!(Attachment::new("c1", "", "eth0").validate().is_ok());
        assert_eq!(Attachment::new("../x", "", "eth0").validate().unwrap_err().code, 4);
        assert_eq!(Attachment::new("", "", "eth0").validate().unwrap_err().code, 4);
        assert!(Attachment::new("c1", "", "a/b").validate().is_err());
    }
}
