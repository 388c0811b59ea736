//! The expressions a rule is made of, one variant per kernel expression we
//! use (`meta` twice: loading and setting). [`super::Rule`] assembles them from matchers; this enum is the
//! escape hatch for anything the matchers do not cover.

use super::objects::Verdict;
use super::types::IpFamily;

/// A kernel register. Data registers are 16 bytes wide (`R1`..`R4`) or,
/// addressing the same storage, 4 bytes wide (`r32(0)`..`r32(15)`; `r32(0)`
/// is the start of `R1`, `r32(4)` the start of `R2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reg(u32);

impl Reg {
    /// The verdict register (lookups into verdict maps write here).
    pub const VERDICT: Reg = Reg(0);
    /// Data register 1 (16 bytes).
    pub const R1: Reg = Reg(1);
    /// Data register 2 (16 bytes).
    pub const R2: Reg = Reg(2);

    /// The 4-byte register `n` (0..16).
    pub const fn r32(n: u32) -> Reg {
        Reg(libc::NFT_REG32_00 as u32 + n)
    }

    /// The register that starts `offset` bytes into the register file: how
    /// the fields of a concatenation are addressed.
    pub const fn at_offset(offset: usize) -> Reg {
        if offset.is_multiple_of(16) {
            Reg(1 + (offset / 16) as u32)
        } else {
            Reg::r32((offset / 4) as u32)
        }
    }

    /// The number the kernel takes.
    pub fn raw(self) -> u32 {
        self.0
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Neq,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
}

impl CmpOp {
    /// The `NFT_CMP_*` number.
    pub fn raw(self) -> u32 {
        (match self {
            CmpOp::Eq => libc::NFT_CMP_EQ,
            CmpOp::Neq => libc::NFT_CMP_NEQ,
            CmpOp::Lt => libc::NFT_CMP_LT,
            CmpOp::Lte => libc::NFT_CMP_LTE,
            CmpOp::Gt => libc::NFT_CMP_GT,
            CmpOp::Gte => libc::NFT_CMP_GTE,
        }) as u32
    }
}

/// Packet metadata a `meta` expression loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaKey {
    /// Layer-3 family of the packet (`NFPROTO_*`, 1 byte); inet tables.
    Nfproto,
    /// Ethertype (2 bytes, network order).
    Protocol,
    /// Layer-4 protocol (1 byte), after IPv6 extension headers.
    L4proto,
    /// Input interface name (16 bytes).
    Iifname,
    /// Output interface name (16 bytes).
    Oifname,
    /// Input interface hardware type (2 bytes, host order).
    Iiftype,
    /// Packet mark (4 bytes).
    Mark,
}

impl MetaKey {
    /// The `NFT_META_*` number.
    pub fn raw(self) -> u32 {
        (match self {
            MetaKey::Nfproto => libc::NFT_META_NFPROTO,
            MetaKey::Protocol => libc::NFT_META_PROTOCOL,
            MetaKey::L4proto => libc::NFT_META_L4PROTO,
            MetaKey::Iifname => libc::NFT_META_IIFNAME,
            MetaKey::Oifname => libc::NFT_META_OIFNAME,
            MetaKey::Iiftype => libc::NFT_META_IIFTYPE,
            MetaKey::Mark => libc::NFT_META_MARK,
        }) as u32
    }
}

/// Where a payload offset counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadBase {
    /// The Ethernet header.
    Link,
    /// The IP header.
    Network,
    /// The TCP/UDP/SCTP header.
    Transport,
}

impl PayloadBase {
    /// The `NFT_PAYLOAD_*` number.
    pub fn raw(self) -> u32 {
        (match self {
            PayloadBase::Link => libc::NFT_PAYLOAD_LL_HEADER,
            PayloadBase::Network => libc::NFT_PAYLOAD_NETWORK_HEADER,
            PayloadBase::Transport => libc::NFT_PAYLOAD_TRANSPORT_HEADER,
        }) as u32
    }
}

