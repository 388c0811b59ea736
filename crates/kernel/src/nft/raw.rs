//! The only module with `unsafe` code: it turns our plain descriptions into
//! netlink messages with libnftnl (through `nftnl-sys`) and reads kernel
//! replies back. The safe `nftnl` crate is not used at all: it has no maps,
//! concatenations, element userdata, `fib`/`ct` expressions, and fixes the
//! netlink flags (elements always `NLM_F_EXCL`), which would make
//! idempotent ADDs impossible.
//!
//! Every function here takes already-validated data (names checked, values
//! encoded) and owns every libnftnl object it allocates, freeing it before
//! returning.

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::NonNull;

use nftnl_sys as sys;

use super::expr::{Expr, NatKind};
use super::objects::{Chain, Set, SetData, Table};
use super::rule::Rule;
use super::types::{DataType, IpFamily};
use super::udata;
use crate::error::{Error, Kind, Result};

/// Room for the largest nf_tables message (a 64 KiB element list plus
/// headers), as libnftnl assumes when it writes into a buffer.
const MAX_MSG: usize = 65536 + 8192;

/// A zeroed byte buffer aligned for `nlmsghdr` (4 bytes), which libnftnl
/// and libmnl need for building and parsing messages.
pub struct AlignedBuf {
    words: Vec<u32>,
}

impl AlignedBuf {
    /// A buffer of at least `len` bytes.
    pub fn new(len: usize) -> AlignedBuf {
        AlignedBuf { words: vec![0; len.div_ceil(4)] }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: a u32 slice is a valid, initialized u8 slice of 4x the length.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast(), self.words.len() * 4) }
    }

    /// The bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above; the borrow is unique.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast(), self.words.len() * 4) }
    }

    /// A copy of `msg` in an aligned buffer (for messages we did not
    /// receive into one ourselves).
    fn copy_of(msg: &[u8]) -> AlignedBuf {
        let mut b = AlignedBuf::new(msg.len());
        b.bytes_mut()[..msg.len()].copy_from_slice(msg);
        b
    }
}

/// The netlink header of one nf_tables message.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// `NFT_MSG_*` (the subsystem is added by libnftnl).
    pub kind: u16,
    /// `NFPROTO_*` of the object.
    pub family: u16,
    /// `NLM_F_*` (`NLM_F_REQUEST` is added).
    pub flags: u16,
    /// Sequence number.
    pub seq: u32,
}

/// One set element as bytes, ready for the kernel (or as read back).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawElem {
    /// The key.
    pub key: Vec<u8>,
    /// The inclusive range end (concatenated interval sets).
    pub key_end: Option<Vec<u8>>,
    /// The map value.
    pub data: Option<Vec<u8>>,
    /// A verdict value: code and chain.
    pub verdict: Option<(i32, Option<String>)>,
    /// Userdata (the comment record).
    pub udata: Option<Vec<u8>>,
    /// `NFT_SET_ELEM_*` flags (interval end).
    pub flags: u32,
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(Kind::Invalid, format!("nftables name {s:?}"), "contains a NUL byte"))
}

fn len32(b: &[u8]) -> u32 {
    b.len() as u32
}

/// Builds a batch of messages into one contiguous buffer (one `sendmsg`, so
/// the kernel sees one transaction).
pub struct MsgWriter {
    scratch: AlignedBuf,
    out: Vec<u8>,
}

impl Default for MsgWriter {
    fn default() -> Self {
        MsgWriter::new()
    }
}

impl MsgWriter {
    /// An empty writer.
    pub fn new() -> MsgWriter {
        MsgWriter { scratch: AlignedBuf::new(MAX_MSG), out: Vec::with_capacity(4096) }
    }

    /// The messages written so far.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }

    /// Runs `build` on the scratch buffer and appends the message it wrote.
    fn push(&mut self, build: impl FnOnce(*mut c_char)) {
        let buf = self.scratch.bytes_mut();
        buf[..16].fill(0);
        build(buf.as_mut_ptr().cast());
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let len = len.min(MAX_MSG);
        self.out.extend_from_slice(&self.scratch.bytes()[..len]);
        self.out.resize(self.out.len().next_multiple_of(4), 0);
    }

    /// Starts the header of a message; libnftnl then appends the payload.
    fn header(buf: *mut c_char, h: Header) -> *mut libc::nlmsghdr {
        // SAFETY: buf has MAX_MSG bytes, aligned; the header is 20 bytes.
        unsafe { sys::nftnl_nlmsg_build_hdr(buf, h.kind, h.family, h.flags, h.seq) }
    }

    /// The batch-begin marker.
    pub fn batch_begin(&mut self, seq: u32) {
        // SAFETY: the scratch buffer is large enough and aligned.
        self.push(|buf| unsafe {
            sys::nftnl_batch_begin(buf, seq);
        });
    }

    /// The batch-end marker.
    pub fn batch_end(&mut self, seq: u32) {
        // SAFETY: as above.
        self.push(|buf| unsafe {
            sys::nftnl_batch_end(buf, seq);
        });
    }

    /// A message with no payload (e.g. `NFT_MSG_GETGEN`).
    pub fn bare(&mut self, h: Header) {
        self.push(|buf| {
            Self::header(buf, h);
        });
    }

