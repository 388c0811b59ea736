//! Address ranges and range sets: validation, membership, and the
//! round-robin walk that allocation uses.
//!
//! Addresses are handled as `u128` so that IPv4 and IPv6 share one code
//! path; a range remembers its family to turn numbers back into addresses.

use cni::config::IpRange;
use ipnetwork::IpNetwork;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address as a number, for arithmetic on either family.
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The inverse of [`to_u128`] for the given family.
pub fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

/// An IPv4-mapped IPv6 address is the IPv4 address, as the reference
/// canonicalizes it; lease file names depend on this.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// One validated range: a subnet and the inclusive window handed out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The subnet, with no host bits.
    pub subnet: IpNetwork,
    /// First address of the window (inclusive).
    pub start: IpAddr,
    /// Last address of the window (inclusive).
    pub end: IpAddr,
    /// The gateway returned with every address; never handed out.
    pub gateway: IpAddr,
}

impl Range {
    /// Validates one configured range and fills in the reference defaults:
    /// gateway and start = network + 1, end = broadcast - 1 (v4) or the
    /// last address (v6).
    pub fn new(raw: &IpRange) -> Result<Range, String> {
        let subnet = raw.subnet;
        let v4 = subnet.is_ipv4();
        let bits: u8 = if v4 { 32 } else { 128 };
        if subnet.prefix() > bits - 2 {
            return Err(format!(
                "network {subnet} too small to allocate from (a subnet needs at least 2 host bits, /{} or shorter)",
                bits - 2
            ));
        }
        if subnet.ip() != subnet.network() {
            return Err(format!(
                "network {subnet} has host bits set; for a prefix of length {} the network address is {}",
                subnet.prefix(),
                subnet.network()
            ));
        }
        let net = to_u128(subnet.network());
        let last = to_u128(subnet.broadcast());
        let check = |what: &str, ip: IpAddr| -> Result<u128, String> {
            let ip = canonical(ip);
            if ip.is_ipv4() != v4 {
                return Err(format!("{what} {ip} is not in the address family of network {subnet}"));
            }
            let n = to_u128(ip);
            if n < net || n > last {
                return Err(format!("{what} {ip} not in network {subnet}"));
            }
            Ok(n)
        };
        let gw = match raw.gateway {
            Some(g) => {
                let n = check("gateway", g)?;
                if n == net {
                    return Err(format!("gateway {g} is the network address of {subnet}"));
                }
                if v4 && n == last {
                    return Err(format!("gateway {g} is the broadcast address of {subnet}"));
                }
                n
            }
            None => net + 1,
        };
        let start = match raw.range_start {
            Some(s) => check("rangeStart", s)?,
            None => net + 1,
        };
        let end = match raw.range_end {
            Some(e) => check("rangeEnd", e)?,
            None if v4 => last - 1,
            None => last,
        };
        if start > end {
            return Err(format!(
                "rangeStart {} is after rangeEnd {} in network {subnet}",
                from_u128(start, v4),
                from_u128(end, v4)
            ));
        }
        Ok(Range { subnet, start: from_u128(start, v4), end: from_u128(end, v4), gateway: from_u128(gw, v4) })
    }

    /// Whether this is an IPv4 range.
    pub fn is_v4(&self) -> bool {
        self.subnet.is_ipv4()
    }

