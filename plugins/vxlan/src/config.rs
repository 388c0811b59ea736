//! The vxlan plugin's options and their validation, without touching the
//! kernel or the filesystem: every value that can be checked from the
//! config alone is refused here (code 7, naming the field), before
//! anything changes. What needs the host (the underlay, the peers file)
//! is checked in [`crate::underlay`] and [`crate::peers`], still before any
//! change.
//!
//! The IPAM delegate gets a config derived from this one: when the config
//! gives only `subnet`, host-local is run with ranges made from it, so the
//! addresses always come from this host's subnet. The derivation is pure,
//! so DEL rebuilds the same IPAM config from the network config alone and
//! needs no per-container state file (flannel's plugin leaks the address
//! when its file is lost).

use cni::{Context, Error};
use ipnetwork::IpNetwork;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use std::path::PathBuf;

/// The IANA VXLAN port (flannel leaves the kernel's 8472).
const DEFAULT_PORT: u16 = 4789;
/// Largest VNI (24 bits).
const MAX_VNI: i64 = 16_777_215;
/// At most this many cluster CIDRs.
const MAX_CLUSTER_CIDRS: usize = 16;

/// This host's pod subnet of one family, and the gateway address the
/// bridge holds in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSubnet {
    /// The subnet, without host bits.
    pub net: IpNetwork,
    /// The bridge's address (IPAM's range gateway, else the first address).
    pub gateway: IpAddr,
}

impl HostSubnet {
    /// The gateway with the subnet's prefix, as the bridge holds it.
    pub fn gateway_net(&self) -> IpNetwork {
        IpNetwork::new(self.gateway, self.net.prefix()).expect("gateway inside the subnet")
    }
}

/// Where the peer table comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerSource {
    /// `peers`: inline in the config.
    Inline(Value),
    /// `peersFile`: a JSON list in a file, re-read on every ADD and reconcile.
    File(PathBuf),
    /// Neither: a host alone (for now).
    None,
}

/// How to run the IPAM delegate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipam {
    /// The plugin (`host-local` unless the config names another).
    pub plugin: String,
    /// The whole network config with the derived `ipam` block: the stdin
    /// of every IPAM call.
    pub stdin: Vec<u8>,
}

/// The validated options of one call.
#[derive(Debug, Clone, PartialEq)]
pub struct VxConf {
    /// VXLAN network identifier.
    pub vni: u32,
    /// UDP destination port of the encapsulation (and the VTEP's listening port).
    pub port: u16,
    /// `underlayInterface`: the link the VTEP sends through.
    pub underlay_interface: Option<String>,
    /// `underlayIP`: the local VTEP address.
    pub underlay_ip: Option<IpAddr>,
    /// The cluster CIDRs: every host's subnet is inside one; traffic
    /// between them is never masqueraded.
    pub cluster: Vec<IpNetwork>,
    /// This host's subnets: one IPv4, at most one IPv6.
    pub subnets: Vec<HostSubnet>,
    /// MTU of the VTEP, the bridge and the veths; derived from the underlay when `None`.
    pub mtu: Option<u32>,
    /// The local bridge (`cni-vx<vni>` by default).
    pub bridge: String,
    /// The VTEP device (`vxlan.<vni>`).
    pub vtep: String,
    /// The peer table's source.
    pub peers: PeerSource,
    /// Masquerade traffic that leaves the cluster CIDRs.
    pub ip_masq: bool,
    /// Give containers a default route via the bridge (default true).
    pub is_default_gateway: bool,
    /// Hairpin on the container's bridge port.
    pub hairpin_mode: bool,
    /// IPv6 duplicate address detection in the container (off: usable at once).
    pub enable_dad: bool,
    /// The IPAM delegate and its config.
    pub ipam: Ipam,
    /// `etcd`: the host's subnet and the peers come from `vxlan agent`
    /// (its state under `stateDir/<network>/`), not from the config.
    pub etcd: Option<EtcdConf>,
}

/// The `etcd` object and the options that go with it (`subnetLen`,
/// `stateDir`): where the overlay's control plane keeps its leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConf {
    /// Client URLs (`http://` or `https://`; a bare `host:port` is http).
    pub endpoints: Vec<String>,
    /// Key prefix without a trailing `/`; the network name goes below it.
    pub prefix: String,
    /// Lease TTL in seconds: how long a dead host stays in the others' tables.
    pub lease_ttl: i64,
    /// CA bundle that signs the servers' certificates (enables TLS).
    pub ca_file: Option<PathBuf>,
    /// Client certificate (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// Client key (with `cert_file`).
    pub key_file: Option<PathBuf>,
    /// Seconds between full reconciles of the kernel's entries.
    pub reconcile_interval: u64,
    /// Prefix length of each host's IPv4 subnet (IPv6: /64).
    pub subnet_len: u8,
    /// `stateDir/<network>`: the agent's state, read by the plugin.
    pub state_dir: PathBuf,
    /// The network's name (a path component and a key component).
    pub network: String,
}