    /// A table message.
    pub fn table(&mut self, h: Header, t: &Table) -> Result<()> {
        let name = cstring(t.name())?;
        let obj = NonNull::new(unsafe { sys::nftnl_table_alloc() }).ok_or_else(oom)?;
        let p = obj.as_ptr();
        // SAFETY: p is a live table; strings are copied by libnftnl.
        unsafe {
            sys::nftnl_table_set_u32(p, sys::NFTNL_TABLE_FAMILY as u16, u32::from(t.family().raw()));
            sys::nftnl_table_set_str(p, sys::NFTNL_TABLE_NAME as u16, name.as_ptr());
            sys::nftnl_table_set_u32(p, sys::NFTNL_TABLE_FLAGS as u16, 0);
        }
        // SAFETY: the header is written into the scratch buffer, then the payload.
        self.push(|buf| unsafe { sys::nftnl_table_nlmsg_build_payload(Self::header(buf, h), p) });
        // SAFETY: p was allocated above and is not used after this.
        unsafe { sys::nftnl_table_free(p) };
        Ok(())
    }

    /// A chain message; `full` includes the hook (for creation).
    pub fn chain(&mut self, h: Header, c: &Chain, full: bool) -> Result<()> {
        let table = cstring(c.table().name())?;
        let name = cstring(c.name())?;
        let base = if full { c.base() } else { None };
        let kind = base.map(|b| cstring(b.kind.name())).transpose()?;
        let dev = base.and_then(|b| b.device.as_deref()).map(cstring).transpose()?;
        let obj = NonNull::new(unsafe { sys::nftnl_chain_alloc() }).ok_or_else(oom)?;
        let p = obj.as_ptr();
        // SAFETY: p is a live chain; strings are copied.
        unsafe {
            sys::nftnl_chain_set_u32(p, sys::NFTNL_CHAIN_FAMILY as u16, u32::from(c.table().family().raw()));
            sys::nftnl_chain_set_str(p, sys::NFTNL_CHAIN_TABLE as u16, table.as_ptr());
            sys::nftnl_chain_set_str(p, sys::NFTNL_CHAIN_NAME as u16, name.as_ptr());
            if let (Some(b), Some(kind)) = (base, kind.as_ref()) {
                sys::nftnl_chain_set_u32(p, sys::NFTNL_CHAIN_HOOKNUM as u16, b.hook.raw(c.table().family()));
                sys::nftnl_chain_set_s32(p, sys::NFTNL_CHAIN_PRIO as u16, b.priority);
                sys::nftnl_chain_set_str(p, sys::NFTNL_CHAIN_TYPE as u16, kind.as_ptr());
                if let Some(policy) = b.policy {
                    let v = match policy {
                        super::Policy::Accept => libc::NF_ACCEPT,
                        super::Policy::Drop => libc::NF_DROP,
                    };
                    sys::nftnl_chain_set_u32(p, sys::NFTNL_CHAIN_POLICY as u16, v as u32);
                }
                if let Some(dev) = dev.as_ref() {
                    sys::nftnl_chain_set_str(p, sys::NFTNL_CHAIN_DEV as u16, dev.as_ptr());
                }
            }
        }
        // SAFETY: as for tables.
        self.push(|buf| unsafe { sys::nftnl_chain_nlmsg_build_payload(Self::header(buf, h), p) });
        // SAFETY: allocated above, not used after.
        unsafe { sys::nftnl_chain_free(p) };
        Ok(())
    }

    /// A rule message with its expressions, comment and `tag` (more
    /// userdata records, e.g. our digest).
    pub fn rule(&mut self, h: Header, r: &Rule, tag: Option<&[u8]>) -> Result<()> {
        let p = new_rule(r.chain(), None)?;
        let result = (|| {
            for e in r.exprs() {
                let expr = build_expr(e)?;
                // SAFETY: the rule takes ownership of the expression.
                unsafe { sys::nftnl_rule_add_expr(p.as_ptr(), expr.as_ptr()) };
            }
            let mut blob = r.comment_text().map(udata::encode_comment).unwrap_or_default();
            blob.extend_from_slice(tag.unwrap_or_default());
            if !blob.is_empty() {
                // SAFETY: libnftnl copies the blob.
                unsafe {
                    sys::nftnl_rule_set_data(
                        p.as_ptr(),
                        sys::NFTNL_RULE_USERDATA as u16,
                        blob.as_ptr().cast(),
                        len32(&blob),
                    )
                };
            }
            Ok(())
        })();
        if result.is_ok() {
            // SAFETY: as for tables.
            self.push(|buf| unsafe { sys::nftnl_rule_nlmsg_build_payload(Self::header(buf, h), p.as_ptr()) });
        }
        // SAFETY: frees the rule and the expressions it owns.
        unsafe { sys::nftnl_rule_free(p.as_ptr()) };
        result
    }

    /// A rule message naming only the chain (and a handle): delete one
    /// rule, flush the chain, or dump its rules.
    pub fn rule_ref(&mut self, h: Header, c: &Chain, handle: Option<u64>) -> Result<()> {
        let p = new_rule(c, handle)?;
        // SAFETY: as for tables.
        self.push(|buf| unsafe { sys::nftnl_rule_nlmsg_build_payload(Self::header(buf, h), p.as_ptr()) });
        // SAFETY: allocated in new_rule, not used after.
        unsafe { sys::nftnl_rule_free(p.as_ptr()) };
        Ok(())
    }

