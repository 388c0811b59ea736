//! The host-device options, as the reference reads them (`device`,
//! `hwaddr`, `kernelpath`, `pciBusID`, and `runtimeConfig.deviceID`, which
//! takes `pciBusID`'s place), checked before the host is touched.

use cni::{Context, Error};
use kernel::netlink::{parse_mac, Mac};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct RuntimeConfig {
    #[serde(rename = "deviceID")]
    device_id: Option<String>,
}

/// The raw options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Raw {
    device: Option<String>,
    hwaddr: Option<String>,
    kernelpath: Option<String>,
    #[serde(rename = "pciBusID")]
    pci_bus_id: Option<String>,
    #[serde(rename = "runtimeConfig")]
    runtime_config: RuntimeConfig,
}

/// How the config names the host device; several may be given when they
/// name the same one (ADD checks that).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// `device`: the interface name in the host.
    pub device: Option<String>,
    /// `hwaddr`: its MAC.
    pub hwaddr: Option<Mac>,
    /// `kernelpath`: its sysfs device directory (`/sys/devices/...`).
    pub kernelpath: Option<String>,
    /// `pciBusID` (or `runtimeConfig.deviceID`): its PCI address.
    pub pci: Option<String>,
}

fn bad(field: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid_config(format!("host-device: invalid {field:?}: {why}"))
}

fn given(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// Reads and validates the options.
pub fn load(ctx: &Context) -> Result<Selector, Error> {
    let raw: Raw = ctx.config()?;
    let device = given(raw.device);
    if let Some(d) = &device {
        cni::validate::config_interface_name("device", d)?;
    }
    let hwaddr = match given(raw.hwaddr) {
        None => None,
        Some(h) => Some(parse_mac(&h).ok_or_else(|| bad("hwaddr", format!("{h:?} is not a MAC address")))?),
    };
    let kernelpath = given(raw.kernelpath);
    if let Some(k) = &kernelpath {
        let p = std::path::Path::new(k);
        if !k.starts_with("/sys/devices/") || p.components().any(|c| c == std::path::Component::ParentDir) {
            return Err(bad("kernelpath", format!("{k:?} must be absolute and begin with /sys/devices/")));
        }
    }
    // The runtime's device (SR-IOV device plugins) overrides the config's.
    let (pci_field, pci) = match given(raw.runtime_config.device_id) {
        Some(id) => ("runtimeConfig.deviceID", Some(id)),
        None => ("pciBusID", given(raw.pci_bus_id)),
    };
    if let Some(p) = &pci {
        if p.contains('/') || p == "." || p == ".." {
            return Err(bad(pci_field, format!("{p:?} is not a PCI address")));
        }
    }
    let sel = Selector { device, hwaddr, kernelpath, pci };
    if sel == Selector::default() {
        return Err(Error::invalid_config(
            "host-device: specify either \"device\", \"hwaddr\", \"kernelpath\" or \"pciBusID\"",
        ));
    }
    Ok(sel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn ctx(extra: Value) -> Context {
        let conf = cni::testing::conf("host-device", extra).to_string();
        cni::testing::context(cni::Command::Add, &conf, &[("CNI_IFNAME", "eth1")])
    }

    #[test]
    fn options() {
        let s = load(&ctx(json!({"device": "ens5", "hwaddr": "0A:58:0a:00:00:01"}))).unwrap();
        assert_eq!(s.device.as_deref(), Some("ens5"));
        assert_eq!(s.hwaddr, Some([0x0a, 0x58, 0x0a, 0, 0, 1]));
        let s = load(&ctx(json!({"pciBusID": "0000:00:05.0", "runtimeConfig": {"deviceID": "0000:3b:02.1"}}))).unwrap();
        assert_eq!(s.pci.as_deref(), Some("0000:3b:02.1"));
        let e = load(&ctx(json!({}))).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("\"device\", \"hwaddr\", \"kernelpath\" or \"pciBusID\""), "{}", e.msg);
        assert!(load(&ctx(json!({"hwaddr": "zz"}))).unwrap_err().msg.contains("\"hwaddr\""));
        assert!(load(&ctx(json!({"kernelpath": "/tmp/x"}))).unwrap_err().msg.contains("\"kernelpath\""));
        assert!(load(&ctx(json!({"kernelpath": "/sys/devices/../x"}))).unwrap_err().msg.contains("\"kernelpath\""));
        assert!(load(&ctx(json!({"pciBusID": "../x"}))).unwrap_err().msg.contains("\"pciBusID\""));
        assert_eq!(load(&ctx(json!({"device": "a/b"}))).unwrap_err().code, 7);
    }
}
