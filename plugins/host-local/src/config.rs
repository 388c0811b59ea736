//! The host-local configuration: the `ipam` section of the stdin config,
//! the `ipRanges` capability, and the requested addresses (CNI_ARGS `IP`,
//! `args.cni.ips`, the `ips` capability), validated before anything on disk
//! is touched.

use crate::range::{canonical, RangeSet};
use cni::config::IpRange;
use cni::result::Route;
use cni::{gojson, limits, validate, Context, Error, Version};
use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde_json::Value;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

/// Where stores live when `dataDir` is not set (the reference's default).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// How much of the config a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// ADD: everything, including the requested addresses.
    Add,
    /// CHECK and STATUS: everything but the requested addresses.
    Verify,
    /// DEL and GC: only what finds the store. Range errors are ignored so
    /// that a config broken after the fact can still release addresses.
    Release,
}

/// The `ipam` keys host-local reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IpamJson {
    #[serde(default)]
    ranges: Option<Vec<Vec<IpRange>>>,
    #[serde(default)]
    subnet: Option<IpNetwork>,
    #[serde(default)]
    range_start: Option<IpAddr>,
    #[serde(default)]
    range_end: Option<IpAddr>,
    #[serde(default)]
    gateway: Option<IpAddr>,
    #[serde(default)]
    routes: Option<Vec<Route>>,
    #[serde(default)]
    resolv_conf: Option<String>,
}

/// A validated host-local configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The network name: the store's directory name.
    pub network: String,
    /// The directory holding one store per network.
    pub data_dir: PathBuf,
    /// The range sets, in allocation order (runtime `ipRanges`, the legacy
    /// top-level range, then `ranges`). Empty in [`Mode::Release`] when the
    /// ranges do not validate.
    pub sets: Vec<RangeSet>,
    /// Routes returned verbatim in the result.
    pub routes: Vec<Route>,
    /// A resolv.conf whose settings become the result's `dns`.
    pub resolv_conf: Option<PathBuf>,
    /// Addresses the caller asked for, in the order given, without repeats.
    pub requested: Vec<IpAddr>,
}

