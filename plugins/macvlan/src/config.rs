//! The macvlan options of a network config, read as the reference reads
//! them, and checked before anything touches the kernel. Every field is
//! decoded on its own so an error names the field it is about.

use cni::error::code;
use cni::{Context, Error};
use kernel::netlink::{mac_to_string, parse_mac, Mac, MacvlanMode};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The options of one macvlan attachment, validated; the master is only a
/// name here (resolved against the kernel in [`crate::master`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacvlanConf {
    /// `master`: the parent link; empty means the default route's interface.
    pub master: String,
    /// `mode`: how the children of one master share it (`bridge` by default).
    pub mode: MacvlanMode,
    /// `mtu`: `None` (0 or absent) keeps the master's MTU.
    pub mtu: Option<u32>,
    /// The MAC to give the interface, after the precedence rules; random when `None`.
    pub mac: Option<Mac>,
    /// `linkInContainer`: the master lives in the container's namespace.
    pub link_in_container: bool,
    /// `bcqueuelen`: broadcast queue length; the kernel's when `None`.
    pub bcqueuelen: Option<u32>,
    /// `enabledad`: run IPv6 DAD and wait for it (off: addresses usable at once).
    pub enable_dad: bool,
}

/// Decodes `key` of the config; absent or `null` gives the default, a value
/// of the wrong type is code 7 naming the key.
fn field<T: DeserializeOwned + Default>(raw: &Value, key: &str) -> Result<T, Error> {
    match cni::gojson::get(raw, key) {
        None | Some(Value::Null) => Ok(T::default()),
        Some(v) => cni::gojson::from_value(v)
            .map_err(|e| Error::invalid_config(format!("invalid macvlan config: field {key:?} = {v}: {e}"))),
    }
}

/// Parses a MAC from `source` (a config key or `CNI_ARGS MAC`); it must be a
/// unicast address, or the kernel refuses it with a vaguer message.
fn mac_from(source: &str, s: &str, err: fn(String) -> Error) -> Result<Mac, Error> {
    let mac = parse_mac(s)
        .ok_or_else(|| err(format!("invalid MAC address {s:?} in {source}: expected aa:bb:cc:dd:ee:ff")))?;
    if mac[0] & 1 == 1 {
        return Err(err(format!(
            "invalid MAC address {} in {source}: a multicast address can't be an interface address",
            mac_to_string(&mac)
        )));
    }
    Ok(mac)
}

impl MacvlanConf {
    /// Reads and validates the options of `ctx` (ADD and CHECK; DEL needs none).
    /// MAC precedence, as the reference: `runtimeConfig.mac` > `args.cni.mac`
    /// > `CNI_ARGS` `MAC` > the config's own `mac`.
    pub fn load(ctx: &Context) -> Result<MacvlanConf, Error> {
        let raw = &ctx.raw;
        let master: String = field(raw, "master")?;
        if !master.is_empty() {
            cni::validate::config_interface_name("master", &master)?;
        }
        let mode_s: String = field(raw, "mode")?;
        let mode = mode_s.parse::<MacvlanMode>().map_err(|_| {
            Error::invalid_config(format!("invalid macvlan config: unknown mode {mode_s:?} (field \"mode\")"))
                .with_details("expected one of bridge, private, vepa, passthru, source")
        })?;
        let mtu: i64 = field(raw, "mtu")?;
        let mtu = match mtu {
            0 => None,
            m if !(0..=i64::from(u32::MAX)).contains(&m) => {
                return Err(Error::invalid_config(format!(
                    "invalid macvlan config: invalid MTU {m} (field \"mtu\"), must be [0, master MTU]"
                )))
            }
            m => Some(m as u32),
        };

        let cfg_mac: String = field(raw, "mac")?;
        let mac = if let Some((src, text)) = ctx.requested_mac()? {
            let err = if src == "CNI_ARGS MAC" { Error::invalid_env } else { Error::invalid_config };
            Some(mac_from(src, &text, err)?)
        } else if !cfg_mac.is_empty() {
            Some(mac_from("field \"mac\"", &cfg_mac, Error::invalid_config)?)
        } else {
            None
        };

        Ok(MacvlanConf {
            master,
            mode,
            mtu,
            mac,
            link_in_container: field(raw, "linkInContainer")?,
            bcqueuelen: field(raw, "bcqueuelen")?,
            enable_dad: field(raw, "enabledad")?,
        })
    }

