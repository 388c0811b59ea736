//! The limits, read and checked in full before anything changes: a bad
//! rate, burst or subnet is a code-7 error naming the field as the config
//! spells it, with nothing touched.
//!
//! Sources: the config's own `ingressRate`/`ingressBurst`/`egressRate`/
//! `egressBurst`, and the `bandwidth` capability (`runtimeConfig.bandwidth`,
//! what the kubelet's pod annotations become). The capability wins: when
//! the runtime sends one, its four values replace the config's (the
//! reference does the opposite, so a pod's annotation is ignored whenever
//! the conflist carries a default). Subnets come from the capability when
//! it lists any, else from the config. Keys match case-insensitively, as Go
//! does, so containerd's `IngressRate` works too.

use cni::gojson;
use cni::{Context, Error};
use ipnetwork::IpNetwork;
use serde_json::Value;

/// Most subnets one attachment may list (inputs are bounded).
const MAX_SUBNETS: usize = 256;
/// Largest burst, bits: the reference's limit (4 GiB in bytes).
const MAX_BURST_BITS: u64 = (u32::MAX as u64) * 8;

/// One direction's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Bits per second (> 0).
    pub rate: u64,
    /// Bucket in bits (> 0).
    pub burst: u64,
    /// The config key of the rate, for messages (`ingressRate`, ...).
    pub rate_field: &'static str,
    /// The config key of the burst.
    pub burst_field: &'static str,
    /// Where the values came from (`""` or `runtimeConfig.bandwidth.`).
    pub source: &'static str,
}

impl Limit {
    /// The rate in bytes per second, as the kernel takes it.
    pub fn rate_bytes(&self) -> u64 {
        self.rate / 8
    }

    /// The bucket in bytes.
    pub fn burst_bytes(&self) -> u64 {
        self.burst / 8
    }
}

/// The validated options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BwConf {
    /// Traffic into the container.
    pub ingress: Option<Limit>,
    /// Traffic out of the container.
    pub egress: Option<Limit>,
    /// `shapedSubnets` or `unshapedSubnets`.
    pub subnets: Vec<IpNetwork>,
    /// Whether `subnets` are the only shaped ones (`shapedSubnets`).
    pub only_listed: bool,
}

impl BwConf {
    /// Whether anything is to be shaped.
    pub fn is_empty(&self) -> bool {
        self.ingress.is_none() && self.egress.is_none()
    }
}

fn bad(field: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid_config(format!("bandwidth: invalid {field:?}: {why}"))
}

/// A non-negative whole number of at most 64 bits; absent or null is 0.
fn number(v: Option<&Value>, field: &str) -> Result<u64, Error> {
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                return Ok(u);
            }
            if n.as_i64().is_some() {
                return Err(bad(field, format!("{n} is negative")));
            }
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f < 0.0 {
                Err(bad(field, format!("{n} is negative")))
            } else if f.fract() != 0.0 {
                Err(bad(field, format!("{n} is not a whole number")))
            } else {
                Err(bad(field, format!("{n} is larger than the largest value, {}", u64::MAX)))
            }
        }
        Some(other) => Err(bad(field, format!("expected a number, got {other}"))),
    }
}

fn limit(
    obj: &Value,
    source: &'static str,
    (rate_field, burst_field): (&'static str, &'static str),
) -> Result<Option<Limit>, Error> {
    let full = |f: &str| format!("{source}{f}");
    let rate = number(gojson::get(obj, rate_field), &full(rate_field))?;
    let burst = number(gojson::get(obj, burst_field), &full(burst_field))?;
    match (rate, burst) {
        (0, 0) => Ok(None),
        (0, _) => Err(bad(&full(rate_field), format!("is 0 while {burst_field} is {burst}: a rate must be positive"))),
        (_, 0) => Err(bad(&full(burst_field), format!("must be set (in bits) when {rate_field} is set"))),
        (r, _) if r < 8 => Err(bad(&full(rate_field), format!("{r} bit/s is below the smallest rate, 8 bit/s"))),
        (_, b) if b > MAX_BURST_BITS => {
            Err(bad(&full(burst_field), format!("{b} bits is more than 4 GiB (at most {MAX_BURST_BITS} bits)")))
        }
        (rate, burst) => Ok(Some(Limit { rate, burst, rate_field, burst_field, source })),
    }
}