impl Config {
    /// The store directory of this network.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join(&self.network)
    }

    /// Reads and validates the config for `mode`; every problem is code 7
    /// (code 4 for a bad CNI_ARGS value) with a message naming the field.
    pub fn load(ctx: &Context, mode: Mode) -> Result<Config, Error> {
        let network = ctx.conf.name.clone();
        validate::network_name(&network)?;
        let mut one = Path::new(&network).components();
        if !matches!((one.next(), one.next()), (Some(Component::Normal(_)), None)) {
            return Err(Error::invalid_config(format!("network name {network:?} is not a single path component")));
        }
        let ipam = match gojson::get(&ctx.raw, "ipam") {
            Some(v @ Value::Object(_)) => v,
            _ => return Err(Error::invalid_config("IPAM config missing 'ipam' key")),
        };
        let data_dir = data_dir(gojson::get(ipam, "dataDir"))?;
        let runtime = gojson::get(&ctx.raw, "runtimeConfig");
        let runtime_ranges = runtime.and_then(|r| gojson::get(r, "ipRanges")).filter(|v| !v.is_null());

        if mode == Mode::Release {
            let sets = gojson::from_value::<IpamJson>(ipam)
                .ok()
                .and_then(|json| Self::sets(&json, runtime_ranges, ctx.version).ok())
                .unwrap_or_default();
            return Ok(Config {
                network,
                data_dir,
                sets,
                routes: Vec::new(),
                resolv_conf: None,
                requested: Vec::new(),
            });
        }

        let json: IpamJson =
            gojson::from_value(ipam).map_err(|e| Error::invalid_config(format!("invalid ipam config: {e}")))?;
        let sets = Self::sets(&json, runtime_ranges, ctx.version)?;
        let resolv_conf = match json.resolv_conf.as_deref() {
            None | Some("") => None,
            Some(p) if p.contains('\0') => {
                return Err(Error::invalid_config("ipam.resolvConf contains a NUL byte"));
            }
            Some(p) => Some(PathBuf::from(p)),
        };
        let requested = if mode == Mode::Add { requested(ctx)? } else { Vec::new() };
        limits::check("requested IPs", "addresses", requested.len(), limits::MAX_REQUESTED_IPS)?;
        let routes = json.routes.unwrap_or_default();
        limits::check("ipam.routes", "routes", routes.len(), limits::MAX_ROUTES)?;
        Ok(Config { network, data_dir, sets, routes, resolv_conf, requested })
    }

    /// Builds and validates the range sets.
    fn sets(json: &IpamJson, runtime_ranges: Option<&Value>, version: Version) -> Result<Vec<RangeSet>, Error> {
        let mut raw: Vec<Vec<IpRange>> = match runtime_ranges {
            Some(v) => gojson::from_value(v)
                .map_err(|e| Error::invalid_config(format!("invalid runtimeConfig.ipRanges: {e}")))?,
            None => Vec::new(),
        };
        match json.subnet {
            Some(subnet) => raw.push(vec![IpRange {
                subnet,
                range_start: json.range_start,
                range_end: json.range_end,
                gateway: json.gateway,
            }]),
            None if json.range_start.is_some() || json.range_end.is_some() || json.gateway.is_some() => {
                log::warn!("ipam: top-level rangeStart/rangeEnd/gateway without subnet are ignored");
            }
            None => {}
        }
        raw.extend(json.ranges.iter().flatten().cloned());
        limits::check("ipam.ranges", "range sets", raw.len(), limits::MAX_RANGE_SETS)?;
        limits::check("ipam.ranges", "ranges", raw.iter().map(Vec::len).sum(), limits::MAX_RANGES)?;
        if raw.is_empty() {
            return Err(Error::invalid_config("no IP ranges specified")
                .with_details("set ipam.ranges (e.g. [[{\"subnet\": \"10.22.0.0/16\"}]]) or ipam.subnet"));
        }
        let sets = raw
            .iter()
            .enumerate()
            .map(|(i, r)| RangeSet::new(r).map_err(|e| Error::invalid_config(format!("invalid range set {i}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let v4 = sets.iter().filter(|s| s.is_v4()).count();
        if version < Version::V030 && (v4 > 1 || sets.len() - v4 > 1) {
            return Err(Error::invalid_config(format!(
                "CNI version {version} does not support more than 1 address per family"
            ))
            .with_details("use cniVersion 0.3.0 or later for several range sets of one family"));
        }
        for (i, a) in sets.iter().enumerate() {
            for (j, b) in sets.iter().enumerate().skip(i + 1) {
                if a.overlaps(b) {
                    return Err(Error::invalid_config(format!("range set {i} overlaps with {j}"))
                        .with_details(format!("{a} and {b} share addresses")));
                }
            }
        }
        Ok(sets)
    }
}

/// Validates `dataDir`: an absolute path with no `..` and no NUL, so that no
/// config can point the store somewhere unexpected by way of a relative path.
fn data_dir(v: Option<&Value>) -> Result<PathBuf, Error> {
    let s = match v {
        None | Some(Value::Null) => return Ok(PathBuf::from(DEFAULT_DATA_DIR)),
        Some(Value::String(s)) if s.is_empty() => return Ok(PathBuf::from(DEFAULT_DATA_DIR)),
        Some(Value::String(s)) => s,
        Some(_) => return Err(Error::invalid_config("ipam.dataDir must be a string")),
    };
    let bad = |why: &str| Err(Error::invalid_config(format!("invalid ipam.dataDir {s:?}: {why}")));
    if s.contains('\0') {
        return bad("contains a NUL byte");
    }
    let p = Path::new(s);
    if !p.is_absolute() {
        return bad("must be an absolute path");
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return bad("must not contain \"..\"");
    }
    if p.parent().is_none() {
        return bad("must not be the root directory");
    }
    Ok(p.to_path_buf())
}

/// Parses one requested address: an IP, optionally with a prefix length.
fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let ip = match s.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => s.parse::<IpNetwork>().ok()?.ip(),
    };
    Some(canonical(ip))
}

/// The requested addresses: CNI_ARGS `IP` (comma-separated), then
/// `args.cni.ips`, then `runtimeConfig.ips`, as the reference combines them.
fn requested(ctx: &Context) -> Result<Vec<IpAddr>, Error> {
    let mut out: Vec<IpAddr> = Vec::new();
    let mut push = |ip: IpAddr| {
        if !out.contains(&ip) {
            out.push(ip);
        }
    };
    if let Some(v) = ctx.args.get("IP") {
        for item in v.split(',').filter(|s| !s.trim().is_empty()) {
            let ip = parse_ip(item).ok_or_else(|| {
                Error::invalid_env(format!("CNI_ARGS: invalid IP address {:?} in IP={v}", item.trim()))
            })?;
            push(ip);
        }
    }
    let lists = [
        (
            "args.cni.ips",
            gojson::get(&ctx.raw, "args").and_then(|a| gojson::get(a, "cni")).and_then(|c| gojson::get(c, "ips")),
        ),
        ("runtimeConfig.ips", gojson::get(&ctx.raw, "runtimeConfig").and_then(|r| gojson::get(r, "ips"))),
    ];
    for (field, value) in lists {
        let Some(value) = value.filter(|v| !v.is_null()) else { continue };
        let items: Vec<String> =
            gojson::from_value(value).map_err(|e| Error::invalid_config(format!("invalid {field}: {e}")))?;
        for item in items {
            let ip = parse_ip(&item)
                .ok_or_else(|| Error::invalid_config(format!("invalid IP address {item:?} in {field}")))?;
            push(ip);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::skel::Command;
    use serde_json::json;

    fn ctx(conf: Value, args: &str) -> Context {
        cni::testing::context(Command::Add, &conf.to_string(), &[("CNI_ARGS", args)])
    }

    fn load(ipam: Value) -> Result<Config, Error> {
        Config::load(&ctx(json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge", "ipam": ipam}), ""), Mode::Add)
    }

    fn err(ipam: Value) -> Error {
        let e = load(ipam).unwrap_err();
        assert_eq!(e.code, 7, "{e}");
        e
    }

    #[test]
    fn order_is_runtime_then_legacy_then_ranges() {
        let c = Config::load(
            &ctx(
                json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge",
                    "runtimeConfig": {"ipRanges": [[{"subnet": "10.3.0.0/24"}]]},
                    "ipam": {"type": "host-local", "subnet": "10.2.0.0/24",
                             "ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "fd00::/64"}]],
                             "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "/tmp/x"}}),
                "",
            ),
            Mode::Add,
        )
        .unwrap();
        let subnets: Vec<String> = c.sets.iter().map(|s| s.ranges[0].subnet.to_string()).collect();
        assert_eq!(subnets, ["10.3.0.0/24", "10.2.0.0/24", "10.1.0.0/24", "fd00::/64"]);
        assert_eq!(c.routes.len(), 1);
        assert_eq!(c.store_dir(), PathBuf::from("/tmp/x/n"));
    }

    #[test]
    fn defaults() {
        let c = load(json!({"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/24"}]]})).unwrap();
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(c.requested.is_empty() && c.routes.is_empty() && c.resolv_conf.is_none());
    }

    #[test]
    fn bad_configs_are_code_7() {
        err(json!({"type": "host-local"}));
        err(json!({"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.1.0.128/25"}]]}));
        err(json!({"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/24", "gateway": "10.2.0.1"}]]}));
        err(json!({"type": "host-local", "subnet": "10.1.0.0/24", "rangeStart": "10.1.0.9", "rangeEnd": "10.1.0.8"}));
        err(json!({"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/31"}]]}));
        err(json!({"type": "host-local", "ranges": [[{"subnet": "not-a-subnet"}]]}));
        err(json!({"type": "host-local", "ranges": [[]]}));
        for dir in ["relative/dir", "/var/lib/../../etc", "/", "/tmp/a\u{0}b"] {
            let e = err(json!({"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/24"}]], "dataDir": dir}));
            assert!(e.msg.contains("dataDir"), "{e}");
        }
        let e = Config::load(&ctx(json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge"}), ""), Mode::Add)
            .unwrap_err();
        assert_eq!(e.msg, "IPAM config missing 'ipam' key");
    }

    #[test]
    fn counts_are_bounded_with_a_clear_error() {
        let subnet = |i: usize| json!({"subnet": format!("10.{}.{}.0/24", i / 256, i % 256)});
        let sets: Vec<Value> = (0..limits::MAX_RANGE_SETS).map(|i| json!([subnet(i)])).collect();
        assert_eq!(load(json!({"ranges": sets})).unwrap().sets.len(), limits::MAX_RANGE_SETS);
        let sets: Vec<Value> = (0..=limits::MAX_RANGE_SETS).map(|i| json!([subnet(i)])).collect();
        let e = err(json!({"ranges": sets}));
        assert!(e.msg.starts_with("too many range sets in \"ipam.ranges\""), "{e}");
        // The runtime's ipRanges count too.
        let sets: Vec<Value> = (0..limits::MAX_RANGE_SETS).map(|i| json!([subnet(i)])).collect();
        let e = Config::load(
            &ctx(
                json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge",
                       "runtimeConfig": {"ipRanges": [[{"subnet": "10.250.0.0/24"}]]},
                       "ipam": {"ranges": sets}}),
                "",
            ),
            Mode::Add,
        )
        .unwrap_err();
        assert!(e.msg.contains("range sets"), "{e}");
        let one_set: Vec<Value> = (0..=limits::MAX_RANGES).map(subnet).collect();
        let e = err(json!({"ranges": [one_set]}));
        assert!(e.msg.starts_with("too many ranges in \"ipam.ranges\""), "{e}");
        let routes: Vec<Value> =
            (0..=limits::MAX_ROUTES).map(|i| json!({"dst": format!("10.99.{}.{}/32", i / 256, i % 256)})).collect();
        let ok = &routes[..limits::MAX_ROUTES];
        assert_eq!(load(json!({"ranges": [[subnet(1)]], "routes": ok})).unwrap().routes.len(), limits::MAX_ROUTES);
        let e = err(json!({"ranges": [[subnet(1)]], "routes": routes}));
        assert!(e.msg.starts_with("too many routes in \"ipam.routes\""), "{e}");
        let ips: Vec<String> = (0..=limits::MAX_REQUESTED_IPS).map(|i| format!("10.0.0.{}", i + 2)).collect();
        let e = Config::load(
            &ctx(
                json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge", "runtimeConfig": {"ips": ips},
                       "ipam": {"ranges": [[subnet(0)]]}}),
                "",
            ),
            Mode::Add,
        )
        .unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.starts_with("too many addresses"), "{e}");
    }

    #[test]
    fn old_versions_take_one_address_per_family() {
        let ipam = json!({"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24"}]]});
        let e = Config::load(
            &ctx(json!({"cniVersion": "0.2.0", "name": "n", "type": "bridge", "ipam": ipam.clone()}), ""),
            Mode::Add,
        )
        .unwrap_err();
        assert!(e.msg.contains("more than 1 address per family"));
        assert!(Config::load(
            &ctx(json!({"cniVersion": "0.3.1", "name": "n", "type": "bridge", "ipam": ipam}), ""),
            Mode::Add
        )
        .is_ok());
    }

    #[test]
    fn requested_addresses_from_every_source() {
        let c = Config::load(
            &ctx(
                json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge",
                    "args": {"cni": {"ips": ["10.1.0.7/24", "10.1.0.5"]}},
                    "runtimeConfig": {"ips": ["fd00::9"]},
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/24"}]]}}),
                "IgnoreUnknown=1;IP=10.1.0.5, ::ffff:10.1.0.6",
            ),
            Mode::Add,
        )
        .unwrap();
        let want: Vec<IpAddr> = ["10.1.0.5", "10.1.0.6", "10.1.0.7", "fd00::9"].map(|s| s.parse().unwrap()).to_vec();
        assert_eq!(c.requested, want);
        let bad = ctx(
            json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge", "ipam": {"ranges": [[{"subnet": "10.1.0.0/24"}]]}}),
            "IP=nope",
        );
        assert_eq!(Config::load(&bad, Mode::Add).unwrap_err().code, 4);
        // Only ADD reads them.
        assert!(Config::load(&bad, Mode::Release).unwrap().requested.is_empty());
    }

    #[test]
    fn release_mode_survives_broken_ranges() {
        let c = Config::load(
            &ctx(
                json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge",
                       "ipam": {"ranges": [[{"subnet": "10.1.0.5/24"}], [{"subnet": "fd00::/64"}]], "dataDir": "/tmp/d"}}),
                "",
            ),
            Mode::Release,
        )
        .unwrap();
        assert!(c.sets.is_empty());
        assert_eq!(c.data_dir, PathBuf::from("/tmp/d"));
    }

    /// Go's decoder matches keys in any case; so do we: `ipam`, its
    /// ranges, routes, the `ipRanges` and `ips` capabilities and `args`.
    #[test]
    fn any_recasing_of_keys_decodes_the_same() {
        let full = json!({
            "cniVersion": "1.0.0", "name": "n", "type": "bridge",
            "ipam": {
                "type": "host-local", "dataDir": "/tmp/x", "resolvConf": "/etc/resolv.conf",
                "ranges": [[{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10", "rangeEnd": "10.1.0.20", "gateway": "10.1.0.1"}]],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]
            },
            "runtimeConfig": {"ipRanges": [[{"subnet": "10.2.0.0/24"}]], "ips": ["10.2.0.7"]},
            "args": {"cni": {"ips": ["10.1.0.15"]}}
        });
        let show = |v: &Value| format!("{:?}", Config::load(&ctx(v.clone(), ""), Mode::Add).unwrap());
        let want = show(&full);
        for seed in 0..64 {
            let folded = cni::gojson::refold_keys(&full, seed, &[]);
            assert_eq!(show(&folded), want, "{folded}");
        }
    }
}