/// Default key prefix.
const DEFAULT_PREFIX: &str = "/cni-rs/overlay";
/// Default lease TTL (seconds).
const DEFAULT_LEASE_TTL: i64 = 30;
/// Default IPv4 subnet length per host.
const DEFAULT_SUBNET_LEN: u8 = 24;
/// Default IPv6 subnet length per host.
pub const SUBNET_LEN_V6: u8 = 64;
/// Default state directory.
const DEFAULT_STATE_DIR: &str = "/run/cni/vxlan";
/// Default seconds between full reconciles.
const DEFAULT_RECONCILE: u64 = 60;

impl EtcdConf {
    /// The network's directory in the store: `<prefix>/<network>/`.
    pub fn network_prefix(&self) -> String {
        format!("{}/{}/", self.prefix, self.network)
    }

    /// Where the subnet leases live: `<prefix>/<network>/subnets/`.
    pub fn subnets_prefix(&self) -> String {
        format!("{}subnets/", self.network_prefix())
    }
}

impl VxConf {
    /// The subnet of the family of `ip`'s, if this host has one.
    pub fn subnet_of(&self, v4: bool) -> Option<&HostSubnet> {
        self.subnets.iter().find(|s| s.net.is_ipv4() == v4)
    }

    /// Whether `net` lies inside one of the cluster CIDRs.
    pub fn in_cluster(&self, net: &IpNetwork) -> bool {
        in_cluster(&self.cluster, net)
    }
}

fn in_cluster(cluster: &[IpNetwork], net: &IpNetwork) -> bool {
    cluster.iter().any(|c| c.is_ipv4() == net.is_ipv4() && c.prefix() <= net.prefix() && c.contains(net.network()))
}

/// A code-7 error naming `field`.
pub fn bad(field: &str, msg: impl std::fmt::Display) -> Error {
    Error::invalid_config(format!("vxlan: field {field:?}: {msg}"))
}

/// Decodes `key` of `raw`; absent or `null` is `None`, a wrong type is
/// code 7 naming the key.
fn field<T: DeserializeOwned>(raw: &Value, key: &str) -> Result<Option<T>, Error> {
    match cni::gojson::get(raw, key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => cni::gojson::from_value(v).map(Some).map_err(|e| bad(key, format!("{v}: {e}"))),
    }
}

/// Parses a CIDR that must have no host bits.
fn parse_net(field_name: &str, s: &str) -> Result<IpNetwork, Error> {
    let net: IpNetwork = s.parse().map_err(|_| bad(field_name, format!("{s:?} is not a CIDR (e.g. 10.244.1.0/24)")))?;
    if net.ip() != net.network() {
        return Err(bad(
            field_name,
            format!("{s} has host bits set; the subnet is {}/{}", net.network(), net.prefix()),
        ));
    }
    Ok(net)
}

/// A CIDR or a list of them (`"10.244.0.0/16"` or `["10.244.0.0/16", "fd44::/48"]`).
pub fn parse_nets(field_name: &str, v: &Value) -> Result<Vec<IpNetwork>, Error> {
    let items: Vec<&Value> = match v {
        Value::String(_) => vec![v],
        Value::Array(a) => a.iter().collect(),
        other => return Err(bad(field_name, format!("{other} is not a CIDR or a list of CIDRs"))),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let name = if v.is_array() { format!("{field_name}[{i}]") } else { field_name.to_string() };
            match item.as_str() {
                Some(s) => parse_net(&name, s),
                None => Err(bad(&name, format!("{item} is not a CIDR string"))),
            }
        })
        .collect()
}

/// At most one network per family; IPv4 required when `need_v4`.
fn one_per_family(field_name: &str, nets: &[IpNetwork], need_v4: bool) -> Result<(), Error> {
    for v4 in [true, false] {
        let n = nets.iter().filter(|n| n.is_ipv4() == v4).count();
        if n > 1 {
            let fam = if v4 { "IPv4" } else { "IPv6" };
            return Err(bad(field_name, format!("gives {n} {fam} subnets; one per family is allowed")));
        }
    }
    if need_v4 && !nets.iter().any(IpNetwork::is_ipv4) {
        return Err(bad(field_name, "needs an IPv4 subnet (the IPv4 overlay is required; IPv6 is optional)"));
    }
    Ok(())
}

