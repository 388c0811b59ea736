//! nftables through netlink (messages built by libnftnl, sent on the
//! [`crate::nfnetlink`] socket), one atomic [`Batch`] per plugin operation,
//! never through the `nft` binary.
//!
//! The vocabulary is small on purpose: tables, base and regular chains, rules
//! built from a handful of expressions ([`Rule`]), and named sets and maps with
//! typed, possibly concatenated keys ([`Set`]) whose elements carry an owner
//! comment ([`Element`]), so DEL and GC can find a container's elements without
//! knowing its addresses ([`Socket::list_elements`]).
//!
//! Everything the kernel sees is described by plain data (`Table`, `Chain`,
//! `Set`, `Rule`, `Element`); only the private `raw` module turns it into
//! netlink messages, and it is the one place with `unsafe` code.
//!
//! Cost model (measured here): a commit is a few µs of kernel time. But a
//! batch that deletes anything (rules, elements) or updates an existing
//! chain makes the kernel wait one RCU grace period (~16 ms) when the
//! socket is closed. So [`Socket::commit`] first plans the batch against the
//! current state ([`Socket::plan`]): chains that exist are not re-sent, and
//! [`Batch::replace_rules`] / [`Batch::replace_elements`] only rewrite what
//! differs. A repeated ADD then costs ~60 µs in total; a DEL, which must
//! delete, costs the grace period.
//!
//! A [`Socket`] belongs to the network namespace of the thread that opened
//! it: enter the host or container namespace, open, and the socket keeps
//! working there after the thread has left.
//!
//! ```no_run
//! use kernel::nft::*;
//! # fn main() -> kernel::Result<()> {
//! let t = Table::new(Family::Inet, "cnirs-nat")?;
//! let post = t.base_chain("postrouting", Hook::Postrouting, ChainType::Nat, priority::SRCNAT)?;
//! let net = t.set("net-a_v4", &[DataType::Ipv4Addr])?;
//! let mut b = Batch::new();
//! b.add_table(&t).add_chain(&post).add_set(&net);
//! b.add_element(&net, Element::new([Value::from(std::net::Ipv4Addr::new(10, 1, 0, 2))]).comment("net-a/cid/eth0"));
//! b.commit()?;
//! # Ok(()) }
//! ```

#[deny(unsafe_code)]
mod batch;
#[deny(unsafe_code)]
mod expr;
#[deny(unsafe_code)]
mod names;
#[deny(unsafe_code)]
mod objects;
/// The only module allowed `unsafe`: libnftnl calls.
mod raw;
#[deny(unsafe_code)]
mod resolve;
#[deny(unsafe_code)]
mod rule;
#[deny(unsafe_code)]
mod socket;
#[deny(unsafe_code)]
mod types;
#[deny(unsafe_code)]
mod udata;

pub use batch::Batch;
pub use expr::{CmpOp, CtKey, Expr, FibResult, MetaKey, NatKind, PayloadBase, Reg};
pub use objects::{
    priority, BaseChain, Chain, ChainType, ElemData, Element, Family, Hook, Policy, Set, SetData, Table, Verdict,
};
pub use rule::{CtState, Field, MarkOp, Rule};
pub use socket::{RuleInfo, Socket};
pub use types::{DataType, IpFamily, Value};
