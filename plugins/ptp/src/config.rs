//! The ptp plugin's options, as the reference reads them (`ipMasq`,
//! `ipMasqBackend`, `mtu`, `ipam`, `dns`), validated before the host is
//! touched.

use cni::{Context, Error};
use serde::Deserialize;

/// The raw options; numbers are signed so a bad value gets our message.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Raw {
    #[serde(rename = "ipMasq")]
    ip_masq: bool,
    #[serde(rename = "ipMasqBackend")]
    ip_masq_backend: Option<String>,
    mtu: Option<i64>,
}

/// Validated options for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtpConf {
    /// Masquerade traffic leaving the container's subnets (always through
    /// nftables; `ipMasqBackend` is accepted as the reference ≥ 1.6 does).
    pub ip_masq: bool,
    /// MTU of both veth ends.
    pub mtu: Option<u32>,
}

fn bad(field: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid_config(format!("ptp: invalid {field:?}: {why}"))
}

/// Reads and validates the options.
pub fn load(ctx: &Context) -> Result<PtpConf, Error> {
    let raw: Raw = ctx.config()?;
    let mtu = match raw.mtu {
        None | Some(0) => None,
        Some(m) if (68..=65535).contains(&m) => Some(m as u32),
        Some(m) => return Err(bad("mtu", format!("{m} is outside 68-65535"))),
    };
    match raw.ip_masq_backend.as_deref() {
        None | Some("") | Some("iptables") | Some("nftables") => {}
        Some(other) => return Err(bad("ipMasqBackend", format!("{other:?} is not iptables or nftables"))),
    }
    Ok(PtpConf { ip_masq: raw.ip_masq || ctx.conf.ip_masq, mtu })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn ctx(mut extra: Value) -> Context {
        extra["ipam"] = json!({"type": "host-local"});
        cni::testing::context(cni::Command::Add, &cni::testing::conf("ptp", extra).to_string(), &[])
    }

    #[test]
    fn options() {
        let c = load(&ctx(json!({"ipMasq": true, "mtu": 1400, "ipMasqBackend": "nftables"}))).unwrap();
        assert_eq!(c, PtpConf { ip_masq: true, mtu: Some(1400) });
        assert_eq!(load(&ctx(json!({}))).unwrap(), PtpConf { ip_masq: false, mtu: None });
        assert!(load(&ctx(json!({"mtu": 20}))).unwrap_err().msg.contains("\"mtu\""));
        assert!(load(&ctx(json!({"ipMasqBackend": "pf"}))).unwrap_err().msg.contains("ipMasqBackend"));
        assert_eq!(load(&ctx(json!({"mtu": "x"}))).unwrap_err().code, 7);
    }
}
