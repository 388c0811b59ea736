//! The chaos run's invariants, checked after every step against the
//! kernel, the IPAM store, nftables and the runtime's cache.

use super::lab::{eth0_addresses, Lab};
use crate::witness;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Mutex;

/// Whether `ip` is an address host-local may give a container from `pool`:
/// inside it, and not its network or (IPv4) broadcast address.
fn ip_in(pool: &str, ip: IpAddr) -> bool {
    let (net, len) = pool.split_once('/').expect("pool literal");
    let (Ok(net), Ok(len)) = (net.parse::<IpAddr>(), len.parse::<u32>()) else { return false };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let (n, a) = (u32::from(n) & mask, u32::from(a));
            n == a & mask && a != n && a != n | !mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            let (n, a) = (u128::from(n) & mask, u128::from(a));
            n == a & mask && a != n
        }
        _ => false,
    }
}

/// Every string leaf of a JSON document.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

impl Lab {
    /// Every invariant, on the state after a step.
    pub(super) fn verify(&self) -> Result<(), String> {
        let lives = self.lives();
        let mut problems = Vec::new();

        // 1. Addresses in the kernel: exactly the result's, never shared.
        let mut owner_of: BTreeMap<IpAddr, String> = BTreeMap::new();
        for (i, live) in &lives {
            let slot = self.slots[*i].lock().unwrap_or_else(|p| p.into_inner());
            let Some(ns) = slot.ns.as_ref() else {
                problems.push(format!("{} is running without a namespace", live.cid));
                continue;
            };
            let have = eth0_addresses(&ns.name)?;
            if have != live.ips {
                problems.push(format!("{} has {have:?} in its namespace, its result says {:?}", live.cid, live.ips));
            }
            for ip in have {
                if let Some(other) = owner_of.insert(ip, live.cid.clone()) {
                    problems.push(format!("{ip} is held by both {other} and {}", live.cid));
                }
            }
        }

        // 2. CHECK of every running container, two at a time.
        let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for chunk in lives.chunks(lives.len().div_ceil(2).max(1)) {
                let failures = &failures;
                s.spawn(move || {
                    let (rt, _) = self.runtime_with(None);
                    for (i, live) in chunk {
                        let att = Self::attachment(&live.cid, &live.netns, *i);
                        if let Err(e) = rt.check(&self.lists[&live.net], &att) {
                            failures
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(format!("CHECK of running {} failed: {e}", live.cid));
                        }
                    }
                });
            }
        });
        problems.extend(failures.into_inner().unwrap_or_else(|p| p.into_inner()));

        // 3. Leases: exactly the running containers' addresses.
        for net in self.nets() {
            let mut want: BTreeMap<String, String> = BTreeMap::new();
            for (_, l) in lives.iter().filter(|(_, l)| l.net == net) {
                for ip in &l.ips {
                    want.insert(ip.to_string(), format!("{}\r\neth0", l.cid));
                }
            }
            let store = self.host.ipam_dir().join(net.name());
            let mut have = BTreeMap::new();
            for e in std::fs::read_dir(&store).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.parse::<IpAddr>().is_ok() {
                    let content = std::fs::read_to_string(e.path()).unwrap_or_else(|e| format!("<{e}>"));
                    have.insert(name, content);
                }
            }
            if have != want {
                problems.push(format!("leases of {}: {have:?}, expected {want:?}", net.name()));
            }
        }

        // 4. Host veths: exactly the running containers' of the bridge and ptp networks.
        let want: BTreeSet<String> = lives
            .iter()
            .filter(|(_, l)| l.net.has_host_veth())
            .map(|(_, l)| netcore::naming::host_veth_name(l.net.name(), &l.cid, "eth0"))
            .collect();
        let have: BTreeSet<String> =
            self.host.veths().into_iter().filter(|n| n != "chaosm0" && n != "chaosm1").collect();
        if have != want {
            problems.push(format!("host veths {have:?}, expected {want:?}"));
        }

        // 5. nftables and 6. routes: no trace of a container not running.
        let live_keys: BTreeSet<String> =
            lives.iter().map(|(_, l)| netcore::owner::OwnerKey::new(l.net.name(), &l.cid, "eth0").key()).collect();
        let live_ips: BTreeSet<IpAddr> = lives.iter().flat_map(|(_, l)| l.ips.iter().copied()).collect();
        let stale_ip = |ip: IpAddr| {
            self.nets().iter().any(|n| n.pools().iter().any(|(pool, gw)| ip_in(pool, ip) && gw.parse() != Ok(ip)))
                && !live_ips.contains(&ip)
        };
        let mut leaves = Vec::new();
        strings(&Value::Array(witness::nft_ruleset(&self.host.ns)), &mut leaves);
        for s in &leaves {
            let dead_key = self.nets().iter().any(|n| s.starts_with(&format!("{}/", n.name())))
                && s.matches('/').count() == 2
                && !live_keys.contains(s);
            if dead_key {
                problems.push(format!("nftables still names {s:?}"));
            }
            if s.parse::<IpAddr>().is_ok_and(stale_ip) {
                problems.push(format!("nftables still holds {s}"));
            }
        }
        for family in ["-4", "-6"] {
            let routes = witness::ip(&self.host.ns, &[family, "route", "show", "table", "all"]);
            for r in routes.as_array().into_iter().flatten() {
                let dst = r["dst"].as_str().unwrap_or_default();
                let addr = dst.split('/').next().unwrap_or_default();
                let host_route = !dst.contains('/') || dst.ends_with("/32") || dst.ends_with("/128");
                if host_route && addr.parse::<IpAddr>().is_ok_and(stale_ip) {
                    problems.push(format!("route to {dst} remains: {r}"));
                }
            }
        }

        // 7. The runtime's cache: exactly the running containers.
        let mut have: BTreeSet<String> = BTreeSet::new();
        for e in std::fs::read_dir(self.host.dir.join("cache")).into_iter().flatten().flatten() {
            have.insert(e.file_name().to_string_lossy().into_owned());
        }
        let want: BTreeSet<String> = lives.iter().map(|(_, l)| format!("{}-{}-eth0", l.net.name(), l.cid)).collect();
        if have != want {
            problems.push(format!("cache entries {have:?}, expected {want:?}"));
        }

        self.report.lock().unwrap_or_else(|p| p.into_inner()).checks += 1;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n  "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools() {
        assert!(ip_in("10.201.0.0/27", "10.201.0.30".parse().unwrap()));
        assert!(!ip_in("10.201.0.0/27", "10.201.0.31".parse().unwrap()), "broadcast");
        assert!(!ip_in("10.201.0.0/27", "10.201.0.0".parse().unwrap()), "network");
        assert!(!ip_in("10.201.0.0/27", "10.201.0.32".parse().unwrap()));
        assert!(ip_in("fd00:c9:1::/120", "fd00:c9:1::ff".parse().unwrap()));
    }
}
