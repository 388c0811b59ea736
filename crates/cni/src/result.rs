//! Results of every spec version, held in one internal (1.1) form and
//! converted on the way in and out exactly as the spec allows.

use crate::config::Dns;
use crate::error::{code, Error};
use crate::version::Version;
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;

/// An interface a plugin created or configured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// Hardware address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// MTU (1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The netns path for container interfaces; empty on the host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
    /// vhost-user socket path (1.1).
    #[serde(rename = "socketPath", default, skip_serializing_if = "String::is_empty")]
    pub socket_path: String,
    /// PCI address (1.1).
    #[serde(rename = "pciID", default, skip_serializing_if = "String::is_empty")]
    pub pci_id: String,
}

/// An address given to an interface.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct IpConfig {
    /// Index into `interfaces`; absent in IPAM results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// The address with its prefix length, e.g. `10.88.0.2/24`.
    pub address: IpNetwork,
    /// The gateway for this address's subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// A route to install in the container.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Route {
    /// Destination.
    pub dst: IpNetwork,
    /// Next hop; empty means the family's gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Route MTU (1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Advertised MSS (1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    /// Metric (1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Routing table (1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Scope (1.1): 0 universe, 253 link, 254 host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    /// A plain route to `dst`, optionally via `gw`.
    pub fn new(dst: IpNetwork, gw: Option<IpAddr>) -> Route {
        Route { dst, gw, mtu: None, advmss: None, priority: None, table: None, scope: None }
    }
}

/// A result in the internal (1.1) form; every plugin builds and reads this.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    /// Interfaces created or touched.
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    pub ips: Vec<IpConfig>,
    /// Routes installed.
    pub routes: Vec<Route>,
    /// DNS settings.
    pub dns: Dns,
}

/// The wire shape of any version, lenient on input.
#[derive(Deserialize)]
struct AnyResult {
    #[serde(rename = "cniVersion", default)]
    cni_version: Option<String>,
    #[serde(default)]
    interfaces: Vec<Interface>,
    #[serde(default)]
    ips: Vec<IpConfig>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Option<Dns>,
    #[serde(default)]
    ip4: Option<LegacyIp>,
    #[serde(default)]
    ip6: Option<LegacyIp>,
}

#[derive(Deserialize, Serialize)]
struct LegacyIp {
    ip: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<LegacyRoute>,
}

#[derive(Deserialize, Serialize)]
struct LegacyRoute {
    dst: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gw: Option<IpAddr>,
}

/// 0.3.x / 0.4.0 address: `version` first, as the reference prints it.
#[derive(Serialize)]
struct VersionedIp<'a> {
    version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
    address: &'a IpNetwork,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: &'a Option<IpAddr>,
}

#[derive(Serialize)]
struct Current<'a, I: Serialize, R: Serialize> {
    #[serde(rename = "cniVersion")]
    cni_version: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<Interface>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ips: Vec<I>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<R>,
    dns: &'a Dns,
}

#[derive(Serialize)]
struct Legacy<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip4: Option<LegacyIp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip6: Option<LegacyIp>,
    dns: &'a Dns,
}

fn family(ip: &IpNetwork) -> &'static str {
    if ip.is_ipv4() {
        "4"
    } else {
        "6"
    }
}

impl CniResult {
    /// Parses a result of any version. `declared` is the version the caller
    /// expects (the config's); a result whose own `cniVersion` is of another
    /// shape is refused, as the reference refuses it.
    pub fn parse(value: &Value, declared: Version) -> Result<CniResult, Error> {
        let any: AnyResult =
            crate::gojson::from_value(value).map_err(|e| Error::decode(format!("could not parse prevResult: {e}")))?;
        if let Some(v) = any.cni_version.as_deref().filter(|v| !v.is_empty()) {
            let own = Version::parse(v)
                .ok_or_else(|| Error::decode(format!("could not parse prevResult: unknown cniVersion {v:?}")))?;
            if own.is_legacy() != declared.is_legacy() {
                return Err(Error::decode(format!(
                    "could not parse prevResult: result has cniVersion {v:?}, config has {:?}",
                    declared.as_str()
                )));
            }
        }
        let mut r = CniResult {
            interfaces: any.interfaces,
            ips: any.ips,
            routes: any.routes,
            dns: any.dns.unwrap_or_default(),
        };
        for legacy in [any.ip4, any.ip6].into_iter().flatten() {
            r.ips.push(IpConfig { interface: None, address: legacy.ip, gateway: legacy.gateway });
            r.routes.extend(legacy.routes.into_iter().map(|lr| Route::new(lr.dst, lr.gw)));
        }
        Ok(r)
    }

