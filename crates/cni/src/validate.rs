//! Checks for the names that reach paths, netlink messages and nftables
//! names: a hostile container id or interface name stops here.

use crate::error::{code, Error};

/// Whether `s` matches `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, the spec's pattern
/// for container ids and network names.
pub fn is_valid_id(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// Validates `CNI_CONTAINERID` (code 4 on bad characters, as the reference).
pub fn container_id(id: &str) -> Result<(), Error> {
    if id.is_empty() {
        return Err(Error::invalid_env("required env variables [CNI_CONTAINERID] missing"));
    }
    if !is_valid_id(id) {
        return Err(Error::new(code::INVALID_ENV, "invalid characters in containerID").with_details(id));
    }
    Ok(())
}

/// Validates the `CNI_CONTAINERID` of an ADD: [`container_id`], and at
/// most [`MAX_CONTAINER_ID`](crate::limits::MAX_CONTAINER_ID) bytes (code
/// 4), so that nothing is reserved that a later call cannot name.
pub fn new_container_id(id: &str) -> Result<(), Error> {
    container_id(id)?;
    let max = crate::limits::MAX_CONTAINER_ID;
    if id.len() > max {
        return Err(Error::invalid_env(format!("CNI_CONTAINERID is {} bytes long (at most {max})", id.len()))
            .with_details(format!("this suite refuses at ADD a container id longer than {max} bytes")));
    }
    Ok(())
}

/// Validates a network `name` (code 7): it becomes a directory name.
pub fn network_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::invalid_config("missing network name"));
    }
    if name.len() > 253 || !is_valid_id(name) {
        return Err(Error::invalid_config("invalid characters in network name (field \"name\")")
            .with_details(format!("{name:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$")));
    }
    Ok(())
}

/// Whether the kernel's `isspace` is true for byte `b` (its ctype table
/// also counts 0xA0, which appears inside UTF-8 sequences such as "à").
fn kernel_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0xa0)
}

/// Why an interface name is unusable, or `None` when the kernel takes it
/// as it is. The kernel refuses `/`, `:` and white space, and treats a `%`
/// as a pattern it fills with the first free number (`br%d` makes `br0`,
/// then `br1`, ...: a new link at every call, never the one named), so
/// `%` is refused too. This is the one check of every interface name the
/// suite takes from the environment or a config.
pub fn interface_name_problem(name: &str) -> Option<(&'static str, String)> {
    if name.is_empty() {
        return Some(("interface name is empty", String::new()));
    }
    if name.len() > 15 {
        return Some(("interface name is too long", "interface name should be less than 16 characters".into()));
    }
    if name == "." || name == ".." {
        return Some(("interface name is . or ..", String::new()));
    }
    if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) || name.bytes().any(kernel_space) {
        return Some(("interface name contains / or : or whitespace characters", String::new()));
    }
    if name.contains('%') {
        return Some((
            "interface name contains %",
            "the kernel would replace %d with a number and create a new interface at every call".into(),
        ));
    }
    if name.contains('\0') {
        return Some(("interface name contains a NUL byte", String::new()));
    }
    None
}

/// Validates `CNI_IFNAME` (code 4).
pub fn interface_name(name: &str) -> Result<(), Error> {
    match interface_name_problem(name) {
        None => Ok(()),
        Some((msg, details)) => Err(Error::invalid_env(format!("CNI_IFNAME {name:?}: {msg}")).with_details(details)),
    }
}

/// Validates an interface name that comes from a config field (code 7).
pub fn config_interface_name(field: &str, name: &str) -> Result<(), Error> {
    match interface_name_problem(name) {
        None => Ok(()),
        Some((msg, details)) => {
            Err(Error::invalid_config(format!("field {field:?} ({name:?}): {msg}")).with_details(details))
        }
    }
}

/// Validates a plugin `type` (code 7): it is looked up as a file in CNI_PATH.
pub fn plugin_type(field: &str, t: &str) -> Result<(), Error> {
    if t.is_empty() {
        return Err(Error::invalid_config(format!("missing plugin type (field {field:?})")));
    }
    if t.contains('/') || t.contains('\\') || t == "." || t == ".." || t.contains('\0') {
        return Err(Error::invalid_config(format!("invalid plugin name {t:?} in field {field:?}"))
            .with_details("a plugin type is a file name in CNI_PATH and may not contain a path separator"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(is_valid_id("abc-1.2_3"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("-abc"));
        assert!(!is_valid_id("a/b"));
        assert!(!is_valid_id("a b"));
        assert!(!is_valid_id("../x"));
        assert_eq!(container_id("a/b").unwrap_err().code, 4);
        assert_eq!(container_id("").unwrap_err().code, 4);
        assert_eq!(network_name("").unwrap_err().code, 7);
        assert_eq!(network_name("../etc").unwrap_err().code, 7);
        assert!(network_name("podman").is_ok());
        let max = crate::limits::MAX_CONTAINER_ID;
        assert!(new_container_id(&"a".repeat(max)).is_ok());
        let e = new_container_id(&"a".repeat(max + 1)).unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.msg.contains("at most"), "{}", e.msg);
        assert!(container_id(&"a".repeat(5000)).is_ok(), "other commands accept it");
    }

    #[test]
    fn interface_names() {
        assert!(interface_name("eth0").is_ok());
        assert!(interface_name("123456789012345").is_ok());
        let e = interface_name("1234567890123456").unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.msg.contains("too long"));
        assert!(interface_name("a/b").is_err());
        assert!(interface_name("a:b").is_err());
        assert!(interface_name("a b").is_err());
        assert!(interface_name(".").is_err());
        assert!(interface_name("..").is_err());
        assert!(interface_name("").is_err());
        assert_eq!(config_interface_name("bridge", "x/y").unwrap_err().code, 7);
        for bad in ["br%d", "%", "a\u{a0}b", "\u{e0}", "a\0b"] {
            assert!(interface_name(bad).is_err(), "{bad:?}");
            let e = config_interface_name("bridge", bad).unwrap_err();
            assert_eq!(e.code, 7);
            assert!(e.msg.contains("\"bridge\""), "{e:?}");
        }
        assert!(interface_name("\u{e9}th0").is_ok(), "0xA0 only matters as a byte");
    }

    #[test]
    fn plugin_types() {
        assert!(plugin_type("type", "bridge").is_ok());
        assert!(plugin_type("ipam.type", "../host-local").unwrap_err().msg.contains("ipam.type"));
        assert!(plugin_type("type", "").is_err());
    }
}
