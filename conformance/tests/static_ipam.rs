//! static IPAM: the container gets exactly the addresses, routes and DNS
//! the config (or the runtime's `ips`) names, in the result and on the
//! interface, behind macvlan (the Multus docs' config, `cni-conf/
//! 40-macvlan-static.conflist`) and bridge, through cnitool; DEL always
//! succeeds; and our results are the reference static's, byte for byte.
//!
//! The macvlan underlay is a veth pair: `m0` in a "host" namespace, `p0`
//! in a "peer" namespace standing for the segment's router.

use conformance::bins::run_binary;
use conformance::fixture::{json_of, Host};
use conformance::{bin_dir, run_plugin, witness, PluginRun, TestNs};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

/// The reference binary; `make test` installs it (`bench-deps`).
const REFERENCE: &str = "/usr/lib/cni/static";

/// A host namespace whose `m0` reaches a peer namespace's `p0`.
struct Segment {
    host: Host,
    peer: TestNs,
}

impl Segment {
    fn new(v4: &str, v6: Option<&str>) -> Segment {
        let host = Host::new("sth");
        let peer = TestNs::new("stp");
        host.ns.ok(&["ip", "link", "add", "m0", "type", "veth", "peer", "name", "p0", "netns", &peer.name]);
        host.ns.ok(&["ip", "link", "set", "m0", "up"]);
        peer.ok(&["ip", "link", "set", "p0", "up"]);
        peer.ok(&["ip", "addr", "add", v4, "dev", "p0"]);
        if let Some(v6) = v6 {
            peer.ok(&["ip", "addr", "add", v6, "dev", "p0", "nodad"]);
        }
        Segment { host, peer }
    }
}

/// `cnitool <cmd> <net> <ctr>` inside the host namespace.
fn cnitool(host: &Host, confdir: &Path, cmd: &str, net: &str, ctr: &TestNs, cap_args: &str) -> Output {
    host.cnitool(confdir, &[cmd, net, &ctr.path()], &[("CAP_ARGS", cap_args)])
}

/// Global addresses on `dev` (no link-local), as `ip -j addr` shows them.
fn global_addresses(ns: &TestNs, dev: &str) -> Vec<String> {
    witness::addresses(ns, dev).into_iter().filter(|a| !a.starts_with("fe80:")).collect()
}

/// `(dst, gateway)` of the routes of one family in the main table.
fn routes(ns: &TestNs, family: &str) -> Vec<(String, String)> {
    let v = witness::ip(ns, &[family, "route", "show", "table", "main"]);
    let mut out: Vec<(String, String)> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["dst"] != "fe80::/64" && r["type"] != "multicast")
        .map(|r| (r["dst"].as_str().unwrap_or("").to_string(), r["gateway"].as_str().unwrap_or("").to_string()))
        .collect();
    out.sort();
    out
}

#[test]
fn multus_macvlan_static_example_runs_through_cnitool() {
    let seg = Segment::new("10.1.1.1/24", None);
    // The example names no master: macvlan takes the default route's link.
    seg.host.ns.ok(&["ip", "route", "add", "default", "dev", "m0"]);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let file = "40-macvlan-static.conflist";
    let mut list: Value = serde_json::from_slice(&std::fs::read(repo.join("cni-conf").join(file)).unwrap()).unwrap();
    assert_eq!(list["plugins"][0]["ipam"]["type"], "static");
    // Only tuning's state moves: never write to the machine's /run/cni.
    list["plugins"][1]["dataDir"] = json!(seg.host.dir.join("tuning"));
    let confdir = seg.host.install(file, &list);
    let ctr = TestNs::new("stc");
    // The pod annotation of the Multus docs: an address and a MAC.
    let caps = r#"{"ips":["10.1.1.101/24"],"mac":"c2:b0:57:49:47:f1"}"#;

    let r = json_of(cnitool(&seg.host, &confdir, "add", "macvlan-conf", &ctr, caps), "add");
    assert_eq!(r["cniVersion"], "0.3.1");
    assert_eq!(r["ips"], json!([{"version": "4", "interface": 0, "address": "10.1.1.101/24"}]), "{r}");
    assert_eq!(r["routes"], json!([{"dst": "0.0.0.0/0", "gw": "10.1.1.1"}]), "{r}");
    assert_eq!(global_addresses(&ctr, "eth0"), ["10.1.1.101/24"]);
    assert_eq!(
        routes(&ctr, "-4"),
        [("10.1.1.0/24".to_string(), String::new()), ("default".to_string(), "10.1.1.1".to_string())]
    );
    assert_eq!(witness::link(&ctr, "eth0").unwrap()["address"], "c2:b0:57:49:47:f1");
    assert!(ctr.ping("10.1.1.1"));

    // 0.3.1 has no CHECK: the runtime refuses it before any plugin runs.
    let check = cnitool(&seg.host, &confdir, "check", "macvlan-conf", &ctr, caps);
    assert!(!check.status.success() && String::from_utf8_lossy(&check.stdout).contains("\"code\": 1"), "{check:?}");
    json_of(cnitool(&seg.host, &confdir, "del", "macvlan-conf", &ctr, caps), "del");
    assert_eq!(witness::link_names(&ctr), ["lo"]);
    json_of(cnitool(&seg.host, &confdir, "del", "macvlan-conf", &ctr, caps), "del again");
}