    /// A rule message naming only `t`: dumps every rule of the table.
    pub fn table_rules(&mut self, h: Header, t: &Table) -> Result<()> {
        let table = cstring(t.name())?;
        let p = NonNull::new(unsafe { sys::nftnl_rule_alloc() }).ok_or_else(oom)?;
        // SAFETY: p is live; the string is copied.
        unsafe {
            sys::nftnl_rule_set_u32(p.as_ptr(), sys::NFTNL_RULE_FAMILY as u16, u32::from(t.family().raw()));
            sys::nftnl_rule_set_str(p.as_ptr(), sys::NFTNL_RULE_TABLE as u16, table.as_ptr());
        }
        // SAFETY: as for tables.
        self.push(|buf| unsafe { sys::nftnl_rule_nlmsg_build_payload(Self::header(buf, h), p.as_ptr()) });
        // SAFETY: allocated above, not used after.
        unsafe { sys::nftnl_rule_free(p.as_ptr()) };
        Ok(())
    }

    /// A set message; `full` includes the key/data types and flags (for
    /// creation), otherwise only the name (delete, get).
    pub fn set(&mut self, h: Header, s: &Set, id: u32, full: bool) -> Result<()> {
        let p = new_set(s)?;
        if full {
            set_set_attrs(p, s, id);
        }
        // SAFETY: as for tables.
        self.push(|buf| unsafe { sys::nftnl_set_nlmsg_build_payload(Self::header(buf, h), p.as_ptr()) });
        // SAFETY: allocated in new_set, not used after.
        unsafe { sys::nftnl_set_free(p.as_ptr()) };
        Ok(())
    }

    /// A set-element message with `elems` (none: flush the set, or dump it).
    pub fn elems(&mut self, h: Header, s: &Set, elems: &[RawElem]) -> Result<()> {
        let p = new_set(s)?;
        let result = elems.iter().try_for_each(|e| add_elem(p, e));
        if result.is_ok() {
            // SAFETY: as for tables.
            self.push(|buf| unsafe { sys::nftnl_set_elems_nlmsg_build_payload(Self::header(buf, h), p.as_ptr()) });
        }
        // SAFETY: frees the set and its elements.
        unsafe { sys::nftnl_set_free(p.as_ptr()) };
        result
    }
}

fn oom() -> Error {
    Error::new(Kind::Other, "allocating a libnftnl object", "out of memory")
}

fn new_rule(c: &Chain, handle: Option<u64>) -> Result<NonNull<sys::nftnl_rule>> {
    let table = cstring(c.table().name())?;
    let chain = cstring(c.name())?;
    let p = NonNull::new(unsafe { sys::nftnl_rule_alloc() }).ok_or_else(oom)?;
    // SAFETY: p is live; strings are copied.
    unsafe {
        sys::nftnl_rule_set_u32(p.as_ptr(), sys::NFTNL_RULE_FAMILY as u16, u32::from(c.table().family().raw()));
        sys::nftnl_rule_set_str(p.as_ptr(), sys::NFTNL_RULE_TABLE as u16, table.as_ptr());
        sys::nftnl_rule_set_str(p.as_ptr(), sys::NFTNL_RULE_CHAIN as u16, chain.as_ptr());
        if let Some(handle) = handle {
            sys::nftnl_rule_set_u64(p.as_ptr(), sys::NFTNL_RULE_HANDLE as u16, handle);
        }
    }
    Ok(p)
}

fn new_set(s: &Set) -> Result<NonNull<sys::nftnl_set>> {
    let table = cstring(s.table().name())?;
    let name = cstring(s.name())?;
    let p = NonNull::new(unsafe { sys::nftnl_set_alloc() }).ok_or_else(oom)?;
    // SAFETY: p is live; strings are copied.
    unsafe {
        sys::nftnl_set_set_u32(p.as_ptr(), sys::NFTNL_SET_FAMILY as u16, u32::from(s.table().family().raw()));
        sys::nftnl_set_set_str(p.as_ptr(), sys::NFTNL_SET_TABLE as u16, table.as_ptr());
        sys::nftnl_set_set_str(p.as_ptr(), sys::NFTNL_SET_NAME as u16, name.as_ptr());
    }
    Ok(p)
}

/// Key and data types, lengths and flags of a set being created.
fn set_set_attrs(p: NonNull<sys::nftnl_set>, s: &Set, id: u32) {
    let key = s.key();
    let mut flags = 0u32;
    if s.is_interval() {
        flags |= libc::NFT_SET_INTERVAL as u32;
    }
    if key.len() > 1 {
        flags |= NFT_SET_CONCAT;
    }
    let p = p.as_ptr();
    // SAFETY: p is live; the field-length array is copied.
    unsafe {
        sys::nftnl_set_set_u32(p, sys::NFTNL_SET_ID as u16, id);
        sys::nftnl_set_set_u32(p, sys::NFTNL_SET_KEY_TYPE as u16, DataType::type_id(key));
        sys::nftnl_set_set_u32(p, sys::NFTNL_SET_KEY_LEN as u16, DataType::key_len(key) as u32);
        if key.len() > 1 {
            let fields: Vec<u8> = key.iter().map(|t| t.size() as u8).collect();
            sys::nftnl_set_set_data(p, sys::NFTNL_SET_DESC_CONCAT as u16, fields.as_ptr().cast(), len32(&fields));
        }
        match s.data() {
            Some(SetData::Values(types)) => {
                flags |= libc::NFT_SET_MAP as u32;
                sys::nftnl_set_set_u32(p, sys::NFTNL_SET_DATA_TYPE as u16, DataType::type_id(types));
                sys::nftnl_set_set_u32(p, sys::NFTNL_SET_DATA_LEN as u16, DataType::key_len(types) as u32);
            }
            Some(SetData::Verdict) => {
                flags |= libc::NFT_SET_MAP as u32;
                sys::nftnl_set_set_u32(p, sys::NFTNL_SET_DATA_TYPE as u16, libc::NFT_DATA_VERDICT);
                sys::nftnl_set_set_u32(p, sys::NFTNL_SET_DATA_LEN as u16, 16);
            }
            None => {}
        }
        sys::nftnl_set_set_u32(p, sys::NFTNL_SET_FLAGS as u16, flags);
        if let [single] = key {
            let blob = set_udata(*single);
            sys::nftnl_set_set_data(p, sys::NFTNL_SET_USERDATA as u16, blob.as_ptr().cast(), len32(&blob));
        }
    }
}