    /// The JSON document of this result in `version`; 0.1.0/0.2.0 cannot
    /// carry a result without addresses, which is the spec's code 1.
    pub fn to_value(&self, version: Version) -> Result<Value, Error> {
        let v = version.as_str();
        let out = if version.is_legacy() {
            self.legacy_value(version)?
        } else {
            let interfaces: Vec<Interface> = self
                .interfaces
                .iter()
                .map(|i| {
                    let mut i = i.clone();
                    if version < Version::V110 {
                        i.mtu = None;
                        i.socket_path.clear();
                        i.pci_id.clear();
                    }
                    i
                })
                .collect();
            let routes: Vec<Route> = self
                .routes
                .iter()
                .map(|r| if version < Version::V110 { Route::new(r.dst, r.gw) } else { r.clone() })
                .collect();
            if version < Version::V100 {
                let ips: Vec<VersionedIp> = self
                    .ips
                    .iter()
                    .map(|ip| VersionedIp {
                        version: family(&ip.address),
                        interface: ip.interface,
                        address: &ip.address,
                        gateway: &ip.gateway,
                    })
                    .collect();
                serde_json::to_value(Current { cni_version: v, interfaces, ips, routes, dns: &self.dns })
            } else {
                serde_json::to_value(Current {
                    cni_version: v,
                    interfaces,
                    ips: self.ips.clone(),
                    routes,
                    dns: &self.dns,
                })
            }
            .map_err(|e| Error::plugin(format!("encoding result: {e}")))?
        };
        Ok(out)
    }

    fn legacy_value(&self, version: Version) -> Result<Value, Error> {
        let pick = |v4: bool| -> Option<LegacyIp> {
            let ip = self.ips.iter().find(|ip| ip.address.is_ipv4() == v4)?;
            let routes = self
                .routes
                .iter()
                .filter(|r| r.dst.is_ipv4() == v4)
                .map(|r| LegacyRoute { dst: r.dst, gw: r.gw })
                .collect();
            Some(LegacyIp { ip: ip.address, gateway: ip.gateway, routes })
        };
        let (ip4, ip6) = (pick(true), pick(false));
        if ip4.is_none() && ip6.is_none() {
            return Err(Error::new(code::INCOMPATIBLE_VERSION, "cannot convert: no valid IP addresses")
                .with_details(format!("a {version} result carries only ip4/ip6; this result has no address")));
        }
        serde_json::to_value(Legacy { cni_version: version.as_str(), ip4, ip6, dns: &self.dns })
            .map_err(|e| Error::plugin(format!("encoding result: {e}")))
    }

    /// Pretty JSON with a 4-space indent and no trailing newline, as the
    /// reference plugins print results.
    pub fn to_pretty(&self, version: Version) -> Result<String, Error> {
        Ok(pretty(&self.to_value(version)?))
    }

    /// A result whose only interface is the container's (index 0), with
    /// the config's DNS: how the plugins that hand the container one link
    /// and nothing on the host side (host-device, macvlan) start theirs.
    pub fn container_only(ifname: &str, mac: String, sandbox: String, dns: Option<&Dns>) -> CniResult {
        CniResult {
            interfaces: vec![Interface { name: ifname.to_string(), mac, sandbox, ..Default::default() }],
            dns: dns.cloned().unwrap_or_default(),
            ..Default::default()
        }
    }

    /// Takes an IPAM result's addresses, all on interface `iface` of this
    /// result, and its routes: what a plugin with one container interface
    /// (host-device, macvlan) reports of its lease.
    pub fn take_lease(&mut self, lease: &CniResult, iface: usize) {
        self.ips = lease.ips.iter().map(|ip| IpConfig { interface: Some(iface), ..ip.clone() }).collect();
        self.routes = lease.routes.clone();
    }

