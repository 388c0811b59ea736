//! What may become a DNS name: container names, aliases and the domain.
//! A name that is not one DNS label could answer for a name outside
//! `domainName` (an alias `example.com` would shadow the real one), so
//! every record name is exactly one label, checked here.

/// Longest label DNS allows (RFC 1035).
const MAX_LABEL: usize = 63;
/// Longest name DNS allows in text form, without the final dot.
pub const MAX_NAME: usize = 253;

/// Why `s` is not one DNS label, or `None` when it is one: 1 to 63 bytes
/// of ASCII letters, digits, `-` and `_` (Podman's names use `_`), not
/// starting or ending with `-`.
pub fn label_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        return Some("is empty");
    }
    if s.len() > MAX_LABEL {
        return Some("is longer than 63 bytes");
    }
    if s.contains('.') {
        return Some("contains '.' (a name here is one DNS label)");
    }
    if !s.is_ascii() {
        return Some("contains non-ASCII characters");
    }
    if s.bytes().any(|b| b.is_ascii_whitespace()) {
        return Some("contains white space");
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Some("contains characters other than letters, digits, '-' and '_'");
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Some("starts or ends with '-'");
    }
    None
}

/// Why `s` is not a usable domain name, or `None`: one or more labels
/// separated by single dots (a final dot allowed), at most 253 bytes.
pub fn domain_problem(s: &str) -> Option<String> {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        return Some("is empty".into());
    }
    if s.len() > MAX_NAME {
        return Some("is longer than 253 bytes".into());
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Some("has an empty label (\"..\", or a leading dot)".into());
        }
        if let Some(why) = label_problem(label) {
            return Some(format!("has a label {label:?} that {why}"));
        }
    }
    None
}

/// The form names are compared in: lower case, no final dot.
pub fn canonical(s: &str) -> String {
    s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["web", "Web-1", "my_app", "a", &"x".repeat(63)] {
            assert_eq!(label_problem(ok), None, "{ok}");
        }
        for bad in ["", "a.b", "..", "with space", "café", &"x".repeat(64), "-a", "a-", "a/b", "a\0"] {
            assert!(label_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn domains() {
        for ok in ["dns.podman", "dns.podman.", "example", "a-b.c_d"] {
            assert_eq!(domain_problem(ok), None, "{ok}");
        }
        for bad in ["", ".", "a..b", ".a", "a b.c", "ü.de", &format!("{}.com", "a.".repeat(130))] {
            assert!(domain_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn canonical_form() {
        assert_eq!(canonical("Web.DNS.Podman."), "web.dns.podman");
    }
}
