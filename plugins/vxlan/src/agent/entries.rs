//! The store's records, without the store: key names, the value a host
//! publishes, which subnets are free, and the check every record read from
//! the store passes before it reaches the kernel. Pure, so it is tested
//! without etcd.
//!
//! One key per subnet: `<prefix>/<network>/subnets/<a.b.c.d>-<len>`; the
//! value is a peers-file entry plus what helps a human reading the store:
//! `{"underlayIP", "subnet": [v4, v6?], "vtepMAC", "vni", "hostname"}`.
//! Anything else under the prefix (not JSON, a subnet outside the cluster
//! CIDR or not the key's, this host's own subnet or underlay address, a
//! huge value) is skipped with a warning: a record can never put a route
//! outside the cluster CIDR nor take this host's traffic.

use crate::config::{EtcdConf, SUBNET_LEN_V6};
use crate::overlay::vtep_mac;
use crate::peers::Peer;
use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use kernel::netlink::mac_to_string;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Largest value accepted (a record is ~150 bytes).
pub const MAX_VALUE: usize = 4096;

/// The key's last component for an IPv4 subnet: `10.244.3.0-24`.
pub fn key_name(net: &IpNetwork) -> String {
    format!("{}-{}", net.network(), net.prefix())
}

/// The subnet a key names, if it is one of ours.
pub fn subnet_of_key(e: &EtcdConf, key: &str) -> Option<IpNetwork> {
    let name = key.strip_prefix(&e.subnets_prefix())?;
    let (ip, len) = name.split_once('-')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let net = Ipv4Network::new(ip, len).ok()?;
    (net.network() == ip).then_some(IpNetwork::V4(net))
}

/// What this host publishes.
pub fn value(underlay: IpAddr, subnets: &[IpNetwork], vni: u32) -> Vec<u8> {
    let host = nix_hostname();
    json!({
        "underlayIP": underlay.to_string(),
        "subnet": subnets.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "vtepMAC": mac_to_string(&vtep_mac(underlay)),
        "vni": vni,
        "hostname": host,
    })
    .to_string()
    .into_bytes()
}

fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// The underlay address a value names (for "is this key mine?").
pub fn underlay_of(value: &[u8]) -> Option<IpAddr> {
    if value.len() > MAX_VALUE {
        return None;
    }
    let v: Value = serde_json::from_slice(value).ok()?;
    v.get("underlayIP")?.as_str()?.parse().ok()
}

/// The `index`-th subnet of length `len` in `cluster`.
fn nth_v4(cluster: &Ipv4Network, len: u8, index: u64) -> Option<Ipv4Network> {
    let step = 1u64 << (32 - len as u32);
    let base = u32::from(cluster.network()) as u64;
    let addr = base.checked_add(index.checked_mul(step)?)?;
    let net = Ipv4Network::new(Ipv4Addr::from(u32::try_from(addr).ok()?), len).ok()?;
    cluster.contains(net.network()).then_some(net)
}

fn nth_v6(cluster: &Ipv6Network, index: u64) -> Option<Ipv6Network> {
    let step = 1u128 << (128 - SUBNET_LEN_V6 as u32);
    let addr = u128::from(cluster.network()).checked_add((index as u128).checked_mul(step)?)?;
    let net = Ipv6Network::new(Ipv6Addr::from(addr), SUBNET_LEN_V6).ok()?;
    cluster.contains(net.network()).then_some(net)
}

/// The address plan of one network: every host gets the `i`-th IPv4
/// subnet of `subnetLen`, and with an IPv6 cluster CIDR the `i`-th /64, so
/// holding the IPv4 key holds both.
#[derive(Debug, Clone)]
pub struct Plan {
    v4: Ipv4Network,
    v6: Option<Ipv6Network>,
    len: u8,
}

impl Plan {
    /// The plan of `cluster` with IPv4 subnets of `/len`.
    pub fn new(cluster: &[IpNetwork], len: u8) -> Option<Plan> {
        let v4 = cluster.iter().find_map(|c| match c {
            IpNetwork::V4(n) => Some(*n),
            _ => None,
        })?;
        let v6 = cluster.iter().find_map(|c| match c {
            IpNetwork::V6(n) => Some(*n),
            _ => None,
        });
        (len >= v4.prefix()).then_some(Plan { v4, v6, len })
    }

