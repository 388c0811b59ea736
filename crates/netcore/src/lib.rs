//! Everything that talks to the kernel, shared by every plugin: network
//! namespaces, links, addresses, routes, neighbours, sysctl, nftables and
//! IPAM delegation. Plugins never shell out; they call this crate.

pub mod attach;
pub mod attachment_lock;
pub mod claims;
pub mod conntrack;
pub mod error;
pub mod gateway;
pub mod ifconfig;
pub mod ipam;
pub mod masq;
pub mod naming;
pub mod netlink;
pub mod netns;
pub mod nfnetlink;
pub mod nft;
pub mod owner;
pub mod p2p;
pub mod sandbox;
pub mod sysctl;

pub use error::{Error, Kind, OrMissing, Result};
