//! `CNI_ARGS`: `K=V;K2=V2`, with `IgnoreUnknown` deciding whether a key the
//! plugin does not know is an error (kubelet always sends it).

use crate::error::Error;

/// Parsed `CNI_ARGS`, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// Every `K=V` pair except `IgnoreUnknown`.
    pub pairs: Vec<(String, String)>,
    /// Whether `IgnoreUnknown` was set to a true value.
    pub ignore_unknown: bool,
}

/// Reads a Go-style boolean: `1/0/true/false` in any case.
fn parse_bool(key: &str, v: &str) -> Result<bool, Error> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" | "" => Ok(false),
        _ => Err(Error::invalid_env(format!("ARGS: {key}={v:?} is not a boolean"))),
    }
}

impl CniArgs {
    /// Parses the variable; an empty string means no arguments.
    pub fn parse(s: &str) -> Result<CniArgs, Error> {
        let mut args = CniArgs::default();
        for pair in s.split(';') {
            if pair.is_empty() {
                continue;
            }
            let Some((k, v)) = pair.split_once('=') else {
                return Err(Error::invalid_env(format!("ARGS: invalid pair {pair:?}")).with_details("CNI_ARGS"));
            };
            if k.is_empty() {
                return Err(Error::invalid_env(format!("ARGS: invalid pair {pair:?}")).with_details("CNI_ARGS"));
            }
            if k == "IgnoreUnknown" {
                args.ignore_unknown = parse_bool(k, v)?;
            } else {
                args.pairs.push((k.to_string(), v.to_string()));
            }
        }
        Ok(args)
    }

    /// The value of `key` (case-sensitive, as the Go reference); the last one wins.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Fails on keys outside `known` unless `IgnoreUnknown` was set.
    pub fn check_known(&self, known: &[&str]) -> Result<(), Error> {
        if self.ignore_unknown {
            return Ok(());
        }
        let unknown: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .map(|(k, v)| format!("{:?}", format!("{k}={v}")))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid_env(format!("ARGS: unknown args [{}]", unknown.join(" ")))
                .with_details("set IgnoreUnknown=1 in CNI_ARGS to ignore keys this plugin does not use"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_style() {
        let a = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=web1;IP=10.89.77.50").unwrap();
        assert!(a.ignore_unknown);
        assert_eq!(a.get("IP"), Some("10.89.77.50"));
        assert_eq!(a.get("ip"), None);
        assert!(a.check_known(&["IP"]).is_ok());
    }

    #[test]
    fn unknown_key_without_ignore() {
        let a = CniArgs::parse("FOO=bar").unwrap();
        let e = a.check_known(&["IP", "MAC"]).unwrap_err();
        assert_eq!(e.msg, "ARGS: unknown args [\"FOO=bar\"]");
        assert_eq!(e.code, 4);
    }

    #[test]
    fn malformed_pairs() {
        assert_eq!(CniArgs::parse("FOO").unwrap_err().msg, "ARGS: invalid pair \"FOO\"");
        assert!(CniArgs::parse("=x").is_err());
        assert!(CniArgs::parse("IgnoreUnknown=maybe").is_err());
        assert_eq!(CniArgs::parse("").unwrap(), CniArgs::default());
        assert!(CniArgs::parse("IgnoreUnknown=TRUE;").unwrap().ignore_unknown);
    }
}
