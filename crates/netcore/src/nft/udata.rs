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

/// Finds the comment record in a userdata blob; `None` when there is none or
/// the blob is malformed (written by some other tool).
pub fn decode_comment(mut blob: &[u8]) -> Option<String> {
    while blob.len() >= 2 {
        let (kind, len) = (blob[0], blob[1] as usize);
        let value = blob.get(2..2 + len)?;
        if kind == COMMENT {
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            return Some(String::from_utf8_lossy(&value[..end]).into_owned());
        }
        blob = &blob[2 + len..];
    }
    None
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
    }
}
