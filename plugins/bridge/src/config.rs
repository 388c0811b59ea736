//! The bridge plugin's options, as the reference plugin reads them, and
//! their validation: every bad value is refused here, before the host is
//! touched.

use cni::{Context, Error};
use kernel::netlink::{parse_mac, Mac};
use serde::Deserialize;

/// One `vlanTrunk` entry: a single id or a `minID`..`maxID` range.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
struct TrunkEntry {
    /// A single VLAN id.
    #[serde(default)]
    pub id: Option<i64>,
    /// First id of a range.
    #[serde(rename = "minID", default)]
    pub min_id: Option<i64>,
    /// Last id of a range.
    #[serde(rename = "maxID", default)]
    pub max_id: Option<i64>,
}

/// The raw options; numbers are signed so a bad value gets our message.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Raw {
    bridge: Option<String>,
    #[serde(rename = "isGateway")]
    is_gateway: bool,
    #[serde(rename = "isDefaultGateway")]
    is_default_gateway: bool,
    #[serde(rename = "forceAddress")]
    force_address: bool,
    #[serde(rename = "ipMasq")]
    ip_masq: bool,
    #[serde(rename = "ipMasqBackend")]
    ip_masq_backend: Option<String>,
    mtu: Option<i64>,
    #[serde(rename = "hairpinMode")]
    hairpin_mode: bool,
    #[serde(rename = "promiscMode")]
    promisc_mode: bool,
    vlan: Option<i64>,
    #[serde(rename = "vlanTrunk")]
    vlan_trunk: Vec<TrunkEntry>,
    #[serde(rename = "preserveDefaultVlan")]
    preserve_default_vlan: bool,
    enabledad: bool,
    macspoofchk: bool,
    #[serde(rename = "disableContainerInterface")]
    disable_container_interface: bool,
    #[serde(rename = "portIsolation")]
    port_isolation: bool,
    isolation: bool,
}

/// Validated options for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConf {
    /// The bridge's name (default `cni0`).
    pub bridge: String,
    /// Put the gateway address on the bridge and forward.
    pub is_gateway: bool,
    /// Also give the container a default route via the gateway.
    pub is_default_gateway: bool,
    /// Replace a different address of the same family on the bridge.
    pub force_address: bool,
    /// Masquerade traffic leaving the network.
    pub ip_masq: bool,
    /// MTU of the bridge and both veth ends.
    pub mtu: Option<u32>,
    /// Hairpin on the host port.
    pub hairpin_mode: bool,
    /// Promiscuous bridge.
    pub promisc_mode: bool,
    /// Access VLAN of the port (0 = none).
    pub vlan: u16,
    /// Tagged VLAN ids allowed on the port.
    pub vlan_trunk: Vec<u16>,
    /// Keep VLAN 1 on the port.
    pub preserve_default_vlan: bool,
    /// IPv6 duplicate address detection in the container.
    pub enabledad: bool,
    /// Drop frames whose source MAC is not the container's.
    pub macspoofchk: bool,
    /// Leave the container interface down (L2-only, no IPAM).
    pub disable_container_interface: bool,
    /// Ports of this bridge cannot talk to each other.
    pub port_isolation: bool,
    /// Docker-style isolation from other isolated bridge networks.
    pub isolation: bool,
    /// The container MAC requested through capability, args or CNI_ARGS.
    pub mac: Option<Mac>,
}

impl BridgeConf {
    /// Whether the config needs the bridge's VLAN filtering.
    pub fn uses_vlans(&self) -> bool {
        self.vlan != 0 || !self.vlan_trunk.is_empty()
    }
}

fn bad(field: &str, msg: impl std::fmt::Display) -> Error {
    Error::invalid_config(format!("bridge: field {field:?}: {msg}"))
}