    /// The index of the interface named `ifname` that lives in a sandbox.
    pub fn sandbox_interface(&self, ifname: &str) -> Option<usize> {
        self.interfaces.iter().position(|i| i.name == ifname && !i.sandbox.is_empty())
    }

    /// Addresses that belong to the container interface `ifname`: those that
    /// point at it, or every address when the result names no interfaces.
    pub fn container_ips(&self, ifname: &str) -> Vec<&IpConfig> {
        let idx = self.sandbox_interface(ifname);
        self.ips
            .iter()
            .filter(|ip| match (idx, ip.interface) {
                (Some(i), Some(j)) => i == j,
                (Some(_), None) => true,
                (None, _) => self.interfaces.is_empty(),
            })
            .collect()
    }
}

/// Refuses up front an ADD whose result will have no address when the call
/// is at a legacy version: 0.1.0/0.2.0 results carry only ip4/ip6, so the
/// result could not be printed. Plugins that work without IPAM
/// (host-device, macvlan) check this before they make anything.
pub fn require_printable(version: Version, has_addresses: bool) -> Result<(), Error> {
    if has_addresses || !version.is_legacy() {
        return Ok(());
    }
    Err(Error::new(code::INCOMPATIBLE_VERSION, "cannot convert: no valid IP addresses")
        .with_details(format!("cniVersion {version} results carry only ip4/ip6; without \"ipam\" there is no address")))
}

