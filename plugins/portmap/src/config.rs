//! The portmap options as the reference plugin reads them, and the
//! `portMappings` capability turned into checked mappings. Every bad value
//! is refused here (code 7, naming the field) before anything is touched.

use crate::conditions::{self, Condition};
use cni::config::PortMapping;
use cni::{Context, Error};
use kernel::nft::{IpFamily, Value};
use serde::Deserialize;
use std::net::IpAddr;

/// The raw options; numbers are signed so a bad value gets our message.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Raw {
    snat: Option<bool>,
    #[serde(rename = "masqAll")]
    masq_all: bool,
    #[serde(rename = "markMasqBit")]
    mark_masq_bit: Option<i64>,
    #[serde(rename = "externalSetMarkChain")]
    external_set_mark_chain: Option<String>,
    #[serde(rename = "conditionsV4")]
    conditions_v4: Option<Vec<String>>,
    #[serde(rename = "conditionsV6")]
    conditions_v6: Option<Vec<String>>,
    backend: Option<String>,
}

/// Validated options for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortmapConf {
    /// Masquerade hairpin and localhost connections (reference default: true).
    pub snat: bool,
    /// Masquerade every source reaching a mapped port, not only the
    /// container's own network (macvlan/ipvlan setups need it).
    pub masq_all: bool,
    /// Extra matches for IPv4 mappings of this attachment.
    pub conditions_v4: Vec<Condition>,
    /// Extra matches for IPv6 mappings of this attachment.
    pub conditions_v6: Vec<Condition>,
}

impl PortmapConf {
    /// The conditions for one IP version.
    pub fn conditions(&self, family: IpFamily) -> &[Condition] {
        match family {
            IpFamily::V4 => &self.conditions_v4,
            IpFamily::V6 => &self.conditions_v6,
        }
    }
}

/// Reads and checks the plugin's own options.
pub fn load(ctx: &Context) -> Result<PortmapConf, Error> {
    let raw: Raw = ctx.config()?;
    validate(raw)
}

fn validate(raw: Raw) -> Result<PortmapConf, Error> {
    match raw.backend.as_deref() {
        None | Some("") | Some("nftables") | Some("iptables") => {}
        Some(other) => {
            return Err(Error::invalid_config(format!(
                "backend: {other:?} is not a portmap backend (\"nftables\" or \"iptables\"; this plugin always uses nftables)"
            )))
        }
    }
    if let Some(bit) = raw.mark_masq_bit {
        if !(0..=31).contains(&bit) {
            return Err(Error::invalid_config(format!("markMasqBit: {bit} is out of range (0-31)")));
        }
    }
    if raw.mark_masq_bit.is_some() && raw.external_set_mark_chain.is_some() {
        return Err(Error::invalid_config("markMasqBit and externalSetMarkChain cannot be used together"));
    }
    let iptables_only = raw.mark_masq_bit.is_some() || raw.external_set_mark_chain.is_some();
    if iptables_only && raw.backend.as_deref() == Some("nftables") {
        return Err(Error::invalid_config(
            "markMasqBit and externalSetMarkChain apply to the iptables backend only, and backend is \"nftables\"",
        ));
    }
    if iptables_only {
        // The reference uses them to mark packets for an iptables
        // masquerade chain; our nftables masquerade needs no mark.
        log::info!("portmap: markMasqBit/externalSetMarkChain are iptables options; nftables needs no mark, ignored");
    }
    if raw.backend.as_deref() == Some("iptables") {
        log::info!("portmap: backend \"iptables\" requested; this plugin implements the mappings with nftables");
    }
    let conditions_v4 = conditions::parse("conditionsV4", IpFamily::V4, raw.conditions_v4.as_deref().unwrap_or(&[]))?;
    let conditions_v6 = conditions::parse("conditionsV6", IpFamily::V6, raw.conditions_v6.as_deref().unwrap_or(&[]))?;
    Ok(PortmapConf { snat: raw.snat.unwrap_or(true), masq_all: raw.masq_all, conditions_v4, conditions_v6 })
}

/// Which host addresses a mapping answers on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostIp {
    /// No `hostIP`: every address of both families.
    Any,
    /// `0.0.0.0` or `::`: every address of that family only.
    AnyOf(IpFamily),
    /// One address.
    Addr(IpAddr),
}

impl HostIp {
    /// Whether the mapping applies to containers addresses of `family`
    /// (the reference skips a mapping whose `hostIP` is of the other family).
    pub fn applies_to(self, family: IpFamily) -> bool {
        match self {
            HostIp::Any => true,
            HostIp::AnyOf(f) => f == family,
            HostIp::Addr(a) => IpFamily::of(&a) == family,
        }
    }
}

/// One checked `portMappings` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mapping {
    /// `tcp`, `udp` or `sctp` as an nftables value.
    pub proto: u8,
    /// Where on the host.
    pub host_ip: HostIp,
    /// Port on the host.
    pub host_port: u16,
    /// Port in the container.
    pub container_port: u16,
}

impl Mapping {
    /// The protocol as an nftables value.
    pub fn proto_value(&self) -> Value {
        Value::Proto(self.proto)
    }
}

fn port(i: usize, field: &str, v: i64) -> Result<u16, Error> {
    u16::try_from(v).ok().filter(|p| *p != 0).ok_or_else(|| {
        Error::invalid_config(format!("runtimeConfig.portMappings[{i}].{field}: {v} is not a port number (1-65535)"))
    })
}