    /// How many hosts fit.
    pub fn capacity(&self) -> u64 {
        1u64 << (self.len - self.v4.prefix()).min(40)
    }

    /// The cluster CIDRs, for messages.
    pub fn cluster(&self) -> String {
        match self.v6 {
            Some(v6) => format!("{}, {v6}", self.v4),
            None => self.v4.to_string(),
        }
    }

    /// Subnet length, for messages.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// The subnets of host slot `index`.
    pub fn slot(&self, index: u64) -> Option<Vec<IpNetwork>> {
        let v4 = nth_v4(&self.v4, self.len, index)?;
        let mut out = vec![IpNetwork::V4(v4)];
        if let Some(c6) = &self.v6 {
            out.push(IpNetwork::V6(nth_v6(c6, index)?));
        }
        Some(out)
    }

    /// The slot of an IPv4 subnet, if it is one of this plan's.
    pub fn index_of(&self, net: &IpNetwork) -> Option<u64> {
        let IpNetwork::V4(n) = net else { return None };
        if n.prefix() != self.len || !self.v4.contains(n.network()) || n.network() != n.ip() {
            return None;
        }
        Some(((u32::from(n.network()) - u32::from(self.v4.network())) >> (32 - self.len as u32)) as u64)
    }

    /// Up to `limit` free slots' subnets, scanning from `start` (a
    /// per-host random point, so hosts starting together rarely race for
    /// one key). `taken` holds the IPv4 subnets already in the store.
    pub fn free(&self, taken: &HashSet<IpNetwork>, start: u64, limit: usize) -> Vec<Vec<IpNetwork>> {
        let cap = self.capacity();
        let mut out = Vec::new();
        for k in 0..cap {
            let i = (start.wrapping_add(k)) % cap;
            let Some(s) = self.slot(i) else { continue };
            if !taken.contains(&s[0]) {
                out.push(s);
                if out.len() >= limit {
                    break;
                }
            }
        }
        out
    }

    /// Whether `subnets` are exactly the plan's subnets of one slot.
    pub fn is_slot(&self, subnets: &[IpNetwork]) -> bool {
        subnets.first().and_then(|s| self.index_of(s)).and_then(|i| self.slot(i)).is_some_and(|s| s == subnets)
    }
}

/// One record as the agent keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The key's create revision: of two records naming one underlay
    /// address, the older one is believed (the host registered first; a
    /// record written later to impersonate it loses).
    pub created: i64,
    /// The value (cut past [`MAX_VALUE`]).
    pub value: Vec<u8>,
    /// [`Judge::peer`]'s verdict, kept until the record or this host's
    /// subnet changes (so one change among thousands parses one value).
    pub judged: Option<Result<Peer, String>>,
}

impl Record {
    /// A record not judged yet.
    pub fn new(created: i64, value: Vec<u8>) -> Record {
        Record { created, value, judged: None }
    }
}

/// What a record is checked against.
pub struct Judge<'a> {
    /// The network's options.
    pub etcd: &'a EtcdConf,
    /// The address plan.
    pub plan: &'a Plan,
    /// This host's VTEP address.
    pub me: IpAddr,
    /// Every address of this host (a record naming one would steer
    /// traffic back into this host).
    pub local: &'a HashSet<IpAddr>,
    /// This host's subnets, when it holds them.
    pub mine: &'a [IpNetwork],
}

