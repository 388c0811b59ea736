//! Stale UDP conntrack entries for newly mapped host ports.
//!
//! A UDP "connection" to a host port that existed before the mapping (a
//! client that kept sending) stays un-NATed while it keeps being used, so
//! it would never reach the container. The reference deletes those
//! entries after ADD; so do we, over ctnetlink, best effort.

use crate::config::Mapping;
use kernel::conntrack;

/// `udp`.
const UDP: u8 = 17;

/// Deletes conntrack entries of UDP flows to the mapped host ports; a
/// failure is logged, never fatal (the mapping itself is in place).
pub fn flush_udp(mappings: &[Mapping]) {
    let mut ports: Vec<u16> = mappings.iter().filter(|m| m.proto == UDP).map(|m| m.host_port).collect();
    if ports.is_empty() {
        return;
    }
    ports.sort_unstable();
    ports.dedup();
    match conntrack::delete_by_dst_port(UDP, &ports) {
        Ok(0) => {}
        Ok(n) => log::info!("portmap: deleted {n} stale UDP conntrack entries for ports {ports:?}"),
        Err(e) => log::warn!("portmap: could not delete stale UDP conntrack entries for ports {ports:?}: {e}"),
    }
}