    /// Whether `ip` lies in the window `[start, end]`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.is_v4() && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(ip))
    }

    /// Whether the windows of two ranges share an address.
    pub fn overlaps(&self, other: &Range) -> bool {
        self.is_v4() == other.is_v4()
            && to_u128(self.start) <= to_u128(other.end)
            && to_u128(other.start) <= to_u128(self.end)
    }

    /// Why `ip` (inside this subnet) may not be handed out, if it may not:
    /// the network address, the IPv4 broadcast address.
    fn special(&self, ip: IpAddr) -> Option<&'static str> {
        if ip == self.subnet.network() {
            Some("the network address")
        } else if self.is_v4() && ip == self.subnet.broadcast() {
            Some("the broadcast address")
        } else {
            None
        }
    }

    /// The address with this range's prefix length, as results carry it.
    pub fn with_prefix(&self, ip: IpAddr) -> IpNetwork {
        IpNetwork::new(ip, self.subnet.prefix()).expect("prefix of a validated subnet")
    }

    fn len(&self) -> u128 {
        (to_u128(self.end) - to_u128(self.start)).saturating_add(1)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A list of ranges of one family; allocation takes one address from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet {
    /// The ranges, in the configured order (the walk follows it).
    pub ranges: Vec<Range>,
}

impl RangeSet {
    /// Validates a configured set: not empty, one family, no overlaps.
    pub fn new(raw: &[IpRange]) -> Result<RangeSet, String> {
        if raw.is_empty() {
            return Err("empty range set".into());
        }
        let ranges = raw.iter().map(Range::new).collect::<Result<Vec<_>, _>>()?;
        let v4 = ranges[0].is_v4();
        if ranges.iter().any(|r| r.is_v4() != v4) {
            return Err("mixed address families in one range set (use one set per family)".into());
        }
        for (i, a) in ranges.iter().enumerate() {
            for b in &ranges[i + 1..] {
                if a.overlaps(b) {
                    return Err(format!("ranges {a} ({}) and {b} ({}) overlap", a.subnet, b.subnet));
                }
            }
        }
        Ok(RangeSet { ranges })
    }

    /// Whether the set hands out IPv4 addresses.
    pub fn is_v4(&self) -> bool {
        self.ranges[0].is_v4()
    }

    /// The range whose window holds `ip`.
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.ranges.iter().find(|r| r.contains(ip))
    }

    /// Whether two sets share an address.
    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.ranges.iter().any(|a| other.ranges.iter().any(|b| a.overlaps(b)))
    }

    /// Why `ip` may never be handed out from this set: a gateway of any of
    /// its ranges, or the network or broadcast address of its subnet.
    pub fn excluded(&self, ip: IpAddr) -> Option<String> {
        if let Some(r) = self.ranges.iter().find(|r| r.gateway == ip) {
            return Some(format!("the gateway of {}", r.subnet));
        }
        let r = self.ranges.iter().find(|r| r.subnet.contains(ip))?;
        r.special(ip).map(|what| format!("{what} of {}", r.subnet))
    }

    /// The addresses of the set in allocation order: starting just after
    /// `last` when it lies in the set (round-robin), else at the first
    /// range's start, wrapping once around every range, and never yielding
    /// an [`excluded`](Self::excluded) address.
    pub fn walk(&self, last: Option<IpAddr>) -> Walk<'_> {
        let total = self.ranges.iter().fold(0u128, |acc, r| acc.saturating_add(r.len()));
        let pos = last.and_then(|ip| self.ranges.iter().position(|r| r.contains(ip)).map(|i| (i, to_u128(ip))));
        Walk { set: self, pos, remaining: total }
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The iterator of [`RangeSet::walk`].
pub struct Walk<'a> {
    set: &'a RangeSet,
    /// The range index and the address yielded (or started after) last.
    pos: Option<(usize, u128)>,
    /// Positions left before the walk is back where it started.
    remaining: u128,
}

impl Walk<'_> {
    fn step(&mut self) -> Option<(usize, u128)> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let ranges = &self.set.ranges;
        let next = match self.pos {
            None => (0, to_u128(ranges[0].start)),
            Some((i, cur)) if cur >= to_u128(ranges[i].end) => {
                let j = (i + 1) % ranges.len();
                (j, to_u128(ranges[j].start))
            }
            Some((i, cur)) => (i, cur + 1),
        };
        self.pos = Some(next);
        Some(next)
    }
}

