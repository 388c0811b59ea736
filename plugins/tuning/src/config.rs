//! The tuning options, read and checked in full before anything changes:
//! a bad key, MAC or MTU is a clear error (code 7, or 4 for `CNI_ARGS`)
//! with nothing touched.
//!
//! Sources, lowest precedence first, as the reference merges them: the
//! config's own fields, `CNI_ARGS MAC=`, the `mac` capability
//! (`runtimeConfig.mac`), then `args.cni.*`. In sysctl names, `IFNAME`
//! stands for the container's interface name, as in the reference.

use cni::{Context, Error};
use kernel::netlink::{mac_to_string, parse_mac, Mac};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the previous values live when the config names no `dataDir`
/// (the reference's default, so operators find it where they expect).
pub const DEFAULT_DATA_DIR: &str = "/run/cni/tuning";

/// `CNI_ARGS` keys this plugin accepts without `IgnoreUnknown`: `MAC` is
/// ours, `IP` belongs to the IPAM plugin earlier in the same chain.
pub const KNOWN_ARGS: &[&str] = &["IP", "MAC"];

/// Smallest MTU accepted: the IPv4 minimum (and the kernel's `ETH_MIN_MTU`).
const MTU_MIN: u32 = 68;
/// Largest MTU accepted: the kernel's `ETH_MAX_MTU`.
const MTU_MAX: u32 = 65535;
/// Most sysctls one attachment may set (inputs are bounded).
const MAX_SYSCTLS: usize = 256;
/// Longest sysctl value accepted.
const MAX_SYSCTL_VALUE: usize = 4096;

/// The options, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TuningConf {
    /// `net.*` sysctls to set in the container namespace.
    pub sysctl: BTreeMap<String, String>,
    /// The MAC to give the interface.
    pub mac: Option<Mac>,
    /// The MTU to give the interface.
    pub mtu: Option<u32>,
    /// Turn promiscuous mode on (`false` leaves it alone, as the reference).
    pub promisc: bool,
    /// Turn all-multicast mode on or off.
    pub allmulti: Option<bool>,
    /// The transmit queue length.
    pub txqlen: Option<u32>,
    /// Where previous values are kept for DEL.
    pub data_dir: PathBuf,
}

impl TuningConf {
    /// Whether ADD changes anything on the link (sysctls aside).
    pub fn touches_link(&self) -> bool {
        self.mac.is_some() || self.mtu.is_some() || self.promisc || self.allmulti.is_some() || self.txqlen.is_some()
    }
}

/// Fields that may come from the config or from `args.cni`.
#[derive(Debug, Default, Deserialize)]
struct Options {
    #[serde(default)]
    sysctl: Option<BTreeMap<String, String>>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    mtu: Option<i64>,
    #[serde(default)]
    promisc: Option<bool>,
    #[serde(default)]
    allmulti: Option<bool>,
    #[serde(rename = "txQLen", default)]
    txqlen: Option<i64>,
}

/// The keys besides [`Options`]; decoded from the same object as those
/// (no `flatten`, which would bypass Go's key matching).
#[derive(Debug, Default, Deserialize)]
struct Raw {
    #[serde(rename = "dataDir", default)]
    data_dir: Option<String>,
    #[serde(default)]
    args: Option<RawArgs>,
}

#[derive(Debug, Default, Deserialize)]
struct RawArgs {
    #[serde(default)]
    cni: Option<Options>,
}

fn bad(msg: String) -> Error {
    Error::invalid_config(format!("tuning: {msg}"))
}

/// The state directory from `dataDir` (absolute) or the default. DEL uses
/// only this, so a config whose other options went bad can still clean up.
pub fn data_dir(ctx: &Context) -> Result<PathBuf, Error> {
    let dir = cni::gojson::get(&ctx.raw, "dataDir").and_then(|v| v.as_str()).unwrap_or_default();
    parse_data_dir(dir)
}

fn parse_data_dir(dir: &str) -> Result<PathBuf, Error> {
    if dir.is_empty() {
        return Ok(PathBuf::from(DEFAULT_DATA_DIR));
    }
    let p = PathBuf::from(dir);
    if !p.is_absolute() || dir.contains('\0') {
        return Err(bad(format!("field \"dataDir\" ({dir:?}) must be an absolute path")));
    }
    Ok(p)
}