impl Judge<'_> {
    /// The peer a record describes, or why it is skipped.
    pub fn peer(&self, key: &str, value: &[u8]) -> Result<Peer, String> {
        let Some(net) = subnet_of_key(self.etcd, key) else {
            return Err("the key is not <a.b.c.d>-<len>".into());
        };
        if self.plan.index_of(&net).is_none() {
            return Err(format!(
                "{net} is not a /{} subnet of the cluster CIDR ({})",
                self.plan.len,
                self.plan.cluster()
            ));
        }
        if value.len() > MAX_VALUE {
            return Err(format!("the value is larger than {MAX_VALUE} bytes"));
        }
        let v: Value = serde_json::from_slice(value).map_err(|e| format!("the value is not JSON: {e}"))?;
        let ip: IpAddr = v
            .get("underlayIP")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or("the value has no valid \"underlayIP\"")?;
        if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() || ip.is_ipv4() != self.me.is_ipv4() {
            return Err(format!("underlay address {ip} can't be a peer of {}", self.me));
        }
        if ip == self.me || self.local.contains(&ip) {
            return Err(format!("underlay address {ip} is this host's"));
        }
        let subnets: Vec<IpNetwork> = match v.get("subnet") {
            Some(Value::String(s)) => vec![s.parse().map_err(|_| format!("subnet {s:?} is not a CIDR"))?],
            Some(Value::Array(a)) if a.len() <= 2 => a
                .iter()
                .map(|x| x.as_str().and_then(|s| s.parse().ok()).ok_or(format!("subnet {x} is not a CIDR")))
                .collect::<Result<_, _>>()?,
            _ => return Err("the value has no valid \"subnet\"".into()),
        };
        if !self.plan.is_slot(&subnets) || subnets[0] != net {
            let want = self.plan.slot(self.plan.index_of(&net).unwrap_or(0)).unwrap_or_default();
            return Err(format!(
                "subnet {} is not the key's ({})",
                crate::config::show(&subnets),
                crate::config::show(&want)
            ));
        }
        if subnets.iter().any(|s| self.mine.iter().any(|m| m.contains(s.network()) || s.contains(m.network()))) {
            return Err(format!("subnet {} is this host's own", crate::config::show(&subnets)));
        }
        Ok(Peer { underlay: ip, subnets })
    }

    /// The peers of every record in `kvs`, skipping bad ones and a younger
    /// record for an underlay address already seen; the skipped ones with
    /// their reason.
    pub fn peers(&self, kvs: &mut BTreeMap<String, Record>) -> (Vec<Peer>, Vec<(String, String)>) {
        let mut seen = HashSet::new();
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        for (k, r) in kvs.iter_mut() {
            if r.judged.is_none() {
                r.judged = Some(self.peer(k, &r.value));
            }
        }
        let mut order: Vec<(&String, &Record)> = kvs.iter().collect();
        order.sort_by_key(|(k, r)| (r.created, *k));
        for (k, r) in order {
            match r.judged.clone().expect("judged above") {
                Ok(p) if seen.insert(p.underlay) => ok.push(p),
                Ok(p) => bad.push((k.clone(), format!("underlay address {} is also another record's", p.underlay))),
                Err(e) => bad.push((k.clone(), e)),
            }
        }
        (ok, bad)
    }
}

