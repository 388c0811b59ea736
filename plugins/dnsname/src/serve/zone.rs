//! The names a server answers, built from the records files: one entry
//! per record file, and the indexes queries read (name → addresses,
//! address → name), each entry tagged with its file. A record change
//! removes that file's entries and adds the new ones (its cost does not
//! grow with the network), under a write lock that queries in flight only
//! wait for, so no query is dropped.

use crate::names;
use crate::store::Record;
use ipnetwork::IpNetwork;
use std::collections::HashMap;
use std::net::IpAddr;

/// The records of one network, indexed.
#[derive(Debug, Default)]
pub struct Zone {
    /// Names are answered bare and under this domain (canonical form).
    pub domain: String,
    /// The network's subnets from `server.json`.
    conf_subnets: Vec<IpNetwork>,
    files: HashMap<String, Record>,
    /// Lower-case name → (record file, address), in the order added.
    names: HashMap<String, Vec<(String, IpAddr)>>,
    /// Address → (record file, lower-case container name).
    ptr: HashMap<IpAddr, Vec<(String, String)>>,
    /// The records' subnets, with how many addresses are in each.
    subnets: HashMap<IpNetwork, usize>,
}

/// The subnet of an address with its prefix.
fn subnet(n: &IpNetwork) -> IpNetwork {
    IpNetwork::new(n.network(), n.prefix()).expect("a prefix of a valid network")
}

impl Zone {
    /// An empty zone for `domain`, serving clients of `subnets`.
    pub fn new(domain: &str, subnets: Vec<IpNetwork>) -> Zone {
        Zone { domain: names::canonical(domain), conf_subnets: subnets, ..Default::default() }
    }

    /// Replaces the entry of one record file (`None`: the file is gone).
    /// Only that file's names are touched: the cost does not grow with
    /// the number of containers.
    pub fn set(&mut self, file: &str, rec: Option<Record>) {
        if let Some(old) = self.files.remove(file) {
            self.unindex(file, &old);
        }
        if let Some(r) = rec {
            self.index(file, &r);
            self.files.insert(file.to_string(), r);
        }
    }

    /// Replaces every entry.
    pub fn replace_all(&mut self, all: Vec<(String, Record)>) {
        self.files.clear();
        self.names.clear();
        self.ptr.clear();
        self.subnets.clear();
        let mut all = all;
        // Sorted by file, so answers and PTR owners do not depend on directory order.
        all.sort_by(|a, b| a.0.cmp(&b.0));
        for (f, r) in all {
            self.set(&f, Some(r));
        }
    }

    fn labels(r: &Record) -> impl Iterator<Item = String> + '_ {
        std::iter::once(&r.name)
            .chain(r.aliases.iter())
            .filter(|n| names::label_problem(n).is_none())
            .map(|n| n.to_ascii_lowercase())
    }

    fn index(&mut self, file: &str, r: &Record) {
        let labels: Vec<String> = Self::labels(r).collect();
        for l in labels {
            let e = self.names.entry(l).or_default();
            for n in &r.ips {
                if !e.iter().any(|(_, ip)| *ip == n.ip()) {
                    e.push((file.to_string(), n.ip()));
                }
            }
        }
        if names::label_problem(&r.name).is_none() {
            for n in &r.ips {
                self.ptr.entry(n.ip()).or_default().push((file.to_string(), r.name.to_ascii_lowercase()));
            }
        }
        for n in &r.ips {
            *self.subnets.entry(subnet(n)).or_default() += 1;
        }
    }

    fn unindex(&mut self, file: &str, r: &Record) {
        let labels: Vec<String> = Self::labels(r).collect();
        for l in labels {
            if let Some(e) = self.names.get_mut(&l) {
                e.retain(|(f, _)| f != file);
                if e.is_empty() {
                    self.names.remove(&l);
                }
            }
        }
        for n in &r.ips {
            if let Some(e) = self.ptr.get_mut(&n.ip()) {
                e.retain(|(f, _)| f != file);
                if e.is_empty() {
                    self.ptr.remove(&n.ip());
                }
            }
            let net = subnet(n);
            if let Some(c) = self.subnets.get_mut(&net) {
                *c -= 1;
                if *c == 0 {
                    self.subnets.remove(&net);
                }
            }
        }
    }

    /// Whether no record is left (the server's cue to exit).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// How many record files are loaded.
    pub fn record_count(&self) -> usize {
        self.files.len()
    }

    /// How many names (and aliases) are known.
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    /// The addresses of a name (one label, any case).
    pub fn lookup(&self, label: &str) -> Option<Vec<IpAddr>> {
        let e = self.names.get(&label.to_ascii_lowercase())?;
        let mut out: Vec<IpAddr> = Vec::with_capacity(e.len());
        for (_, ip) in e {
            if !out.contains(ip) {
                out.push(*ip);
            }
        }
        Some(out)
    }

    /// The name of an address (the first container that holds it).
    pub fn name_of(&self, ip: &IpAddr) -> Option<&str> {
        self.ptr.get(ip).and_then(|e| e.first()).map(|(_, n)| n.as_str())
    }

    /// Whether `ip` is on one of the network's subnets: only such clients
    /// are answered, and only such reverse names are ours.
    pub fn on_network(&self, ip: &IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(*ip),
            v4 => *v4,
        };
        self.conf_subnets.iter().chain(self.subnets.keys()).any(|n| n.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(cid: &str, name: &str, aliases: &[&str], ip: &str) -> Record {
        Record {
            container_id: cid.into(),
            ifname: "eth0".into(),
            name: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            ips: vec![ip.parse().unwrap()],
        }
    }

    #[test]
    fn changes_touch_only_their_file() {
        let mut z = Zone::new("dns.podman", vec![]);
        z.set("a", Some(rec("a", "web", &["www"], "10.1.0.2/24")));
        z.set("b", Some(rec("b", "Web", &[], "10.1.0.3/24")));
        z.set("c", Some(rec("c", "db", &["bad alias"], "10.2.0.4/24")));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(z.lookup("WEB"), Some(vec![ip("10.1.0.2"), ip("10.1.0.3")]));
        assert_eq!(z.lookup("bad alias"), None);
        assert!(z.on_network(&ip("10.2.0.9")));
        // The same file again with another address: the old one goes.
        z.set("a", Some(rec("a", "web", &[], "10.1.0.5/24")));
        assert_eq!(z.lookup("web"), Some(vec![ip("10.1.0.3"), ip("10.1.0.5")]));
        assert_eq!(z.lookup("www"), None);
        assert_eq!(z.name_of(&ip("10.1.0.2")), None);
        assert_eq!(z.name_of(&ip("10.1.0.5")), Some("web"));
        z.set("c", None);
        assert!(!z.on_network(&ip("10.2.0.9")));
        assert_eq!(z.lookup("db"), None);
        z.set("a", None);
        z.set("b", None);
        assert!(z.is_empty());
        assert_eq!(z.name_count(), 0);
    }
}
