//! What the static plugin answers, read from the four places the reference
//! reads it from and validated before anything is printed.
//!
//! Sources and precedence, as the reference (1.1.1, run side by side)
//! combines them: the `ips` capability (`runtimeConfig.ips`) replaces
//! everything else when it is not empty; otherwise `args.cni.ips` does;
//! otherwise the config's `ipam.addresses`, followed by CNI_ARGS `IP=`
//! (comma-separated CIDRs), with CNI_ARGS `GATEWAY=` given to every address
//! whose subnet holds it. Addresses from the capability or `args` carry no
//! gateway. Every address needs its prefix length: an IPAM plugin that
//! guesses one gives the container a subnet nobody configured.
//!
//! Where we are stricter than the reference, each time with a code-7 error
//! naming the field (code 4 for CNI_ARGS): a gateway that lies in none of
//! the addresses' subnets (the reference prints it, and the plugin that
//! installs the route then fails with a kernel error, or the route points
//! nowhere), a route without `dst`, and a GATEWAY= that matches no address
//! (the reference drops it silently).

use cni::config::Dns;
use cni::result::{IpConfig, Route};
use cni::{gojson, limits, Context, Error, Version};
use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde_json::Value;
use std::net::IpAddr;

/// The `ipam` keys static reads.
#[derive(Debug, Default, Deserialize)]
struct IpamJson {
    #[serde(default)]
    addresses: Option<Vec<AddressJson>>,
    #[serde(default)]
    routes: Option<Vec<RouteJson>>,
    #[serde(default)]
    dns: Option<Dns>,
}

/// One `ipam.addresses` entry, kept as text so that the error can say
/// exactly what was wrong with it.
#[derive(Debug, Deserialize)]
struct AddressJson {
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
}

/// One `ipam.routes` entry; `dst` as text because a bare address must be
/// refused, not read as a /32.
#[derive(Debug, Deserialize)]
struct RouteJson {
    #[serde(default)]
    dst: Option<String>,
    #[serde(default)]
    gw: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    advmss: Option<u32>,
    #[serde(default)]
    priority: Option<u32>,
    #[serde(default)]
    table: Option<u32>,
    #[serde(default)]
    scope: Option<u8>,
}

/// What ADD answers and CHECK expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The addresses, in the reference's order, without an interface index.
    pub addresses: Vec<IpConfig>,
    /// Routes, verbatim.
    pub routes: Vec<Route>,
    /// DNS, verbatim.
    pub dns: Dns,
}

impl Config {
    /// Reads and validates everything ADD and CHECK need.
    pub fn load(ctx: &Context) -> Result<Config, Error> {
        let ipam = match gojson::get(&ctx.raw, "ipam") {
            Some(v @ Value::Object(_)) => v,
            _ => return Err(Error::invalid_config("IPAM config missing 'ipam' key")),
        };
        let json: IpamJson = gojson::from_value_with_path(ipam).map_err(|e| {
            let path = e.path().to_string();
            Error::invalid_config(format!("invalid ipam.{path}: {}", e.into_inner()))
        })?;

        let listed = json.addresses.unwrap_or_default();
        limits::check("ipam.addresses", "addresses", listed.len(), limits::MAX_REQUESTED_IPS)?;
        let mut configured = Vec::with_capacity(listed.len());
        for (i, a) in listed.iter().enumerate() {
            let field = format!("ipam.addresses[{i}].address");
            let address = cidr(&field, a.address.as_deref().unwrap_or_default()).map_err(Error::invalid_config)?;
            configured.push(IpConfig { interface: None, address, gateway: None });
        }
        for (i, a) in listed.iter().enumerate() {
            let field = format!("ipam.addresses[{i}].gateway");
            let Some(gw) = a.gateway.as_deref().filter(|g| !g.is_empty()) else { continue };
            let gw = ip(&field, gw).map_err(Error::invalid_config)?;
            outside_every_subnet(&field, gw, &configured).map_err(Error::invalid_config)?;
            configured[i].gateway = Some(gw);
        }

        // CNI_ARGS is read (and so checked) even when a capability wins,
        // as the reference reads it first.
        ctx.args.check_known(&["IP", "GATEWAY"])?;
        if let Some(v) = ctx.args.get("IP").filter(|v| !v.is_empty()) {
            for item in v.split(',') {
                let address = cidr("CNI_ARGS IP", item.trim()).map_err(Error::invalid_env)?;
                configured.push(IpConfig { interface: None, address, gateway: None });
            }
        }
        if let Some(v) = ctx.args.get("GATEWAY").filter(|v| !v.is_empty()) {
            for item in v.split(',') {
                let gw = ip("CNI_ARGS GATEWAY", item.trim()).map_err(Error::invalid_env)?;
                outside_every_subnet("CNI_ARGS GATEWAY", gw, &configured).map_err(Error::invalid_env)?;
                for a in configured.iter_mut().filter(|a| a.address.contains(gw)) {
                    a.gateway = Some(gw);
                }
            }
        }

        let from_runtime = requested("runtimeConfig.ips", ctx.conf.runtime_config()?.ips)?;
        let from_args = requested("args.cni.ips", ctx.conf.args_cni()?.ips)?;
        let addresses = [from_runtime, from_args].into_iter().find(|l| !l.is_empty()).unwrap_or(configured);
        limits::check("the addresses of one call", "addresses", addresses.len(), limits::MAX_REQUESTED_IPS)?;
        let v4 = addresses.iter().filter(|a| a.address.is_ipv4()).count();
        if ctx.version < Version::V030 && (v4 > 1 || addresses.len() - v4 > 1) {
            return Err(Error::invalid_config(format!(
                "CNI version {} does not support more than 1 address per family",
                ctx.version
            ))
            .with_details("use cniVersion 0.3.0 or later for several addresses of one family"));
        }

        let listed_routes = json.routes.unwrap_or_default();
        limits::check("ipam.routes", "routes", listed_routes.len(), limits::MAX_ROUTES)?;
        let routes = listed_routes.iter().enumerate().map(|(i, r)| route(i, r)).collect::<Result<Vec<_>, _>>()?;
        Ok(Config { addresses, routes, dns: json.dns.unwrap_or_default() })
    }
}