/// Checks that a pod subnet can hold the gateway and containers: at least
/// two host bits, as host-local needs.
fn big_enough(field_name: &str, net: &IpNetwork) -> Result<(), Error> {
    let bits = if net.is_ipv4() { 32 } else { 128 };
    if net.prefix() + 2 > bits {
        return Err(bad(field_name, format!("{net} is too small: a pod subnet needs at least 2 host bits")));
    }
    Ok(())
}

/// The subnets of host-local's `ranges` (and its legacy top-level
/// `subnet`), with their gateways.
fn ipam_ranges(ipam: &Map<String, Value>) -> Result<Vec<(IpNetwork, Option<IpAddr>)>, Error> {
    let mut out = Vec::new();
    let mut one = |where_: String, r: &Value| -> Result<(), Error> {
        let s = cni::gojson::get(r, "subnet")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(&where_, "a range needs a \"subnet\""))?;
        let net = parse_net(&format!("{where_}.subnet"), s)?;
        let gw = match cni::gojson::get(r, "gateway").and_then(Value::as_str) {
            None | Some("") => None,
            Some(g) => Some(
                g.parse::<IpAddr>().map_err(|_| bad(&format!("{where_}.gateway"), format!("{g:?} is not an IP")))?,
            ),
        };
        out.push((net, gw));
        Ok(())
    };
    if cni::gojson::member(ipam, "subnet").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
        one("ipam".into(), &Value::Object(ipam.clone()))?;
    }
    if let Some(sets) = cni::gojson::member(ipam, "ranges") {
        let sets = sets.as_array().ok_or_else(|| bad("ipam.ranges", "must be a list of range sets"))?;
        for (i, set) in sets.iter().enumerate() {
            let set = set.as_array().ok_or_else(|| bad(&format!("ipam.ranges[{i}]"), "must be a list of ranges"))?;
            for (j, r) in set.iter().enumerate() {
                one(format!("ipam.ranges[{i}][{j}]"), r)?;
            }
        }
    }
    Ok(out)
}

/// This host's subnets and the IPAM block to run, from `subnet` and/or
/// `ipam`:
/// - `subnet` alone (or with an `ipam` block without ranges): host-local
///   (or the named type) gets one range set per subnet;
/// - `ipam` ranges alone: their subnets are this host's;
/// - both: every range must lie inside the subnet of its family.
fn host_subnets(raw: &Value) -> Result<(Vec<HostSubnet>, Map<String, Value>), Error> {
    let mut ipam: Map<String, Value> = match cni::gojson::get(raw, "ipam") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => return Err(bad("ipam", format!("{other} is not an object"))),
    };
    match cni::gojson::member(&ipam, "type") {
        None | Some(Value::Null) => {
            ipam.insert("type".into(), "host-local".into());
        }
        Some(Value::String(t)) if t.is_empty() => {
            ipam.insert("type".into(), "host-local".into());
        }
        Some(Value::String(t)) => cni::validate::plugin_type("ipam.type", t)?,
        Some(other) => return Err(bad("ipam.type", format!("{other} is not a string"))),
    }
    let ranges = ipam_ranges(&ipam)?;
    let given = match cni::gojson::get(raw, "subnet") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_nets("subnet", v)?),
    };
    let subnets: Vec<IpNetwork> = match &given {
        Some(nets) => {
            one_per_family("subnet", nets, true)?;
            for (r, _) in &ranges {
                let host = nets.iter().find(|n| n.is_ipv4() == r.is_ipv4());
                if !host.is_some_and(|h| h.prefix() <= r.prefix() && h.contains(r.network())) {
                    return Err(bad(
                        "ipam.ranges",
                        format!("range {r} is not inside this host's subnet (field \"subnet\")"),
                    ));
                }
            }
            if ranges.is_empty() && cni::gojson::member(&ipam, "type").and_then(Value::as_str) == Some("host-local") {
                let sets: Vec<Value> = nets.iter().map(|n| json!([{ "subnet": n.to_string() }])).collect();
                ipam.insert("ranges".into(), Value::Array(sets));
            }
            nets.clone()
        }
        None => {
            if ranges.is_empty() {
                return Err(bad("subnet", "missing: give this host's pod subnet, or an ipam block whose range is it"));
            }
            let mut nets: Vec<IpNetwork> = Vec::new();
            for (r, _) in &ranges {
                if !nets.contains(r) {
                    nets.push(*r);
                }
            }
            one_per_family("ipam.ranges", &nets, true)?;
            nets
        }
    };
    let mut out = Vec::new();
    for net in subnets {
        big_enough("subnet", &net)?;
        let gw = ranges
            .iter()
            .filter(|(r, _)| net.prefix() <= r.prefix() && net.contains(r.network()))
            .find_map(|(_, g)| *g)
            .unwrap_or_else(|| netcore::gateway::first_host(&net));
        if !net.contains(gw) || gw == net.network() {
            return Err(bad("ipam.ranges", format!("gateway {gw} is not a host address of subnet {net}")));
        }
        out.push(HostSubnet { net, gateway: gw });
    }
    Ok((out, ipam))
}

