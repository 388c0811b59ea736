//! The userdata blob of rules and set elements: a list of (type, length,
//! value) records, as libnftnl's `nftnl_udata` writes them. We store one
//! record, the comment, which `nft list` prints as `comment "..."` and which
//! DEL and GC use to find what belongs to an attachment.

/// Record type of a comment, the same for rules (`NFTNL_UDATA_RULE_COMMENT`)
/// and set elements (`NFTNL_UDATA_SET_ELEM_COMMENT`).
pub const COMMENT: u8 = 0;

/// Encodes a comment record: the string with its terminating NUL, as nft
/// expects. The caller has bounded the length ([`super::names::MAX_COMMENT`]).
pub fn encode_comment(comment: &str) -> Vec<u8> {
    let len = comment.len() + 1;
    let mut out = Vec::with_capacity(2 + len);
    out.push(COMMENT);
    out.push(len as u8);
    out.extend_from_slice(comment.as_bytes());
    out.push(0);
    out
}

/// Record type of our rule digest ([`super::Batch::replace_rules`]): far
/// from libnftnl's own types (0, 1), and ignored by `nft`, which skips
/// record types it does not know.
pub const DIGEST: u8 = 0x7e;

/// Encodes one record.
pub fn encode_record(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + value.len());
    out.push(kind);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
    out
}

/// Finds the value of the first record of `kind`; `None` when there is
/// none or the blob is malformed (written by some other tool).
pub fn find_record(mut blob: &[u8], kind: u8) -> Option<&[u8]> {
    while blob.len() >= 2 {
        let (k, len) = (blob[0], blob[1] as usize);
        let value = blob.get(2..2 + len)?;
        if k == kind {
            return Some(value);
        }
        blob = &blob[2 + len..];
    }
    None
}

/// Finds the comment record in a userdata blob.
pub fn decode_comment(blob: &[u8]) -> Option<String> {
    let value = find_record(blob, COMMENT)?;
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    Some(String::from_utf8_lossy(&value[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let b = encode_comment("net/cid/eth0");
        assert_eq!(b[..2], [0, 13]);
        assert_eq!(decode_comment(&b).as_deref(), Some("net/cid/eth0"));
    }

    #[test]
    fn skips_other_records_and_rejects_garbage() {
        let mut b = vec![1, 4, 0, 0, 0, 1];
        b.extend(encode_comment("x"));
        assert_eq!(decode_comment(&b).as_deref(), Some("x"));
        assert_eq!(decode_comment(&[0, 9, 1]), None);
        assert_eq!(decode_comment(&[]), None);
        let mut both = encode_comment("c");
        both.extend(encode_record(DIGEST, &[1, 2, 3]));
        assert_eq!(find_record(&both, DIGEST), Some(&[1, 2, 3][..]));
        assert_eq!(decode_comment(&both).as_deref(), Some("c"));
    }
}