/// Conntrack data a `ct` expression loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtKey {
    /// The state bits (4 bytes, host order; see [`super::CtState`]).
    State,
    /// The status bits (4 bytes, host order; `IPS_DST_NAT` = 0x20).
    Status,
}

impl CtKey {
    /// The `NFT_CT_*` number.
    pub fn raw(self) -> u32 {
        (match self {
            CtKey::State => libc::NFT_CT_STATE,
            CtKey::Status => libc::NFT_CT_STATUS,
        }) as u32
    }
}

/// What a `fib` lookup returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FibResult {
    /// The route type (`RTN_LOCAL` = 2 for an address of this host).
    AddrType,
    /// The output interface index.
    Oif,
}

impl FibResult {
    /// The `NFT_FIB_RESULT_*` number.
    pub fn raw(self) -> u32 {
        match self {
            FibResult::Oif => 1,
            FibResult::AddrType => 3,
        }
    }
}

/// Source or destination NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// Rewrite the source.
    Snat,
    /// Rewrite the destination.
    Dnat,
}

/// One kernel expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    /// Load packet metadata into `dreg`.
    Meta {
        /// What to load.
        key: MetaKey,
        /// Where.
        dreg: Reg,
    },
    /// Write `sreg` into packet metadata (`meta mark set ...`).
    MetaSet {
        /// What to write.
        key: MetaKey,
        /// The register holding the new value.
        sreg: Reg,
    },
    /// Load `len` bytes at `offset` of a header into `dreg`.
    Payload {
        /// Which header.
        base: PayloadBase,
        /// Offset in bytes.
        offset: u32,
        /// Length in bytes.
        len: u32,
        /// Where.
        dreg: Reg,
    },
    /// Load conntrack data into `dreg`.
    Ct {
        /// What to load.
        key: CtKey,
        /// Where.
        dreg: Reg,
    },
    /// Route lookup (`fib daddr type`); `flags` are `NFTA_FIB_F_*`.
    Fib {
        /// `NFTA_FIB_F_DADDR` (2), `NFTA_FIB_F_SADDR` (1), ...
        flags: u32,
        /// What to return.
        result: FibResult,
        /// Where.
        dreg: Reg,
    },
    /// Compare `sreg` with `data`; the rule stops here if false.
    Cmp {
        /// Register to compare.
        sreg: Reg,
        /// Operator.
        op: CmpOp,
        /// Right-hand side (its length is the compared length).
        data: Vec<u8>,
    },
    /// `dreg = (sreg & mask) ^ xor`, over `mask.len()` bytes.
    Bitwise {
        /// Input.
        sreg: Reg,
        /// Output.
        dreg: Reg,
        /// Mask.
        mask: Vec<u8>,
        /// Xor (same length as mask).
        xor: Vec<u8>,
    },
    /// Look the key in `sreg` up in a named set or map; with `dreg`, the map
    /// value is written there (or the verdict, with `Reg::VERDICT`).
    Lookup {
        /// Where the key starts.
        sreg: Reg,
        /// The set's name (same table).
        set: String,
        /// Where the value goes, for maps.
        dreg: Option<Reg>,
        /// Match when the key is absent (sets only).
        invert: bool,
    },
    /// Write constant data into a register.
    Immediate {
        /// Where.
        dreg: Reg,
        /// What.
        data: Vec<u8>,
    },
    /// A verdict.
    Verdict(Verdict),
    /// Count packets and bytes.
    Counter,
    /// Source NAT to the address of the output interface.
    Masquerade,
    /// SNAT/DNAT to the address (and port) found in registers.
    Nat {
        /// Source or destination.
        kind: NatKind,
        /// Address family of the new address.
        family: IpFamily,
        /// Register holding the address.
        addr: Option<Reg>,
        /// Register holding the port.
        port: Option<Reg>,
    },
}
