//! The `ipam` section the reference dhcp plugin reads, checked in the
//! plugin (so a bad option is a code-7 error before the daemon is asked):
//! `daemonSocketPath`, `request` (options asked for in the parameter
//! request list, with `skipDefault`) and `provide` (options sent to the
//! server, from a literal `value` or a CNI_ARGS key named by `fromArg`).

use cni::{Context, Error};
use serde::Deserialize;
use serde_json::Value;

/// Where the daemon listens unless `daemonSocketPath` says otherwise (the
/// reference's default).
pub const DEFAULT_SOCKET: &str = "/run/cni/dhcp.sock";

/// Options asked for when `request` has no `skipDefault`: the reference
/// asks for the subnet mask and router; we also ask for what the result
/// carries (name servers, domain, classless and static routes) and the
/// lease timers.
const DEFAULT_REQUEST: &[u8] = &[1, 3, 6, 15, 121, 33, 51, 58, 59];

/// The largest DHCP option value (its length is one octet).
const MAX_OPTION_LEN: usize = 255;

/// Option names the reference understands (dhcp-options(5) spelling), plus
/// the ones the result is built from.
const NAMES: &[(&str, u8)] = &[
    ("subnet-mask", 1),
    ("routers", 3),
    ("domain-name-servers", 6),
    ("host-name", 12),
    ("domain-name", 15),
    ("interface-mtu", 26),
    ("static-routes", 33),
    ("dhcp-lease-time", 51),
    ("dhcp-renewal-time", 58),
    ("dhcp-rebinding-time", 59),
    ("vendor-class-identifier", 60),
    ("dhcp-client-identifier", 61),
    ("user-class", 77),
    ("classless-static-route", 121),
];

/// Options a client must not set itself: they belong to the protocol
/// (message type, requested address, server id, parameter list, overload,
/// end, pad).
const RESERVED: &[u8] = &[0, 50, 52, 53, 54, 55, 255];

#[derive(Debug, Default, Deserialize)]
struct Top {
    #[serde(default)]
    ipam: Option<IpamJson>,
}

#[derive(Debug, Default, Deserialize)]
struct IpamJson {
    #[serde(rename = "daemonSocketPath", default)]
    daemon_socket_path: Option<String>,
    #[serde(default)]
    request: Option<Vec<RequestJson>>,
    #[serde(default)]
    provide: Option<Vec<ProvideJson>>,
}

#[derive(Debug, Default, Deserialize)]
struct RequestJson {
    #[serde(rename = "skipDefault", default)]
    skip_default: bool,
    #[serde(default)]
    option: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct ProvideJson {
    #[serde(default)]
    option: Option<Value>,
    #[serde(default)]
    value: Option<String>,
    #[serde(rename = "fromArg", default)]
    from_arg: Option<String>,
}

/// What the plugin sends the daemon, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The daemon's socket.
    pub socket: String,
    /// Option codes for the parameter request list, in order, no repeats.
    pub request: Vec<u8>,
    /// Options sent to the server: (code, value).
    pub provide: Vec<(u8, Vec<u8>)>,
}

/// Reads an option as the reference does: a dhcp-options(5) name or a
/// decimal code (a JSON number is taken too).
fn option_code(field: &str, v: Option<&Value>) -> Result<u8, Error> {
    let bad = |what: String| Error::invalid_config(format!("invalid dhcp config: field {field:?}: {what}"));
    let code = match v {
        None | Some(Value::Null) => return Err(bad("missing (a name such as \"routers\" or a code 1-254)".into())),
        Some(Value::String(s)) => match NAMES.iter().find(|(n, _)| n == s) {
            Some((_, c)) => *c,
            None => s
                .parse::<u8>()
                .map_err(|_| bad(format!("unknown option {s:?}: expected a code 1-254 or one of {}", names_list())))?,
        },
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| bad(format!("option {n} is not a code 1-254")))?,
        Some(other) => return Err(bad(format!("expected a string, got {other}"))),
    };
    if code == 0 || code == 255 {
        return Err(bad(format!("option {code} is not a code 1-254")));
    }
    Ok(code)
}

fn names_list() -> String {
    NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

impl Config {
    /// Reads and checks the config of `ctx`, resolving `fromArg` against
    /// CNI_ARGS.
    pub fn load(ctx: &Context) -> Result<Config, Error> {
        let top: Top = ctx.config()?;
        let ipam = top.ipam.unwrap_or_default();
        let socket = match ipam.daemon_socket_path {
            None => DEFAULT_SOCKET.to_string(),
            Some(s) if s.is_empty() => DEFAULT_SOCKET.to_string(),
            Some(s) if s.contains('\0') => {
                return Err(Error::invalid_config("invalid dhcp config: field \"ipam.daemonSocketPath\": contains NUL"))
            }
            Some(s) => s,
        };
        let mut request = Vec::new();
        let mut skip_default = false;
        for (i, r) in ipam.request.unwrap_or_default().iter().enumerate() {
            skip_default |= r.skip_default;
            // The reference lets an entry carry only skipDefault.
            if r.option.is_none() && r.skip_default {
                continue;
            }
            let code = option_code(&format!("ipam.request[{i}].option"), r.option.as_ref())?;
            if !request.contains(&code) {
                request.push(code);
            }
        }
        if !skip_default {
            for c in DEFAULT_REQUEST {
                if !request.contains(c) {
                    request.push(*c);
                }
            }
        }
        let mut provide: Vec<(u8, Vec<u8>)> = Vec::new();
        for (i, p) in ipam.provide.unwrap_or_default().iter().enumerate() {
            let field = format!("ipam.provide[{i}]");
            let code = option_code(&format!("{field}.option"), p.option.as_ref())?;
            if RESERVED.contains(&code) {
                return Err(Error::invalid_config(format!(
                    "invalid dhcp config: field \"{field}.option\": option {code} is set by the protocol, not by the config"
                )));
            }
            let mut value = p.value.clone().filter(|v| !v.is_empty());
            if let Some(key) = p.from_arg.as_deref().filter(|k| !k.is_empty()) {
                if let Some(v) = ctx.args.get(key) {
                    value = Some(v.to_string());
                }
            }
            let Some(value) = value else { continue };
            if value.len() > MAX_OPTION_LEN {
                return Err(Error::invalid_config(format!(
                    "invalid dhcp config: field \"{field}\": value of option {code} is {} bytes, at most {MAX_OPTION_LEN}",
                    value.len()
                )));
            }
            let bytes = value.into_bytes();
            match provide.iter_mut().find(|(c, _)| *c == code) {
                Some(slot) => slot.1 = bytes,
                None => provide.push((code, bytes)),
            }
        }
        // A pod's name is the natural host name; an explicit one wins.
        if !provide.iter().any(|(c, _)| *c == 12) {
            if let Some(name) = ctx.args.get("K8S_POD_NAME").filter(|n| !n.is_empty() && n.len() <= MAX_OPTION_LEN) {
                provide.push((12, name.as_bytes().to_vec()));
            }
        }
        Ok(Config { socket, request, provide })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_codes() {
        assert_eq!(option_code("f", Some(&json!("routers"))).unwrap(), 3);
        assert_eq!(option_code("f", Some(&json!("121"))).unwrap(), 121);
        assert_eq!(option_code("f", Some(&json!(6))).unwrap(), 6);
        let e = option_code("ipam.request[0].option", Some(&json!("nope"))).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("ipam.request[0].option"), "{}", e.msg);
        assert!(option_code("f", Some(&json!("300"))).is_err());
        assert!(option_code("f", Some(&json!(0))).is_err());
        assert!(option_code("f", None).is_err());
    }
}
