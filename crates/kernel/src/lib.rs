//! The kernel layer: network namespaces, links, addresses, routes,
//! neighbours, sysctl, nftables, conntrack and the netfilter netlink socket
//! they share. It speaks the kernel's vocabulary only (no CNI type): its
//! [`Error`] keeps the errno and a [`Kind`], and converts into
//! `std::io::Error`, which is how `cni::Error` takes it through `?`
//! without either crate knowing the other. The policy plugins share lives
//! in `netcore`, on top of this crate.

pub mod conntrack;
pub mod error;
pub mod flock;
pub mod netlink;
pub mod netns;
pub mod nfnetlink;
pub mod nft;
mod nlsock;
pub mod sysctl;

pub use error::{Error, Kind, OrMissing, Result};
