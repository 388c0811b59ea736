//! Contexts for unit tests of config parsers: each plugin's tests need a
//! [`Context`] built the way a runtime's call builds it, and faking the
//! environment once here keeps them from each writing their own.

use crate::skel::{build_context, Command, Context};
use serde_json::Value;

/// The context of `command` for container `c1` in `/run/netns/x`,
/// interface `eth0`, with `conf` on stdin; `env` adds or replaces variables
/// (`CNI_ARGS`, `CNI_PATH`, `CNI_IFNAME`). Panics with the error when the
/// call would be refused, as a test should.
pub fn context(command: Command, conf: &str, env: &[(&str, &str)]) -> Context {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let lookup = |k: &str| {
        if let Some((_, v)) = env.iter().find(|(name, _)| name == k) {
            return Some(v.clone());
        }
        match k {
            "CNI_CONTAINERID" => Some("c1".to_string()),
            "CNI_NETNS" => Some("/run/netns/x".to_string()),
            "CNI_IFNAME" => Some("eth0".to_string()),
            _ => None,
        }
    };
    build_context(&lookup, &mut conf.as_bytes(), command).unwrap_or_else(|(e, _)| panic!("{e:?}"))
}

/// `{"cniVersion": "1.0.0", "name": "n", "type": plugin}` with the keys of
/// `extra` added: the smallest valid config of `plugin`, plus what a test
/// is about.
pub fn conf(plugin: &str, extra: Value) -> Value {
    let mut v = serde_json::json!({"cniVersion": "1.0.0", "name": "n", "type": plugin});
    if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        v.extend(extra.clone());
    }
    v
}