/// The `portMappings` capability, checked.
pub fn mappings(ctx: &Context) -> Result<Vec<Mapping>, Error> {
    check_mappings(&ctx.conf.runtime_config()?.port_mappings)
}

/// Checks every entry; identical duplicates collapse.
fn check_mappings(list: &[PortMapping]) -> Result<Vec<Mapping>, Error> {
    let mut out: Vec<Mapping> = Vec::new();
    for (i, pm) in list.iter().enumerate() {
        let host_port = port(i, "hostPort", pm.host_port)?;
        let container_port = port(i, "containerPort", pm.container_port)?;
        let proto = match pm.protocol.to_ascii_lowercase().as_str() {
            "" | "tcp" => 6,
            "udp" => 17,
            "sctp" => 132,
            other => {
                return Err(Error::invalid_config(format!(
                    "runtimeConfig.portMappings[{i}].protocol: {other:?} is not a protocol portmap knows (tcp, udp or sctp)"
                )))
            }
        };
        let host_ip = match pm.host_ip.trim() {
            "" => HostIp::Any,
            s => match s.parse::<IpAddr>() {
                Ok(a) if a.is_unspecified() => HostIp::AnyOf(IpFamily::of(&a)),
                Ok(a) => HostIp::Addr(a.to_canonical()),
                Err(_) => {
                    return Err(Error::invalid_config(format!(
                        "runtimeConfig.portMappings[{i}].hostIP: {s:?} is not an IP address"
                    )))
                }
            },
        };
        let m = Mapping { proto, host_ip, host_port, container_port };
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: serde_json::Value) -> Result<PortmapConf, Error> {
        validate(cni::gojson::from_value(&v).unwrap())
    }

    #[test]
    fn defaults_follow_the_reference() {
        let c = raw(serde_json::json!({})).unwrap();
        assert!(c.snat);
        assert!(!c.masq_all);
        assert!(!raw(serde_json::json!({"snat": false})).unwrap().snat);
    }

    #[test]
    fn iptables_options_are_checked_then_ignored() {
        assert!(raw(serde_json::json!({"markMasqBit": 13})).is_ok());
        assert!(raw(serde_json::json!({"externalSetMarkChain": "KUBE-MARK-MASQ"})).is_ok());
        let e = raw(serde_json::json!({"markMasqBit": 32})).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("markMasqBit"), "{}", e.msg);
        let e = raw(serde_json::json!({"markMasqBit": 1, "externalSetMarkChain": "X"})).unwrap_err();
        assert!(e.msg.contains("externalSetMarkChain"), "{}", e.msg);
        assert!(raw(serde_json::json!({"markMasqBit": 1, "backend": "nftables"})).is_err());
        assert!(raw(serde_json::json!({"backend": "ebpf"})).is_err());
        assert!(raw(serde_json::json!({"backend": "iptables"})).is_ok());
    }

    fn pm(h: i64, c: i64, proto: &str, ip: &str) -> PortMapping {
        PortMapping { host_port: h, container_port: c, protocol: proto.into(), host_ip: ip.into() }
    }

    #[test]
    fn mappings_are_checked_and_name_the_field() {
        let ok =
            check_mappings(&[pm(8080, 80, "TCP", ""), pm(8080, 80, "tcp", ""), pm(53, 53, "udp", "0.0.0.0")]).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].host_ip, HostIp::AnyOf(IpFamily::V4));
        let mapped = check_mappings(&[pm(1, 1, "", "::ffff:10.0.0.1")]).unwrap();
        assert_eq!(mapped[0].proto, 6);
        assert_eq!(mapped[0].host_ip, HostIp::Addr("10.0.0.1".parse().unwrap()));
        for (bad, field) in [
            (pm(0, 80, "tcp", ""), "hostPort"),
            (pm(65536, 80, "tcp", ""), "hostPort"),
            (pm(80, -1, "tcp", ""), "containerPort"),
            (pm(80, 80, "icmp", ""), "protocol"),
            (pm(80, 80, "tcp", "not-an-ip"), "hostIP"),
        ] {
            let e = check_mappings(&[pm(1, 1, "udp", ""), bad]).unwrap_err();
            assert_eq!(e.code, 7);
            assert!(e.msg.contains(&format!("portMappings[1].{field}")), "{}", e.msg);
        }
    }

    #[test]
    fn host_ip_families() {
        assert!(HostIp::Any.applies_to(IpFamily::V6));
        assert!(!HostIp::AnyOf(IpFamily::V4).applies_to(IpFamily::V6));
        assert!(HostIp::Addr("fd00::1".parse().unwrap()).applies_to(IpFamily::V6));
        assert!(!HostIp::Addr("10.0.0.1".parse().unwrap()).applies_to(IpFamily::V6));
    }

    /// Go's decoder matches keys in any case; so do we.
    #[test]
    fn any_recasing_of_keys_decodes_the_same() {
        let full = serde_json::json!({
            "snat": false, "masqAll": true, "markMasqBit": 13,
            "conditionsV4": ["ip saddr 10.0.0.0/8"], "conditionsV6": ["ip6 saddr fd00::/8"], "backend": "iptables"
        });
        let want = format!("{:?}", raw(full.clone()).unwrap());
        for seed in 0..64 {
            let folded = cni::gojson::refold_keys(&full, seed, &[]);
            assert_eq!(format!("{:?}", raw(folded.clone()).unwrap()), want, "{folded}");
        }
    }
}
