//! Property tests of the pure protocol parts: result conversion between
//! versions round-trips as the spec allows, names that pass validation are
//! safe as path components and interface names, and `CNI_ARGS` round-trips.

use cni::config::Dns;
use cni::result::{Interface, IpConfig, Route};
use cni::{validate, CniArgs, CniResult, Version};
use ipnetwork::IpNetwork;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Component, Path};

fn version() -> impl Strategy<Value = Version> {
    prop::sample::select(cni::version::SUPPORTED.iter().map(|s| Version::parse(s).unwrap()).collect::<Vec<_>>())
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

fn net() -> impl Strategy<Value = IpNetwork> {
    (ip(), any::<u8>()).prop_map(|(ip, p)| {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        IpNetwork::new(ip, p % (max + 1)).unwrap()
    })
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select("abcXYZ019-_.:/ é".chars().collect::<Vec<_>>()), 0..max)
        .prop_map(|v| v.into_iter().collect())
}

fn interface() -> impl Strategy<Value = Interface> {
    (text(15), text(17), prop::option::of(any::<u32>()), text(20), text(8), text(12)).prop_map(
        |(name, mac, mtu, sandbox, socket_path, pci_id)| Interface { name, mac, mtu, sandbox, socket_path, pci_id },
    )
}

fn route() -> impl Strategy<Value = Route> {
    (
        net(),
        prop::option::of(ip()),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u8>()),
    )
        .prop_map(|(dst, gw, mtu, advmss, priority, table, scope)| Route {
            dst,
            gw,
            mtu,
            advmss,
            priority,
            table,
            scope,
        })
}

fn result() -> impl Strategy<Value = CniResult> {
    (
        prop::collection::vec(interface(), 0..4),
        prop::collection::vec((prop::option::of(0usize..5), net(), prop::option::of(ip())), 0..5),
        prop::collection::vec(route(), 0..5),
        prop::collection::vec(text(10), 0..3),
        text(10),
    )
        .prop_map(|(interfaces, ips, routes, nameservers, domain)| CniResult {
            interfaces,
            ips: ips
                .into_iter()
                .map(|(interface, address, gateway)| IpConfig { interface, address, gateway })
                .collect(),
            routes,
            dns: Dns { nameservers, domain, search: Vec::new(), options: Vec::new() },
        })
}

/// What a result keeps when printed in `v` (the spec's projection).
fn projection(r: &CniResult, v: Version) -> CniResult {
    let mut p = r.clone();
    if v.is_legacy() {
        // One address per family, routes by family, no interfaces.
        let first = |v4: bool| r.ips.iter().find(|i| i.address.is_ipv4() == v4);
        p.interfaces.clear();
        p.ips = [first(true), first(false)]
            .into_iter()
            .flatten()
            .map(|i| IpConfig { interface: None, address: i.address, gateway: i.gateway })
            .collect();
        let has = |v4: bool| first(v4).is_some();
        p.routes = [true, false]
            .into_iter()
            .filter(|f| has(*f))
            .flat_map(|f| r.routes.iter().filter(move |rt| rt.dst.is_ipv4() == f).map(|rt| Route::new(rt.dst, rt.gw)))
            .collect();
        return p;
    }
    if v < Version::V110 {
        for i in &mut p.interfaces {
            i.mtu = None;
            i.socket_path.clear();
            i.pci_id.clear();
        }
        p.routes = p.routes.iter().map(|rt| Route::new(rt.dst, rt.gw)).collect();
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Printing in a version and reading it back gives exactly what that
    /// version can carry; printing again gives the same document.
    #[test]
    fn conversion_round_trips(r in result(), v in version()) {
        match r.to_value(v) {
            Ok(doc) => {
                prop_assert_eq!(doc["cniVersion"].as_str(), Some(v.as_str()));
                let back = CniResult::parse(&doc, v).unwrap();
                prop_assert_eq!(&back, &projection(&r, v));
                prop_assert_eq!(back.to_value(v).unwrap(), doc);
            }
            Err(e) => {
                // Only a legacy version with no address to carry refuses.
                prop_assert!(v.is_legacy() && r.ips.is_empty(), "{e}");
                prop_assert_eq!(e.code, 1);
            }
        }
    }

    /// Converting down through an intermediate version loses nothing the
    /// target keeps: 1.1 -> v1 -> v2 equals 1.1 -> v2 when v2 <= v1 and
    /// both are current-shape versions.
    #[test]
    fn conversion_chains(r in result(), a in version(), b in version()) {
        let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
        prop_assume!(!lo.is_legacy());
        let via = CniResult::parse(&r.to_value(hi).unwrap(), hi).unwrap();
        prop_assert_eq!(via.to_value(lo).unwrap(), r.to_value(lo).unwrap());
    }

    /// Valid ids are exactly the spec's pattern, and safe as one path
    /// component: never empty, never `.`/`..`, no separator.
    #[test]
    fn ids_are_single_path_components(s in text(40)) {
        let mut chars = s.chars();
        let pattern = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        prop_assert_eq!(validate::is_valid_id(&s), pattern);
        if validate::network_name(&s).is_ok() {
            let comps: Vec<_> = Path::new(&s).components().collect();
            prop_assert!(matches!(comps.as_slice(), [Component::Normal(_)]), "{s:?} -> {comps:?}");
            prop_assert!(validate::container_id(&s).is_ok());
        } else {
            prop_assert_eq!(validate::network_name(&s).unwrap_err().code, 7);
        }
    }

    /// An interface name that passes is one the kernel takes as it is:
    /// 1-15 bytes, not `.`/`..`, no `/`, `:`, whitespace (also the byte
    /// 0xA0, which the kernel's `isspace` counts) or `%` (a pattern).
    #[test]
    fn interface_names(s in text(20)) {
        let ok = validate::interface_name(&s).is_ok();
        let expected = !s.is_empty() && s.len() <= 15 && s != "." && s != ".."
            && !s.chars().any(|c| c == '/' || c == ':' || c == '%' || c == '\0' || c.is_whitespace())
            && !s.bytes().any(|b| b == 0xa0 || b.is_ascii_whitespace() || b == 0x0b);
        prop_assert_eq!(ok, expected, "{:?}", s);
        if !ok {
            prop_assert_eq!(validate::interface_name(&s).unwrap_err().code, 4);
        }
    }

    /// A plugin type that passes cannot name a path.
    #[test]
    fn plugin_types_are_file_names(s in text(20)) {
        if validate::plugin_type("type", &s).is_ok() {
            let comps: Vec<_> = Path::new(&s).components().collect();
            prop_assert!(matches!(comps.as_slice(), [Component::Normal(_)]), "{s:?} -> {comps:?}");
        }
    }

    /// `K=V;...` pairs round-trip through CNI_ARGS parsing.
    #[test]
    fn cni_args_round_trip(pairs in prop::collection::vec((text(8), text(8)), 0..6)) {
        let pairs: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (format!("K{}", k.replace(['=', ';'], "")), v.replace(';', "")))
            .filter(|(k, _)| k != "IgnoreUnknown")
            .collect();
        let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let parsed = CniArgs::parse(&joined.join(";")).unwrap();
        prop_assert_eq!(&parsed.pairs, &pairs);
        for (k, _) in &pairs {
            let last = pairs.iter().rev().find(|(k2, _)| k2 == k).map(|(_, v)| v.as_str());
            prop_assert_eq!(parsed.get(k), last);
        }
    }
}