/// Reads and validates the options of a config (a plugin request, or the
/// vxlan entry of a conflist for `vxlan reconcile`). With `etcd`, this
/// host's subnet comes from the agent's state; without one yet, the error
/// names the agent.
pub fn from_raw(raw: &Value) -> Result<VxConf, Error> {
    match etcd_options(raw)? {
        None => from_raw_static(raw),
        Some(e) => {
            let subnets = crate::state::subnets_for_plugin(&e.network, &e.state_dir)?;
            with_subnets(raw, e, &subnets)
        }
    }
}

/// As [`from_raw`], for DEL and GC, which must work with the agent gone:
/// with `etcd` and no state, the IPAM config spans the cluster CIDR (host-local
/// releases by container, whatever the range).
fn from_raw_for_release(raw: &Value) -> Result<VxConf, Error> {
    match etcd_options(raw)? {
        None => from_raw_static(raw),
        Some(e) => {
            let subnets = match crate::state::read(&e.state_dir) {
                Ok(Some(st)) if !st.subnets.is_empty() => st.subnets,
                _ => cluster_of(raw)?.into_iter().filter(IpNetwork::is_ipv4).take(1).collect(),
            };
            with_subnets(raw, e, &subnets)
        }
    }
}

fn cluster_of(raw: &Value) -> Result<Vec<IpNetwork>, Error> {
    match cni::gojson::get(raw, "clusterCIDR") {
        None | Some(Value::Null) => Err(bad("clusterCIDR", "missing: give the CIDR all hosts' subnets are in")),
        Some(v) => parse_nets("clusterCIDR", v),
    }
}

/// The config of an `etcd` network with this host's `subnets` (from the
/// agent's state, or being acquired by the agent): the peers come from the
/// agent's peers file.
pub fn with_subnets(raw: &Value, etcd: EtcdConf, subnets: &[IpNetwork]) -> Result<VxConf, Error> {
    let mut r = raw.clone();
    let list: Vec<Value> = subnets.iter().map(|s| Value::String(s.to_string())).collect();
    r["subnet"] = Value::Array(list);
    r["peersFile"] = Value::String(crate::state::peers_path(&etcd.state_dir).display().to_string());
    let mut c = from_raw_static(&r)?;
    c.etcd = Some(etcd);
    Ok(c)
}