/// Expands and checks `vlanTrunk`: ids 1–4094, ranges complete and in
/// order, no id given twice.
fn trunk_ids(entries: &[TrunkEntry]) -> Result<Vec<u16>, Error> {
    let mut ids: Vec<u16> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let field = format!("vlanTrunk[{i}]");
        let (lo, hi) = match (e.id, e.min_id, e.max_id) {
            (Some(id), None, None) => (id, id),
            (None, Some(lo), Some(hi)) => (lo, hi),
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(bad(&field, "minID and maxID must be given together"))
            }
            (Some(_), _, _) => return Err(bad(&field, "give either id or minID/maxID")),
            (None, None, None) => return Err(bad(&field, "needs id or minID/maxID")),
        };
        for v in [lo, hi] {
            if !(1..=4094).contains(&v) {
                return Err(bad(&field, format!("VLAN id {v} is outside 1-4094")));
            }
        }
        if lo > hi {
            return Err(bad(&field, format!("minID {lo} is above maxID {hi}")));
        }
        for id in lo..=hi {
            let id = id as u16;
            if ids.contains(&id) {
                return Err(bad("vlanTrunk", format!("VLAN {id} is given twice (overlapping entries)")));
            }
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The container MAC: `runtimeConfig.mac` > `args.cni.mac` > `CNI_ARGS MAC`.
fn requested_mac(ctx: &Context) -> Result<Option<Mac>, Error> {
    let Some((field, text)) = ctx.requested_mac()? else { return Ok(None) };
    parse_mac(&text).map(Some).ok_or_else(|| bad(field, format!("{text:?} is not a MAC address")))
}

/// Reads and validates the options of this call.
pub fn load(ctx: &Context) -> Result<BridgeConf, Error> {
    ctx.args.check_known(&["IP", "MAC"])?;
    let raw: Raw = ctx.config()?;
    let bridge = raw.bridge.filter(|b| !b.is_empty()).unwrap_or_else(|| "cni0".into());
    cni::validate::config_interface_name("bridge", &bridge)?;
    let mtu = match raw.mtu {
        None | Some(0) => None,
        Some(m) if (68..=65535).contains(&m) => Some(m as u32),
        Some(m) => return Err(bad("mtu", format!("{m} is outside 68-65535"))),
    };
    let vlan = match raw.vlan {
        None => 0,
        Some(v) if (0..=4094).contains(&v) => v as u16,
        Some(v) => return Err(bad("vlan", format!("{v} is outside 0-4094"))),
    };
    let vlan_trunk = trunk_ids(&raw.vlan_trunk)?;
    if (raw.is_gateway || raw.is_default_gateway) && vlan != 0 {
        // The gateway lives on `<bridge>.<vlan>`, which must be a valid name.
        let gw = gateway_name(&bridge, vlan);
        if gw.len() > 15 {
            return Err(bad(
                "vlan",
                format!("with isGateway the gateway interface would be {gw:?}, longer than 15 characters; use a shorter bridge name"),
            ));
        }
    }
    if raw.hairpin_mode && raw.promisc_mode {
        return Err(bad("hairpinMode", "cannot be used together with promiscMode"));
    }
    if raw.disable_container_interface && ctx.conf.ipam_type()?.is_some() {
        return Err(bad(
            "disableContainerInterface",
            "cannot be used with an IPAM type: a down interface takes no address",
        ));
    }
    match raw.ip_masq_backend.as_deref() {
        None | Some("") | Some("iptables") | Some("nftables") => {}
        Some(other) => return Err(bad("ipMasqBackend", format!("{other:?} is not iptables or nftables"))),
    }
    Ok(BridgeConf {
        bridge,
        is_gateway: raw.is_gateway || raw.is_default_gateway,
        is_default_gateway: raw.is_default_gateway,
        force_address: raw.force_address,
        ip_masq: raw.ip_masq,
        mtu,
        hairpin_mode: raw.hairpin_mode,
        promisc_mode: raw.promisc_mode,
        vlan,
        vlan_trunk,
        preserve_default_vlan: raw.preserve_default_vlan,
        enabledad: raw.enabledad,
        macspoofchk: raw.macspoofchk,
        disable_container_interface: raw.disable_container_interface,
        port_isolation: raw.port_isolation,
        isolation: raw.isolation,
        mac: requested_mac(ctx)?,
    })
}

/// The gateway interface of access VLAN `vlan`: `<bridge>.<vlan>`, as the
/// reference names it (config checks it fits, vlan creates it).
pub fn gateway_name(bridge: &str, vlan: u16) -> String {
    format!("{bridge}.{vlan}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::skel::Command;
    use serde_json::json;

    fn ctx(conf: serde_json::Value, cni_args: &str) -> Context {
        let conf = cni::testing::conf("bridge", conf).to_string();
        cni::testing::context(Command::Add, &conf, &[("CNI_ARGS", cni_args)])
    }

    fn err(conf: serde_json::Value) -> String {
        let e = load(&ctx(conf, "")).unwrap_err();
        assert_eq!(e.code, 7, "{e:?}");
        e.msg
    }

    #[test]
    fn defaults() {
        let c = load(&ctx(json!({}), "")).unwrap();
        assert_eq!(c.bridge, "cni0");
        assert!(!c.is_gateway && !c.ip_masq && !c.isolation);
        assert_eq!(c.mtu, None);
        assert!(load(&ctx(json!({"isDefaultGateway": true}), "")).unwrap().is_gateway);
    }

    #[test]
    fn bad_values_name_the_field() {
        assert!(err(json!({"bridge": "0123456789abcdef"})).contains("bridge"));
        assert!(err(json!({"bridge": "a/b"})).contains("bridge"));
        assert!(err(json!({"mtu": 67})).contains("mtu"));
        assert!(err(json!({"mtu": 65536})).contains("mtu"));
        assert!(err(json!({"vlan": 4095})).contains("vlan"));
        assert!(err(json!({"vlan": -1})).contains("vlan"));
        assert!(err(json!({"hairpinMode": true, "promiscMode": true})).contains("hairpinMode"));
        assert!(err(json!({"disableContainerInterface": true, "ipam": {"type": "host-local"}})).contains("disable"));
        assert!(err(json!({"ipMasqBackend": "pf"})).contains("ipMasqBackend"));
        assert!(
            err(json!({"bridge": "bridge-1234567", "vlan": 4000, "isGateway": true})).contains("bridge-1234567.4000")
        );
        load(&ctx(json!({"bridge": "bridge-1234567", "vlan": 4000}), "")).unwrap();
        assert!(err(json!({"mtu": "big"})).contains("mtu"));
    }

    #[test]
    fn trunks() {
        let c = load(&ctx(json!({"vlanTrunk": [{"id": 5}, {"minID": 10, "maxID": 12}]}), "")).unwrap();
        assert_eq!(c.vlan_trunk, vec![5, 10, 11, 12]);
        assert!(c.uses_vlans());
        assert!(err(json!({"vlanTrunk": [{"minID": 10, "maxID": 12}, {"id": 11}]})).contains("twice"));
        assert!(err(json!({"vlanTrunk": [{"minID": 10}]})).contains("together"));
        assert!(err(json!({"vlanTrunk": [{"minID": 12, "maxID": 10}]})).contains("above"));
        assert!(err(json!({"vlanTrunk": [{"id": 0}]})).contains("1-4094"));
    }

    #[test]
    fn mac_precedence() {
        let c = load(&ctx(json!({}), "MAC=02:00:00:00:00:03")).unwrap();
        assert_eq!(c.mac, Some([2, 0, 0, 0, 0, 3]));
        let c = load(&ctx(json!({"args": {"cni": {"mac": "02:00:00:00:00:02"}}}), "MAC=02:00:00:00:00:03")).unwrap();
        assert_eq!(c.mac, Some([2, 0, 0, 0, 0, 2]));
        let c = load(&ctx(
            json!({"args": {"cni": {"mac": "02:00:00:00:00:02"}}, "runtimeConfig": {"mac": "02:00:00:00:00:01"}}),
            "",
        ))
        .unwrap();
        assert_eq!(c.mac, Some([2, 0, 0, 0, 0, 1]));
        assert!(load(&ctx(json!({}), "MAC=zz")).unwrap_err().msg.contains("MAC"));
    }

    /// Go's decoder matches keys in any case; so do we (any re-casing of
    /// every key decodes to the same options).
    #[test]
    fn any_recasing_of_keys_decodes_the_same() {
        let full = json!({
            "bridge": "br-x", "isGateway": true, "isDefaultGateway": true, "forceAddress": true,
            "ipMasq": true, "ipMasqBackend": "nftables", "mtu": 1400, "hairpinMode": false,
            "promiscMode": true, "enabledad": true, "macspoofchk": true, "portIsolation": true,
            "isolation": true, "args": {"cni": {"mac": "02:00:00:00:00:09"}}
        });
        let want = format!("{:?}", load(&ctx(full.clone(), "")).unwrap());
        for seed in 0..64 {
            let folded = cni::gojson::refold_keys(&full, seed, &[]);
            assert_eq!(format!("{:?}", load(&ctx(folded.clone(), "")).unwrap()), want, "{folded}");
        }
    }
}