/// The set userdata `nft` reads to print keys: the key's byte order
/// (`NFTNL_UDATA_SET_KEYBYTEORDER`: 1 host, 2 big endian). Without it,
/// `nft list` prints ifname keys as `""` (the datapath is unaffected).
fn set_udata(key: DataType) -> Vec<u8> {
    const KEYBYTEORDER: u8 = 0;
    let order: u32 = if key.is_big_endian() { 2 } else { 1 };
    udata::encode_record(KEYBYTEORDER, &order.to_ne_bytes())
}

/// `NFT_SET_CONCAT` (not in the libc crate).
const NFT_SET_CONCAT: u32 = 0x80;

fn add_elem(set: NonNull<sys::nftnl_set>, e: &RawElem) -> Result<()> {
    let chain = e.verdict.as_ref().and_then(|(_, c)| c.as_deref()).map(cstring).transpose()?;
    let p = NonNull::new(unsafe { sys::nftnl_set_elem_alloc() }).ok_or_else(oom)?;
    let el = p.as_ptr();
    let put = |attr: u32, b: &[u8]| {
        // SAFETY: el is live; libnftnl copies the bytes.
        unsafe { sys::nftnl_set_elem_set(el, attr as u16, b.as_ptr().cast(), len32(b)) };
    };
    put(sys::NFTNL_SET_ELEM_KEY, &e.key);
    if let Some(end) = &e.key_end {
        put(sys::NFTNL_SET_ELEM_KEY_END, end);
    }
    if let Some(data) = &e.data {
        put(sys::NFTNL_SET_ELEM_DATA, data);
    }
    if let Some(u) = &e.udata {
        put(sys::NFTNL_SET_ELEM_USERDATA, u);
    }
    // SAFETY: el is live; the chain name is copied; the set takes ownership of el.
    unsafe {
        if let Some((code, _)) = &e.verdict {
            sys::nftnl_set_elem_set_u32(el, sys::NFTNL_SET_ELEM_VERDICT as u16, *code as u32);
            if let Some(chain) = &chain {
                sys::nftnl_set_elem_set_str(el, sys::NFTNL_SET_ELEM_CHAIN as u16, chain.as_ptr());
            }
        }
        if e.flags != 0 {
            sys::nftnl_set_elem_set_u32(el, sys::NFTNL_SET_ELEM_FLAGS as u16, e.flags);
        }
        sys::nftnl_set_elem_add(set.as_ptr(), el);
    }
    Ok(())
}

