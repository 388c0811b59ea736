//! File names built from container ids, network names and interface names.
//! An id may be far longer than the 255 bytes a file name component can
//! hold (the spec bounds neither), so a name that would not fit is cut and
//! completed with a SHA-256 of its parts: names of ordinary ids stay as
//! readable (and as compatible with other tools' formats) as before, and a
//! long id still gets exactly one file of its own instead of an ADD that
//! fails, or a DEL that fails forever, with "File name too long".

use sha2::{Digest, Sha256};

/// Longest file name component Linux accepts (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// Separates the readable prefix of a hashed name from its hash; no
/// container id or network name may contain it, so a hashed name never
/// equals the plain name of other parts.
const HASH_MARK: char = '~';

/// Hex characters of the hash in a hashed name.
const HASH_HEX: usize = 64;

/// `plain` when it is at most `max` bytes long; otherwise the longest
/// prefix of `plain` that leaves room for [`HASH_MARK`] and the SHA-256 of
/// `parts` (each length-prefixed, so no two lists of parts hash alike).
/// `max` is at least 65 (the mark and the hash).
pub fn bounded(plain: &str, parts: &[&str], max: usize) -> String {
    if plain.len() <= max {
        return plain.to_string();
    }
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let mut keep = max.saturating_sub(HASH_HEX + 1);
    while !plain.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{HASH_MARK}{hex}", &plain[..keep])
}

/// Whether `name` (without any suffix) is one [`bounded`] hashed.
pub fn is_hashed(name: &str) -> bool {
    name.len() > HASH_HEX
        && name.is_char_boundary(name.len() - HASH_HEX - 1)
        && name[..name.len() - HASH_HEX].ends_with(HASH_MARK)
        && name[name.len() - HASH_HEX..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_long_ones_hashed_to_fit() {
        assert_eq!(bounded("net-c1-eth0", &["net", "c1", "eth0"], NAME_MAX), "net-c1-eth0");
        assert!(!is_hashed("net-c1-eth0"));
        let id = "a".repeat(250);
        let plain = format!("net-{id}-eth0");
        let name = bounded(&plain, &["net", &id, "eth0"], NAME_MAX);
        assert_eq!(name.len(), NAME_MAX);
        assert!(name.starts_with("net-aaaa"), "{name}");
        assert!(is_hashed(&name));
        // Another id with the same first 190 bytes gets another name.
        let id2 = format!("{}b", "a".repeat(249));
        assert_ne!(bounded(&format!("net-{id2}-eth0"), &["net", &id2, "eth0"], NAME_MAX), name);
        // The parts, not the joined text, are hashed.
        let long = "x".repeat(300);
        assert_ne!(bounded(&long, &["a-b", "c"], NAME_MAX), bounded(&long, &["a", "b-c"], NAME_MAX));
        // A smaller bound leaves room for a suffix.
        assert_eq!(bounded(&plain, &["p"], 250).len(), 250);
    }

    #[test]
    fn cut_on_a_char_boundary() {
        let plain = "é".repeat(200);
        let name = bounded(&plain, &[&plain], NAME_MAX);
        assert!(name.len() <= NAME_MAX && is_hashed(&name));
    }
}