impl Iterator for Walk<'_> {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        loop {
            let (i, n) = self.step()?;
            let ip = from_u128(n, self.set.ranges[i].is_v4());
            if self.set.excluded(ip).is_none() {
                return Some(ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(subnet: &str, start: Option<&str>, end: Option<&str>, gw: Option<&str>) -> IpRange {
        IpRange {
            subnet: subnet.parse().unwrap(),
            range_start: start.map(|s| s.parse().unwrap()),
            range_end: end.map(|s| s.parse().unwrap()),
            gateway: gw.map(|s| s.parse().unwrap()),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_match_the_reference() {
        let r = Range::new(&raw("10.1.0.0/24", None, None, None)).unwrap();
        assert_eq!((r.start, r.end, r.gateway), (ip("10.1.0.1"), ip("10.1.0.254"), ip("10.1.0.1")));
        let r = Range::new(&raw("fd00::/120", None, None, None)).unwrap();
        assert_eq!((r.start, r.end, r.gateway), (ip("fd00::1"), ip("fd00::ff"), ip("fd00::1")));
        assert_eq!(r.to_string(), "fd00::1-fd00::ff");
    }

    #[test]
    fn bad_ranges_are_refused() {
        let e = |s, st, en, gw| Range::new(&raw(s, st, en, gw)).unwrap_err();
        assert!(e("10.1.0.5/24", None, None, None).contains("host bits"));
        assert!(e("10.1.0.0/31", None, None, None).contains("too small"));
        assert!(e("10.1.0.0/32", None, None, None).contains("too small"));
        assert!(e("fd00::/127", None, None, None).contains("too small"));
        assert!(e("10.1.0.0/24", Some("10.1.1.5"), None, None).contains("rangeStart 10.1.1.5 not in network"));
        assert!(e("10.1.0.0/24", None, Some("10.2.0.5"), None).contains("rangeEnd 10.2.0.5 not in network"));
        assert!(e("10.1.0.0/24", Some("10.1.0.50"), Some("10.1.0.40"), None).contains("after rangeEnd"));
        assert!(e("10.1.0.0/24", None, None, Some("10.8.0.1")).contains("gateway 10.8.0.1 not in network"));
        assert!(e("10.1.0.0/24", None, None, Some("10.1.0.0")).contains("network address"));
        assert!(e("10.1.0.0/24", None, None, Some("10.1.0.255")).contains("broadcast"));
        assert!(e("10.1.0.0/24", Some("fd00::1"), None, None).contains("family"));
        assert!(Range::new(&raw("10.1.0.0/30", None, None, None)).is_ok());
        assert!(Range::new(&raw("fd00::/126", None, None, None)).is_ok());
    }

    #[test]
    fn sets_are_checked() {
        assert!(RangeSet::new(&[]).unwrap_err().contains("empty"));
        let mixed = [raw("10.1.0.0/24", None, None, None), raw("fd00::/64", None, None, None)];
        assert!(RangeSet::new(&mixed).unwrap_err().contains("mixed"));
        let overlap = [raw("10.1.0.0/24", None, None, None), raw("10.1.0.0/25", None, None, None)];
        assert!(RangeSet::new(&overlap).unwrap_err().contains("overlap"));
        let disjoint = [
            raw("10.1.0.0/24", Some("10.1.0.10"), Some("10.1.0.20"), None),
            raw("10.1.0.0/24", Some("10.1.0.21"), Some("10.1.0.30"), None),
        ];
        assert!(RangeSet::new(&disjoint).is_ok());
        let a = RangeSet::new(&[raw("10.1.0.0/16", None, None, None)]).unwrap();
        let b = RangeSet::new(&[raw("10.1.5.0/24", None, None, None)]).unwrap();
        let c = RangeSet::new(&[raw("fd00::/64", None, None, None)]).unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }

    /// Every address the walk yields lies in a window, is not special, and
    /// comes once; the walk covers every allocatable address.
    fn assert_walk_sound(set: &RangeSet, last: Option<IpAddr>) -> Vec<IpAddr> {
        let got: Vec<IpAddr> = set.walk(last).collect();
        let mut seen = std::collections::HashSet::new();
        for ip in &got {
            let r = set.range_for(*ip).expect("inside a window");
            assert!(r.subnet.contains(*ip));
            assert_ne!(*ip, r.gateway);
            assert_ne!(*ip, r.subnet.network());
            if r.is_v4() {
                assert_ne!(*ip, r.subnet.broadcast());
            }
            assert!(seen.insert(*ip), "{ip} yielded twice");
        }
        got
    }

    #[test]
    fn walk_never_yields_network_broadcast_or_gateway() {
        // rangeStart at the network address, end at the broadcast: both skipped.
        let set = RangeSet::new(&[raw("10.0.0.0/29", Some("10.0.0.0"), Some("10.0.0.7"), Some("10.0.0.3"))]).unwrap();
        let got = assert_walk_sound(&set, None);
        let want: Vec<IpAddr> = ["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"].map(ip).to_vec();
        assert_eq!(got, want);
    }

    #[test]
    fn walk_starts_after_last_and_wraps_once() {
        let set = RangeSet::new(&[
            raw("10.0.0.0/24", Some("10.0.0.10"), Some("10.0.0.12"), None),
            raw("10.0.1.0/24", Some("10.0.1.1"), Some("10.0.1.3"), Some("10.0.1.2")),
        ])
        .unwrap();
        let got = assert_walk_sound(&set, Some(ip("10.0.0.11")));
        let want: Vec<IpAddr> = ["10.0.0.12", "10.0.1.1", "10.0.1.3", "10.0.0.10", "10.0.0.11"].map(ip).to_vec();
        assert_eq!(got, want);
        // A last address outside the set starts at the beginning.
        let got = assert_walk_sound(&set, Some(ip("192.168.0.1")));
        assert_eq!(got[0], ip("10.0.0.10"));
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn walk_of_a_slash_30_with_gateway_has_one_address() {
        let set = RangeSet::new(&[raw("10.9.0.0/30", None, None, None)]).unwrap();
        assert_eq!(assert_walk_sound(&set, None), vec![ip("10.9.0.2")]);
        assert_eq!(assert_walk_sound(&set, Some(ip("10.9.0.2"))), vec![ip("10.9.0.2")]);
    }

    #[test]
    fn walk_over_v6_keeps_the_last_address_and_is_lazy() {
        let set = RangeSet::new(&[raw("fd00::/126", None, None, None)]).unwrap();
        let got = assert_walk_sound(&set, None);
        assert_eq!(got, ["fd00::2", "fd00::3"].map(ip).to_vec());
        let big = RangeSet::new(&[raw("::/0", None, None, None)]).unwrap();
        let first: Vec<IpAddr> = big.walk(None).take(2).collect();
        assert_eq!(first, ["::2", "::3"].map(ip).to_vec());
    }

    #[test]
    fn exclusions_name_the_reason() {
        let set = RangeSet::new(&[raw("10.0.0.0/24", None, None, Some("10.0.0.254"))]).unwrap();
        assert!(set.excluded(ip("10.0.0.254")).unwrap().contains("gateway"));
        assert!(set.excluded(ip("10.0.0.0")).unwrap().contains("network"));
        assert!(set.excluded(ip("10.0.0.255")).unwrap().contains("broadcast"));
        assert!(set.excluded(ip("10.0.0.1")).is_none());
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        assert_eq!(canonical(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(canonical(ip("fd00::1")), ip("fd00::1"));
    }
}