/// Allocates the libnftnl expression for `e`; the caller hands it to a rule.
fn build_expr(e: &Expr) -> Result<NonNull<sys::nftnl_expr>> {
    let name: &CStr = match e {
        Expr::Meta { .. } | Expr::MetaSet { .. } => c"meta",
        Expr::Payload { .. } => c"payload",
        Expr::Ct { .. } => c"ct",
        Expr::Fib { .. } => c"fib",
        Expr::Cmp { .. } => c"cmp",
        Expr::Bitwise { .. } => c"bitwise",
        Expr::Lookup { .. } => c"lookup",
        Expr::Immediate { .. } | Expr::Verdict(_) => c"immediate",
        Expr::Counter => c"counter",
        Expr::Masquerade => c"masq",
        Expr::Nat { .. } => c"nat",
    };
    let strings = match e {
        Expr::Lookup { set, .. } => Some(cstring(set)?),
        Expr::Verdict(v) => v.raw().1.map(cstring).transpose()?,
        _ => None,
    };
    let p = NonNull::new(unsafe { sys::nftnl_expr_alloc(name.as_ptr()) }).ok_or_else(oom)?;
    let x = p.as_ptr();
    let u32_ = |attr: u32, v: u32| {
        // SAFETY: x is live.
        unsafe { sys::nftnl_expr_set_u32(x, attr as u16, v) }
    };
    let data = |attr: u32, b: &[u8]| {
        // SAFETY: x is live; the bytes are copied.
        unsafe { sys::nftnl_expr_set(x, attr as u16, b.as_ptr().cast::<c_void>(), len32(b)) };
    };
    match e {
        Expr::Meta { key, dreg } => {
            u32_(sys::NFTNL_EXPR_META_KEY, key.raw());
            u32_(sys::NFTNL_EXPR_META_DREG, dreg.raw());
        }
        Expr::MetaSet { key, sreg } => {
            u32_(sys::NFTNL_EXPR_META_KEY, key.raw());
            u32_(sys::NFTNL_EXPR_META_SREG, sreg.raw());
        }
        Expr::Payload { base, offset, len, dreg } => {
            u32_(sys::NFTNL_EXPR_PAYLOAD_BASE, base.raw());
            u32_(sys::NFTNL_EXPR_PAYLOAD_OFFSET, *offset);
            u32_(sys::NFTNL_EXPR_PAYLOAD_LEN, *len);
            u32_(sys::NFTNL_EXPR_PAYLOAD_DREG, dreg.raw());
        }
        Expr::Ct { key, dreg } => {
            u32_(sys::NFTNL_EXPR_CT_KEY, key.raw());
            u32_(sys::NFTNL_EXPR_CT_DREG, dreg.raw());
        }
        Expr::Fib { flags, result, dreg } => {
            u32_(sys::NFTNL_EXPR_FIB_FLAGS, *flags);
            u32_(sys::NFTNL_EXPR_FIB_RESULT, result.raw());
            u32_(sys::NFTNL_EXPR_FIB_DREG, dreg.raw());
        }
        Expr::Cmp { sreg, op, data: d } => {
            u32_(sys::NFTNL_EXPR_CMP_SREG, sreg.raw());
            u32_(sys::NFTNL_EXPR_CMP_OP, op.raw());
            data(sys::NFTNL_EXPR_CMP_DATA, d);
        }
        Expr::Bitwise { sreg, dreg, mask, xor } => {
            u32_(sys::NFTNL_EXPR_BITWISE_SREG, sreg.raw());
            u32_(sys::NFTNL_EXPR_BITWISE_DREG, dreg.raw());
            u32_(sys::NFTNL_EXPR_BITWISE_LEN, len32(mask));
            data(sys::NFTNL_EXPR_BITWISE_MASK, mask);
            data(sys::NFTNL_EXPR_BITWISE_XOR, xor);
        }
        Expr::Lookup { sreg, dreg, invert, .. } => {
            u32_(sys::NFTNL_EXPR_LOOKUP_SREG, sreg.raw());
            if let Some(d) = dreg {
                u32_(sys::NFTNL_EXPR_LOOKUP_DREG, d.raw());
            }
            if *invert {
                u32_(sys::NFTNL_EXPR_LOOKUP_FLAGS, libc::NFT_LOOKUP_F_INV as u32);
            }
            if let Some(s) = &strings {
                // SAFETY: x is live; the string is copied.
                unsafe { sys::nftnl_expr_set_str(x, sys::NFTNL_EXPR_LOOKUP_SET as u16, s.as_ptr()) };
            }
        }
        Expr::Immediate { dreg, data: d } => {
            u32_(sys::NFTNL_EXPR_IMM_DREG, dreg.raw());
            data(sys::NFTNL_EXPR_IMM_DATA, d);
        }
        Expr::Verdict(v) => {
            u32_(sys::NFTNL_EXPR_IMM_DREG, 0);
            u32_(sys::NFTNL_EXPR_IMM_VERDICT, v.raw().0 as u32);
            if let Some(s) = &strings {
                // SAFETY: x is live; the string is copied.
                unsafe { sys::nftnl_expr_set_str(x, sys::NFTNL_EXPR_IMM_CHAIN as u16, s.as_ptr()) };
            }
        }
        Expr::Counter | Expr::Masquerade => {}
        Expr::Nat { kind, family, addr, port } => {
            let t = match kind {
                NatKind::Snat => libc::NFT_NAT_SNAT,
                NatKind::Dnat => libc::NFT_NAT_DNAT,
            };
            let f = match family {
                IpFamily::V4 => libc::NFPROTO_IPV4,
                IpFamily::V6 => libc::NFPROTO_IPV6,
            };
            u32_(sys::NFTNL_EXPR_NAT_TYPE, t as u32);
            u32_(sys::NFTNL_EXPR_NAT_FAMILY, f as u32);
            if let Some(a) = addr {
                u32_(sys::NFTNL_EXPR_NAT_REG_ADDR_MIN, a.raw());
            }
            if let Some(p) = port {
                u32_(sys::NFTNL_EXPR_NAT_REG_PROTO_MIN, p.raw());
            }
        }
    }
    Ok(p)
}

/// Reads the elements of one `NFT_MSG_NEWSETELEM` message of a dump.
pub fn parse_elems(msg: &[u8]) -> Result<Vec<RawElem>> {
    let buf = AlignedBuf::copy_of(msg);
    let what = || "reading set elements from the kernel".to_string();
    let set = NonNull::new(unsafe { sys::nftnl_set_alloc() }).ok_or_else(oom)?;
    // SAFETY: buf holds one complete message, aligned; set is live.
    let rc = unsafe { sys::nftnl_set_elems_nlmsg_parse(buf.bytes().as_ptr().cast(), set.as_ptr()) };
    let mut out = Vec::new();
    if rc >= 0 {
        // SAFETY: the iterator walks the set's element list and is destroyed below.
        unsafe {
            let it = sys::nftnl_set_elems_iter_create(set.as_ptr());
            if !it.is_null() {
                loop {
                    let el = sys::nftnl_set_elems_iter_next(it);
                    if el.is_null() {
                        break;
                    }
                    out.push(read_elem(el));
                }
                sys::nftnl_set_elems_iter_destroy(it);
            }
        }
    }
    // SAFETY: allocated above, not used after.
    unsafe { sys::nftnl_set_free(set.as_ptr()) };
    if rc < 0 {
        return Err(Error::other(what(), "malformed element message"));
    }
    Ok(out)
}