/// Parses `etcd`, `subnetLen` and `stateDir`; `None` without `etcd`.
/// Giving `etcd` together with `subnet`, `peers` or `peersFile` is code 7
/// naming them: the agent owns the subnet and the peer table.
pub fn etcd_options(raw: &Value) -> Result<Option<EtcdConf>, Error> {
    let e = match cni::gojson::get(raw, "etcd") {
        None | Some(Value::Null) => {
            for k in ["subnetLen", "stateDir"] {
                if cni::gojson::get(raw, k).is_some_and(|v| !v.is_null()) {
                    return Err(bad(k, "only applies with \"etcd\" (the agent's subnet size and state)"));
                }
            }
            return Ok(None);
        }
        Some(Value::Object(_)) => cni::gojson::get(raw, "etcd").unwrap().clone(),
        Some(other) => return Err(bad("etcd", format!("{other} is not an object"))),
    };
    for k in ["subnet", "peers", "peersFile"] {
        if cni::gojson::get(raw, k).is_some_and(|v| !v.is_null()) {
            return Err(bad(
                k,
                format!("can't be given with \"etcd\": {k} and etcd are two ways to say the same (give one)"),
            ));
        }
    }
    let endpoints = match field::<Vec<String>>(&e, "endpoints").map_err(|x| renamed(x, "etcd.endpoints"))? {
        Some(v) if !v.is_empty() && v.len() <= 16 => v,
        _ => return Err(bad("etcd.endpoints", "give 1 to 16 client URLs (e.g. [\"http://192.168.100.250:2379\"])")),
    };
    for (i, ep) in endpoints.iter().enumerate() {
        let rest = ep.strip_prefix("http://").or_else(|| ep.strip_prefix("https://")).unwrap_or(ep);
        let ok = !rest.is_empty()
            && rest.len() < 256
            && rest.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
            && !rest.contains(['/', ' ', '?', '#']);
        if !ok {
            return Err(bad(&format!("etcd.endpoints[{i}]"), format!("{ep:?} is not a URL like http://host:2379")));
        }
    }
    let prefix = field::<String>(&e, "prefix").map_err(|x| renamed(x, "etcd.prefix"))?.unwrap_or_default();
    let prefix = if prefix.is_empty() { DEFAULT_PREFIX.to_string() } else { prefix.trim_end_matches('/').to_string() };
    if !prefix.starts_with('/') || prefix.len() > 200 || prefix.chars().any(|c| c.is_control()) {
        return Err(bad("etcd.prefix", format!("{prefix:?} must be a key path starting with '/' (at most 200 bytes)")));
    }
    let lease_ttl = match field::<i64>(&e, "leaseTTL").map_err(|x| renamed(x, "etcd.leaseTTL"))? {
        None | Some(0) => DEFAULT_LEASE_TTL,
        Some(t) if (2..=86_400).contains(&t) => t,
        Some(t) => return Err(bad("etcd.leaseTTL", format!("{t} is outside 2-86400 seconds"))),
    };
    let reconcile_interval =
        match field::<i64>(&e, "reconcileInterval").map_err(|x| renamed(x, "etcd.reconcileInterval"))? {
            None | Some(0) => DEFAULT_RECONCILE,
            Some(t) if (1..=86_400).contains(&t) => t as u64,
            Some(t) => return Err(bad("etcd.reconcileInterval", format!("{t} is outside 1-86400 seconds"))),
        };
    let path = |k: &str| -> Result<Option<PathBuf>, Error> {
        let name = format!("etcd.{k}");
        match field::<String>(&e, k).map_err(|x| renamed(x, &name))? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) if s.starts_with('/') => Ok(Some(PathBuf::from(s))),
            Some(s) => Err(bad(&name, format!("{s:?} is not an absolute path"))),
        }
    };
    let (ca_file, cert_file, key_file) = (path("caFile")?, path("certFile")?, path("keyFile")?);
    if cert_file.is_some() != key_file.is_some() {
        return Err(bad("etcd.certFile", "certFile and keyFile go together (the client's certificate and its key)"));
    }
    if cert_file.is_some() && ca_file.is_none() {
        return Err(bad("etcd.caFile", "missing: TLS with a client certificate needs the CA of the servers"));
    }
    if ca_file.is_none() && endpoints.iter().any(|e| e.starts_with("https://")) {
        return Err(bad("etcd.caFile", "missing: https endpoints need the CA that signed the servers' certificates"));
    }
    let cluster = cluster_of(raw)?;
    let v4 = cluster.iter().find(|c| c.is_ipv4()).ok_or_else(|| bad("clusterCIDR", "needs an IPv4 CIDR"))?;
    let subnet_len = match field::<i64>(raw, "subnetLen")? {
        None | Some(0) => DEFAULT_SUBNET_LEN.max(v4.prefix()),
        Some(n) if (1..=30).contains(&n) => n as u8,
        Some(n) => {
            return Err(bad("subnetLen", format!("{n} is outside 1-30 (an IPv4 prefix length with room for hosts)")))
        }
    };
    if subnet_len < v4.prefix() {
        return Err(bad("subnetLen", format!("/{subnet_len} is larger than the cluster CIDR {v4}")));
    }
    if let Some(v6) = cluster.iter().find(|c| !c.is_ipv4()) {
        if v6.prefix() > SUBNET_LEN_V6 || (SUBNET_LEN_V6 - v6.prefix()) < (subnet_len - v4.prefix()).min(63) {
            return Err(bad(
                "clusterCIDR",
                format!("the IPv6 CIDR {v6} must hold as many /64 subnets as {v4} holds /{subnet_len} subnets"),
            ));
        }
    }
    let network = match cni::gojson::get(raw, "name").and_then(Value::as_str) {
        Some(n) => {
            cni::validate::network_name(n)?;
            if n.contains('/') || n.starts_with('.') {
                return Err(bad("name", format!("{n:?} can't be a path or key component")));
            }
            n.to_string()
        }
        None => return Err(Error::invalid_config("missing network name")),
    };
    let state_root = match field::<String>(raw, "stateDir")? {
        None => PathBuf::from(DEFAULT_STATE_DIR),
        Some(s) if s.is_empty() => PathBuf::from(DEFAULT_STATE_DIR),
        Some(s) if s.starts_with('/') => PathBuf::from(s),
        Some(s) => return Err(bad("stateDir", format!("{s:?} is not an absolute path"))),
    };
    Ok(Some(EtcdConf {
        endpoints,
        prefix,
        lease_ttl,
        ca_file,
        cert_file,
        key_file,
        reconcile_interval,
        subnet_len,
        state_dir: state_root.join(&network),
        network,
    }))
}