/// The `ips` of a capability or of `args.cni`, each a CIDR.
fn requested(field: &str, items: Vec<String>) -> Result<Vec<IpConfig>, Error> {
    limits::check(field, "addresses", items.len(), limits::MAX_REQUESTED_IPS)?;
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let address = cidr(&format!("{field}[{i}]"), s).map_err(Error::invalid_config)?;
            Ok(IpConfig { interface: None, address, gateway: None })
        })
        .collect()
}

/// One route, with `dst` a CIDR and `gw` an address.
fn route(i: usize, r: &RouteJson) -> Result<Route, Error> {
    let field = format!("ipam.routes[{i}].dst");
    let dst = match r.dst.as_deref() {
        None | Some("") => {
            return Err(Error::invalid_config(format!("{field} is missing: a route needs a destination")))
        }
        Some(d) => cidr(&field, d).map_err(Error::invalid_config)?,
    };
    let gw = match r.gw.as_deref().filter(|g| !g.is_empty()) {
        None => None,
        Some(g) => Some(ip(&format!("ipam.routes[{i}].gw"), g).map_err(Error::invalid_config)?),
    };
    Ok(Route { dst, gw, mtu: r.mtu, advmss: r.advmss, priority: r.priority, table: r.table, scope: r.scope })
}

/// An IPv4-mapped IPv6 address is the IPv4 address, as Go canonicalises it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Parses an address with its prefix length (`10.1.0.5/24`), keeping the
/// host part; anything else is an error naming `field`.
fn cidr(field: &str, s: &str) -> Result<IpNetwork, String> {
    let bad = |why: &str| format!("invalid {field} {s:?}: {why}");
    let Some((addr, len)) = s.split_once('/') else {
        return Err(bad("expected an address with a prefix length (CIDR notation), e.g. \"10.1.0.5/24\""));
    };
    let parsed: IpAddr = addr.parse().map_err(|_| bad("not an IPv4 or IPv6 address before the '/'"))?;
    let len: u8 = (!len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()))
        .then(|| len.parse().ok())
        .flatten()
        .ok_or_else(|| bad("the prefix length is not a number"))?;
    let (ip, len) = match (parsed, canonical(parsed)) {
        (IpAddr::V6(_), v4 @ IpAddr::V4(_)) if len >= 96 => (v4, len - 96),
        (IpAddr::V6(_), IpAddr::V4(_)) => {
            return Err(bad("an IPv4-mapped address needs a prefix length of 96 or more"))
        }
        (ip, _) => (ip, len),
    };
    IpNetwork::new(ip, len).map_err(|_| bad("the prefix length is out of range"))
}

/// Parses a bare address.
fn ip(field: &str, s: &str) -> Result<IpAddr, String> {
    s.parse().map(canonical).map_err(|_| format!("invalid {field} {s:?}: not an IPv4 or IPv6 address"))
}