/// Copies the attributes of one parsed element.
///
/// # Safety
/// `el` must be a live element.
unsafe fn read_elem(el: *mut sys::nftnl_set_elem) -> RawElem {
    let get = |attr: u32| -> Option<Vec<u8>> {
        // SAFETY: el is live; the returned pointer is valid for len bytes while el lives.
        unsafe {
            if !sys::nftnl_set_elem_is_set(el, attr as u16) {
                return None;
            }
            let mut len = 0u32;
            let p = sys::nftnl_set_elem_get(el, attr as u16, &mut len);
            if p.is_null() {
                return None;
            }
            Some(std::slice::from_raw_parts(p.cast::<u8>(), len as usize).to_vec())
        }
    };
    // SAFETY: el is live (caller's contract).
    unsafe {
        let verdict = sys::nftnl_set_elem_is_set(el, sys::NFTNL_SET_ELEM_VERDICT as u16).then(|| {
            let code = sys::nftnl_set_elem_get_u32(el, sys::NFTNL_SET_ELEM_VERDICT as u16) as i32;
            let chain = sys::nftnl_set_elem_is_set(el, sys::NFTNL_SET_ELEM_CHAIN as u16).then(|| {
                CStr::from_ptr(sys::nftnl_set_elem_get_str(el, sys::NFTNL_SET_ELEM_CHAIN as u16))
                    .to_string_lossy()
                    .into_owned()
            });
            (code, chain)
        });
        let flags = if sys::nftnl_set_elem_is_set(el, sys::NFTNL_SET_ELEM_FLAGS as u16) {
            sys::nftnl_set_elem_get_u32(el, sys::NFTNL_SET_ELEM_FLAGS as u16)
        } else {
            0
        };
        RawElem {
            key: get(sys::NFTNL_SET_ELEM_KEY).unwrap_or_default(),
            key_end: get(sys::NFTNL_SET_ELEM_KEY_END),
            data: get(sys::NFTNL_SET_ELEM_DATA),
            verdict,
            udata: get(sys::NFTNL_SET_ELEM_USERDATA),
            flags,
        }
    }
}

/// Reads the handle and userdata of one `NFT_MSG_NEWRULE` message.
pub fn parse_rule(msg: &[u8]) -> Result<(u64, Option<Vec<u8>>)> {
    parse_rule_of_chain(msg).map(|(_, handle, udata)| (handle, udata))
}

/// Reads one `NFT_MSG_NEWRULE` message with the name of its chain (for a
/// dump of a whole table).
pub fn parse_rule_of_chain(msg: &[u8]) -> Result<(String, u64, Option<Vec<u8>>)> {
    let buf = AlignedBuf::copy_of(msg);
    let r = NonNull::new(unsafe { sys::nftnl_rule_alloc() }).ok_or_else(oom)?;
    let p = r.as_ptr();
    // SAFETY: buf holds one complete aligned message; p is live until freed below.
    let out = unsafe {
        if sys::nftnl_rule_nlmsg_parse(buf.bytes().as_ptr().cast(), p) < 0 {
            None
        } else {
            let handle = sys::nftnl_rule_get_u64(p, sys::NFTNL_RULE_HANDLE as u16);
            let chain = if sys::nftnl_rule_is_set(p, sys::NFTNL_RULE_CHAIN as u16) {
                CStr::from_ptr(sys::nftnl_rule_get_str(p, sys::NFTNL_RULE_CHAIN as u16)).to_string_lossy().into_owned()
            } else {
                String::new()
            };
            let udata = sys::nftnl_rule_is_set(p, sys::NFTNL_RULE_USERDATA as u16).then(|| {
                let mut len = 0u32;
                let d = sys::nftnl_rule_get_data(p, sys::NFTNL_RULE_USERDATA as u16, &mut len);
                std::slice::from_raw_parts(d.cast::<u8>(), len as usize).to_vec()
            });
            Some((chain, handle, udata))
        }
    };
    // SAFETY: allocated above, not used after.
    unsafe { sys::nftnl_rule_free(p) };
    out.ok_or_else(|| Error::other("reading a rule from the kernel", "malformed rule message"))
}

/// A chain as the kernel reports it: enough to tell whether an "add" would
/// change anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainInfo {
    /// The table the chain is in.
    pub table: String,
    /// The chain's name.
    pub name: String,
    /// Hook number, for base chains.
    pub hooknum: Option<u32>,
    /// Priority, for base chains.
    pub prio: Option<i32>,
    /// "filter", "nat" or "route", for base chains.
    pub kind: Option<String>,
    /// `NF_ACCEPT`/`NF_DROP`, for base chains.
    pub policy: Option<u32>,
    /// Device, for netdev base chains.
    pub device: Option<String>,
    /// The kernel's use count: the chain's own rules plus the rules and
    /// verdict-map elements that jump or go to it (the kernel refuses to
    /// delete a chain while any of the latter remain).
    pub references: Option<u32>,
}