fn subnets(obj: &Value, source: &str, field: &str) -> Result<Vec<IpNetwork>, Error> {
    let full = format!("{source}{field}");
    let list = match gojson::get(obj, field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => return Err(bad(&full, format!("expected a list of CIDR strings, got {other}"))),
    };
    if list.len() > MAX_SUBNETS {
        return Err(bad(&full, format!("{} subnets, at most {MAX_SUBNETS}", list.len())));
    }
    list.iter()
        .map(|v| {
            let s = v.as_str().ok_or_else(|| bad(&full, format!("{v} is not a string")))?;
            if !s.contains('/') {
                return Err(bad(&full, format!("{s:?} is not a subnet in CIDR form (address/prefix)")));
            }
            s.parse::<IpNetwork>().map_err(|e| bad(&full, format!("{s:?} is not a subnet: {e}")))
        })
        .collect()
}

/// Reads `shapedSubnets`/`unshapedSubnets` from one source: `(subnets, only_listed)`.
fn subnet_lists(obj: &Value, source: &str) -> Result<(Vec<IpNetwork>, bool), Error> {
    let shaped = subnets(obj, source, "shapedSubnets")?;
    let unshaped = subnets(obj, source, "unshapedSubnets")?;
    if !shaped.is_empty() && !unshaped.is_empty() {
        return Err(bad(
            &format!("{source}shapedSubnets"),
            "shapedSubnets and unshapedSubnets cannot both be set: list only the subnets to shape, or only those not to",
        ));
    }
    Ok(if shaped.is_empty() { (unshaped, false) } else { (shaped, true) })
}

/// The capability's entry, when the runtime sent one.
fn capability(ctx: &Context) -> Result<Option<&Value>, Error> {
    let Some(rc) = gojson::get(&ctx.raw, "runtimeConfig") else { return Ok(None) };
    match gojson::get(rc, "bandwidth") {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(other) => Err(bad("runtimeConfig.bandwidth", format!("expected an object, got {other}"))),
    }
}

const INGRESS: (&str, &str) = ("ingressRate", "ingressBurst");
const EGRESS: (&str, &str) = ("egressRate", "egressBurst");
const CAP: &str = "runtimeConfig.bandwidth.";

/// Reads and validates the options.
pub fn load(ctx: &Context) -> Result<BwConf, Error> {
    // The config's own values are checked even when the capability
    // replaces them: a broken conflist is reported, not silently ignored.
    let own_in = limit(&ctx.raw, "", INGRESS)?;
    let own_out = limit(&ctx.raw, "", EGRESS)?;
    let (own_nets, own_only) = subnet_lists(&ctx.raw, "")?;
    let Some(cap) = capability(ctx)? else {
        return Ok(BwConf { ingress: own_in, egress: own_out, subnets: own_nets, only_listed: own_only });
    };
    let ingress = limit(cap, CAP, INGRESS)?;
    let egress = limit(cap, CAP, EGRESS)?;
    let (nets, only) = subnet_lists(cap, CAP)?;
    let (subnets, only_listed) = if nets.is_empty() { (own_nets, own_only) } else { (nets, only) };
    Ok(BwConf { ingress, egress, subnets, only_listed })
}

