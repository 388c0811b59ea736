//! Rules that set or clear bits of the packet mark (`meta mark set meta
//! mark | 0x10000000`), for which the [`crate::nft`] builder has no
//! expression (it only loads metadata, never writes it).
//!
//! A mark is how one nftables table tells another what it decided: an
//! `accept` in our own table cannot override a `drop` in another table on
//! the same hook, but a rule there can match a mark we set. Such rules are
//! static (written once per table, never per container), so they are made
//! here with the safe `nftnl` crate as their own small transaction, while
//! everything per-container stays in [`crate::nft::Batch`].

use std::ffi::CString;

use nftnl::expr::{Bitwise, Meta};
use nftnl::{Batch, Chain, MsgType, ProtoFamily, Rule};

use crate::error::{Error, Kind, Result};
use crate::nft::{Family, Table};

/// What a mark rule does to the packet mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkOp {
    /// `meta mark set meta mark | bits`.
    Set(u32),
    /// `meta mark set meta mark & ~bits`.
    Clear(u32),
}

impl MarkOp {
    /// The (mask, xor) pair of the bitwise step: `mark = (mark & mask) ^ xor`.
    pub fn mask_xor(self) -> (u32, u32) {
        match self {
            MarkOp::Set(bits) => (!bits, bits),
            MarkOp::Clear(bits) => (!bits, 0),
        }
    }
}

fn proto_family(f: Family) -> ProtoFamily {
    match f {
        Family::Ip => ProtoFamily::Ipv4,
        Family::Ip6 => ProtoFamily::Ipv6,
        Family::Inet => ProtoFamily::Inet,
        Family::Bridge => ProtoFamily::Bridge,
        Family::Netdev => ProtoFamily::NetDev,
        Family::Arp => ProtoFamily::Arp,
    }
}

fn cstring(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(Kind::Invalid, format!("{what} {s:?}"), "contains a NUL byte"))
}

/// Appends to chain `chain` of `table` (both must exist) a rule that
/// applies `op` to the packet mark, with `comment`, as one transaction in
/// the calling thread's network namespace. Appending twice gives two rules:
/// callers check with [`crate::nft::Socket::list_rules`] first.
pub fn append(table: &Table, chain: &str, op: MarkOp, comment: &str) -> Result<()> {
    let what = format!("adding a mark rule to chain {table} {chain}");
    // The same checks as every other rule: names nft can parse back, a
    // comment that round-trips.
    let checked = crate::nft::Rule::new(&table.chain(chain)?).comment(comment);
    if let Some(e) = checked.error() {
        return Err(e.clone());
    }
    let tname = cstring("table name", table.name())?;
    let cname = cstring("chain name", chain)?;
    let ccomment = cstring("comment", comment)?;
    let t = nftnl::Table::new(&tname, proto_family(table.family()));
    let c = Chain::new(&cname, &t);
    let mut rule = Rule::new(&c);
    let (mask, xor) = op.mask_xor();
    rule.add_expr(&Meta::Mark { set: false });
    rule.add_expr(&Bitwise::new(mask, xor));
    rule.add_expr(&Meta::Mark { set: true });
    rule.set_comment(&ccomment).map_err(|e| Error::new(Kind::Invalid, what.clone(), e))?;
    let mut batch = Batch::new();
    batch.add(&rule, MsgType::Add);
    send(&batch.finalize()).map_err(|e| Error::from_io(what, &e))
}

/// Sends a finalized batch and waits for the kernel's answer to each message.
fn send(batch: &nftnl::FinalizedBatch) -> std::io::Result<()> {
    let socket = mnl::Socket::new(mnl::Bus::Netfilter)?;
    let portid = socket.portid();
    socket.send_all(batch)?;
    // u32 words: netlink headers must be 4-byte aligned.
    let mut words = vec![0u32; nftnl::nft_nlmsg_maxsize() as usize / 4 + 1];
    // SAFETY: a u32 buffer is a valid, initialized byte buffer of 4x its length.
    let buffer = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 4) };
    let mut expected = batch.sequence_numbers();
    while !expected.is_empty() {
        for message in socket.recv(&mut buffer[..])? {
            let message = message?;
            let Some(seq) = expected.next() else { break };
            mnl::cb_run(message, seq, portid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_and_xor() {
        assert_eq!(MarkOp::Set(0x1000_0000).mask_xor(), (0xefff_ffff, 0x1000_0000));
        assert_eq!(MarkOp::Clear(0x1000_0000).mask_xor(), (0xefff_ffff, 0));
        // (mark & mask) ^ xor sets or clears exactly the bit.
        let apply = |op: MarkOp, m: u32| {
            let (mask, xor) = op.mask_xor();
            (m & mask) ^ xor
        };
        assert_eq!(apply(MarkOp::Set(0x10), 0x2001), 0x2011);
        assert_eq!(apply(MarkOp::Set(0x10), 0x2011), 0x2011);
        assert_eq!(apply(MarkOp::Clear(0x10), 0x2011), 0x2001);
        assert_eq!(apply(MarkOp::Clear(0x10), 0x2001), 0x2001);
    }

    #[test]
    fn bad_names_are_refused_before_sending() {
        let t = Table::new(Family::Inet, "t").unwrap();
        assert_eq!(append(&t, "bad name", MarkOp::Set(1), "x").unwrap_err().kind, Kind::Invalid);
        assert_eq!(append(&t, "c", MarkOp::Set(1), "bad\"comment").unwrap_err().kind, Kind::Invalid);
    }
}
