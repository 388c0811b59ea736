//! Bad input and exhaustion: each a clear error with the right code, and
//! the store exactly as it was.

mod common;

use common::*;
use serde_json::{json, Value};

/// A data dir whose network `net` already holds one lease (so "unchanged"
/// means something), and the config that made it.
fn seeded(tag: &str) -> (DataDir, Value) {
    let d = DataDir::new(tag);
    let c = conf("1.0.0", "net", &d, json!({"ranges": [[{"subnet": "10.60.0.0/24"}], [{"subnet": "fd00:60::/64"}]]}));
    Call::new("ADD", "seed").run(&c).ok();
    (d, c)
}

/// Runs ADD with `ipam` (dataDir added) and asserts the error code, a
/// message containing `needle`, and an unchanged data dir.
fn refused(tag: &str, ipam: Value, args: &str, code: u64, needle: &str) {
    let (d, _) = seeded(tag);
    let before = snapshot(&d.0);
    let c = conf("1.0.0", "net", &d, ipam);
    let e = Call::new("ADD", "c1").args(args).run(&c).err(code);
    let msg = e["msg"].as_str().unwrap();
    assert!(msg.contains(needle), "{tag}: {msg:?} lacks {needle:?}");
    assert_eq!(snapshot(&d.0), before, "{tag}: store changed");
}

#[test]
fn bad_ranges_are_config_errors() {
    let v4 = |r: Value| json!({"ranges": [[r]]});
    refused(
        "overlap-sets",
        json!({"ranges": [[{"subnet": "10.60.0.0/24"}], [{"subnet": "10.60.0.128/25"}]]}),
        "",
        7,
        "overlaps",
    );
    refused(
        "overlap-in-set",
        json!({"ranges": [[{"subnet": "10.60.0.0/24"}, {"subnet": "10.60.0.0/24", "rangeStart": "10.60.0.200"}]]}),
        "",
        7,
        "overlap",
    );
    refused(
        "gw-outside",
        v4(json!({"subnet": "10.60.0.0/24", "gateway": "10.61.0.1"})),
        "",
        7,
        "gateway 10.61.0.1 not in network",
    );
    refused(
        "start-after-end",
        v4(json!({"subnet": "10.60.0.0/24", "rangeStart": "10.60.0.50", "rangeEnd": "10.60.0.40"})),
        "",
        7,
        "after rangeEnd",
    );
    refused(
        "start-outside",
        v4(json!({"subnet": "10.60.0.0/24", "rangeStart": "10.62.0.5"})),
        "",
        7,
        "rangeStart 10.62.0.5 not in network",
    );
    refused(
        "end-outside",
        v4(json!({"subnet": "10.60.0.0/24", "rangeEnd": "10.60.1.5"})),
        "",
        7,
        "rangeEnd 10.60.1.5 not in network",
    );
    refused("too-small-31", v4(json!({"subnet": "10.60.0.0/31"})), "", 7, "too small");
    refused("too-small-32", v4(json!({"subnet": "10.60.0.1/32"})), "", 7, "too small");
    refused("too-small-127", json!({"ranges": [[{"subnet": "fd00:60::/127"}]]}), "", 7, "too small");
    refused("host-bits", v4(json!({"subnet": "10.60.0.9/24"})), "", 7, "host bits");
    refused("not-a-subnet", v4(json!({"subnet": "10.60.0.0/33"})), "", 7, "invalid ipam config");
    refused("mixed-set", json!({"ranges": [[{"subnet": "10.60.0.0/24"}, {"subnet": "fd00:60::/64"}]]}), "", 7, "mixed");
    refused("empty-set", json!({"ranges": [[]]}), "", 7, "empty range set");
    refused("no-ranges", json!({}), "", 7, "no IP ranges specified");
    refused("no-ranges-legacy", json!({"rangeStart": "10.60.0.5"}), "", 7, "no IP ranges specified");
}

#[test]
fn bad_requested_addresses() {
    let ipam =
        json!({"ranges": [[{"subnet": "10.60.0.0/24", "rangeEnd": "10.60.0.100"}], [{"subnet": "fd00:60::/64"}]]});
    refused("req-outside", ipam.clone(), "IP=10.99.0.5", 7, "failed to allocate all requested IPs: 10.99.0.5");
    refused("req-past-end", ipam.clone(), "IP=10.60.0.150", 7, "10.60.0.150");
    refused("req-taken", ipam.clone(), "IP=10.60.0.2", 102, "held by container seed (eth0)");
    refused("req-taken-v6", ipam.clone(), "IP=fd00:60::2", 102, "not available");
    refused("req-gateway", ipam.clone(), "IP=10.60.0.1", 7, "gateway");
    refused("req-two-in-one-set", ipam.clone(), "IP=10.60.0.7,10.60.0.8", 7, "both in range set 0");
    refused("req-malformed", ipam.clone(), "IP=10.60.0.300", 4, "invalid IP address");
    refused("unknown-arg", ipam.clone(), "FOO=bar", 4, "ARGS: unknown args [\"FOO=bar\"]");
    refused("malformed-args", ipam, "FOO", 4, "invalid pair");
}

