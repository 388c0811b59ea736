//! Spec versions: which ones exist, how they order, and what each allows.

use crate::error::{code, Error};
use std::fmt;

/// Every spec version this suite speaks, oldest first.
pub const SUPPORTED: [&str; 7] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The version our own documents (VERSION output, results we build) carry.
pub const CURRENT: &str = "1.1.0";

/// A spec version; ordered, so "CHECK needs 0.4.0 or later" is a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// 0.1.0: legacy `ip4`/`ip6` results.
    V010,
    /// 0.2.0: adds VERSION.
    V020,
    /// 0.3.0: interfaces, ips with `version`, chaining.
    V030,
    /// 0.3.1: same schema as 0.3.0.
    V031,
    /// 0.4.0: CHECK and prevResult on DEL.
    V040,
    /// 1.0.0: drops `ips[].version`.
    V100,
    /// 1.1.0: GC, STATUS, interface mtu, route extras.
    V110,
}

impl Version {
    /// Parses an exact version string, as the Go reference matches it.
    pub fn parse(s: &str) -> Option<Version> {
        Some(match s {
            "0.1.0" => Version::V010,
            "0.2.0" => Version::V020,
            "0.3.0" => Version::V030,
            "0.3.1" => Version::V031,
            "0.4.0" => Version::V040,
            "1.0.0" => Version::V100,
            "1.1.0" => Version::V110,
            _ => return None,
        })
    }

    /// Parses a config's version; a missing one means 0.1.0, anything
    /// unknown is the spec's code 1.
    pub fn from_config(s: Option<&str>) -> Result<Version, Error> {
        let s = match s {
            None | Some("") => return Ok(Version::V010),
            Some(s) => s,
        };
        Version::parse(s).ok_or_else(|| incompatible(s))
    }

    /// The version string.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V010 => "0.1.0",
            Version::V020 => "0.2.0",
            Version::V030 => "0.3.0",
            Version::V031 => "0.3.1",
            Version::V040 => "0.4.0",
            Version::V100 => "1.0.0",
            Version::V110 => "1.1.0",
        }
    }

    /// Whether results of this version use the legacy `ip4`/`ip6` shape.
    pub fn is_legacy(self) -> bool {
        self <= Version::V020
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The code-1 error for a version no plugin of ours supports.
pub fn incompatible(seen: &str) -> Error {
    let list: Vec<String> = SUPPORTED.iter().map(|v| format!("{v:?}")).collect();
    Error::new(code::INCOMPATIBLE_VERSION, "incompatible CNI versions")
        .with_details(format!("config is {seen:?}, plugin supports [{}]", list.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_version_parses_and_orders() {
        let parsed: Vec<Version> = SUPPORTED.iter().map(|s| Version::parse(s).unwrap()).collect();
        let mut sorted = parsed.clone();
        sorted.sort();
        assert_eq!(parsed, sorted);
        for (s, v) in SUPPORTED.iter().zip(parsed) {
            assert_eq!(v.as_str(), *s);
        }
    }

    #[test]
    fn missing_means_010_and_unknown_is_code_1() {
        assert_eq!(Version::from_config(None).unwrap(), Version::V010);
        assert_eq!(Version::from_config(Some("")).unwrap(), Version::V010);
        let e = Version::from_config(Some("9.9.9")).unwrap_err();
        assert_eq!(e.code, 1);
        assert!(e.details.contains("\"9.9.9\""));
        assert!(e.details.contains("\"1.1.0\""));
    }

    #[test]
    fn legacy_versions() {
        assert!(Version::V020.is_legacy());
        assert!(!Version::V030.is_legacy());
    }
}
