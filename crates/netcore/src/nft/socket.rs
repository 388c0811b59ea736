//! The netlink socket to nf_tables: commits a [`Batch`] as one transaction
//! and reports the kernel's errno for the message that failed, and answers
//! the few questions CHECK, DEL and GC ask (which elements does a set hold,
//! which rules does a chain hold, does a table exist).

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::batch::{encode_element, Batch};
use super::objects::{Chain, ElemData, Element, Set, SetData, Table, Verdict};
use super::raw::{self, AlignedBuf, ChainInfo, Header, MsgWriter, RawElem};
use super::types::{decode_key, decrement_be, DataType};
use super::udata::decode_comment;
use crate::error::{Error, Kind, Result};

/// Netlink control messages.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// Reply flags.
const NLM_F_DUMP_INTR: u16 = 0x10;
/// Request flags.
const NLM_F_ACK: u16 = libc::NLM_F_ACK as u16;
const NLM_F_DUMP: u16 = (libc::NLM_F_ROOT | libc::NLM_F_MATCH) as u16;
/// `SOL_NETLINK`.
const SOL_NETLINK: i32 = 270;
/// Dumps are retried this often when the ruleset changes under them.
const DUMP_ATTEMPTS: usize = 5;
/// Receive buffer: larger than any single dump message the kernel sends.
const RECV_BUF: usize = 128 * 1024;
/// No reply within this time means something is badly wrong.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);
/// `NFT_SET_ELEM_INTERVAL_END`.
const ELEM_INTERVAL_END: u32 = libc::NFT_SET_ELEM_INTERVAL_END as u32;

/// A rule as listed back: enough to delete it or to count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// The kernel's handle (for `Batch::delete_rule`).
    pub handle: u64,
    /// The rule's comment.
    pub comment: Option<String>,
}

/// A netlink socket bound to the network namespace of the thread that
/// opened it. Not shared between threads; open one per operation.
pub struct Socket {
    sock: mnl::Socket,
    seq: Cell<u32>,
}

/// The fields of a netlink header we look at.
struct NlHdr {
    kind: u16,
    flags: u16,
    seq: u32,
}

fn nl_header(msg: &[u8]) -> Option<NlHdr> {
    let b = msg.get(..16)?;
    Some(NlHdr {
        kind: u16::from_ne_bytes([b[4], b[5]]),
        flags: u16::from_ne_bytes([b[6], b[7]]),
        seq: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
    })
}