#[test]
fn names_and_data_dirs_that_escape_are_refused() {
    let d = DataDir::new("escape");
    let outside = d.0.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let inner = d.0.join("data");
    let ipam = |dir: &str| json!({"ranges": [[{"subnet": "10.60.0.0/24"}]], "dataDir": dir});
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"cniVersion": "1.0.0", "name": "../outside", "type": "bridge", "ipam": ipam(&inner.display().to_string())}),
            "name",
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "/etc", "type": "bridge", "ipam": ipam(&inner.display().to_string())}),
            "name",
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "a/b", "type": "bridge", "ipam": ipam(&inner.display().to_string())}),
            "name",
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "a\u{0}b", "type": "bridge", "ipam": ipam(&inner.display().to_string())}),
            "name",
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "..", "type": "bridge", "ipam": ipam(&inner.display().to_string())}),
            "name",
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "net", "type": "bridge", "ipam": ipam(&format!("{}/../outside", inner.display()))}),
            "dataDir",
        ),
        (json!({"cniVersion": "1.0.0", "name": "net", "type": "bridge", "ipam": ipam("relative/data")}), "dataDir"),
        (
            json!({"cniVersion": "1.0.0", "name": "net", "type": "bridge", "ipam": ipam(&format!("{}\u{0}x", inner.display()))}),
            "dataDir",
        ),
        (json!({"cniVersion": "1.0.0", "name": "net", "type": "bridge", "ipam": ipam("/")}), "dataDir"),
    ];
    let before = snapshot(&d.0);
    for (c, needle) in cases {
        for cmd in ["ADD", "DEL", "CHECK"] {
            let mut c = c.clone();
            if cmd == "CHECK" {
                c["prevResult"] = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.60.0.2/24"}]});
            }
            let e = Call::new(cmd, "c1").run(&c).err(7);
            assert!(e["msg"].as_str().unwrap().contains(needle), "{cmd} {c}: {e}");
        }
    }
    assert_eq!(snapshot(&d.0), before, "nothing created anywhere");
    assert!(!std::path::Path::new("relative").exists());
}

#[test]
fn old_versions_refuse_two_addresses_of_one_family() {
    let d = DataDir::new("oldver");
    let c = conf("0.2.0", "net", &d, json!({"ranges": [[{"subnet": "10.60.0.0/24"}], [{"subnet": "10.61.0.0/24"}]]}));
    let e = Call::new("ADD", "c1").run(&c).err(7);
    assert!(e["msg"].as_str().unwrap().contains("does not support more than 1 address per family"), "{e}");
    assert!(!d.store("net").exists());
}

#[test]
fn a_full_slash_30_fails_naming_network_and_range_and_writes_nothing() {
    let d = DataDir::new("full");
    let c = conf("1.0.0", "tiny", &d, json!({"ranges": [[{"subnet": "10.63.0.0/30", "gateway": "10.63.0.1"}]]}));
    assert_eq!(Call::new("ADD", "c1").run(&c).ips(), ["10.63.0.2/30"]);
    let before = snapshot(&d.0);
    let e = Call::new("ADD", "c2").run(&c).err(101);
    assert_eq!(
        e["msg"],
        "failed to allocate for range 0 of network \"tiny\": no IP addresses available in range set: 10.63.0.1-10.63.0.2"
    );
    assert_eq!(snapshot(&d.0), before);

    // A dual-stack ADD whose second set is full releases nothing it did not
    // take and keeps nothing it took.
    let ds =
        conf("1.0.0", "tiny2", &d, json!({"ranges": [[{"subnet": "fd00:63::/64"}], [{"subnet": "10.64.0.0/30"}]]}));
    Call::new("ADD", "c1").run(&ds).ok();
    let before = snapshot(&d.0);
    let e = Call::new("ADD", "c2").run(&ds).err(101);
    assert!(e["msg"].as_str().unwrap().contains("range 1 of network \"tiny2\""), "{e}");
    assert_eq!(snapshot(&d.0), before);

    // Freed, it is handed out again.
    Call::new("DEL", "c1").run(&c).ok();
    assert_eq!(Call::new("ADD", "c2").run(&c).ips(), ["10.63.0.2/30"]);
}