    /// Checks `mtu` against the master's MTU (code 7 naming both).
    pub fn check_mtu(&self, master: &str, master_mtu: u32) -> Result<(), Error> {
        match self.mtu {
            Some(m) if m > master_mtu => Err(Error::new(
                code::INVALID_CONFIG,
                format!(
                    "invalid macvlan config: invalid MTU {m} (field \"mtu\"), must be [0, master MTU({master_mtu})]"
                ),
            )
            .with_details(format!("master {master:?} has MTU {master_mtu}; a macvlan can't be larger"))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::skel::Command;

    fn ctx(conf: &str, cni_args: &str) -> Context {
        cni::testing::context(Command::Add, conf, &[("CNI_ARGS", cni_args)])
    }

    fn load(extra: &str, cni_args: &str) -> Result<MacvlanConf, Error> {
        MacvlanConf::load(&ctx(&format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"macvlan"{extra}}}"#), cni_args))
    }

    #[test]
    fn defaults() {
        let c = load("", "").unwrap();
        assert_eq!(c.master, "");
        assert_eq!(c.mode, MacvlanMode::Bridge);
        assert_eq!((c.mtu, c.mac, c.bcqueuelen), (None, None, None));
        assert!(!c.link_in_container && !c.enable_dad);
    }

    #[test]
    fn every_field() {
        let c = load(
            r#","master":"m0","mode":"private","mtu":1400,"linkInContainer":true,"bcqueuelen":100,"enabledad":true"#,
            "",
        )
        .unwrap();
        assert_eq!(c.master, "m0");
        assert_eq!(c.mode, MacvlanMode::Private);
        assert_eq!((c.mtu, c.bcqueuelen), (Some(1400), Some(100)));
        assert!(c.link_in_container && c.enable_dad);
        for m in ["vepa", "passthru", "source", "bridge", ""] {
            assert_eq!(
                load(&format!(r#","mode":"{m}""#), "").unwrap().mode.to_string(),
                if m.is_empty() { "bridge" } else { m }
            );
        }
    }

    #[test]
    fn bad_fields_are_code_7_naming_the_field() {
        for (extra, key) in [
            (r#","mode":"bogus""#, "mode"),
            (r#","mtu":-1"#, "mtu"),
            (r#","mtu":"big""#, "mtu"),
            (r#","master":"a/b""#, "master"),
            (r#","master":"0123456789abcdef""#, "master"),
            (r#","bcqueuelen":-5"#, "bcqueuelen"),
            (r#","linkInContainer":"yes""#, "linkInContainer"),
            (r#","mac":"nope""#, "mac"),
        ] {
            let e = load(extra, "").unwrap_err();
            assert_eq!(e.code, 7, "{extra}: {e}");
            assert!(e.msg.contains(&format!("\"{key}\"")), "{extra}: {e}");
        }
    }

    #[test]
    fn mac_precedence() {
        let all = r#","mac":"02:00:00:00:00:04","args":{"cni":{"mac":"02:00:00:00:00:02"}},"runtimeConfig":{"mac":"02:00:00:00:00:01"}"#;
        let mac = |extra: &str, env: &str| load(extra, env).unwrap().mac.map(|m| m[5]);
        assert_eq!(mac(all, "MAC=02:00:00:00:00:03"), Some(1));
        let no_rt = r#","mac":"02:00:00:00:00:04","args":{"cni":{"mac":"02:00:00:00:00:02"}}"#;
        assert_eq!(mac(no_rt, "MAC=02:00:00:00:00:03"), Some(2));
        assert_eq!(mac(r#","mac":"02:00:00:00:00:04""#, "MAC=02:00:00:00:00:03"), Some(3));
        assert_eq!(mac(r#","mac":"02:00:00:00:00:04""#, ""), Some(4));
        assert_eq!(mac("", "IgnoreUnknown=1"), None);
    }

    #[test]
    fn bad_macs() {
        let e = load("", "MAC=zz").unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.msg.contains("CNI_ARGS MAC"), "{e}");
        let e = load(r#","runtimeConfig":{"mac":"01:00:5e:00:00:01"}"#, "").unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("multicast"), "{e}");
    }

    #[test]
    fn mtu_against_master() {
        let c = load(r#","mtu":9000"#, "").unwrap();
        let e = c.check_mtu("m0", 1500).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("\"mtu\"") && e.msg.contains("1500"), "{e}");
        load(r#","mtu":1500"#, "").unwrap().check_mtu("m0", 1500).unwrap();
        load("", "").unwrap().check_mtu("m0", 1500).unwrap();
    }

    /// Go's decoder matches keys in any case; so do we.
    #[test]
    fn any_recasing_of_keys_decodes_the_same() {
        let full = serde_json::json!({
            "cniVersion": "1.0.0", "name": "n", "type": "macvlan", "master": "vethm", "mode": "private",
            "mtu": 1400, "mac": "02:00:00:00:00:05", "linkInContainer": false, "bcqueuelen": 100, "enabledad": true
        });
        let show = |v: &serde_json::Value| format!("{:?}", MacvlanConf::load(&ctx(&v.to_string(), "")).unwrap());
        let want = show(&full);
        for seed in 0..64 {
            let folded = cni::gojson::refold_keys(&full, seed, &[]);
            assert_eq!(show(&folded), want, "{folded}");
        }
    }
}
