//! The peer table: one entry `{ "underlayIP", "subnet" }` per host of the
//! cluster, inline (`peers`) or in a JSON file (`peersFile`) that is read
//! again on every ADD and `vxlan reconcile`, so a host learns of a new
//! peer when the file changes.
//!
//! The same file may be shared by every host: the entry whose underlay IP
//! is this host's own is recognised and skipped (its subnet must then be
//! this host's). A table that can't be read or that is invalid is an
//! error and changes nothing; it never reads as "no peers", which would
//! cut the host off from everyone. A digest of the table as read lets an
//! ADD skip the table when it is the one last applied ([`crate::applied`]).

use crate::config::{bad, parse_nets, show, PeerSource, VxConf};
use cni::Error;
use ipnetwork::IpNetwork;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

/// At most this many peers (a big cluster has a few thousand hosts).
pub const MAX_PEERS: usize = cni::limits::MAX_PEERS;
/// Largest peers file read.
const MAX_FILE: u64 = 8 << 20;

/// One remote host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its VTEP address on the underlay.
    pub underlay: IpAddr,
    /// Its pod subnets (one per family).
    pub subnets: Vec<IpNetwork>,
}

/// Where an entry came from, to name it in errors.
enum Origin<'a> {
    Inline,
    File(&'a Path),
}

impl Origin<'_> {
    fn err(&self, entry: &str, msg: impl std::fmt::Display) -> Error {
        match self {
            Origin::Inline => bad(entry, msg),
            Origin::File(p) => bad("peersFile", format!("{}: {entry}: {msg}", p.display())),
        }
    }
}

/// Reads `path`, at most [`MAX_FILE`] bytes.
fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    let f = std::fs::File::open(path).map_err(|e| bad("peersFile", format!("can't open {}: {e}", path.display())))?;
    let mut buf = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| bad("peersFile", format!("can't read {}: {e}", path.display())))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(bad("peersFile", format!("{} is larger than {MAX_FILE} bytes", path.display())));
    }
    Ok(buf)
}

/// The configured table as read, before it is parsed, and a digest of
/// everything the remote peers are derived from (the table's bytes, this
/// host's subnets and VTEP address, the cluster CIDRs): when the digest is
/// the one last applied to the VTEP, the table need not be parsed nor the
/// kernel's entries compared again.
pub struct Table<'a> {
    conf: &'a VxConf,
    local: IpAddr,
    file: Option<Vec<u8>>,
    /// SHA-256 (hex) of what the peers are derived from.
    pub digest: String,
}

/// Reads the configured table (the file, for `peersFile`) without parsing it.
pub fn read(conf: &VxConf, local: IpAddr) -> Result<Table<'_>, Error> {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    field(b"vxlan peers v1");
    field(local.to_string().as_bytes());
    field(show(&conf.cluster).as_bytes());
    field(show(&conf.subnets.iter().map(|s| s.net).collect::<Vec<_>>()).as_bytes());
    let file = match &conf.peers {
        PeerSource::None => {
            field(b"none");
            None
        }
        PeerSource::Inline(v) => {
            field(b"inline");
            field(&serde_json::to_vec(v).unwrap_or_default());
            None
        }
        PeerSource::File(p) => {
            let bytes = read_file(p)?;
            field(b"file");
            field(&bytes);
            Some(bytes)
        }
    };
    let digest = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Table { conf, local, file, digest })
}

impl Table<'_> {
    /// The remote peers of this host, checked.
    pub fn parse(&self) -> Result<Vec<Peer>, Error> {
        let (conf, local) = (self.conf, self.local);
        match (&conf.peers, &self.file) {
            (PeerSource::Inline(v), _) => remote(parse(v, &Origin::Inline, conf)?, &Origin::Inline, conf, local),
            (PeerSource::File(p), Some(bytes)) => {
                let origin = Origin::File(p);
                let v: Value = serde_json::from_slice(bytes)
                    .map_err(|e| bad("peersFile", format!("{} is not valid JSON: {e}", p.display())))?;
                remote(parse(&v, &origin, conf)?, &origin, conf, local)
            }
            _ => Ok(Vec::new()),
        }
    }
}