#[test]
fn dual_stack_addresses_routes_and_dns_are_exactly_the_configured_ones() {
    let seg = Segment::new("10.61.0.1/24", Some("fd61::1/64"));
    let dns = json!({"nameservers": ["10.61.0.53", "fd61::53"], "domain": "static.test",
                     "search": ["static.test", "test"], "options": ["ndots:2"]});
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "stnet",
        "plugins": [{
            "type": "macvlan",
            "master": "m0",
            "mode": "bridge",
            "ipam": {
                "type": "static",
                "addresses": [
                    {"address": "10.61.0.10/24", "gateway": "10.61.0.1"},
                    {"address": "fd61::10/64", "gateway": "fd61::1"}
                ],
                "routes": [
                    {"dst": "0.0.0.0/0"},
                    {"dst": "192.168.61.0/24", "gw": "10.61.0.254"},
                    {"dst": "::/0", "gw": "fd61::1"}
                ],
                "dns": dns
            }
        }]
    });
    let confdir = seg.host.install("st.conflist", &list);
    let ctr = TestNs::new("stc");

    let r = json_of(cnitool(&seg.host, &confdir, "add", "stnet", &ctr, ""), "add");
    assert_eq!(
        r["ips"],
        json!([
            {"interface": 0, "address": "10.61.0.10/24", "gateway": "10.61.0.1"},
            {"interface": 0, "address": "fd61::10/64", "gateway": "fd61::1"}
        ]),
        "{r}"
    );
    assert_eq!(r["routes"], list["plugins"][0]["ipam"]["routes"], "{r}");
    // macvlan, as the reference macvlan, reports the config's top-level
    // `dns`, not IPAM's (bridge keeps IPAM's: see below).
    assert_eq!(r["dns"], json!({}), "{r}");

    assert_eq!(global_addresses(&ctr, "eth0"), ["10.61.0.10/24", "fd61::10/64"]);
    assert_eq!(
        routes(&ctr, "-4"),
        [
            ("10.61.0.0/24".to_string(), String::new()),
            ("192.168.61.0/24".to_string(), "10.61.0.254".to_string()),
            ("default".to_string(), "10.61.0.1".to_string()),
        ]
    );
    assert_eq!(
        routes(&ctr, "-6"),
        [("default".to_string(), "fd61::1".to_string()), ("fd61::/64".to_string(), String::new())]
    );
    assert!(ctr.ping("10.61.0.1") && ctr.ping("fd61::1"));
    assert!(seg.peer.ping("10.61.0.10"));

    json_of(cnitool(&seg.host, &confdir, "check", "stnet", &ctr, ""), "check");
    json_of(cnitool(&seg.host, &confdir, "del", "stnet", &ctr, ""), "del");
    assert_eq!(witness::link_names(&ctr), ["lo"]);
    for _ in 0..2 {
        json_of(cnitool(&seg.host, &confdir, "del", "stnet", &ctr, ""), "del again");
    }
}