/// The peers file the plugin reads for `peers`.
pub fn peers_file(peers: &[Peer]) -> Vec<u8> {
    let list: Vec<Value> = peers
        .iter()
        .map(|p| {
            json!({"underlayIP": p.underlay.to_string(),
                   "subnet": p.subnets.iter().map(ToString::to_string).collect::<Vec<_>>()})
        })
        .collect();
    serde_json::to_vec_pretty(&list).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etcd(cluster: Value) -> EtcdConf {
        crate::config::etcd_options(&json!({
            "name": "ov", "type": "vxlan", "clusterCIDR": cluster, "subnetLen": 24,
            "etcd": {"endpoints": ["http://10.0.0.1:2379"], "prefix": "/t"},
        }))
        .unwrap()
        .unwrap()
    }

    fn plan(cluster: &[&str]) -> Plan {
        Plan::new(&cluster.iter().map(|c| c.parse().unwrap()).collect::<Vec<_>>(), 24).unwrap()
    }

    #[test]
    fn slots_pair_v4_and_v6() {
        let p = plan(&["10.244.0.0/16", "fd44::/48"]);
        assert_eq!(p.capacity(), 256);
        let s = p.slot(3).unwrap();
        assert_eq!(crate::config::show(&s), "10.244.3.0/24, fd44:0:0:3::/64");
        assert_eq!(p.index_of(&s[0]), Some(3));
        assert!(p.is_slot(&s));
        assert!(!p.is_slot(&[s[0]]), "the v6 half is part of the slot");
        assert!(p.slot(256).is_none());
        let taken: HashSet<IpNetwork> = (0..255).map(|i| p.slot(i).unwrap()[0]).collect();
        let free = p.free(&taken, 17, 4);
        assert_eq!(free.len(), 1);
        assert_eq!(free[0][0].to_string(), "10.244.255.0/24");
    }

    #[test]
    fn keys_round_trip() {
        let e = etcd(json!("10.244.0.0/16"));
        assert_eq!(e.subnets_prefix(), "/t/ov/subnets/");
        let n: IpNetwork = "10.244.7.0/24".parse().unwrap();
        let key = format!("{}{}", e.subnets_prefix(), key_name(&n));
        assert_eq!(subnet_of_key(&e, &key), Some(n));
        for bad in ["/t/ov/subnets/10.244.7.1-24", "/t/ov/subnets/x", "/t/other/subnets/10.244.7.0-24"] {
            assert_eq!(subnet_of_key(&e, bad), None, "{bad}");
        }
    }

    #[test]
    fn hostile_records_are_skipped_with_a_reason() {
        let e = etcd(json!("10.244.0.0/16"));
        let p = plan(&["10.244.0.0/16"]);
        let local: HashSet<IpAddr> = ["192.168.77.1".parse().unwrap(), "172.16.0.1".parse().unwrap()].into();
        let mine: Vec<IpNetwork> = vec!["10.244.1.0/24".parse().unwrap()];
        let j = Judge { etcd: &e, plan: &p, me: "192.168.77.1".parse().unwrap(), local: &local, mine: &mine };
        let key = |s: &str| format!("/t/ov/subnets/{s}");
        let good = value("192.168.77.2".parse().unwrap(), &["10.244.2.0/24".parse().unwrap()], 1);
        assert_eq!(j.peer(&key("10.244.2.0-24"), &good).unwrap().underlay.to_string(), "192.168.77.2");
        let junk = vec![b'x'; 1 << 20];
        for (k, v, why) in [
            (key("10.244.2.0-24"), b"not json".to_vec(), "not JSON"),
            (key("10.245.2.0-24"), br#"{"underlayIP":"192.168.77.3","subnet":"10.245.2.0/24"}"#.to_vec(), "cluster"),
            (key("10.244.3.0-24"), br#"{"underlayIP":"192.168.77.3","subnet":"10.244.9.0/24"}"#.to_vec(), "key's"),
            (key("10.244.3.0-24"), br#"{"underlayIP":"192.168.77.3","subnet":"0.0.0.0/0"}"#.to_vec(), "key's"),
            (key("10.244.1.0-24"), br#"{"underlayIP":"192.168.77.3","subnet":"10.244.1.0/24"}"#.to_vec(), "own"),
            (key("10.244.4.0-24"), br#"{"underlayIP":"172.16.0.1","subnet":"10.244.4.0/24"}"#.to_vec(), "this host"),
            (key("10.244.4.0-24"), br#"{"underlayIP":"127.0.0.1","subnet":"10.244.4.0/24"}"#.to_vec(), "can't"),
            (key("10.244.4.0-24"), br#"{"subnet":"10.244.4.0/24"}"#.to_vec(), "underlayIP"),
            (key("10.244.4.0-24"), junk, "larger than"),
            (key("zzz"), good.clone(), "key"),
        ] {
            let e = j.peer(&k, &v).unwrap_err();
            assert!(e.contains(why), "{k}: {e}");
        }
        let mut kvs = BTreeMap::new();
        let rec = Record::new;
        // The impersonator (key 10.244.1.x sorts first) is younger: it loses.
        kvs.insert(
            key("10.244.0.0-24"),
            rec(9, value("192.168.77.2".parse().unwrap(), &["10.244.0.0/24".parse().unwrap()], 1)),
        );
        kvs.insert(key("10.244.2.0-24"), rec(1, good.clone()));
        kvs.insert(
            key("10.244.5.0-24"),
            rec(2, value("192.168.77.2".parse().unwrap(), &["10.244.5.0/24".parse().unwrap()], 1)),
        );
        kvs.insert(key("10.244.6.0-24"), rec(3, b"{}".to_vec()));
        let (ok, bad) = j.peers(&mut kvs);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].subnets[0].to_string(), "10.244.2.0/24", "the older record wins");
        assert_eq!(bad.len(), 3);
    }
}