/// Reads one `NFT_MSG_NEWCHAIN` message.
pub fn parse_chain(msg: &[u8]) -> Result<ChainInfo> {
    let buf = AlignedBuf::copy_of(msg);
    let c = NonNull::new(unsafe { sys::nftnl_chain_alloc() }).ok_or_else(oom)?;
    let p = c.as_ptr();
    // SAFETY: buf holds one complete aligned message; p is live until freed;
    // strings are copied before p is freed.
    let out = unsafe {
        if sys::nftnl_chain_nlmsg_parse(buf.bytes().as_ptr().cast(), p) < 0 {
            None
        } else {
            let has = |attr: u32| sys::nftnl_chain_is_set(p, attr as u16);
            let string = |attr: u32| {
                has(attr)
                    .then(|| CStr::from_ptr(sys::nftnl_chain_get_str(p, attr as u16)).to_string_lossy().into_owned())
            };
            Some(ChainInfo {
                table: string(sys::NFTNL_CHAIN_TABLE).unwrap_or_default(),
                name: string(sys::NFTNL_CHAIN_NAME).unwrap_or_default(),
                hooknum: has(sys::NFTNL_CHAIN_HOOKNUM)
                    .then(|| sys::nftnl_chain_get_u32(p, sys::NFTNL_CHAIN_HOOKNUM as u16)),
                prio: has(sys::NFTNL_CHAIN_PRIO).then(|| sys::nftnl_chain_get_s32(p, sys::NFTNL_CHAIN_PRIO as u16)),
                kind: string(sys::NFTNL_CHAIN_TYPE),
                policy: has(sys::NFTNL_CHAIN_POLICY)
                    .then(|| sys::nftnl_chain_get_u32(p, sys::NFTNL_CHAIN_POLICY as u16)),
                device: string(sys::NFTNL_CHAIN_DEV),
                references: has(sys::NFTNL_CHAIN_USE).then(|| sys::nftnl_chain_get_u32(p, sys::NFTNL_CHAIN_USE as u16)),
            })
        }
    };
    // SAFETY: allocated above.
    unsafe { sys::nftnl_chain_free(p) };
    out.ok_or_else(|| Error::other("reading a chain from the kernel", "malformed chain message"))
}