/// Checks one sysctl key: a `net.` key in dotted form only. A `/` or an
/// empty component (`..`) could walk out of `/proc/sys/net`, so both are
/// refused outright, before the kernel crate's own path check.
fn check_sysctl_key(key: &str) -> Result<(), Error> {
    let why = if key.contains('/') {
        Some("contains '/': keys are dotted (net.ipv4.conf.eth0.rp_filter), never paths")
    } else if key.split('.').any(str::is_empty) {
        Some("has an empty component (\"..\", or a leading or trailing '.')")
    } else if !key.starts_with("net.") {
        Some("only network sysctls (\"net.*\") may be set, and only in the container's namespace")
    } else {
        None
    };
    if let Some(why) = why {
        return Err(bad(format!("invalid sysctl key {key:?}: {why}")));
    }
    kernel::sysctl::key_path(key).map_err(|e| bad(format!("invalid sysctl key {key:?}: {}", e.cause)))?;
    Ok(())
}

/// The token the reference replaces with the container's interface name
/// in sysctl names (`net.ipv4.conf.IFNAME.accept_redirects`).
const IFNAME_TOKEN: &str = "IFNAME";

/// Replaces every `IFNAME` in a checked key with `ifname`, as the
/// reference does. A dot inside the name is written as `/`, the
/// sysctl(8) escape in dotted keys, so `net1.5` stays one component; the
/// name itself was validated by skel (no `/`, not `.` or `..`).
fn with_ifname(key: &str, ifname: &str) -> Result<String, Error> {
    if !key.contains(IFNAME_TOKEN) {
        return Ok(key.to_string());
    }
    let out = key.replace(IFNAME_TOKEN, &ifname.replace('.', "/"));
    kernel::sysctl::key_path(&out)
        .map_err(|e| bad(format!("invalid sysctl key {key:?} for {ifname:?}: {}", e.cause)))?;
    Ok(out)
}

fn check_sysctl_value(key: &str, value: &str) -> Result<(), Error> {
    if value.len() > MAX_SYSCTL_VALUE || value.contains(['\n', '\0']) {
        return Err(bad(format!(
            "invalid value for sysctl {key:?}: must be one line of at most {MAX_SYSCTL_VALUE} bytes"
        )));
    }
    Ok(())
}

/// Parses a MAC the user gave; `from` names where it came from.
fn mac_from(from: &str, s: &str, err: fn(String) -> Error) -> Result<Mac, Error> {
    let mac = parse_mac(s).ok_or_else(|| err(format!("tuning: invalid MAC address {s:?} ({from})")))?;
    if mac[0] & 1 == 1 || mac == [0; 6] {
        return Err(err(format!(
            "tuning: invalid MAC address {s:?} ({from}): a unicast, non-zero Ethernet address is expected"
        )));
    }
    Ok(mac)
}

fn mtu_from(from: &str, v: i64) -> Result<Option<u32>, Error> {
    match v {
        0 => Ok(None),
        m if (i64::from(MTU_MIN)..=i64::from(MTU_MAX)).contains(&m) => Ok(Some(m as u32)),
        m => Err(bad(format!("MTU {m} ({from}) is out of range: expected {MTU_MIN} to {MTU_MAX}, or 0 for unchanged"))),
    }
}

fn txqlen_from(from: &str, v: i64) -> Result<u32, Error> {
    u32::try_from(v).map_err(|_| bad(format!("txQLen {v} ({from}) is out of range: expected 0 to {}", u32::MAX)))
}