/// Refuses a bucket smaller than one packet of the interface: such a
/// shaper would hold full-size packets back forever (code 7, naming the field).
pub fn check_mtu(l: &Limit, mtu: u32, dev: &str) -> Result<(), Error> {
    if l.burst_bytes() < u64::from(mtu) {
        return Err(bad(
            &format!("{}{}", l.source, l.burst_field),
            format!(
                "{} bits ({} bytes) is smaller than one packet of {dev:?} (MTU {mtu}: at least {} bits)",
                l.burst,
                l.burst_bytes(),
                u64::from(mtu) * 8
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(extra: Value) -> Context {
        cni::testing::context(cni::Command::Add, &cni::testing::conf("bandwidth", extra).to_string(), &[])
    }

    fn err(extra: Value) -> Error {
        load(&ctx(extra)).unwrap_err()
    }

    #[test]
    fn static_values() {
        let c = load(&ctx(json!({"ingressRate": 8000, "ingressBurst": 16000}))).unwrap();
        let l = c.ingress.unwrap();
        assert_eq!((l.rate, l.burst, l.rate_bytes(), l.burst_bytes()), (8000, 16000, 1000, 2000));
        assert_eq!(c.egress, None);
        assert!(load(&ctx(json!({}))).unwrap().is_empty());
        assert!(load(&ctx(json!({"ingressRate": 0, "ingressBurst": 0}))).unwrap().is_empty());
    }

    #[test]
    fn the_capability_wins_and_go_spellings_match() {
        let c = load(&ctx(json!({
            "ingressRate": 8000, "ingressBurst": 16000,
            "unshapedSubnets": ["10.0.0.0/8"],
            "runtimeConfig": {"bandwidth": {"EgressRate": 80000, "EgressBurst": 160000}}
        })))
        .unwrap();
        assert_eq!(c.ingress, None, "the capability replaces all four values");
        assert_eq!(c.egress.unwrap().rate, 80000);
        assert_eq!(c.egress.unwrap().source, CAP);
        assert_eq!((c.subnets.len(), c.only_listed), (1, false), "subnets kept from the config");
        let c = load(&ctx(json!({"runtimeConfig": {"bandwidth": {"ingressRate": 800, "ingressBurst": 800,
            "shapedSubnets": ["fd00::/8"]}}, "unshapedSubnets": ["10.0.0.0/8"]})))
        .unwrap();
        assert_eq!((c.subnets[0].to_string().as_str(), c.only_listed), ("fd00::/8", true));
    }

    #[test]
    fn bad_values_name_the_field() {
        for (v, field, why) in [
            (json!({"ingressRate": 0, "ingressBurst": 100}), "ingressRate", "positive"),
            (json!({"ingressRate": -5, "ingressBurst": 100}), "ingressRate", "negative"),
            (json!({"egressRate": 1000}), "egressBurst", "must be set"),
            (
                serde_json::from_str(r#"{"egressRate": 18446744073709551616, "egressBurst": 1}"#).unwrap(),
                "egressRate",
                "larger",
            ),
            (json!({"egressRate": 1.5, "egressBurst": 1}), "egressRate", "whole"),
            (json!({"egressRate": "fast", "egressBurst": 1}), "egressRate", "number"),
            (json!({"egressRate": 4, "egressBurst": 100}), "egressRate", "smallest"),
            (json!({"egressRate": 1000, "egressBurst": MAX_BURST_BITS + 1}), "egressBurst", "4 GiB"),
            (json!({"shapedSubnets": ["10.0.0.0/8"], "unshapedSubnets": ["10.1.0.0/16"]}), "shapedSubnets", "both"),
            (json!({"unshapedSubnets": ["10.0.0.1"]}), "unshapedSubnets", "CIDR"),
            (json!({"unshapedSubnets": ["nope/8"]}), "unshapedSubnets", "not a subnet"),
            (json!({"unshapedSubnets": "10.0.0.0/8"}), "unshapedSubnets", "list"),
            (
                json!({"runtimeConfig": {"bandwidth": {"ingressRate": -1, "ingressBurst": 1}}}),
                "runtimeConfig.bandwidth.ingressRate",
                "negative",
            ),
        ] {
            let e = err(v.clone());
            assert_eq!(e.code, 7, "{v}");
            assert!(e.msg.contains(&format!("{field:?}")) && e.msg.contains(why), "{v}: {}", e.msg);
        }
    }

    #[test]
    fn burst_must_hold_one_packet() {
        let c = load(&ctx(json!({"egressRate": 1_000_000, "egressBurst": 8000}))).unwrap();
        let e = check_mtu(&c.egress.unwrap(), 1500, "veth1").unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("\"egressBurst\"") && e.msg.contains("MTU 1500"), "{}", e.msg);
        assert!(check_mtu(&c.egress.unwrap(), 1000, "veth1").is_ok());
    }
}
