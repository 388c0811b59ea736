//! Network sysctls through `/proc/sys/net`. The kernel binds the file to the
//! network namespace of the thread that opens it, so the `*_in` functions open
//! it while inside the target namespace. Keys are checked before they reach a
//! path: only `net.` keys, no `..` tricks, in dotted or slashed form.

use std::fs;
use std::path::PathBuf;

use crate::error::{Error, Kind, Result};
use crate::netlink::Family;
use crate::netns::Netns;

/// Where sysctls live.
const PROC_SYS: &str = "/proc/sys";

/// Turns a key into its path below `/proc/sys`, the way `sysctl(8)` reads it:
/// when the first separator is `.`, dots separate and slashes stand for dots
/// (`net.ipv4.conf.eth0/100.forwarding`); when it is `/`, the key is already a
/// path (`net/ipv4/conf/eth0.100/forwarding`). Only keys under `net` pass.
pub fn key_path(key: &str) -> Result<PathBuf> {
    let invalid = |cause: &str| Error::new(Kind::Invalid, format!("sysctl key {key:?}"), cause.to_string());
    let slashed: String = match key.find(['.', '/']).map(|i| key.as_bytes()[i]) {
        Some(b'.') => key
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect(),
        _ => key.to_string(),
    };
    let parts: Vec<&str> = slashed.split('/').collect();
    if parts.first() != Some(&"net") || parts.len() < 2 {
        return Err(invalid("only network keys may be used: they must start with \"net.\", e.g. net.ipv4.ip_forward"));
    }
    if parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
        return Err(invalid("empty, \".\" or \"..\" components are not allowed"));
    }
    if slashed.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid("control characters and whitespace are not allowed"));
    }
    Ok(PathBuf::from(PROC_SYS).join(slashed))
}

/// Reads a sysctl of the calling thread's namespace, trimmed.
pub fn get(key: &str) -> Result<String> {
    let path = key_path(key)?;
    let v = fs::read_to_string(&path).map_err(|e| Error::from_io(format!("reading sysctl {key}"), &e))?;
    Ok(v.trim().to_string())
}

/// Writes a sysctl of the calling thread's namespace.
pub fn set(key: &str, value: &str) -> Result<()> {
    let path = key_path(key)?;
    if value.contains(['\n', '\0']) {
        return Err(Error::new(Kind::Invalid, format!("sysctl {key} value {value:?}"), "must be a single line"));
    }
    fs::write(&path, value).map_err(|e| Error::from_io(format!("setting sysctl {key} to {value:?}"), &e))
}

/// Writes a sysctl only when its value differs (writing `ip_forward` resets
/// per-interface settings, so never rewrite it needlessly). Returns whether it changed.
pub fn ensure(key: &str, value: &str) -> Result<bool> {
    if get(key)? == value.trim() {
        return Ok(false);
    }
    set(key, value)?;
    Ok(true)
}

/// Reads a sysctl of namespace `ns`.
pub fn get_in(ns: &Netns, key: &str) -> Result<String> {
    ns.enter(|| get(key))?
}

/// Writes a sysctl of namespace `ns`.
pub fn set_in(ns: &Netns, key: &str, value: &str) -> Result<()> {
    ns.enter(|| set(key, value))?
}

/// [`ensure`] in namespace `ns`.
pub fn ensure_in(ns: &Netns, key: &str, value: &str) -> Result<bool> {
    ns.enter(|| ensure(key, value))?
}

/// The key that turns forwarding on for a family (`isGateway`, ipMasq).
pub fn ip_forward_key(family: Family) -> &'static str {
    match family {
        Family::V4 => "net.ipv4.ip_forward",
        Family::V6 => "net.ipv6.conf.all.forwarding",
    }
}

/// Turns IP forwarding on for `family` in the calling thread's namespace, if it is off.
pub fn ip_forward_on(family: Family) -> Result<()> {
    ensure(ip_forward_key(family), "1").map(drop)
}

/// The per-interface key `net.<ipv4|ipv6>.conf.<ifname>.<leaf>` in slashed
/// form, so interface names with dots (`eth0.100`) stay intact.
pub fn conf_key(family: Family, ifname: &str, leaf: &str) -> String {
    let fam = match family {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    };
    format!("net/{fam}/conf/{ifname}/{leaf}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(key: &str) -> String {
        key_path(key).unwrap().display().to_string()
    }

    #[test]
    fn dotted_and_slashed_forms() {
        assert_eq!(p("net.ipv4.ip_forward"), "/proc/sys/net/ipv4/ip_forward");
        assert_eq!(p("net/ipv4/ip_forward"), "/proc/sys/net/ipv4/ip_forward");
        assert_eq!(p("net.ipv4.conf.eth0/100.forwarding"), "/proc/sys/net/ipv4/conf/eth0.100/forwarding");
        assert_eq!(p("net/ipv4/conf/eth0.100/forwarding"), "/proc/sys/net/ipv4/conf/eth0.100/forwarding");
        assert_eq!(p(&conf_key(Family::V6, "eth0.100", "accept_dad")), "/proc/sys/net/ipv6/conf/eth0.100/accept_dad");
    }

    #[test]
    fn non_net_and_traversal_keys_are_refused() {
        for bad in [
            "kernel.hostname",
            "net",
            "",
            "net..ipv4",
            "net.ipv4.",
            "net/../kernel/hostname",
            "net/ipv4/../../kernel/hostname",
            "net.ipv4.conf.x/../../../kernel.hostname",
            "/net/ipv4/ip_forward",
            "net/./ipv4/ip_forward",
            "net.ipv4.conf.a b.forwarding",
            "netx.ipv4",
        ] {
            let e = key_path(bad).unwrap_err();
            assert_eq!(e.kind, Kind::Invalid, "{bad:?}");
            assert!(e.what.contains("sysctl key"), "{e}");
        }
    }

    #[test]
    fn multi_line_values_are_refused() {
        let e = set("net.ipv4.ip_forward", "1\n0").unwrap_err();
        assert_eq!(e.kind, Kind::Invalid);
    }

    #[test]
    fn reading_a_key_of_the_current_namespace() {
        let v = get("net.ipv4.ip_forward").unwrap();
        assert!(v == "0" || v == "1", "{v}");
        assert!(get("net.ipv4.conf.no-such-if0.forwarding").unwrap_err().is_not_found());
    }
}