/// Reads and validates every option; nothing is changed yet.
pub fn load(ctx: &Context) -> Result<TuningConf, Error> {
    let raw: Raw = cni::gojson::from_value(&ctx.raw).map_err(|e| bad(format!("invalid config: {e}")))?;
    let own: Options = cni::gojson::from_value(&ctx.raw).map_err(|e| bad(format!("invalid config: {e}")))?;
    let args = raw.args.and_then(|a| a.cni).unwrap_or_default();
    let mut conf =
        TuningConf { data_dir: parse_data_dir(raw.data_dir.as_deref().unwrap_or_default())?, ..Default::default() };

    let mut sysctl = own.sysctl.unwrap_or_default();
    sysctl.extend(args.sysctl.unwrap_or_default());
    if sysctl.len() > MAX_SYSCTLS {
        return Err(bad(format!("{} sysctls given, at most {MAX_SYSCTLS} are accepted", sysctl.len())));
    }
    for (k, v) in &sysctl {
        check_sysctl_key(k)?;
        check_sysctl_value(k, v)?;
    }
    conf.sysctl =
        sysctl.into_iter().map(|(k, v)| Ok((with_ifname(&k, &ctx.ifname)?, v))).collect::<Result<_, Error>>()?;

    // MAC: config < CNI_ARGS < runtimeConfig < args.cni, as the reference.
    let mut mac = None;
    if let Some(m) = own.mac.as_deref().filter(|m| !m.is_empty()) {
        mac = Some(mac_from("field \"mac\"", m, Error::invalid_config)?);
    }
    if let Some(m) = ctx.args.get("MAC").filter(|m| !m.is_empty()) {
        mac = Some(mac_from("CNI_ARGS MAC", m, Error::invalid_env)?);
    }
    if let Some(m) = ctx.conf.runtime_config()?.mac.filter(|m| !m.is_empty()) {
        mac = Some(mac_from("runtimeConfig.mac", &m, Error::invalid_config)?);
    }
    if let Some(m) = args.mac.as_deref().filter(|m| !m.is_empty()) {
        mac = Some(mac_from("args.cni.mac", m, Error::invalid_config)?);
    }
    conf.mac = mac;

    conf.mtu = match (args.mtu, own.mtu) {
        (Some(v), _) => mtu_from("args.cni.mtu", v)?,
        (None, Some(v)) => mtu_from("field \"mtu\"", v)?,
        (None, None) => None,
    };
    conf.txqlen = match (args.txqlen, own.txqlen) {
        (Some(v), _) => Some(txqlen_from("args.cni.txQLen", v)?),
        (None, Some(v)) => Some(txqlen_from("field \"txQLen\"", v)?),
        (None, None) => None,
    };
    conf.promisc = args.promisc.or(own.promisc).unwrap_or(false);
    conf.allmulti = args.allmulti.or(own.allmulti);
    Ok(conf)
}