/// Reads the ruleset generation from an `NFT_MSG_NEWGEN` message.
pub fn parse_gen(msg: &[u8]) -> Result<u32> {
    let buf = AlignedBuf::copy_of(msg);
    let g = NonNull::new(unsafe { sys::nftnl_gen_alloc() }).ok_or_else(oom)?;
    // SAFETY: buf holds one complete aligned message; g is live until freed.
    let out = unsafe {
        if sys::nftnl_gen_nlmsg_parse(buf.bytes().as_ptr().cast(), g.as_ptr()) < 0 {
            None
        } else {
            Some(sys::nftnl_gen_get_u32(g.as_ptr(), sys::NFTNL_GEN_ID as u16))
        }
    };
    // SAFETY: allocated above.
    unsafe { sys::nftnl_gen_free(g.as_ptr()) };
    out.ok_or_else(|| Error::other("reading the ruleset generation", "malformed message"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::{
        priority, ChainType, CmpOp, CtState, DataType, Family, Field, Hook, MarkOp, Rule, Table, Value, Verdict,
    };

    /// Prints a rule message the way `nft --debug=netlink` does.
    fn rule_text(r: &Rule) -> String {
        let mut w = MsgWriter::new();
        let h = Header { kind: libc::NFT_MSG_NEWRULE as u16, family: 1, flags: 0, seq: 1 };
        w.rule(h, r, None).unwrap();
        let msg = w.finish();
        let buf = AlignedBuf::copy_of(&msg);
        let mut text = vec![0u8; 8192];
        unsafe {
            let p = sys::nftnl_rule_alloc();
            assert!(sys::nftnl_rule_nlmsg_parse(buf.bytes().as_ptr().cast(), p) >= 0);
            sys::nftnl_rule_snprintf(text.as_mut_ptr().cast(), text.len(), p, 0, 0);
            sys::nftnl_rule_free(p);
        }
        let end = text.iter().position(|&b| b == 0).unwrap();
        String::from_utf8_lossy(&text[..end]).lines().skip(1).map(str::trim).collect::<Vec<_>>().join("\n")
    }

    fn nat_chain() -> Chain {
        Table::new(Family::Inet, "t")
            .unwrap()
            .base_chain("c", Hook::Prerouting, ChainType::Nat, priority::DSTNAT)
            .unwrap()
    }

    /// The same expressions `nft --debug=netlink add rule inet t c dnat ip to
    /// meta l4proto . ip daddr . th dport map @m` produces.
    #[test]
    fn dnat_map_matches_nft() {
        let c = nat_chain();
        let key = [DataType::InetProto, DataType::Ipv4Addr, DataType::InetService];
        let m = c.table().map("m", &key, &[DataType::Ipv4Addr, DataType::InetService]).unwrap();
        let r = Rule::new(&c).dnat_map(&[Field::L4proto, Field::Ip4Daddr, Field::ThDport], &m);
        let want = "[ meta load nfproto => reg 1 ]
[ cmp eq reg 1 0x00000002 ]
[ meta load l4proto => reg 1 ]
[ payload load 4b @ network header + 16 => reg 9 ]
[ payload load 2b @ transport header + 2 => reg 10 ]
[ lookup reg 1 set m dreg 1 ]
[ nat dnat ip addr_min reg 1 proto_min reg 9 ]";
        assert_eq!(rule_text(&r), want);
    }

    #[test]
    fn dnat6_map_matches_nft() {
        let c = nat_chain();
        let key = [DataType::InetProto, DataType::Ipv6Addr, DataType::InetService];
        let m = c.table().map("m6", &key, &[DataType::Ipv6Addr, DataType::InetService]).unwrap();
        let r = Rule::new(&c).dnat_map(&[Field::L4proto, Field::Ip6Daddr, Field::ThDport], &m);
        let want = "[ meta load nfproto => reg 1 ]
[ cmp eq reg 1 0x0000000a ]
[ meta load l4proto => reg 1 ]
[ payload load 16b @ network header + 24 => reg 9 ]
[ payload load 2b @ transport header + 2 => reg 13 ]
[ lookup reg 1 set m6 dreg 1 ]
[ nat dnat ip6 addr_min reg 1 proto_min reg 2 ]";
        assert_eq!(rule_text(&r), want);
    }

    #[test]
    fn fib_ct_prefix_counter_accept() {
        let c = nat_chain();
        let r = Rule::new(&c)
            .fib_daddr_local()
            .prefix(Field::Ip4Saddr, "10.0.0.0/8".parse().unwrap(), CmpOp::Neq)
            .ct_state(CtState::ESTABLISHED | CtState::RELATED)
            .counter()
            .accept();
        let want = "[ fib daddr type => reg 1 ]
[ cmp eq reg 1 0x00000002 ]
[ meta load nfproto => reg 1 ]
[ cmp eq reg 1 0x00000002 ]
[ payload load 4b @ network header + 12 => reg 1 ]
[ bitwise reg 1 = ( reg 1 & 0x000000ff ) ^ 0x00000000 ]
[ cmp neq reg 1 0x0000000a ]
[ ct load state => reg 1 ]
[ bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000 ]
[ cmp neq reg 1 0x00000000 ]
[ counter pkts 0 bytes 0 ]
[ immediate reg 0 accept ]";
        assert_eq!(rule_text(&r), want);
    }

    /// As `nft --debug=netlink` prints `meta mark set meta mark | 0x10000000`
    /// and `meta mark & 0x10000000 == 0x10000000`.
    #[test]
    fn mark_set_clear_and_match_match_nft() {
        let c = Table::new(Family::Inet, "t").unwrap().chain("c").unwrap();
        let want = "[ meta load mark => reg 1 ]
[ bitwise reg 1 = ( reg 1 & 0xefffffff ) ^ 0x10000000 ]
[ meta set mark with reg 1 ]";
        assert_eq!(rule_text(&Rule::new(&c).mark(MarkOp::Set(0x1000_0000))), want);
        let want = "[ meta load mark => reg 1 ]
[ bitwise reg 1 = ( reg 1 & 0xefffffff ) ^ 0x00000000 ]
[ meta set mark with reg 1 ]";
        assert_eq!(rule_text(&Rule::new(&c).mark(MarkOp::Clear(0x1000_0000))), want);
        let want = "[ meta load mark => reg 1 ]
[ bitwise reg 1 = ( reg 1 & 0x10000000 ) ^ 0x00000000 ]
[ cmp eq reg 1 0x10000000 ]";
        assert_eq!(rule_text(&Rule::new(&c).has_mark_bits(0x1000_0000)), want);
    }

    #[test]
    fn negated_concat_lookup_and_jump() {
        let t = Table::new(Family::Bridge, "b").unwrap();
        let c = t.base_chain("c", Hook::Prerouting, ChainType::Filter, priority::BRIDGE_FILTER).unwrap();
        let s = t.set("ok", &[DataType::Ifname, DataType::EtherAddr]).unwrap();
        let r = Rule::new(&c).not_in_set(&[Field::Iifname, Field::EtherSaddr], &s).drop();
        let want = "[ meta load iifname => reg 1 ]
[ payload load 6b @ link header + 6 => reg 2 ]
[ lookup reg 1 set ok 0x1 ]
[ immediate reg 0 drop ]";
        assert_eq!(rule_text(&r), want);
        let other = t.chain("x").unwrap();
        let r = Rule::new(&c)
            .cmp(Field::Iifname, CmpOp::Eq, Value::Ifname("veth0".into()))
            .verdict(Verdict::Goto("x".into()));
        assert!(rule_text(&r).ends_with("[ immediate reg 0 goto -> x ]"), "{}", rule_text(&r));
        assert!(rule_text(&Rule::new(&c).jump(&other)).contains("jump -> x"));
    }

    #[test]
    fn elements_round_trip_through_libnftnl() {
        let t = Table::new(Family::Inet, "t").unwrap();
        let s = t.vmap("v", &[DataType::Ipv4Addr]).unwrap();
        let elems = vec![
            RawElem { key: vec![10, 0, 0, 1], udata: Some(udata::encode_comment("a")), ..Default::default() },
            RawElem { key: vec![10, 0, 0, 2], verdict: Some((libc::NFT_JUMP, Some("x".into()))), ..Default::default() },
            RawElem {
                key: vec![10, 0, 0, 3],
                key_end: Some(vec![10, 0, 0, 9]),
                data: Some(vec![1, 2]),
                flags: 1,
                ..Default::default()
            },
        ];
        // One element per message, as the batch sends them (libnftnl numbers
        // the nests of a multi-element message 1, 2, ..., which the kernel
        // accepts but libnftnl's own parser, made for kernel dumps, does not).
        for e in &elems {
            let mut w = MsgWriter::new();
            let h = Header { kind: libc::NFT_MSG_NEWSETELEM as u16, family: 1, flags: 0, seq: 7 };
            w.elems(h, &s, std::slice::from_ref(e)).unwrap();
            assert_eq!(parse_elems(&w.finish()).unwrap(), std::slice::from_ref(e));
        }
    }

    #[test]
    fn batch_markers_and_headers() {
        let mut w = MsgWriter::new();
        w.batch_begin(5);
        w.table(Header { kind: 0, family: 1, flags: 0x400, seq: 6 }, &Table::new(Family::Inet, "t").unwrap()).unwrap();
        w.batch_end(7);
        let out = w.finish();
        let lens: Vec<usize> =
            crate::nfnetlink::messages(&AlignedBuf::copy_of(&out).bytes()[..out.len()]).map(<[u8]>::len).collect();
        assert_eq!(lens.len(), 3);
        assert_eq!(out.len() % 4, 0);
    }
}
