//! The netlink socket to nf_tables: commits a [`Batch`] as one transaction
//! and reports the kernel's errno for the message that failed, and answers
//! the few questions CHECK, DEL and GC ask (which elements does a set hold,
//! which rules does a chain hold, does a table exist).

use std::collections::HashMap;

use super::batch::{encode_element, Batch};
use super::objects::{Chain, ElemData, Element, Set, SetData, Table, Verdict};
use super::raw::{self, AlignedBuf, ChainInfo, Header, MsgWriter, RawElem};
use super::types::{decode_key, decrement_be, DataType};
use super::udata::decode_comment;
use crate::error::{Error, Kind, Result};
use crate::nfnetlink::{
    self, errno as nl_errno, header as nl_header, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR,
};

/// Dumps are retried this often when the ruleset changes under them.
const DUMP_ATTEMPTS: usize = 5;
/// Receive buffer: larger than any single dump message the kernel sends.
const RECV_BUF: usize = 128 * 1024;
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
    sock: nfnetlink::Socket,
}

/// An nf_tables message type as it appears in a reply header.
fn nft_type(msg: i32) -> u16 {
    nfnetlink::msg_type(libc::NFNL_SUBSYS_NFTABLES as u16, msg as u16)
}

impl Socket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Socket> {
        Ok(Socket { sock: nfnetlink::Socket::open()? })
    }

    /// Closes the socket without waiting for the RCU grace period a commit
    /// that deleted something makes the close wait for (see
    /// [`nfnetlink::Socket::close_deferred`]): for DEL and GC, whose
    /// deletions are complete when [`Socket::commit`] returns.
    pub fn close_deferred(self) {
        self.sock.close_deferred();
    }

    /// Reserves `n` consecutive sequence numbers.
    fn seqs(&self, n: u32) -> u32 {
        self.sock.seqs(n)
    }

    fn recv<'a>(&self, buf: &'a mut AlignedBuf, what: &str) -> Result<&'a [u8]> {
        self.sock.recv(buf.bytes_mut(), what)
    }

    fn send(&self, bytes: &[u8], what: &str) -> Result<()> {
        self.sock.send(bytes, what)
    }

    /// Sends `batch` exactly as it is.
    pub(super) fn commit_exact(&self, batch: &Batch) -> Result<()> {
        phases::time("nft-commit", || format!("{} messages", batch.len()), || self.commit_timed(batch))
    }

    fn commit_timed(&self, batch: &Batch) -> Result<()> {
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
            for msg in nfnetlink::messages(data) {
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
        phases::time("nft-query", || what.replace(' ', "_"), || self.request_timed(kind, family, flags, what, build))
    }

    fn request_timed(
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
                for msg in nfnetlink::messages(data) {
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

    /// Every chain of `t` and the userdata of each one's rules, read with
    /// two dumps (empty when the table does not exist).
    pub(super) fn table_state(&self, t: &Table) -> Result<TableState> {
        let family = t.family().raw();
        let is = |m: &&Vec<u8>, kind: i32| nl_header(m).is_some_and(|h| h.kind == nft_type(kind));
        let mut state = TableState::default();
        let what = format!("listing chains of {t}");
        let chains = match self.request(libc::NFT_MSG_GETCHAIN, family, NLM_F_DUMP, &what, |w, h| {
            w.bare(h);
            Ok(())
        }) {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(state),
            Err(e) => return Err(e),
        };
        for m in chains.iter().filter(|m| is(m, libc::NFT_MSG_NEWCHAIN)) {
            let info = raw::parse_chain(m)?;
            if info.table == t.name() {
                state.chains.insert(info.name.clone(), info);
            }
        }
        if state.chains.is_empty() {
            return Ok(state);
        }
        let what = format!("listing rules of {t}");
        let rules = match self.request(libc::NFT_MSG_GETRULE, family, NLM_F_DUMP, &what, |w, h| w.table_rules(h, t)) {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(TableState::default()),
            Err(e) => return Err(e),
        };
        for m in rules.iter().filter(|m| is(m, libc::NFT_MSG_NEWRULE)) {
            let (chain, _, udata) = raw::parse_rule_of_chain(m)?;
            state.rules.entry(chain).or_default().push(udata);
        }
        Ok(state)
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

/// The chains of one table and their rules' userdata, as
/// [`Socket::table_state`] read them: what the planner asks of several
/// chains of one table, for two dumps instead of a lookup and a listing
/// per chain.
#[derive(Debug, Default)]
pub(super) struct TableState {
    chains: HashMap<String, ChainInfo>,
    rules: HashMap<String, Vec<Option<Vec<u8>>>>,
}

impl TableState {
    /// The chain `c` (of this state's table), `None` when it did not exist.
    pub(super) fn chain(&self, c: &Chain) -> Option<&ChainInfo> {
        self.chains.get(c.name())
    }

    /// The userdata of each rule of `c`, in order; `None` when the chain
    /// did not exist.
    pub(super) fn rule_udata(&self, c: &Chain) -> Option<&[Option<Vec<u8>>]> {
        self.chains.contains_key(c.name()).then(|| self.rules.get(c.name()).map_or(&[][..], Vec::as_slice))
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