/// Parses and checks a table: a list of entries (or `{"peers": [...]}`),
/// each with an underlay IP and its subnets inside the cluster CIDRs; no
/// two entries share an underlay IP or an overlapping subnet.
fn parse(v: &Value, origin: &Origin<'_>, conf: &VxConf) -> Result<Vec<Peer>, Error> {
    let list = match v {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("peers") {
            Some(Value::Array(a)) => a,
            _ => return Err(origin.err("peers", "must be a list of {\"underlayIP\", \"subnet\"}")),
        },
        _ => return Err(origin.err("peers", "must be a list of {\"underlayIP\", \"subnet\"}")),
    };
    if list.len() > MAX_PEERS {
        return Err(origin.err("peers", format!("{} entries; at most {MAX_PEERS} are allowed", list.len())));
    }
    let mut out: Vec<Peer> = Vec::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        let name = |f: &str| format!("peers[{i}].{f}");
        let ip_s = e
            .get("underlayIP")
            .and_then(Value::as_str)
            .ok_or_else(|| origin.err(&name("underlayIP"), "missing (the peer's VTEP address)"))?;
        let underlay: IpAddr =
            ip_s.parse().map_err(|_| origin.err(&name("underlayIP"), format!("{ip_s:?} is not an IP address")))?;
        let subnets = match e.get("subnet") {
            None | Some(Value::Null) => return Err(origin.err(&name("subnet"), "missing (the peer's pod subnet)")),
            Some(v) => parse_nets(&name("subnet"), v).map_err(|e| match origin {
                Origin::Inline => e,
                Origin::File(_) => origin.err(&name("subnet"), e.msg),
            })?,
        };
        if subnets.is_empty() {
            return Err(origin.err(&name("subnet"), "is empty"));
        }
        for v4 in [true, false] {
            if subnets.iter().filter(|n| n.is_ipv4() == v4).count() > 1 {
                return Err(origin.err(&name("subnet"), "gives two subnets of one family"));
            }
        }
        for s in &subnets {
            if !conf.in_cluster(s) {
                return Err(
                    origin.err(&name("subnet"), format!("{s} is outside the cluster CIDR ({})", show(&conf.cluster)))
                );
            }
        }
        out.push(Peer { underlay, subnets });
    }
    if any_clash(&out) {
        name_clash(&out, origin)?;
    }
    Ok(out)
}

/// Whether two entries share an underlay IP or overlapping subnets: one
/// sort, not a comparison of every pair (16,000 peers are 128 million
/// pairs).
fn any_clash(peers: &[Peer]) -> bool {
    let mut ips = std::collections::HashSet::with_capacity(peers.len());
    if !peers.iter().all(|p| ips.insert(p.underlay)) {
        return true;
    }
    for v4 in [true, false] {
        let mut spans: Vec<(u128, u128)> = peers
            .iter()
            .flat_map(|p| p.subnets.iter())
            .filter(|n| n.is_ipv4() == v4)
            .map(|n| {
                let bits = if v4 { 32 } else { 128 };
                let start = match n.network() {
                    IpAddr::V4(a) => u32::from(a) as u128,
                    IpAddr::V6(a) => u128::from(a),
                };
                let size_log = bits - n.prefix() as u32;
                let end = if size_log >= 128 { u128::MAX } else { start | ((1u128 << size_log) - 1) };
                (start, end)
            })
            .collect();
        spans.sort_unstable();
        if spans.windows(2).any(|w| w[1].0 <= w[0].1) {
            return true;
        }
    }
    false
}

/// Names the first entry that clashes with an earlier one (only run when
/// [`any_clash`] found one, so its cost does not matter).
fn name_clash(peers: &[Peer], origin: &Origin<'_>) -> Result<(), Error> {
    for (i, p) in peers.iter().enumerate() {
        let name = |f: &str| format!("peers[{i}].{f}");
        for (j, other) in peers[..i].iter().enumerate() {
            if other.underlay == p.underlay {
                return Err(
                    origin.err(&name("underlayIP"), format!("{} is also the address of peers[{j}]", p.underlay))
                );
            }
            for s in &p.subnets {
                if let Some(o) = other.subnets.iter().find(|o| overlap(o, s)) {
                    let what = if o == s { "is also" } else { "overlaps" };
                    return Err(origin.err(&name("subnet"), format!("{s} {what} the subnet of peers[{j}] ({o})")));
                }
            }
        }
    }
    Ok(())
}