/// Renames the field an error names (a key of a nested object).
fn renamed(e: Error, full: &str) -> Error {
    let short = full.rsplit('.').next().unwrap_or(full);
    Error::invalid_config(e.msg.replacen(&format!("field {short:?}"), &format!("field {full:?}"), 1))
}

/// The static (no `etcd`) config.
fn from_raw_static(raw: &Value) -> Result<VxConf, Error> {
    let vni = match field::<i64>(raw, "vni")? {
        None => 1,
        Some(v) if (1..=MAX_VNI).contains(&v) => v as u32,
        Some(v) => return Err(bad("vni", format!("{v} is outside 1-{MAX_VNI}"))),
    };
    let port = match field::<i64>(raw, "port")? {
        None | Some(0) => DEFAULT_PORT,
        Some(p) if (1..=65535).contains(&p) => p as u16,
        Some(p) => return Err(bad("port", format!("{p} is outside 1-65535"))),
    };
    let underlay_interface = field::<String>(raw, "underlayInterface")?.filter(|s| !s.is_empty());
    if let Some(i) = &underlay_interface {
        cni::validate::config_interface_name("underlayInterface", i)?;
    }
    let underlay_ip = match field::<String>(raw, "underlayIP")?.filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            let ip: IpAddr = s.parse().map_err(|_| bad("underlayIP", format!("{s:?} is not an IP address")))?;
            if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
                return Err(bad("underlayIP", format!("{ip} can't be a VTEP address")));
            }
            Some(ip)
        }
    };
    let cluster = match cni::gojson::get(raw, "clusterCIDR") {
        None | Some(Value::Null) => return Err(bad("clusterCIDR", "missing: give the CIDR all hosts' subnets are in")),
        Some(v) => parse_nets("clusterCIDR", v)?,
    };
    if cluster.is_empty() || cluster.len() > MAX_CLUSTER_CIDRS {
        return Err(bad("clusterCIDR", format!("give 1 to {MAX_CLUSTER_CIDRS} CIDRs")));
    }
    let (subnets, ipam) = host_subnets(raw)?;
    for s in &subnets {
        if !in_cluster(&cluster, &s.net) {
            return Err(bad("subnet", format!("{} is outside the cluster CIDR ({})", s.net, show(&cluster))));
        }
    }
    let mtu = match field::<i64>(raw, "mtu")? {
        None | Some(0) => None,
        Some(m) if (68..=65535).contains(&m) => Some(m as u32),
        Some(m) => return Err(bad("mtu", format!("{m} is outside 68-65535"))),
    };
    let bridge = field::<String>(raw, "bridge")?.filter(|b| !b.is_empty()).unwrap_or_else(|| format!("cni-vx{vni}"));
    cni::validate::config_interface_name("bridge", &bridge)?;
    let vtep = format!("vxlan.{vni}");
    if bridge == vtep {
        return Err(bad("bridge", format!("{bridge:?} is the VTEP's name")));
    }
    let peers = match (cni::gojson::get(raw, "peers").filter(|v| !v.is_null()), field::<String>(raw, "peersFile")?) {
        (Some(_), Some(_)) => return Err(bad("peersFile", "give either peers (inline) or peersFile, not both")),
        (Some(v), None) => PeerSource::Inline(v.clone()),
        (None, Some(f)) if !f.is_empty() => PeerSource::File(PathBuf::from(f)),
        _ => PeerSource::None,
    };
    let mut stdin_conf = raw.clone();
    stdin_conf["ipam"] = Value::Object(ipam.clone());
    let plugin = cni::gojson::member(&ipam, "type").and_then(Value::as_str).unwrap_or("host-local").to_string();
    Ok(VxConf {
        vni,
        port,
        underlay_interface,
        underlay_ip,
        cluster,
        subnets,
        mtu,
        bridge,
        vtep,
        peers,
        ip_masq: field(raw, "ipMasq")?.unwrap_or(false),
        is_default_gateway: field(raw, "isDefaultGateway")?.unwrap_or(true),
        hairpin_mode: field(raw, "hairpinMode")?.unwrap_or(false),
        enable_dad: field(raw, "enabledad")?.unwrap_or(false),
        ipam: Ipam { plugin, stdin: stdin_conf.to_string().into_bytes() },
        etcd: None,
    })
}

/// Reads and validates the options of this call.
pub fn load(ctx: &Context) -> Result<VxConf, Error> {
    ctx.args.check_known(&["IP"])?;
    from_raw(&ctx.raw)
}

