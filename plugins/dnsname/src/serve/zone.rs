//! The names a server answers, built from the records files: one entry
//! per record file, and the indexes queries read (name → addresses,
//! address → name). A record change replaces one entry and rebuilds the
//! indexes (microseconds for a thousand containers), under a write lock
//! that queries in flight only wait for, so no query is dropped.

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
    names: HashMap<String, Vec<IpAddr>>,
    ptr: HashMap<IpAddr, String>,
    subnets: Vec<IpNetwork>,
}

impl Zone {
    /// An empty zone for `domain`, serving clients of `subnets`.
    pub fn new(domain: &str, subnets: Vec<IpNetwork>) -> Zone {
        let mut z = Zone { domain: names::canonical(domain), conf_subnets: subnets, ..Default::default() };
        z.rebuild();
        z
    }

    /// Replaces the entry of one record file (`None`: the file is gone).
    pub fn set(&mut self, file: &str, rec: Option<Record>) {
        match rec {
            Some(r) => {
                self.files.insert(file.to_string(), r);
            }
            None => {
                self.files.remove(file);
            }
        }
        self.rebuild();
    }

    /// Replaces every entry.
    pub fn replace_all(&mut self, all: Vec<(String, Record)>) {
        self.files = all.into_iter().collect();
        self.rebuild();
    }

    fn rebuild(&mut self) {
        let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
        let mut ptr = HashMap::new();
        let mut subnets = self.conf_subnets.clone();
        // Sorted by file, so answers and PTR owners do not depend on hash order.
        let mut files: Vec<(&String, &Record)> = self.files.iter().collect();
        files.sort_by(|a, b| a.0.cmp(b.0));
        for (_, r) in files {
            let ips: Vec<IpAddr> = r.ips.iter().map(|n| n.ip()).collect();
            for n in std::iter::once(&r.name).chain(r.aliases.iter()) {
                if names::label_problem(n).is_some() {
                    continue;
                }
                let e = names.entry(n.to_ascii_lowercase()).or_default();
                for ip in &ips {
                    if !e.contains(ip) {
                        e.push(*ip);
                    }
                }
            }
            if names::label_problem(&r.name).is_none() {
                for ip in &ips {
                    ptr.entry(*ip).or_insert_with(|| r.name.to_ascii_lowercase());
                }
            }
            for n in &r.ips {
                let net = IpNetwork::new(n.network(), n.prefix()).expect("a prefix of a valid network");
                if !subnets.contains(&net) {
                    subnets.push(net);
                }
            }
        }
        self.names = names;
        self.ptr = ptr;
        self.subnets = subnets;
    }

    /// Whether no record is left (the server's cue to exit).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// How many names (and aliases) are known.
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    /// The addresses of a name (one label, any case).
    pub fn lookup(&self, label: &str) -> Option<&[IpAddr]> {
        self.names.get(&label.to_ascii_lowercase()).map(Vec::as_slice)
    }

    /// The name of an address.
    pub fn name_of(&self, ip: &IpAddr) -> Option<&str> {
        self.ptr.get(ip).map(String::as_str)
    }

    /// Whether `ip` is on one of the network's subnets: only such clients
    /// are answered, and only such reverse names are ours.
    pub fn on_network(&self, ip: &IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(*ip),
            v4 => *v4,
        };
        self.subnets.iter().any(|n| n.contains(ip))
    }
}