fn overlap(a: &IpNetwork, b: &IpNetwork) -> bool {
    a.is_ipv4() == b.is_ipv4() && (a.contains(b.network()) || b.contains(a.network()))
}

/// The remote peers, from `table`, for a host whose VTEP address is
/// `local`: this host's own entry is dropped (after checking it names
/// this host's subnets), no remote subnet overlaps this host's, and every
/// peer is reached over the same family as `local`.
fn remote(table: Vec<Peer>, origin: &Origin<'_>, conf: &VxConf, local: IpAddr) -> Result<Vec<Peer>, Error> {
    let mine: Vec<IpNetwork> = conf.subnets.iter().map(|s| s.net).collect();
    let mut out = Vec::with_capacity(table.len());
    for (i, p) in table.into_iter().enumerate() {
        if p.underlay == local {
            let same = p.subnets.len() == mine.len() && p.subnets.iter().all(|s| mine.contains(s));
            if !same {
                return Err(origin.err(
                    &format!("peers[{i}].subnet"),
                    format!(
                        "the entry for this host ({local}) says {}, but this host's subnet is {}",
                        show(&p.subnets),
                        show(&mine)
                    ),
                ));
            }
            continue;
        }
        if p.underlay.is_ipv4() != local.is_ipv4() {
            return Err(origin.err(
                &format!("peers[{i}].underlayIP"),
                format!("{} is not of the underlay's family (this host's VTEP address is {local})", p.underlay),
            ));
        }
        if let Some(s) = p.subnets.iter().find(|s| mine.iter().any(|m| overlap(m, s))) {
            return Err(
                origin.err(&format!("peers[{i}].subnet"), format!("{s} overlaps this host's subnet ({})", show(&mine)))
            );
        }
        out.push(p);
    }
    Ok(out)
}

