//! Property tests of range iteration: for any valid range set, the walk
//! hands out only addresses inside a range's window, never a network,
//! broadcast or gateway address, each once, all of them, and from any
//! starting point the same set in round-robin order.

use cni::config::IpRange;
use host_local::range::{from_u128, to_u128, RangeSet};
use ipnetwork::IpNetwork;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// A subnet with 2 to 8 host bits (so walks stay small), v4 or v6.
fn subnet() -> impl Strategy<Value = IpNetwork> {
    (any::<bool>(), any::<u128>(), 2u8..=8).prop_map(|(v4, bits, host_bits)| {
        let (width, base) = if v4 { (32u8, bits as u32 as u128) } else { (128u8, bits) };
        let prefix = width - host_bits;
        let mask = if v4 { (u32::MAX as u128) << host_bits & u32::MAX as u128 } else { u128::MAX << host_bits };
        IpNetwork::new(from_u128(base & mask, v4), prefix).unwrap()
    })
}

/// A range in `subnet` with optional start, end and gateway anywhere in it
/// (invalid combinations are refused by `RangeSet::new` and skipped).
fn range_in(subnet: IpNetwork) -> impl Strategy<Value = IpRange> {
    let v4 = subnet.is_ipv4();
    let net = to_u128(subnet.network());
    let size = 1u128 << (if v4 { 32 } else { 128 } - subnet.prefix() as u32);
    let pick = move |o: Option<u128>| o.map(|x| from_u128(net + x % size, v4));
    (prop::option::of(any::<u128>()), prop::option::of(any::<u128>()), prop::option::of(any::<u128>()))
        .prop_map(move |(s, e, g)| IpRange { subnet, range_start: pick(s), range_end: pick(e), gateway: pick(g) })
}

/// One to three ranges; the later ones in the first one's subnet or in a
/// neighbouring one, so overlaps and multi-subnet sets both occur.
fn set() -> impl Strategy<Value = Vec<IpRange>> {
    subnet().prop_flat_map(|s| {
        let v4 = s.is_ipv4();
        let size = 1u128 << (if v4 { 32 } else { 128 } - s.prefix() as u32);
        let next = IpNetwork::new(from_u128(to_u128(s.network()).wrapping_add(size), v4), s.prefix()).unwrap_or(s);
        (range_in(s), prop::option::of(range_in(s)), prop::option::of(range_in(next)))
            .prop_map(|(a, b, c)| std::iter::once(a).chain(b).chain(c).collect())
    })
}

/// The addresses a set may hand out, computed independently of the walk.
fn allowed(raw: &[IpRange], set: &RangeSet) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    for r in &set.ranges {
        let v4 = r.is_v4();
        for n in to_u128(r.start)..=to_u128(r.end) {
            let ip = from_u128(n, v4);
            let special = ip == r.subnet.network() || (v4 && ip == r.subnet.broadcast());
            let gateway = set.ranges.iter().any(|x| x.gateway == ip);
            if !special && !gateway {
                out.insert(ip);
            }
        }
    }
    assert!(raw.len() == set.ranges.len());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn walk_hands_out_each_allowed_address_once(raw in set()) {
        let Ok(set) = RangeSet::new(&raw) else { return Ok(()) };
        let want = allowed(&raw, &set);
        let got: Vec<IpAddr> = set.walk(None).collect();
        let unique: BTreeSet<IpAddr> = got.iter().copied().collect();
        prop_assert_eq!(unique.len(), got.len(), "an address came twice: {:?}", got);
        prop_assert_eq!(&unique, &want);
        for ip in &got {
            let r = set.range_for(*ip).expect("inside a window");
            prop_assert!(r.subnet.contains(*ip));
            prop_assert_ne!(*ip, r.subnet.network());
            prop_assert_ne!(*ip, r.gateway);
            if r.is_v4() {
                prop_assert_ne!(*ip, r.subnet.broadcast());
            }
            prop_assert!(set.excluded(*ip).is_none());
        }
    }

    #[test]
    fn walk_from_any_point_is_round_robin(raw in set(), at in any::<prop::sample::Index>()) {
        let Ok(set) = RangeSet::new(&raw) else { return Ok(()) };
        let all: Vec<IpAddr> = set.walk(None).collect();
        prop_assume!(!all.is_empty());
        let last = all[at.index(all.len())];
        let from: Vec<IpAddr> = set.walk(Some(last)).collect();
        // The same addresses, rotated to start right after `last`.
        let pos = all.iter().position(|ip| *ip == last).unwrap();
        let mut rotated = all[pos + 1..].to_vec();
        rotated.extend_from_slice(&all[..=pos]);
        prop_assert_eq!(from, rotated);
    }

    #[test]
    fn a_last_address_outside_the_set_starts_at_the_beginning(raw in set(), outside in any::<u32>()) {
        let Ok(set) = RangeSet::new(&raw) else { return Ok(()) };
        let ip = IpAddr::V4(outside.into());
        prop_assume!(set.range_for(ip).is_none());
        prop_assert_eq!(set.walk(Some(ip)).collect::<Vec<_>>(), set.walk(None).collect::<Vec<_>>());
    }
}