/// The errno an `NLMSG_ERROR` (or `NLMSG_DONE`) carries, as a positive number.
fn nl_errno(msg: &[u8]) -> i32 {
    msg.get(16..20).map_or(0, |b| -i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// An nf_tables message type as it appears in a reply header.
fn nft_type(msg: i32) -> u16 {
    ((libc::NFNL_SUBSYS_NFTABLES << 8) | msg) as u16
}

impl Socket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Socket> {
        let sock = mnl::Socket::new(mnl::Bus::Netfilter)
            .map_err(|e| Error::from_io("opening an nftables netlink socket", &e))?;
        let fd = sock.as_raw_fd();
        // Errors then echo only the failing header, not the whole message.
        let _ = raw::setsockopt_int(fd, SOL_NETLINK, libc::NETLINK_CAP_ACK, 1);
        raw::set_recv_timeout(fd, RECV_TIMEOUT)
            .map_err(|e| Error::from_io("setting the netlink receive timeout", &e))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(1);
        Ok(Socket { sock, seq: Cell::new(now.max(1)) })
    }

    /// Reserves `n` consecutive sequence numbers.
    fn seqs(&self, n: u32) -> u32 {
        let first = self.seq.get();
        self.seq.set(first.wrapping_add(n).max(1));
        first
    }

    fn recv<'a>(&self, buf: &'a mut AlignedBuf, what: &str) -> Result<&'a [u8]> {
        let n = self.sock.recv_raw(buf.bytes_mut()).map_err(|e| {
            if matches!(e.raw_os_error(), Some(libc::EAGAIN)) {
                Error::new(Kind::Busy, what.to_string(), "no reply from the kernel")
            } else {
                Error::from_io(what.to_string(), &e)
            }
        })?;
        Ok(&buf.bytes()[..n])
    }

    fn send(&self, bytes: &[u8], what: &str) -> Result<()> {
        if bytes.len() > 128 * 1024 {
            let size = i32::try_from(bytes.len() + 64 * 1024).unwrap_or(i32::MAX);
            let fd = self.sock.as_raw_fd();
            if raw::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, size).is_err() {
                let _ = raw::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, size);
            }
        }
        let sent = self.sock.send(bytes).map_err(|e| Error::from_io(what.to_string(), &e))?;
        if sent != bytes.len() {
            return Err(Error::other(what.to_string(), "the kernel took only part of the batch"));
        }
        Ok(())
    }

    /// Sends `batch` exactly as it is.
    pub(super) fn commit_exact(&self, batch: &Batch) -> Result<()> {
        batch.check()?;
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len() as u32;
        let begin = self.seqs(n + 2);
        let bytes = batch.encode(begin)?;
        let what = "committing an nftables batch";
        self.send(&bytes, what)?;
        // Only the last message asks for an ACK; errors are always reported.
        // The kernel handles the whole batch inside sendmsg, so every reply
        // is queued by now; the ACK of the last message comes last.
        let last = begin + n;
        let mut first_err: Option<(u32, i32)> = None;
        let mut buf = AlignedBuf::new(RECV_BUF);
        loop {
            let data = self.recv(&mut buf, what)?;
            let mut done = false;
            for msg in mnl::NlMessages::new(data) {
                let msg = msg.map_err(|e| Error::from_io(what, &e))?;
                let Some(h) = nl_header(msg) else { continue };
                if h.kind != NLMSG_ERROR || h.seq < begin || h.seq > last {
                    continue;
                }
                let errno = nl_errno(msg);
                if errno != 0 && first_err.is_none_or(|(s, _)| h.seq < s) {
                    first_err = Some((h.seq, errno));
                }
                if h.seq == last || (h.seq == begin && errno != 0) {
                    done = true;
                }
            }
            if done {
                break;
            }
        }
        match first_err {
            None => Ok(()),
            Some((seq, errno)) => Err(Error::from_errno(batch.describe_at((seq - begin) as usize), errno)),
        }
    }

    /// Sends one request and collects the reply messages (a dump, or a
    /// single object), retrying dumps the ruleset changed under.
    fn request(
        &self,
        kind: i32,
        family: u16,
        flags: u16,
        what: &str,
        build: impl Fn(&mut MsgWriter, Header) -> Result<()>,
    ) -> Result<Vec<Vec<u8>>> {
        let mut buf = AlignedBuf::new(RECV_BUF);
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.seqs(1);
            let mut w = MsgWriter::new();
            build(&mut w, Header { kind: kind as u16, family, flags, seq })?;
            self.send(&w.finish(), what)?;
            let (mut msgs, mut interrupted, mut done) = (Vec::new(), false, false);
            while !done {
                let data = self.recv(&mut buf, what)?;
                for msg in mnl::NlMessages::new(data) {
                    let msg = msg.map_err(|e| Error::from_io(what, &e))?;
                    let Some(h) = nl_header(msg) else { continue };
                    if h.seq != seq {
                        continue;
                    }
                    interrupted |= h.flags & NLM_F_DUMP_INTR != 0;
                    match h.kind {
                        NLMSG_ERROR | NLMSG_DONE => {
                            let errno = nl_errno(msg);
                            if errno > 0 {
                                return Err(Error::from_errno(what, errno));
                            }
                            done = true;
                        }
                        _ => msgs.push(msg.to_vec()),
                    }
                }
            }
            if !interrupted {
                return Ok(msgs);
            }
        }
        Err(Error::new(Kind::Busy, what, "the ruleset kept changing during the dump"))
    }

    /// Whether an object exists (a GET answered with `ENOENT` means no).
    fn exists(
        &self,
        kind: i32,
        family: u16,
        what: &str,
        build: impl Fn(&mut MsgWriter, Header) -> Result<()>,
    ) -> Result<bool> {
        match self.request(kind, family, NLM_F_ACK, what, build) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the table exists.
    pub fn has_table(&self, t: &Table) -> Result<bool> {
        self.exists(libc::NFT_MSG_GETTABLE, t.family().raw(), &format!("looking up table {t}"), |w, h| w.table(h, t))
    }

    /// Whether the chain exists.
    pub fn has_chain(&self, c: &Chain) -> Result<bool> {
        let family = c.table().family().raw();
        self.exists(libc::NFT_MSG_GETCHAIN, family, &format!("looking up {c}"), |w, h| w.chain(h, c, false))
    }

    /// Whether the set or map exists.
    pub fn has_set(&self, s: &Set) -> Result<bool> {
        let family = s.table().family().raw();
        self.exists(libc::NFT_MSG_GETSET, family, &format!("looking up {s}"), |w, h| w.set(h, s, 0, false))
    }

    /// The ruleset generation: a cheap probe that nf_tables works here
    /// (STATUS), and a way to notice that someone changed the ruleset.
    pub fn generation(&self) -> Result<u32> {
        let what = "reading the nftables generation";
        let msgs = self.request(libc::NFT_MSG_GETGEN, 0, NLM_F_ACK, what, |w, h| {
            w.bare(h);
            Ok(())
        })?;
        let msg = msgs.iter().find(|m| nl_header(m).is_some_and(|h| h.kind == nft_type(libc::NFT_MSG_NEWGEN)));
        raw::parse_gen(msg.ok_or_else(|| Error::other(what, "no generation in the reply"))?)
    }

    /// Every element of `set`, with its comment: how CHECK, DEL and GC find
    /// an attachment's elements without knowing its addresses.
    /// `Kind::NotFound` when the set (or its table) does not exist.
    pub fn list_elements(&self, set: &Set) -> Result<Vec<Element>> {
        let what = format!("listing elements of {set}");
        let family = set.table().family().raw();
        let msgs = self.request(libc::NFT_MSG_GETSETELEM, family, NLM_F_DUMP, &what, |w, h| w.elems(h, set, &[]))?;
        let mut raws = Vec::new();
        for m in msgs.iter().filter(|m| nl_header(m).is_some_and(|h| h.kind == nft_type(libc::NFT_MSG_NEWSETELEM))) {
            raws.extend(raw::parse_elems(m)?);
        }
        let raws = if set.is_interval() && set.key().len() == 1 { merge_intervals(set.key()[0], raws) } else { raws };
        raws.iter()
            .map(|r| {
                to_element(set, r).ok_or_else(|| Error::other(&what, "the kernel returned an element of another type"))
            })
            .collect()
    }

    /// The element of `set` stored under `e`'s key (and range end, in a
    /// concatenated interval set), with its value and comment; `None` when
    /// there is none, or no such set. One lookup whatever the set's size, so
    /// DEL can check who owns a key without listing every element. Not for
    /// single-field interval sets (the kernel keeps their ranges as two
    /// elements): list those.
    pub fn get_element(&self, set: &Set, e: &Element) -> Result<Option<Element>> {
        let what = format!("looking up element {e} of {set}");
        if set.is_interval() && set.key().len() == 1 {
            return Err(Error::new(Kind::Invalid, what, "a single-field interval set; use list_elements"));
        }
        let raws = encode_element(set, e, true)?;
        let family = set.table().family().raw();
        let msgs = match self.request(libc::NFT_MSG_GETSETELEM, family, NLM_F_ACK, &what, |w, h| w.elems(h, set, &raws))
        {
            Ok(m) => m,
            Err(err) if err.is_not_found() => return Ok(None),
            Err(err) => return Err(err),
        };
        for m in msgs.iter().filter(|m| nl_header(m).is_some_and(|h| h.kind == nft_type(libc::NFT_MSG_NEWSETELEM))) {
            if let Some(r) = raw::parse_elems(m)?.first() {
                let found = to_element(set, r).ok_or_else(|| Error::other(&what, "an element of another type"))?;
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The rules of `chain`, in order, with their handles and comments.
    /// `Kind::NotFound` when the chain does not exist.
    pub fn list_rules(&self, chain: &Chain) -> Result<Vec<RuleInfo>> {
        Ok(self
            .rules_raw(chain)?
            .into_iter()
            .map(|(handle, udata)| RuleInfo { handle, comment: udata.as_deref().and_then(decode_comment) })
            .collect())
    }

    /// The userdata of each rule of `chain`, in order.
    pub(super) fn rule_udata(&self, chain: &Chain) -> Result<Vec<Option<Vec<u8>>>> {
        Ok(self.rules_raw(chain)?.into_iter().map(|(_, u)| u).collect())
    }

    fn rules_raw(&self, chain: &Chain) -> Result<Vec<(u64, Option<Vec<u8>>)>> {
        let what = format!("listing rules of {chain}");
        let family = chain.table().family().raw();
        let msgs = self.request(libc::NFT_MSG_GETRULE, family, NLM_F_DUMP, &what, |w, h| w.rule_ref(h, chain, None))?;
        let out = msgs
            .iter()
            .filter(|m| nl_header(m).is_some_and(|h| h.kind == nft_type(libc::NFT_MSG_NEWRULE)))
            .map(|m| raw::parse_rule(m))
            .collect::<Result<Vec<_>>>()?;
        if out.is_empty() && !self.has_chain(chain)? {
            return Err(Error::new(Kind::NotFound, what, "no such chain"));
        }
        Ok(out)
    }

    /// How many rules and verdict-map elements point at chain `c`, `None`
    /// when it does not exist: a shared chain whose count drops to 0 can
    /// be deleted (the kernel refuses while it is not 0, so a concurrent
    /// user makes the delete fail, never dangle).
    pub fn chain_references(&self, c: &Chain) -> Result<Option<u32>> {
        let Some(info) = self.chain_info(c)? else { return Ok(None) };
        // The kernel's count also holds the chain's own rules.
        let rules = match self.list_rules(c) {
            Ok(r) => r.len() as u32,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(info.references.unwrap_or(0).saturating_sub(rules)))
    }

    /// The chain as the kernel has it, `None` when it does not exist.
    pub(super) fn chain_info(&self, c: &Chain) -> Result<Option<ChainInfo>> {
        let what = format!("looking up {c}");
        let family = c.table().family().raw();
        let msgs = match self.request(libc::NFT_MSG_GETCHAIN, family, NLM_F_ACK, &what, |w, h| w.chain(h, c, false)) {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        msgs.iter()
            .find(|m| nl_header(m).is_some_and(|h| h.kind == nft_type(libc::NFT_MSG_NEWCHAIN)))
            .map(|m| raw::parse_chain(m))
            .transpose()
    }
}

/// Pairs the start and end elements of a single-field interval set (the
/// kernel stores `[a, b]` as a start `a` and an end marker `b + 1`).
fn merge_intervals(t: DataType, mut raws: Vec<RawElem>) -> Vec<RawElem> {
    let is_end = |r: &RawElem| r.flags & ELEM_INTERVAL_END != 0;
    raws.sort_by(|a, b| (&a.key, !is_end(a)).cmp(&(&b.key, !is_end(b))));
    let mut out = Vec::new();
    let mut i = 0;
    while i < raws.len() {
        if is_end(&raws[i]) {
            i += 1;
            continue;
        }
        let mut start = raws[i].clone();
        let end = match raws.get(i + 1) {
            Some(next) if is_end(next) => {
                let mut e = next.key.clone();
                decrement_be(&mut e);
                i += 2;
                e
            }
            _ => {
                i += 1;
                vec![0xff; t.size()]
            }
        };
        start.key_end = Some(end);
        out.push(start);
    }
    out
}

fn to_element(set: &Set, r: &RawElem) -> Option<Element> {
    let key = decode_key(set.key(), &r.key)?;
    let key_end = match &r.key_end {
        Some(end) => Some(decode_key(set.key(), end)?),
        None => None,
    };
    let data = match (set.data(), &r.data, &r.verdict) {
        (Some(SetData::Values(types)), Some(d), _) => Some(ElemData::Values(decode_key(types, d)?)),
        (Some(SetData::Verdict), _, Some((code, chain))) => {
            Some(ElemData::Verdict(Verdict::from_raw(*code, chain.clone())?))
        }
        _ => None,
    };
    Some(Element { key, key_end, data, comment: r.udata.as_deref().and_then(decode_comment) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::{Family, Value};

    #[test]
    fn intervals_are_paired() {
        let raws = vec![
            RawElem { key: vec![10, 0, 1, 0], flags: ELEM_INTERVAL_END, ..Default::default() },
            RawElem {
                key: vec![10, 0, 0, 0],
                udata: Some(crate::nft::udata::encode_comment("a")),
                ..Default::default()
            },
            RawElem { key: vec![10, 0, 1, 0], ..Default::default() },
            RawElem { key: vec![0, 0, 0, 0], flags: ELEM_INTERVAL_END, ..Default::default() },
            RawElem { key: vec![192, 168, 0, 0], ..Default::default() },
        ];
        let set = Table::new(Family::Inet, "t").unwrap().set("s", &[DataType::Ipv4Addr]).unwrap().interval().unwrap();
        let got: Vec<String> = merge_intervals(DataType::Ipv4Addr, raws)
            .iter()
            .map(|r| to_element(&set, r).unwrap().to_string())
            .collect();
        assert_eq!(got, ["10.0.0.0-10.0.0.255", "10.0.1.0-255.255.255.255", "192.168.0.0-255.255.255.255"]);
    }

    #[test]
    fn elements_decode_with_the_set_types() {
        let t = Table::new(Family::Inet, "t").unwrap();
        let m = t
            .map("m", &[DataType::InetProto, DataType::InetService], &[DataType::Ipv4Addr, DataType::InetService])
            .unwrap();
        let r = RawElem {
            key: vec![6, 0, 0, 0, 0, 80, 0, 0],
            data: Some(vec![10, 0, 0, 2, 0x1f, 0x90, 0, 0]),
            udata: Some(crate::nft::udata::encode_comment("owner")),
            ..Default::default()
        };
        let e = to_element(&m, &r).unwrap();
        assert_eq!(e.key, [Value::TCP, Value::Port(80)]);
        assert_eq!(e.data, Some(ElemData::Values(vec![Value::Ipv4([10, 0, 0, 2].into()), Value::Port(8080)])));
        assert_eq!(e.comment.as_deref(), Some("owner"));
        let bad = RawElem { key: vec![1, 2], ..Default::default() };
        assert!(to_element(&m, &bad).is_none());
        let nodata = RawElem { key: vec![6, 0, 0, 0, 0, 80, 0, 0], data: Some(vec![1]), ..Default::default() };
        assert!(to_element(&m, &nodata).is_none());
    }

    #[test]
    fn header_parsing() {
        let mut m = vec![0u8; 36];
        m[..4].copy_from_slice(&36u32.to_ne_bytes());
        m[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m[8..12].copy_from_slice(&77u32.to_ne_bytes());
        m[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        let h = nl_header(&m).unwrap();
        assert_eq!((h.kind, h.seq), (NLMSG_ERROR, 77));
        assert_eq!(nl_errno(&m), libc::EEXIST);
        assert_eq!(nft_type(libc::NFT_MSG_NEWSETELEM), 0x0a0c);
    }
}