/// Reads the configured table and returns the remote peers of this host
/// (VTEP address `local`), checked. Reads nothing but the file.
pub fn load(conf: &VxConf, local: IpAddr) -> Result<Vec<Peer>, Error> {
    read(conf, local)?.parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(peers: Value) -> VxConf {
        crate::config::from_raw(&json!({
            "name": "ov", "type": "vxlan", "vni": 7,
            "clusterCIDR": ["10.244.0.0/16", "fd44::/48"],
            "subnet": "10.244.1.0/24",
            "peers": peers,
        }))
        .unwrap()
    }

    const LOCAL: &str = "192.168.7.1";

    fn ok(peers: Value) -> Vec<Peer> {
        load(&conf(peers), LOCAL.parse().unwrap()).unwrap()
    }

    fn err(peers: Value) -> String {
        let e = load(&conf(peers), LOCAL.parse().unwrap()).unwrap_err();
        assert_eq!(e.code, 7, "{e:?}");
        e.msg
    }

    #[test]
    fn own_entry_is_skipped() {
        let p = ok(json!([
            {"underlayIP": LOCAL, "subnet": "10.244.1.0/24"},
            {"underlayIP": "192.168.7.2", "subnet": ["10.244.2.0/24", "fd44:0:0:2::/64"]},
        ]));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].subnets.len(), 2);
        assert_eq!(ok(json!({"peers": []})), vec![]);
    }

    #[test]
    fn bad_tables_name_the_entry() {
        for (peers, want) in [
            (
                json!([{"underlayIP": "192.168.7.2", "subnet": "10.244.2.0/24"},
                    {"underlayIP": "192.168.7.3", "subnet": "10.244.2.0/24"}]),
                "peers[1].subnet",
            ),
            (
                json!([{"underlayIP": "192.168.7.2", "subnet": "10.244.2.0/24"},
                    {"underlayIP": "192.168.7.3", "subnet": "10.244.2.128/25"}]),
                "overlaps",
            ),
            (
                json!([{"underlayIP": "192.168.7.2", "subnet": "10.244.2.0/24"},
                    {"underlayIP": "192.168.7.2", "subnet": "10.244.3.0/24"}]),
                "peers[1].underlayIP",
            ),
            (json!([{"underlayIP": "192.168.7.2", "subnet": "10.99.2.0/24"}]), "outside the cluster CIDR"),
            (json!([{"underlayIP": "192.168.7.2", "subnet": "10.244.1.0/25"}]), "this host's subnet"),
            (json!([{"underlayIP": LOCAL, "subnet": "10.244.5.0/24"}]), "the entry for this host"),
            (json!([{"underlayIP": "fd00::2", "subnet": "10.244.2.0/24"}]), "family"),
            (json!([{"subnet": "10.244.2.0/24"}]), "peers[0].underlayIP"),
            (json!([{"underlayIP": "192.168.7.2"}]), "peers[0].subnet"),
            (json!([{"underlayIP": "192.168.7.2", "subnet": "10.244.2.1/24"}]), "host bits"),
            (json!("nope"), "must be a list"),
        ] {
            let msg = err(peers.clone());
            assert!(msg.contains(want), "{peers}: {msg}");
        }
    }

    #[test]
    fn file_errors_name_the_file_and_entry() {
        let dir = std::env::temp_dir().join(format!("vx-peers-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("peers.json");
        let mut c = conf(Value::Null);
        c.peers = PeerSource::File(path.clone());
        let local: IpAddr = LOCAL.parse().unwrap();
        let e = load(&c, local).unwrap_err();
        assert!(e.msg.contains("peersFile") && e.msg.contains("can't open"), "{e:?}");
        std::fs::write(&path, "[{\"underlayIP\": \"192.168.7.2\"").unwrap();
        assert!(load(&c, local).unwrap_err().msg.contains("not valid JSON"));
        std::fs::write(
            &path,
            r#"[{"underlayIP":"192.168.7.2","subnet":"10.244.2.0/24"},{"underlayIP":"192.168.7.3","subnet":"10.244.2.0/24"}]"#,
        )
        .unwrap();
        let e = load(&c, local).unwrap_err();
        assert!(e.msg.contains("peersFile") && e.msg.contains("peers[1].subnet"), "{e:?}");
        std::fs::write(&path, r#"[{"underlayIP":"192.168.7.2","subnet":"10.244.2.0/24"}]"#).unwrap();
        assert_eq!(load(&c, local).unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn digest_follows_the_table_and_this_hosts_part() {
        let local: IpAddr = LOCAL.parse().unwrap();
        let a = conf(json!([{"underlayIP": "192.168.7.2", "subnet": "10.244.2.0/24"}]));
        let b = conf(json!([{"underlayIP": "192.168.7.3", "subnet": "10.244.2.0/24"}]));
        let d = |c: &VxConf, l: IpAddr| read(c, l).unwrap().digest;
        assert_eq!(d(&a, local), d(&a, local));
        assert_ne!(d(&a, local), d(&b, local));
        assert_ne!(d(&a, local), d(&a, "192.168.7.9".parse().unwrap()));
        assert_ne!(d(&a, local), d(&conf(Value::Null), local));
    }

    #[test]
    fn clashes_are_found_in_a_large_table_and_named_like_in_a_small_one() {
        let many: Vec<Value> = (0..5000)
            .map(|i| {
                json!({"underlayIP": format!("192.168.{}.{}", 8 + i / 256, i % 256),
                            "subnet": format!("10.244.{}.{}/30", 2 + i / 64, (i % 64) * 4)})
            })
            .collect();
        assert_eq!(ok(Value::Array(many.clone())).len(), 5000);
        let mut dup = many.clone();
        dup[4000]["subnet"] = json!("10.244.2.0/29");
        assert!(err(Value::Array(dup)).contains("peers[4000].subnet"));
        let mut dup = many;
        dup[4999]["underlayIP"] = json!("192.168.8.0");
        assert!(err(Value::Array(dup)).contains("is also the address of peers[0]"));
    }
}