/// The MAC as results print it.
pub fn mac_text(mac: &Mac) -> String {
    mac_to_string(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: serde_json::Value, cni_args: &str) -> Context {
        cni::testing::context(cni::Command::Add, &v.to_string(), &[("CNI_ARGS", cni_args)])
    }

    fn base(extra: serde_json::Value) -> serde_json::Value {
        cni::testing::conf("tuning", extra)
    }

    #[test]
    fn ifname_token_is_the_interface_name_with_dots_escaped() {
        let mut c = ctx(
            base(
                json!({"sysctl": {"net.ipv4.conf.IFNAME.accept_redirects": "1", "net.ipv6.conf.xIFNAMEx.accept_ra": "0",
                                   "net.core.somaxconn": "5"}}),
            ),
            "",
        );
        let keys = |c: &Context| load(c).unwrap().sysctl.into_keys().collect::<Vec<_>>();
        assert_eq!(
            keys(&c),
            ["net.core.somaxconn", "net.ipv4.conf.eth0.accept_redirects", "net.ipv6.conf.xeth0x.accept_ra"]
        );
        c.ifname = "net1.5".into();
        let k = keys(&c);
        assert_eq!(k[1], "net.ipv4.conf.net1/5.accept_redirects");
        let path = kernel::sysctl::key_path(&k[1]).unwrap();
        assert!(path.ends_with("net/ipv4/conf/net1.5/accept_redirects"), "{path:?}");
    }

    #[test]
    fn everything_parses() {
        let c = load(&ctx(
            base(json!({"sysctl": {"net.core.somaxconn": "512"}, "mac": "c2:11:22:33:44:55", "mtu": 1400,
                        "promisc": true, "allmulti": false, "txQLen": 2000, "dataDir": "/tmp/t"})),
            "",
        ))
        .unwrap();
        assert_eq!(c.sysctl["net.core.somaxconn"], "512");
        assert_eq!(c.mac, Some([0xc2, 0x11, 0x22, 0x33, 0x44, 0x55]));
        assert_eq!((c.mtu, c.promisc, c.allmulti, c.txqlen), (Some(1400), true, Some(false), Some(2000)));
        assert_eq!(c.data_dir, PathBuf::from("/tmp/t"));
        let d = load(&ctx(base(json!({})), "")).unwrap();
        assert_eq!(d.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(!d.touches_link() && d.sysctl.is_empty());
    }

    #[test]
    fn mac_precedence_follows_the_reference() {
        let v = base(json!({"mac": "c2:00:00:00:00:01", "runtimeConfig": {"mac": "c2:00:00:00:00:03"}}));
        assert_eq!(load(&ctx(v.clone(), "MAC=c2:00:00:00:00:02")).unwrap().mac.unwrap()[5], 3);
        let mut v2 = v.clone();
        v2["args"] = json!({"cni": {"mac": "c2:00:00:00:00:04"}});
        assert_eq!(load(&ctx(v2, "MAC=c2:00:00:00:00:02")).unwrap().mac.unwrap()[5], 4);
        let only_env = base(json!({"mac": "c2:00:00:00:00:01"}));
        assert_eq!(load(&ctx(only_env, "IgnoreUnknown=1;MAC=c2:00:00:00:00:02")).unwrap().mac.unwrap()[5], 2);
    }

    #[test]
    fn args_cni_overrides_the_config() {
        let v = base(json!({"mtu": 1400, "sysctl": {"net.core.somaxconn": "1"},
                            "args": {"cni": {"mtu": 1300, "sysctl": {"net.core.somaxconn": "2"}, "promisc": true}}}));
        let c = load(&ctx(v, "")).unwrap();
        assert_eq!((c.mtu, c.promisc, c.sysctl["net.core.somaxconn"].as_str()), (Some(1300), true, "2"));
    }

    #[test]
    fn bad_input_is_named() {
        for (extra, needle) in [
            (json!({"sysctl": {"kernel.hostname": "x"}}), "only network sysctls"),
            (json!({"sysctl": {"net/ipv4/ip_forward": "1"}}), "contains '/'"),
            (json!({"sysctl": {"net.ipv4..ip_forward": "1"}}), "empty component"),
            (json!({"sysctl": {"net.ipv4.conf.x/../../kernel.hostname": "1"}}), "contains '/'"),
            (json!({"sysctl": {"net.core.somaxconn": "1\n2"}}), "one line"),
            (json!({"mac": "zz:11:22:33:44:55"}), "invalid MAC"),
            (json!({"mac": "01:00:5e:00:00:01"}), "unicast"),
            (json!({"mtu": 70000}), "out of range"),
            (json!({"mtu": -1}), "out of range"),
            (json!({"mtu": 10}), "out of range"),
            (json!({"txQLen": -5}), "txQLen"),
            (json!({"dataDir": "relative/dir"}), "absolute"),
            (json!({"mtu": "big"}), "invalid config"),
        ] {
            let e = load(&ctx(base(extra.clone()), "")).unwrap_err();
            assert_eq!(e.code, 7, "{extra}: {e}");
            assert!(e.msg.contains(needle), "{extra}: {e}");
        }
        let e = load(&ctx(base(json!({})), "MAC=nope")).unwrap_err();
        assert_eq!(e.code, 4);
    }

    /// Go's decoder matches keys in any case; sysctl names are data and
    /// keep theirs.
    #[test]
    fn any_recasing_of_keys_decodes_the_same() {
        let full = base(json!({
            "sysctl": {"net.ipv4.conf.eth0.rp_filter": "1"}, "mac": "02:00:00:00:00:07", "mtu": 1400,
            "promisc": true, "allmulti": true, "txQLen": 500, "dataDir": "/run/x",
            "args": {"cni": {"mtu": 1300}}
        }));
        let want = format!("{:?}", load(&ctx(full.clone(), "")).unwrap());
        for seed in 0..64 {
            let folded = cni::gojson::refold_keys(&full, seed, &["sysctl"]);
            assert_eq!(format!("{:?}", load(&ctx(folded.clone(), "")).unwrap()), want, "{folded}");
        }
    }
}