/// As [`load`], for DEL and GC (see [`from_raw_for_release`]).
pub fn load_for_release(ctx: &Context) -> Result<VxConf, Error> {
    ctx.args.check_known(&["IP"])?;
    from_raw_for_release(&ctx.raw)
}

/// CIDRs for messages.
pub fn show(nets: &[IpNetwork]) -> String {
    nets.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": "1.0.0", "name": "ov", "type": "vxlan",
            "vni": 42, "clusterCIDR": "10.244.0.0/16", "subnet": "10.244.1.0/24",
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    fn err(extra: Value) -> String {
        let e = from_raw(&conf(extra)).unwrap_err();
        assert_eq!(e.code, 7, "{e:?}");
        e.msg
    }

    fn ipam_of(c: &VxConf) -> Value {
        serde_json::from_slice::<Value>(&c.ipam.stdin).unwrap()["ipam"].clone()
    }

    #[test]
    fn defaults() {
        let c = from_raw(&conf(json!({"vni": null}))).unwrap();
        assert_eq!((c.vni, c.port, c.bridge.as_str(), c.vtep.as_str()), (1, 4789, "cni-vx1", "vxlan.1"));
        assert!(c.is_default_gateway && !c.ip_masq);
        assert_eq!(c.subnets[0].gateway.to_string(), "10.244.1.1");
        assert_eq!(c.peers, PeerSource::None);
        assert_eq!(c.ipam.plugin, "host-local");
        assert_eq!(ipam_of(&c), json!({"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]]}));
        let c = from_raw(&conf(json!({"vni": 16777215}))).unwrap();
        assert_eq!(c.bridge, "cni-vx16777215");
        assert!(c.bridge.len() <= 15 && c.vtep.len() <= 15);
    }

    #[test]
    fn subnet_into_an_ipam_block_without_ranges() {
        let c = from_raw(&conf(json!({
            "subnet": ["10.244.1.0/24", "fd44:0:0:1::/64"],
            "clusterCIDR": ["10.244.0.0/16", "fd44::/48"],
            "ipam": {"type": "host-local", "dataDir": "/tmp/x"}
        })))
        .unwrap();
        assert_eq!(
            ipam_of(&c),
            json!({"type": "host-local", "dataDir": "/tmp/x",
                   "ranges": [[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd44:0:0:1::/64"}]]})
        );
        assert_eq!(c.subnet_of(false).unwrap().gateway.to_string(), "fd44:0:0:1::1");
    }

    #[test]
    fn subnet_from_ipam_ranges_with_their_gateway() {
        let c = from_raw(&conf(json!({
            "subnet": null,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.3.0/24", "gateway": "10.244.3.254"}]]}
        })))
        .unwrap();
        assert_eq!(c.subnets[0].net.to_string(), "10.244.3.0/24");
        assert_eq!(c.subnets[0].gateway_net().to_string(), "10.244.3.254/24");
        // both given: the range must lie inside the subnet
        let e = err(json!({"ipam": {"ranges": [[{"subnet": "10.244.9.0/24"}]]}}));
        assert!(e.contains("ipam.ranges") && e.contains("subnet"), "{e}");
    }

    #[test]
    fn bad_values_name_the_field() {
        for (extra, field) in [
            (json!({"vni": 0}), "vni"),
            (json!({"vni": 16777216}), "vni"),
            (json!({"vni": "x"}), "vni"),
            (json!({"port": 70000}), "port"),
            (json!({"subnet": "10.245.1.0/24"}), "subnet"),
            (json!({"subnet": "10.244.1.7/24"}), "subnet"),
            (json!({"subnet": "10.244.1.0/31"}), "subnet"),
            (json!({"subnet": "fd44::/64"}), "subnet"),
            (json!({"subnet": ["10.244.1.0/24", "10.244.2.0/24"]}), "subnet"),
            (json!({"subnet": null}), "subnet"),
            (json!({"clusterCIDR": null}), "clusterCIDR"),
            (json!({"clusterCIDR": "nope"}), "clusterCIDR"),
            (json!({"underlayIP": "300.1.1.1"}), "underlayIP"),
            (json!({"underlayIP": "127.0.0.1"}), "underlayIP"),
            (json!({"underlayInterface": "a/b"}), "underlayInterface"),
            (json!({"mtu": 50}), "mtu"),
            (json!({"bridge": "0123456789abcdef"}), "bridge"),
            (json!({"bridge": "vxlan.42"}), "bridge"),
            (json!({"peers": [], "peersFile": "/x"}), "peersFile"),
            (json!({"ipam": {"type": "../evil"}}), "ipam.type"),
            (json!({"ipMasq": "yes"}), "ipMasq"),
        ] {
            let msg = err(extra.clone());
            assert!(msg.contains(field), "{extra}: {msg}");
        }
    }

    #[test]
    fn cluster_containment_is_by_prefix() {
        let c = from_raw(&conf(json!({"clusterCIDR": ["10.0.0.0/8"]}))).unwrap();
        assert!(c.in_cluster(&"10.244.9.0/24".parse().unwrap()));
        assert!(!c.in_cluster(&"0.0.0.0/0".parse().unwrap()));
        assert!(!c.in_cluster(&"fd00::/64".parse().unwrap()));
    }

    #[test]
    fn etcd_options_and_their_errors() {
        let base = json!({"subnet": null, "etcd": {"endpoints": ["http://192.168.100.250:2379"]}});
        let e = etcd_options(&conf(base.clone())).unwrap().unwrap();
        assert_eq!((e.prefix.as_str(), e.lease_ttl, e.subnet_len), ("/cni-rs/overlay", 30, 24));
        assert_eq!(e.state_dir, PathBuf::from("/run/cni/vxlan/ov"));
        assert_eq!(e.subnets_prefix(), "/cni-rs/overlay/ov/subnets/");
        let merged = |extra: Value| {
            let mut c = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            c
        };
        for (extra, field) in [
            (json!({"subnet": "10.244.1.0/24"}), "\"subnet\""),
            (json!({"peers": []}), "\"peers\""),
            (json!({"peersFile": "/x"}), "\"peersFile\""),
            (json!({"etcd": {"endpoints": []}}), "etcd.endpoints"),
            (json!({"etcd": {"endpoints": ["ftp://x"]}}), "etcd.endpoints[0]"),
            (json!({"etcd": {"endpoints": ["http://a:1"], "leaseTTL": 1}}), "etcd.leaseTTL"),
            (json!({"etcd": {"endpoints": ["http://a:1"], "leaseTTL": "x"}}), "etcd.leaseTTL"),
            (json!({"etcd": {"endpoints": ["http://a:1"], "prefix": "rel"}}), "etcd.prefix"),
            (json!({"etcd": {"endpoints": ["https://a:1"]}}), "etcd.caFile"),
            (json!({"etcd": {"endpoints": ["http://a:1"], "certFile": "/c"}}), "etcd.certFile"),
            (json!({"etcd": {"endpoints": ["http://a:1"], "caFile": "c"}}), "etcd.caFile"),
            (json!({"etcd": 3}), "\"etcd\""),
            (json!({"subnetLen": 8}), "subnetLen"),
            (json!({"subnetLen": 31}), "subnetLen"),
            (json!({"stateDir": "rel"}), "stateDir"),
        ] {
            let e = etcd_options(&conf(merged(extra.clone()))).unwrap_err();
            assert_eq!(e.code, 7, "{extra}: {e:?}");
            assert!(e.msg.contains(field), "{extra}: {}", e.msg);
        }
        let e = etcd_options(&conf(json!({"stateDir": "/x"}))).unwrap_err();
        assert!(e.msg.contains("stateDir"), "{e:?}");
        // With the agent's subnet, the rest of the config is the static one.
        let c = with_subnets(&conf(base), e_conf(), &["10.244.9.0/24".parse().unwrap()]).unwrap();
        assert_eq!(c.subnets[0].net.to_string(), "10.244.9.0/24");
        assert_eq!(c.peers, PeerSource::File(PathBuf::from("/run/cni/vxlan/ov/peers.json")));
    }

    fn e_conf() -> EtcdConf {
        etcd_options(&conf(json!({"subnet": null, "etcd": {"endpoints": ["http://a:1"]}}))).unwrap().unwrap()
    }

    /// Our own options decode like every other plugin's: keys in any case.
    #[test]
    fn any_recasing_of_keys_decodes_the_same() {
        let full = conf(json!({
            "port": 4790, "underlayIP": "192.168.50.1", "mtu": 1400, "bridge": "vx-br", "ipMasq": true,
            "isDefaultGateway": false, "hairpinMode": true, "enabledad": true,
            "peers": [{"underlayIP": "192.168.50.2", "subnet": "10.244.2.0/24"}],
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/25", "gateway": "10.244.1.1"}]]}
        }));
        let show = |v: &Value| {
            let c = from_raw(v).unwrap();
            let flags = (c.ip_masq, c.is_default_gateway, c.hairpin_mode, c.enable_dad);
            format!("{} {} {:?} {:?} {} {flags:?} {:?}", c.vni, c.port, c.underlay_ip, c.mtu, c.bridge, c.subnets)
        };
        let want = show(&full);
        for seed in 0..64 {
            let folded = cni::gojson::refold_keys(&full, seed, &[]);
            assert_eq!(show(&folded), want, "{folded}");
        }
    }
}
