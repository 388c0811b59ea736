//! Names derived from an attachment (network, container id, ifname), so DEL
//! and GC find what ADD made without the container's namespace and without
//! reading state back from the kernel.

/// FNV-1a, 64 bits: stable across releases and platforms, which a name
/// that must survive upgrades needs (std's hasher is not).
pub fn fnv1a64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            // A separator byte that cannot appear in ids or names.
            h ^= 0xff;
            h = h.wrapping_mul(0x100000001b3);
        }
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// The host end of a container's veth: `veth` + 11 hex digits (15 bytes,
/// the kernel's limit). The reference names its veths `veth` + 8 hex, so
/// the two never collide.
pub fn host_veth_name(network: &str, container_id: &str, ifname: &str) -> String {
    veth_name_of_hash(fnv1a64(&[network, container_id, ifname]))
}

/// The host veth name made of an attachment's hash (hashed owner keys
/// carry the same hash, so the name can be found from them).
pub fn veth_name_of_hash(h: u64) -> String {
    format!("veth{:011x}", h >> 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_fit_and_differ() {
        let a = host_veth_name("net", "ctr1", "eth0");
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("veth"));
        assert_eq!(a, host_veth_name("net", "ctr1", "eth0"));
        assert_ne!(a, host_veth_name("net", "ctr1", "eth1"));
        assert_ne!(a, host_veth_name("net2", "ctr1", "eth0"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(fnv1a64(&["ab", "c"]), fnv1a64(&["a", "bc"]));
    }
}

/// A stable, locally administered unicast MAC for a bridge made by us. A
/// bridge without a set MAC takes the lowest MAC of its ports and changes
/// it as containers come and go, which would break CHECK and flush
/// neighbours' caches.
pub fn bridge_mac(bridge: &str) -> [u8; 6] {
    let h = fnv1a64(&["bridge", bridge]).to_be_bytes();
    [(h[0] & 0xfe) | 0x02, h[1], h[2], h[3], h[4], h[5]]
}

#[cfg(test)]
mod mac_tests {
    use super::*;

    #[test]
    fn bridge_mac_is_local_unicast_and_stable() {
        let m = bridge_mac("cni0");
        assert_eq!(m[0] & 0x03, 0x02);
        assert_eq!(m, bridge_mac("cni0"));
        assert_ne!(m, bridge_mac("cni1"));
    }
}
