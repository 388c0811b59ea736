//! The networks a chaos run builds, as plain data: the generator picks
//! among them, the lab builds their conflists (a module of its own so the
//! generator need not know the lab).

use serde_json::{json, Value};

/// The networks of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Net {
    /// bridge + host-local + portmap on `chaosbr0`.
    Bridge,
    /// A second bridge network on the same `chaosbr0` and subnets, with a
    /// range of its own (what GC of one network must never touch).
    Shared,
    /// macvlan + host-local.
    Macvlan,
    /// ptp + host-local (a veth pair per container, no bridge, ipMasq).
    Ptp,
}

impl Net {
    /// The network's name.
    pub fn name(self) -> &'static str {
        match self {
            Net::Bridge => "chaosbr",
            Net::Shared => "chaossh",
            Net::Macvlan => "chaosmv",
            Net::Ptp => "chaospt",
        }
    }
    /// Whether each of its containers has a host veth (bridge and ptp).
    pub fn has_host_veth(self) -> bool {
        matches!(self, Net::Bridge | Net::Shared | Net::Ptp)
    }
    /// The address pools of the network (container addresses come from
    /// these, gateways excluded).
    pub fn pools(self) -> [(&'static str, &'static str); 2] {
        match self {
            Net::Bridge | Net::Shared => [("10.201.0.0/27", "10.201.0.1"), ("fd00:c9:1::/120", "fd00:c9:1::1")],
            Net::Macvlan => [("10.202.0.0/27", "10.202.0.1"), ("fd00:c9:2::/120", "fd00:c9:2::1")],
            Net::Ptp => [("10.203.0.0/27", "10.203.0.1"), ("fd00:c9:3::/120", "fd00:c9:3::1")],
        }
    }
    /// host-local's range sets: the two bridge networks split one subnet.
    pub(super) fn ranges(self) -> Value {
        let [(v4, gw4), (v6, gw6)] = self.pools();
        let (a4, b4, a6, b6) = match self {
            Net::Bridge => ("10.201.0.2", "10.201.0.15", "fd00:c9:1::2", "fd00:c9:1::7f"),
            Net::Shared => ("10.201.0.16", "10.201.0.30", "fd00:c9:1::80", "fd00:c9:1::fe"),
            Net::Macvlan => ("10.202.0.2", "10.202.0.30", "fd00:c9:2::2", "fd00:c9:2::fe"),
            Net::Ptp => ("10.203.0.2", "10.203.0.30", "fd00:c9:3::2", "fd00:c9:3::fe"),
        };
        json!([[{"subnet": v4, "gateway": gw4, "rangeStart": a4, "rangeEnd": b4}],
               [{"subnet": v6, "gateway": gw6, "rangeStart": a6, "rangeEnd": b6}]])
    }
}