/// A gateway must be reachable on the link: inside at least one address's
/// subnet.
fn outside_every_subnet(field: &str, gw: IpAddr, addresses: &[IpConfig]) -> Result<(), String> {
    if addresses.iter().any(|a| a.address.contains(gw)) {
        return Ok(());
    }
    let subnets: Vec<String> = addresses
        .iter()
        .map(|a| IpNetwork::new(a.address.network(), a.address.prefix()).map_or(String::new(), |n| n.to_string()))
        .collect();
    Err(format!("invalid {field} {gw}: outside every address's subnet [{}]", subnets.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::skel::Command;
    use serde_json::json;

    fn ctx(conf: Value, args: &str) -> Context {
        cni::testing::context(Command::Add, &conf.to_string(), &[("CNI_ARGS", args)])
    }

    fn conf(extra: Value) -> Value {
        let mut c = json!({"cniVersion": "1.0.0", "name": "n", "type": "macvlan"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    fn load(extra: Value, args: &str) -> Result<Config, Error> {
        Config::load(&ctx(conf(extra), args))
    }

    fn addrs(c: &Config) -> Vec<String> {
        c.addresses.iter().map(|a| format!("{} gw {:?}", a.address, a.gateway.map(|g| g.to_string()))).collect()
    }

    fn err(extra: Value, args: &str, code: u32) -> String {
        let e = load(extra, args).unwrap_err();
        assert_eq!(e.code, code, "{e:?}");
        e.msg
    }

    #[test]
    fn dual_stack_with_routes_and_dns() {
        let c = load(
            json!({"ipam": {"type": "static",
                "addresses": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"}, {"address": "FD00::5/64", "gateway": "fd00::1"}],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.1.2.3/8", "gw": "10.10.0.1", "mtu": 1400}],
                "dns": {"nameservers": ["10.1.1.1"], "domain": "ex.com", "search": ["ex.com"], "options": ["ndots:2"]}}}),
            "",
        )
        .unwrap();
        assert_eq!(addrs(&c), ["10.10.0.5/24 gw Some(\"10.10.0.1\")", "fd00::5/64 gw Some(\"fd00::1\")"]);
        // The host part of a route's dst is kept, as the reference keeps it.
        assert_eq!(c.routes[1].dst.to_string(), "10.1.2.3/8");
        assert_eq!(c.routes[1].mtu, Some(1400));
        assert_eq!(c.dns.options, ["ndots:2"]);
    }

    #[test]
    fn precedence_capability_then_args_then_config_and_cni_args() {
        let ipam = json!({"type": "static", "addresses": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1"}]});
        let all =
            json!({"runtimeConfig": {"ips": ["10.3.0.5/24"]}, "args": {"cni": {"ips": ["10.2.0.5/24"]}}, "ipam": ipam});
        assert_eq!(addrs(&load(all, "IP=10.4.0.5/24;GATEWAY=10.4.0.1").unwrap()), ["10.3.0.5/24 gw None"]);
        let args = json!({"args": {"cni": {"ips": ["10.2.0.5/24"]}}, "ipam": ipam});
        assert_eq!(addrs(&load(args, "IP=10.4.0.5/24").unwrap()), ["10.2.0.5/24 gw None"]);
        let env = json!({"ipam": ipam});
        assert_eq!(
            addrs(
                &load(env, "IgnoreUnknown=1;K8S_POD_NAME=x;IP= 10.4.0.5/24 ,fd00::5/64;GATEWAY=10.4.0.1, fd00::1")
                    .unwrap()
            ),
            [
                "10.1.0.5/24 gw Some(\"10.1.0.1\")",
                "10.4.0.5/24 gw Some(\"10.4.0.1\")",
                "fd00::5/64 gw Some(\"fd00::1\")"
            ]
        );
        // An empty list is no list.
        let empty = json!({"runtimeConfig": {"ips": []}, "ipam": ipam});
        assert_eq!(addrs(&load(empty, "").unwrap()), ["10.1.0.5/24 gw Some(\"10.1.0.1\")"]);
    }

    #[test]
    fn go_key_matching() {
        let c = load(
            json!({"RuntimeConfig": {"IPs": ["10.3.0.5/24"]}, "IPAM": {"type": "static",
                   "Routes": [{"Dst": "1.0.0.0/8", "GW": "10.3.0.1"}], "DNS": {"Nameservers": ["1.1.1.1"]}}}),
            "",
        )
        .unwrap();
        assert_eq!(addrs(&c), ["10.3.0.5/24 gw None"]);
        assert_eq!(c.routes[0].gw, Some("10.3.0.1".parse().unwrap()));
        assert_eq!(c.dns.nameservers, ["1.1.1.1"]);
    }

    #[test]
    fn ipv4_mapped_is_ipv4_as_in_go() {
        let c = load(json!({"ipam": {"addresses": [{"address": "::ffff:10.1.0.6/120"}]}}), "").unwrap();
        assert_eq!(addrs(&c), ["10.1.0.6/24 gw None"]);
    }

    #[test]
    fn bad_input_is_code_7_naming_the_field() {
        let m = err(json!({"ipam": {"addresses": [{"address": "10.1.0.5/24"}, {"address": "10.1.0.6"}]}}), "", 7);
        assert!(m.contains("ipam.addresses[1].address \"10.1.0.6\"") && m.contains("prefix length"), "{m}");
        let m = err(json!({"ipam": {"addresses": [{"address": "10.1.0.5/24", "gateway": "10.2.0.1"}]}}), "", 7);
        assert!(m.contains("ipam.addresses[0].gateway 10.2.0.1") && m.contains("10.1.0.0/24"), "{m}");
        let m =
            err(json!({"ipam": {"addresses": [{"address": "10.1.0.5/24"}], "routes": [{"dst": "10.0.0.1"}]}}), "", 7);
        assert!(m.contains("ipam.routes[0].dst \"10.0.0.1\""), "{m}");
        let m = err(json!({"ipam": {"routes": [{"gw": "10.0.0.1"}]}}), "", 7);
        assert!(m.contains("ipam.routes[0].dst is missing"), "{m}");
        let m = err(json!({"ipam": {"routes": [{"dst": "0.0.0.0/0", "gw": "x"}]}}), "", 7);
        assert!(m.contains("ipam.routes[0].gw \"x\""), "{m}");
        let m = err(json!({"ipam": {"addresses": [{"address": "10.1.0.300/24"}]}}), "", 7);
        assert!(m.contains("ipam.addresses[0].address"), "{m}");
        let m = err(json!({"ipam": {"addresses": [{"address": "10.1.0.3/33"}]}}), "", 7);
        assert!(m.contains("out of range"), "{m}");
        let m = err(json!({"ipam": {"addresses": [{"address": "10.1.0.3/255.255.255.0"}]}}), "", 7);
        assert!(m.contains("not a number"), "{m}");
        let m = err(json!({"ipam": {"addresses": "10.1.0.3/24"}}), "", 7);
        assert!(m.starts_with("invalid ipam.addresses:"), "{m}");
        let m = err(json!({"runtimeConfig": {"ips": ["10.3.0.5"]}, "ipam": {}}), "", 7);
        assert!(m.contains("runtimeConfig.ips[0] \"10.3.0.5\""), "{m}");
        let m = err(json!({"args": {"cni": {"ips": ["x/24"]}}, "ipam": {}}), "", 7);
        assert!(m.contains("args.cni.ips[0]"), "{m}");
        assert_eq!(err(json!({}), "", 7), "IPAM config missing 'ipam' key");
    }

    #[test]
    fn bad_cni_args_are_code_4() {
        let ipam = json!({"ipam": {"addresses": [{"address": "10.1.0.5/24"}]}});
        assert!(err(ipam.clone(), "IP=10.2.0.5", 4).contains("CNI_ARGS IP \"10.2.0.5\""));
        assert!(err(ipam.clone(), "GATEWAY=foo", 4).contains("CNI_ARGS GATEWAY \"foo\""));
        assert!(err(ipam.clone(), "GATEWAY=10.9.0.1", 4).contains("outside every address's subnet"));
        assert!(err(ipam, "K8S_POD_NAME=x", 4).contains("unknown args"));
    }

    #[test]
    fn legacy_versions_take_one_address_per_family() {
        let two = json!({"ipam": {"addresses": [{"address": "10.1.0.5/24"}, {"address": "10.1.0.6/24"}]}});
        let mut c = conf(two);
        c["cniVersion"] = json!("0.2.0");
        let e = Config::load(&ctx(c.clone(), "")).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (7, "CNI version 0.2.0 does not support more than 1 address per family"));
        c["cniVersion"] = json!("0.3.0");
        assert_eq!(Config::load(&ctx(c, "")).unwrap().addresses.len(), 2);
    }

    #[test]
    fn bounds() {
        let many: Vec<Value> =
            (0..=limits::MAX_REQUESTED_IPS).map(|i| json!({"address": format!("10.1.0.{}/24", i + 1)})).collect();
        assert!(err(json!({"ipam": {"addresses": many}}), "", 7).contains("too many addresses"));
        let routes: Vec<Value> = (0..=limits::MAX_ROUTES).map(|_| json!({"dst": "0.0.0.0/0"})).collect();
        assert!(err(json!({"ipam": {"routes": routes}}), "", 7).contains("too many routes"));
    }
}
