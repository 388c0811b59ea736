//! Bounds on what one call may ask for. Every count that a config can make
//! grow, and that costs memory, kernel work or quadratic checks, is capped
//! here, in one place, so that a hostile or broken config ends in a clear
//! code-7 error instead of a stalled node.
//!
//! The numbers are far above what real configs use (two range sets for
//! dual-stack, a handful of routes, tens of port mappings, one peer per
//! node of a cluster) and low enough that the work they allow stays small.

use crate::error::Error;

/// Largest stdin a plugin accepts, in bytes; a real config is a few KiB.
pub const MAX_STDIN: usize = 1 << 20;

/// Range sets an IPAM config may hold (runtime `ipRanges` + the legacy
/// top-level range + `ranges`). One address is taken from each per ADD.
pub const MAX_RANGE_SETS: usize = 16;

/// Ranges in all range sets together (overlap checks are quadratic in it).
pub const MAX_RANGES: usize = 256;

/// Routes an IPAM config or a plugin config may ask to install.
pub const MAX_ROUTES: usize = 256;

/// Addresses one attachment may request (`ips`, `args.cni.ips`, `IP=`).
pub const MAX_REQUESTED_IPS: usize = MAX_RANGE_SETS;

/// Entries of the `portMappings` capability for one attachment. Each one
/// becomes a few nftables map elements; `-p 10000-14095` fits.
pub const MAX_PORT_MAPPINGS: usize = 4096;

/// Static peers of an overlay (vxlan): one per node of the cluster
/// (Kubernetes supports 5,000 nodes), inline or in a peers file.
pub const MAX_PEERS: usize = 16_384;

/// Longest container id an ADD accepts, in bytes. Runtimes use 64 hex
/// digits (containerd, CRI-O, Podman) or a UUID; twice that leaves room,
/// and keeps every name built from an id within a file name's 255 bytes
/// (host-local's index entry `<id>:<ifname>`, at most 144) and every lease
/// small. Only ADD refuses a longer one (code 4): DEL, CHECK and GC still
/// accept it, so what an older release reserved for one is released.
pub const MAX_CONTAINER_ID: usize = 128;

/// Code 7 when `count` items of `what` in `field` exceed `max`:
/// `too many port mappings in "runtimeConfig.portMappings": 5000 (at most 4096)`.
pub fn check(field: &str, what: &str, count: usize, max: usize) -> Result<(), Error> {
    if count <= max {
        return Ok(());
    }
    Err(Error::invalid_config(format!("too many {what} in {field:?}: {count} (at most {max})"))
        .with_details(format!("this suite accepts at most {max} {what} per call; split the configuration")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_bound_is_fine_one_more_is_code_7() {
        assert!(check("routes", "routes", MAX_ROUTES, MAX_ROUTES).is_ok());
        let e = check("ipam.routes", "routes", MAX_ROUTES + 1, MAX_ROUTES).unwrap_err();
        assert_eq!(e.code, 7);
        assert_eq!(e.msg, format!("too many routes in \"ipam.routes\": {} (at most {MAX_ROUTES})", MAX_ROUTES + 1));
        assert!(e.details.contains("at most"));
    }

    #[test]
    fn bounds_are_consistent() {
        const { assert!(MAX_RANGE_SETS <= MAX_RANGES) };
        const { assert!(MAX_REQUESTED_IPS <= MAX_RANGE_SETS) };
        // host-local's index seal records up to 64 round-robin markers.
        const { assert!(MAX_RANGE_SETS <= 64) };
        // `<id>:<ifname>` (ifname at most 15 bytes) is a file name.
        const { assert!(MAX_CONTAINER_ID + 1 + 15 <= 255) };
        assert_eq!(MAX_STDIN, crate::skel::MAX_STDIN);
    }
}