/// Pretty-prints with a 4-space indent, the reference's format.
pub fn pretty(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser).expect("a Value always serializes");
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dual() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface { name: "cni0".into(), mac: "aa:bb:cc:dd:ee:01".into(), ..Default::default() },
                Interface {
                    name: "eth0".into(),
                    mac: "aa:bb:cc:dd:ee:02".into(),
                    mtu: Some(1500),
                    sandbox: "/run/netns/c1".into(),
                    ..Default::default()
                },
            ],
            ips: vec![
                IpConfig {
                    interface: Some(1),
                    address: "10.88.0.2/24".parse().unwrap(),
                    gateway: Some("10.88.0.1".parse().unwrap()),
                },
                IpConfig {
                    interface: Some(1),
                    address: "fd00:88::2/64".parse().unwrap(),
                    gateway: Some("fd00:88::1".parse().unwrap()),
                },
            ],
            routes: vec![
                Route { priority: Some(5), ..Route::new("0.0.0.0/0".parse().unwrap(), None) },
                Route::new("::/0".parse().unwrap(), Some("fd00:88::1".parse().unwrap())),
            ],
            dns: Dns::default(),
        }
    }

    #[test]
    fn v110_keeps_everything() {
        let v = dual().to_value(Version::V110).unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["interfaces"][1]["mtu"], 1500);
        assert_eq!(v["routes"][0]["priority"], 5);
        assert!(v["ips"][0].get("version").is_none());
        assert_eq!(v["dns"], json!({}));
    }

    #[test]
    fn v100_drops_11_fields() {
        let v = dual().to_value(Version::V100).unwrap();
        assert!(v["interfaces"][1].get("mtu").is_none());
        assert!(v["routes"][0].get("priority").is_none());
        assert!(v["ips"][0].get("version").is_none());
        assert_eq!(v["ips"][1]["interface"], 1);
    }

    #[test]
    fn v04_v03_add_version_first() {
        for ver in [Version::V030, Version::V031, Version::V040] {
            let v = dual().to_value(ver).unwrap();
            assert_eq!(v["cniVersion"], ver.as_str());
            assert_eq!(v["ips"][0]["version"], "4");
            assert_eq!(v["ips"][1]["version"], "6");
            let s = dual().to_pretty(ver).unwrap();
            assert!(s.find("\"version\"").unwrap() < s.find("\"address\"").unwrap());
        }
    }

    #[test]
    fn legacy_splits_by_family() {
        for ver in [Version::V010, Version::V020] {
            let v = dual().to_value(ver).unwrap();
            assert_eq!(v["ip4"]["ip"], "10.88.0.2/24");
            assert_eq!(v["ip4"]["gateway"], "10.88.0.1");
            assert_eq!(v["ip4"]["routes"][0], json!({"dst": "0.0.0.0/0"}));
            assert_eq!(v["ip6"]["routes"][0], json!({"dst": "::/0", "gw": "fd00:88::1"}));
            assert!(v.get("interfaces").is_none());
        }
    }

    #[test]
    fn legacy_without_ips_is_an_error() {
        let r = CniResult {
            interfaces: vec![Interface { name: "eth0".into(), ..Default::default() }],
            ..Default::default()
        };
        let e = r.to_value(Version::V020).unwrap_err();
        assert_eq!(e.code, 1);
        assert!(e.msg.contains("no valid IP addresses"));
        assert!(r.to_value(Version::V040).is_ok());
    }

    #[test]
    fn legacy_only_first_ip_per_family_and_routes_need_an_ip() {
        let mut r = dual();
        r.ips.remove(1);
        r.ips.push(IpConfig { interface: Some(1), address: "10.88.0.3/24".parse().unwrap(), gateway: None });
        let v = r.to_value(Version::V020).unwrap();
        assert_eq!(v["ip4"]["ip"], "10.88.0.2/24");
        assert!(v.get("ip6").is_none());
    }

    #[test]
    fn round_trips_every_version() {
        for ver in crate::version::SUPPORTED.iter().map(|s| Version::parse(s).unwrap()) {
            let out = dual().to_value(ver).unwrap();
            let back = CniResult::parse(&out, ver).unwrap();
            if ver.is_legacy() {
                assert_eq!(back.ips.len(), 2);
                assert_eq!(back.ips[0].address, dual().ips[0].address);
                assert_eq!(back.routes.len(), 2);
                assert!(back.interfaces.is_empty());
            } else if ver < Version::V110 {
                let mut expect = dual();
                expect.interfaces[1].mtu = None;
                expect.routes[0].priority = None;
                assert_eq!(back, expect);
            } else {
                assert_eq!(back, dual());
            }
        }
    }

    #[test]
    fn parse_refuses_other_shape_family() {
        let legacy = dual().to_value(Version::V020).unwrap();
        assert!(CniResult::parse(&legacy, Version::V100).is_err());
        let modern = dual().to_value(Version::V040).unwrap();
        assert!(CniResult::parse(&modern, Version::V100).is_ok());
        assert!(CniResult::parse(&json!({"ips": [{"address": "nonsense"}]}), Version::V100).is_err());
    }

    #[test]
    fn pretty_has_four_space_indent_and_no_newline() {
        let s = dual().to_pretty(Version::V100).unwrap();
        assert!(s.starts_with("{\n    \"cniVersion\": \"1.0.0\",\n    \"interfaces\""));
        assert!(!s.ends_with('\n'));
    }

    #[test]
    fn container_ips_follow_the_interface_index() {
        let r = dual();
        assert_eq!(r.container_ips("eth0").len(), 2);
        assert_eq!(r.container_ips("eth1").len(), 0);
        let ipam_only = CniResult { ips: r.ips.clone(), ..Default::default() };
        assert_eq!(ipam_only.container_ips("eth0").len(), 2);
    }

    #[test]
    fn a_lease_taken_by_a_one_interface_result_points_at_it() {
        let lease = CniResult { interfaces: Vec::new(), ..dual() };
        let mut r = CniResult::container_only("net1", "aa:bb:cc:dd:ee:03".into(), "/run/netns/c2".into(), None);
        r.take_lease(&lease, 0);
        assert_eq!(r.interfaces.len(), 1);
        assert_eq!(r.container_ips("net1").len(), 2);
        assert!(r.ips.iter().all(|ip| ip.interface == Some(0)));
        assert_eq!(r.routes, lease.routes);
        assert_eq!(r.to_value(Version::V020).unwrap()["ip4"]["ip"], "10.88.0.2/24");
    }

    #[test]
    fn no_address_is_refused_only_at_a_legacy_version() {
        assert_eq!(require_printable(Version::V020, false).unwrap_err().code, code::INCOMPATIBLE_VERSION);
        assert!(require_printable(Version::V020, true).is_ok());
        assert!(require_printable(Version::V040, false).is_ok());
        let empty = CniResult::container_only("net1", String::new(), String::new(), None);
        assert!(empty.to_value(Version::V020).is_err(), "what require_printable spares the caller");
    }
}