#[test]
fn bridge_with_static_addresses() {
    let host = Host::new("stb");
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "stbr",
        "plugins": [{
            "type": "bridge",
            "bridge": "stbr0",
            "isGateway": true,
            "ipam": {
                "type": "static",
                "addresses": [
                    {"address": "10.62.0.10/24", "gateway": "10.62.0.1"},
                    {"address": "fd62::10/64", "gateway": "fd62::1"}
                ],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
                "dns": {"nameservers": ["10.62.0.53"], "search": ["br.test"]}
            }
        }]
    });
    let confdir = host.install("stbr.conflist", &list);
    let (a, b) = (TestNs::new("stc"), TestNs::new("stc"));

    let r = json_of(cnitool(&host, &confdir, "add", "stbr", &a, ""), "add");
    let ips: Vec<&str> = r["ips"].as_array().unwrap().iter().map(|i| i["address"].as_str().unwrap()).collect();
    assert_eq!(ips, ["10.62.0.10/24", "fd62::10/64"], "{r}");
    // bridge keeps IPAM's DNS when its config sets none.
    assert_eq!(r["dns"], json!({"nameservers": ["10.62.0.53"], "search": ["br.test"]}), "{r}");
    assert_eq!(global_addresses(&a, "eth0"), ["10.62.0.10/24", "fd62::10/64"]);
    assert!(routes(&a, "-4").contains(&("default".to_string(), "10.62.0.1".to_string())));
    assert!(routes(&a, "-6").contains(&("default".to_string(), "fd62::1".to_string())));
    // The bridge holds the gateways, so the container reaches the host.
    assert!(a.ping("10.62.0.1") && a.ping("fd62::1"));

    // Another network's config with a capability address on the same bridge.
    let mut other = list.clone();
    other["name"] = json!("stbr2");
    other["plugins"][0]["capabilities"] = json!({"ips": true});
    let confdir2 = host.dir.join("net2.d");
    std::fs::create_dir_all(&confdir2).unwrap();
    std::fs::write(confdir2.join("stbr2.conflist"), other.to_string()).unwrap();
    let r = json_of(cnitool(&host, &confdir2, "add", "stbr2", &b, r#"{"ips":["10.62.0.11/24"]}"#), "add b");
    assert_eq!(r["ips"][0]["address"], "10.62.0.11/24");
    assert_eq!(global_addresses(&b, "eth0"), ["10.62.0.11/24"]);
    assert!(b.ping("10.62.0.10"));

    json_of(cnitool(&host, &confdir2, "del", "stbr2", &b, r#"{"ips":["10.62.0.11/24"]}"#), "del b");
    json_of(cnitool(&host, &confdir, "check", "stbr", &a, ""), "check");
    for _ in 0..2 {
        json_of(cnitool(&host, &confdir, "del", "stbr", &a, ""), "del");
    }
    assert!(host.veths().is_empty(), "{:?}", host.veths());
    assert_eq!(witness::link_names(&a), ["lo"]);
}

/// Runs one static binary (ours or the reference) as an IPAM delegate.
fn run_static(which: &str, ns: &TestNs, cmd: &str, args: &str, conf: &Value) -> PluginRun {
    let path = bin_dir().display().to_string();
    let netns = ns.path();
    let env = [
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", "st-ref"),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", args),
        ("CNI_PATH", path.as_str()),
    ];
    if which == "ours" {
        return run_plugin(None, "static", &env, &conf.to_string());
    }
    run_binary(None, Path::new(REFERENCE), &env, &conf.to_string())
}

#[test]
fn results_match_the_reference_static_byte_for_byte() {
    assert!(
        Path::new(REFERENCE).exists(),
        "{REFERENCE} missing: `make bench-deps` installs containernetworking-plugins"
    );
    let ns = TestNs::new("stref");
    let dual = json!({"type": "static",
        "addresses": [{"address": "10.63.0.5/24", "gateway": "10.63.0.1"}, {"address": "FD63::5/64", "gateway": "fd63::1"}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.1.2.3/8", "gw": "10.63.0.1"}, {"dst": "::/0", "gw": "fd63::1"}],
        "dns": {"nameservers": ["10.63.0.53"], "domain": "d.test", "search": ["d.test"], "options": ["ndots:1"]}});
    let v4 = json!({"type": "static", "addresses": [{"address": "10.63.0.5/24", "gateway": "10.63.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.63.0.53"]}});
    let v6 = json!({"type": "static", "addresses": [{"address": "fd63::5/64"}]});
    let mut cases: Vec<(Value, &str)> = Vec::new();
    for version in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
        let conf = |ipam: &Value| json!({"cniVersion": version, "name": "stref", "type": "macvlan", "ipam": ipam});
        cases.push((conf(&v4), ""));
        cases.push((conf(&v6), ""));
        if version >= "0.3.0" {
            cases.push((conf(&dual), ""));
            cases.push((
                conf(&v4),
                "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.64.0.5/24,fd64::5/64;GATEWAY=10.64.0.1,fd64::1",
            ));
            let mut c = conf(&dual);
            c["runtimeConfig"] = json!({"ips": ["10.65.0.5/24", "fd65::5/64"]});
            cases.push((c, "IP=10.64.0.5/24"));
            let mut c = conf(&dual);
            c["args"] = json!({"cni": {"ips": ["10.66.0.5/16"]}});
            cases.push((c, ""));
        }
    }
    for (conf, args) in &cases {
        let ours = run_static("ours", &ns, "ADD", args, conf).ok();
        let theirs = run_static("reference", &ns, "ADD", args, conf);
        assert_eq!(theirs.code, 0, "reference failed on {conf} / {args:?}: {theirs:?}");
        assert_eq!(ours.stdout, theirs.stdout, "result differs for {conf} with CNI_ARGS {args:?}");
        // Our CHECK accepts the reference's result for the same config.
        if conf["cniVersion"].as_str().unwrap() >= "0.4.0" {
            let mut chk = conf.clone();
            chk["prevResult"] = theirs.json();
            run_static("ours", &ns, "CHECK", args, &chk).ok();
        }
    }
}

#[test]
fn bad_input_is_code_7_naming_the_field_and_del_still_succeeds() {
    let ns = TestNs::new("stbad");
    let conf = |ipam: Value| json!({"cniVersion": "1.0.0", "name": "stbad", "type": "macvlan", "ipam": ipam});
    let bad = [
        (json!({"addresses": [{"address": "10.67.0.5"}]}), "ipam.addresses[0].address \"10.67.0.5\""),
        (json!({"addresses": [{"address": "10.67.0.5/24", "gateway": "10.68.0.1"}]}), "ipam.addresses[0].gateway"),
        (
            json!({"addresses": [{"address": "10.67.0.5/24"}], "routes": [{"dst": "10.0.0.0/8"}, {"dst": "10.9.9.9"}]}),
            "ipam.routes[1].dst \"10.9.9.9\"",
        ),
    ];
    for (ipam, field) in bad {
        let c = conf(ipam);
        let e = run_static("ours", &ns, "ADD", "", &c).err(7);
        assert!(e["msg"].as_str().unwrap().contains(field), "{e}");
        // Nothing was taken: DEL of the same broken config succeeds, twice.
        for _ in 0..2 {
            let del = run_static("ours", &ns, "DEL", "", &c).ok();
            assert!(del.stdout.is_empty(), "{del:?}");
        }
    }
    // CHECK finds an address missing from prevResult, or a changed gateway.
    let mut c = conf(json!({"addresses": [{"address": "10.67.0.5/24", "gateway": "10.67.0.1"}]}));
    c["prevResult"] = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.67.0.5/24", "gateway": "10.67.0.254"}]});
    assert!(run_static("ours", &ns, "CHECK", "", &c).err(100)["msg"].as_str().unwrap().contains("Failed to match"));
    c["prevResult"] = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.67.0.6/24"}]});
    run_static("ours", &ns, "CHECK", "", &c).err(100);
    c["prevResult"] = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.67.0.5/24", "gateway": "10.67.0.1"}]});
    run_static("ours", &ns, "CHECK", "", &c).ok();
    // GC and STATUS (1.1.0): nothing to collect, always ready.
    let mut c = conf(json!({"addresses": [{"address": "10.67.0.5/24"}]}));
    c["cniVersion"] = json!("1.1.0");
    run_static("ours", &ns, "STATUS", "", &c).ok();
    run_static("ours", &ns, "GC", "", &c).ok();
}
