//! Checks on every name and comment before it reaches a netlink message:
//! network names and container ids are caller input, and the kernel and the
//! `nft` tool have limits of their own.

use crate::error::{Error, Kind, Result};

/// Longest table, chain or set name we accept (the kernel allows 255 bytes).
pub const MAX_NAME: usize = 255;

/// Longest comment (rule or element userdata); `nft` itself stops at 128
/// bytes including the terminating NUL.
const MAX_COMMENT: usize = 127;

/// Accepts `[A-Za-z_][A-Za-z0-9_.-]*`, at most [`MAX_NAME`] bytes: what
/// `nft` can parse back as an identifier, so `nft list` output stays usable.
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    let what = || format!("nftables {kind} name {name:?}");
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(Error::new(Kind::Invalid, what(), "is empty"));
    };
    if name.len() > MAX_NAME {
        return Err(Error::new(Kind::Invalid, what(), format!("is longer than {MAX_NAME} bytes")));
    }
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(Error::new(Kind::Invalid, what(), "must start with a letter or '_'"));
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(Error::new(
            Kind::Invalid,
            what(),
            format!("contains {bad:?}; allowed are letters, digits, '_', '.', '-'"),
        ));
    }
    Ok(())
}

/// Accepts printable ASCII without quotes or backslashes, at most
/// [`MAX_COMMENT`] bytes, so a comment round-trips through `nft` unchanged.
pub fn check_comment(comment: &str) -> Result<()> {
    let what = || format!("nftables comment {comment:?}");
    if comment.len() > MAX_COMMENT {
        return Err(Error::new(Kind::Invalid, what(), format!("is longer than {MAX_COMMENT} bytes")));
    }
    if let Some(bad) = comment.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ') || matches!(c, '"' | '\\')) {
        return Err(Error::new(
            Kind::Invalid,
            what(),
            format!("contains {bad:?}; only printable ASCII without quotes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("table", "cnirs-nat").is_ok());
        assert!(check_name("set", "_n.a-b_v4").is_ok());
        assert!(check_name("set", "").is_err());
        assert!(check_name("set", "1abc").is_err());
        assert!(check_name("set", "a b").is_err());
        assert!(check_name("set", "a\"b").is_err());
        assert!(check_name("set", "a/b").is_err());
        assert!(check_name("set", &"a".repeat(256)).is_err());
        assert_eq!(check_name("chain", "x;y").unwrap_err().kind, Kind::Invalid);
    }

    #[test]
    fn comments() {
        assert!(check_comment("net/0123abcd/eth0").is_ok());
        assert!(check_comment("").is_ok());
        assert!(check_comment("a\nb").is_err());
        assert!(check_comment("a\"b").is_err());
        assert!(check_comment(&"c".repeat(128)).is_err());
        assert!(check_comment(&"c".repeat(127)).is_ok());
    }
}
