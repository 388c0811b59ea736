//! tuning: each option shows its effect inside the container (`ip -j
//! link`, `/proc/sys/net` read in the namespace) and is undone on DEL;
//! bad input is a clear error with nothing changed; a failure half-way
//! rolls back; the host's own sysctls are never touched.

use conformance::fixture::{with_prev, Host};
use conformance::{witness, TestNs};
use serde_json::{json, Value};
use std::path::Path;

/// A container namespace with an `eth0` (a veth whose peer stays in the
/// container too, so the test owns both ends) and the prevResult an
/// earlier plugin would have produced for it.
struct Ctr {
    ns: TestNs,
    prev: Value,
}

impl Ctr {
    fn new(tag: &str) -> Ctr {
        let ns = TestNs::new(tag);
        ns.ok(&["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"]);
        ns.ok(&["ip", "addr", "add", "10.66.0.2/24", "dev", "eth0"]);
        ns.ok(&["ip", "link", "set", "eth0", "up"]);
        ns.ok(&["ip", "link", "set", "peer0", "up"]);
        let mac = witness::link(&ns, "eth0").unwrap()["address"].as_str().unwrap().to_string();
        let prev = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "mac": mac, "sandbox": ns.path()}],
            "ips": [{"address": "10.66.0.2/24", "interface": 0}]
        });
        Ctr { ns, prev }
    }

    fn link(&self) -> Value {
        witness::link(&self.ns, "eth0").unwrap()
    }

    /// What tuning may change, as `ip -j -d link` shows it.
    fn link_state(&self) -> Value {
        let l = self.link();
        json!({"address": l["address"], "mtu": l["mtu"], "promiscuity": l["promiscuity"],
               "flags": l["flags"], "txqlen": l["txqlen"]})
    }

    fn sysctl(&self, path: &str) -> String {
        self.ns.ok(&["cat", &format!("/proc/sys/{path}")]).trim().to_string()
    }
}

fn flags(l: &Value) -> Vec<String> {
    l["flags"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect()
}

fn conf(data_dir: &Path, extra: Value) -> Value {
    let mut v = json!({"cniVersion": "1.0.0", "name": "tunenet", "type": "tuning", "dataDir": data_dir});
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    v
}

fn state_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("tunenet"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn each_option_shows_in_the_container_and_del_undoes_it() {
    let host = Host::new("tun-all");
    let c = Ctr::new("tun-all-c");
    let dir = host.dir.join("tuning");
    let host_somaxconn = host.ns.ok(&["cat", "/proc/sys/net/core/somaxconn"]);
    let before = c.link_state();
    let (somaxconn0, rp0) = (c.sysctl("net/core/somaxconn"), c.sysctl("net/ipv4/conf/eth0/rp_filter"));
    let cfg = conf(
        &dir,
        json!({"sysctl": {"net.core.somaxconn": "777", "net.ipv4.conf.eth0.rp_filter": "2"},
               "mac": "c2:11:22:33:44:55", "mtu": 1400, "promisc": true, "allmulti": true, "txQLen": 5000}),
    );
    let stdin = with_prev(&cfg.to_string(), &c.prev);
    let r = host.run("tuning", "ADD", &c.ns.path(), "t1", "eth0", &stdin).ok().json();

    // The result is prevResult with the new MAC.
    assert_eq!(r["interfaces"][0]["mac"], "c2:11:22:33:44:55", "{r}");
    assert_eq!(r["ips"][0]["address"], "10.66.0.2/24");
    let l = c.link();
    assert_eq!(l["address"], "c2:11:22:33:44:55");
    assert_eq!(l["mtu"], 1400);
    assert_eq!(l["txqlen"], 5000);
    assert!(l["promiscuity"].as_u64().unwrap() >= 1, "{l}");
    assert!(flags(&l).contains(&"PROMISC".to_string()), "{l}");
    assert!(flags(&l).contains(&"ALLMULTI".to_string()), "{l}");
    assert_eq!(c.sysctl("net/core/somaxconn"), "777");
    assert_eq!(c.sysctl("net/ipv4/conf/eth0/rp_filter"), "2");
    assert_eq!(host.ns.ok(&["cat", "/proc/sys/net/core/somaxconn"]), host_somaxconn, "the host's sysctl is untouched");
    assert_eq!(state_files(&dir), vec!["t1:eth0.json".to_string()]);

    // CHECK passes, then reports drift precisely.
    let check_in = with_prev(&cfg.to_string(), &r);
    let ok = host.run("tuning", "CHECK", &c.ns.path(), "t1", "eth0", &check_in).ok();
    assert!(ok.stdout.is_empty());
    c.ns.ok(&["ip", "link", "set", "eth0", "mtu", "1300"]);
    let e = host.run("tuning", "CHECK", &c.ns.path(), "t1", "eth0", &check_in).err(100);
    assert!(e["msg"].as_str().unwrap().contains("MTU 1300, configured 1400"), "{e}");
    c.ns.ok(&["sh", "-c", "echo 778 > /proc/sys/net/core/somaxconn"]);
    let e = host.run("tuning", "CHECK", &c.ns.path(), "t1", "eth0", &check_in).err(100);
    assert!(e["msg"].as_str().unwrap().contains("net.core.somaxconn"), "{e}");
    c.ns.ok(&["ip", "link", "set", "eth0", "mtu", "1400"]);

    // DEL puts every value back and removes the state file; twice is fine.
    let del = host.run("tuning", "DEL", &c.ns.path(), "t1", "eth0", &check_in).ok();
    assert!(del.stdout.is_empty());
    assert_eq!(c.link_state(), before);
    assert_eq!(c.sysctl("net/core/somaxconn"), somaxconn0);
    assert_eq!(c.sysctl("net/ipv4/conf/eth0/rp_filter"), rp0);
    assert!(state_files(&dir).is_empty());
    host.run("tuning", "DEL", &c.ns.path(), "t1", "eth0", &check_in).ok();
}

#[test]
fn mac_from_cni_args_and_from_the_capability() {
    let host = Host::new("tun-mac");
    let dir = host.dir.join("tuning");
    for (i, (extra, cni_args, want)) in [
        (json!({}), "IgnoreUnknown=1;K8S_POD_NAME=x;MAC=c2:00:00:00:00:0a", "c2:00:00:00:00:0a"),
        (json!({"runtimeConfig": {"mac": "c2:00:00:00:00:0b"}}), "MAC=c2:00:00:00:00:0a", "c2:00:00:00:00:0b"),
        (json!({"mac": "c2:00:00:00:00:0c"}), "IP=10.66.0.9", "c2:00:00:00:00:0c"),
    ]
    .into_iter()
    .enumerate()
    {
        let c = Ctr::new("tun-mac-c");
        let before = c.link()["address"].clone();
        let id = format!("m{i}");
        let stdin = with_prev(&conf(&dir, extra).to_string(), &c.prev);
        let r = host.run_env("tuning", "ADD", &c.ns.path(), &id, "eth0", &stdin, &[("CNI_ARGS", cni_args)]).ok();
        assert_eq!(r.json()["interfaces"][0]["mac"], want);
        assert_eq!(c.link()["address"], want);
        host.run_env("tuning", "DEL", &c.ns.path(), &id, "eth0", &stdin, &[("CNI_ARGS", cni_args)]).ok();
        assert_eq!(c.link()["address"], before);
    }
}

#[test]
fn bad_input_is_a_clear_error_and_changes_nothing() {
    let host = Host::new("tun-bad");
    let c = Ctr::new("tun-bad-c");
    let dir = host.dir.join("tuning");
    let before = c.link_state();
    let somaxconn = c.sysctl("net/core/somaxconn");
    let host_state = host.ns.ok(&["sh", "-c", "cat /proc/sys/kernel/hostname /proc/sys/net/core/somaxconn"]);
    for (extra, needle) in [
        (json!({"sysctl": {"kernel.hostname": "pwned"}}), "only network sysctls"),
        (json!({"sysctl": {"net/../kernel/hostname": "pwned"}}), "contains '/'"),
        (json!({"sysctl": {"net.ipv4.conf.all/../../../kernel.hostname": "pwned"}}), "contains '/'"),
        (json!({"sysctl": {"net.core..somaxconn": "1"}}), "empty component"),
        (json!({"mac": "c2:11:22:33:44"}), "invalid MAC"),
        (json!({"mac": "ff:ff:ff:ff:ff:ff"}), "unicast"),
        (json!({"mtu": 70000}), "out of range"),
        (json!({"mtu": 20}), "out of range"),
        // Valid-looking, then refused: every change is checked or rolled back.
        (json!({"sysctl": {"net.core.somaxconn": "777", "net.ipv4.conf.nosuchif0.forwarding": "1"}}), "nosuchif0"),
    ] {
        let stdin = with_prev(&conf(&dir, extra.clone()).to_string(), &c.prev);
        let e = host.run("tuning", "ADD", &c.ns.path(), "b1", "eth0", &stdin).err(7);
        assert!(e["msg"].as_str().unwrap().contains(needle), "{extra}: {e}");
        assert_eq!(c.link_state(), before, "{extra}");
        assert_eq!(c.sysctl("net/core/somaxconn"), somaxconn, "{extra}");
        assert!(state_files(&dir).is_empty(), "{extra}");
    }
    let stdin = with_prev(&conf(&dir, json!({})).to_string(), &c.prev);
    let e = host.run_env("tuning", "ADD", &c.ns.path(), "b1", "eth0", &stdin, &[("CNI_ARGS", "MAC=nope")]).err(4);
    assert!(e["msg"].as_str().unwrap().contains("CNI_ARGS MAC"), "{e}");
    assert_eq!(host.ns.ok(&["sh", "-c", "cat /proc/sys/kernel/hostname /proc/sys/net/core/somaxconn"]), host_state);
}

#[test]
fn a_failure_half_way_rolls_back_what_was_applied() {
    let host = Host::new("tun-rb");
    let c = Ctr::new("tun-rb-c");
    let dir = host.dir.join("tuning");
    let somaxconn = c.sysctl("net/core/somaxconn");
    // somaxconn is written first, then rp_filter refuses "x" (EINVAL): the
    // first write is undone.
    let stdin = with_prev(
        &conf(&dir, json!({"sysctl": {"net.core.somaxconn": "777", "net.ipv4.conf.eth0.rp_filter": "x"}})).to_string(),
        &c.prev,
    );
    let e = host.run("tuning", "ADD", &c.ns.path(), "r1", "eth0", &stdin).err(100);
    assert!(e["msg"].as_str().unwrap().contains("rp_filter"), "{e}");
    assert_eq!(c.sysctl("net/core/somaxconn"), somaxconn);
    // A macvlan cannot be larger than its parent (1500): the MAC is set,
    // the MTU refused, and the MAC put back.
    c.ns.ok(&["ip", "link", "add", "mv0", "link", "eth0", "type", "macvlan"]);
    let mv_before = witness::link(&c.ns, "mv0").unwrap()["address"].clone();
    let stdin = with_prev(&conf(&dir, json!({"mac": "c2:00:00:00:00:99", "mtu": 1600})).to_string(), &c.prev);
    let e = host.run("tuning", "ADD", &c.ns.path(), "r2", "mv0", &stdin).err(7);
    assert!(e["msg"].as_str().unwrap().contains("MTU 1600 refused"), "{e}");
    let mv = witness::link(&c.ns, "mv0").unwrap();
    assert_eq!(mv["address"], mv_before);
    assert_eq!(mv["mtu"], 1500);
    assert!(state_files(&dir).is_empty());
}

#[test]
fn a_changed_mac_is_announced_so_traffic_keeps_flowing() {
    // bridge + tuning, as Podman chains them: the host learns the old MAC
    // first; after tuning changes it, the host must still reach the container.
    let host = Host::new("tun-arp");
    let c = TestNs::new("tun-arp-c");
    let dir = host.dir.join("tuning");
    let br = host.conf(json!({
        "cniVersion": "1.0.0", "name": "tunenet", "type": "bridge", "bridge": "cni-tunarp", "isGateway": true,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.67.0.0/24"}]]}
    }));
    let r = host.run("bridge", "ADD", &c.path(), "a1", "eth0", &br).ok().json();
    let ip = r["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_string();
    assert!(host.ns.ping(&ip), "host -> container before the MAC change");
    // Whatever the earlier plugin chose, tuning announces the change itself
    // and leaves the setting as it found it.
    c.ok(&["sh", "-c", "echo 0 > /proc/sys/net/ipv4/conf/eth0/arp_notify"]);
    let stdin = with_prev(&conf(&dir, json!({"mac": "c2:aa:bb:cc:dd:ee"})).to_string(), &r);
    let r2 = host.run("tuning", "ADD", &c.path(), "a1", "eth0", &stdin).ok().json();
    assert_eq!(r2["interfaces"][2]["mac"], "c2:aa:bb:cc:dd:ee");
    assert!(host.ns.ping(&ip), "host -> container right after the MAC change");
    assert_eq!(c.ok(&["cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify"]).trim(), "0");
    // The bridge's CHECK accepts the final result with tuning's MAC.
    host.run("bridge", "CHECK", &c.path(), "a1", "eth0", &with_prev(&br, &r2)).ok();
    host.run("tuning", "DEL", &c.path(), "a1", "eth0", &with_prev(&conf(&dir, json!({})).to_string(), &r2)).ok();
    host.run("bridge", "DEL", &c.path(), "a1", "eth0", &with_prev(&br, &r2)).ok();
}

#[test]
fn del_without_namespace_and_gc_remove_state() {
    let host = Host::new("tun-gc");
    let dir = host.dir.join("tuning");
    let (c1, c2) = (Ctr::new("tun-gc-1"), Ctr::new("tun-gc-2"));
    let cfg = conf(&dir, json!({"mtu": 1300}));
    for (c, id) in [(&c1, "g1"), (&c2, "g2")] {
        host.run("tuning", "ADD", &c.ns.path(), id, "eth0", &with_prev(&cfg.to_string(), &c.prev)).ok();
    }
    assert_eq!(state_files(&dir).len(), 2);
    // The runtime lost g1's namespace: DEL with an empty CNI_NETNS.
    host.run("tuning", "DEL", "", "g1", "eth0", &cfg.to_string()).ok();
    assert_eq!(state_files(&dir), vec!["g2:eth0.json".to_string()]);
    // GC with g2 gone from the valid list removes its file too.
    let mut gc = cfg.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "other", "ifname": "eth0"}]);
    let mut nolist = gc.clone();
    nolist.as_object_mut().unwrap().remove("cni.dev/valid-attachments");
    host.run("tuning", "GC", "", "", "", &nolist.to_string()).ok();
    assert_eq!(state_files(&dir).len(), 1, "no list: nothing removed");
    // A write killed before its rename left a temp file two hours ago.
    let leftover = conformance::fixture::plant_stale_temp(&dir.join("tunenet"), ".tmp.4242.0");
    host.run("tuning", "GC", "", "", "", &gc.to_string()).ok();
    assert!(state_files(&dir).is_empty(), "{:?}", state_files(&dir));
    assert!(!leftover.exists());
    // prevResult is required on ADD, as in the reference.
    let e = host.run("tuning", "ADD", &c1.ns.path(), "g3", "eth0", &cfg.to_string()).err(7);
    assert!(e["msg"].as_str().unwrap().contains("prevResult"), "{e}");
}

#[test]
fn works_as_the_reference_for_an_empty_config() {
    // Podman's conflist carries a bare {"type": "tuning"}: ADD passes
    // prevResult through and writes nothing.
    let host = Host::new("tun-empty");
    let c = Ctr::new("tun-empty-c");
    let cfg = json!({"cniVersion": "0.4.0", "name": "tunenet", "type": "tuning", "dataDir": host.dir.join("tuning")});
    let mut prev = c.prev.clone();
    prev["cniVersion"] = json!("0.4.0");
    let r = host.run("tuning", "ADD", &c.ns.path(), "e1", "eth0", &with_prev(&cfg.to_string(), &prev)).ok().json();
    assert_eq!(r["cniVersion"], "0.4.0");
    assert_eq!(r["ips"][0]["version"], "4");
    assert!(state_files(&host.dir.join("tuning")).is_empty());
    host.run("tuning", "CHECK", &c.ns.path(), "e1", "eth0", &with_prev(&cfg.to_string(), &r)).ok();
    host.run("tuning", "DEL", &c.ns.path(), "e1", "eth0", &with_prev(&cfg.to_string(), &r)).ok();
}

/// A container namespace whose interface is called `ifname` (a veth whose
/// peer stays in the namespace).
fn ctr_named(tag: &str, ifname: &str) -> (TestNs, Value) {
    let ns = TestNs::new(tag);
    ns.ok(&["ip", "link", "add", ifname, "type", "veth", "peer", "name", "peer0"]);
    ns.ok(&["ip", "link", "set", ifname, "up"]);
    let prev = json!({"cniVersion": "0.4.0", "interfaces": [{"name": ifname, "sandbox": ns.path()}],
                      "ips": [{"version": "4", "address": "10.66.0.2/24", "interface": 0}]});
    (ns, prev)
}

/// The OpenShift-documented config: the `IFNAME` token in a sysctl name is
/// the container's interface name, as the reference substitutes it (also
/// inside a component, and in `args.cni.sysctl`). An interface name with a
/// dot (a VLAN-style `net1.5`) names that interface, where the reference,
/// turning every dot into a slash, fails.
#[test]
fn ifname_token_in_sysctl_names_is_the_container_interface() {
    let host = Host::new("tun-ifn");
    let dir = host.dir.join("tuning");
    for ifname in ["eth0", "net1.5"] {
        let (ns, prev) = ctr_named("tun-ifn-c", ifname);
        let read = |leaf: &str, fam: &str| ns.ok(&["cat", &format!("/proc/sys/net/{fam}/conf/{ifname}/{leaf}")]);
        ns.ok(&["sh", "-c", &format!("echo 0 > '/proc/sys/net/ipv4/conf/{ifname}/accept_redirects'")]);
        let (ra0, arp0) = (read("accept_ra", "ipv6"), read("arp_filter", "ipv4"));
        let mut cfg = json!({"cniVersion": "0.4.0", "name": "tunenet", "type": "tuning", "dataDir": dir,
            "sysctl": {"net.ipv4.conf.IFNAME.accept_redirects": "1", "net.ipv6.conf.IFNAME.accept_ra": "0"},
            "args": {"cni": {"sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1"}}}});
        let stdin = with_prev(&cfg.to_string(), &prev);
        let r = host.run("tuning", "ADD", &ns.path(), "t1", ifname, &stdin).ok().json();
        assert_eq!(read("accept_redirects", "ipv4").trim(), "1", "{ifname}");
        assert_eq!(read("accept_ra", "ipv6").trim(), "0", "{ifname}");
        assert_eq!(read("arp_filter", "ipv4").trim(), "1", "{ifname}");

        let check_in = with_prev(&cfg.to_string(), &r);
        host.run("tuning", "CHECK", &ns.path(), "t1", ifname, &check_in).ok();
        ns.ok(&["sh", "-c", &format!("echo 0 > '/proc/sys/net/ipv4/conf/{ifname}/accept_redirects'")]);
        let e = host.run("tuning", "CHECK", &ns.path(), "t1", ifname, &check_in).err(100);
        assert!(e["msg"].as_str().unwrap().contains("accept_redirects"), "{e}");

        host.run("tuning", "DEL", &ns.path(), "t1", ifname, &check_in).ok();
        assert_eq!(read("accept_redirects", "ipv4").trim(), "0", "restored on DEL");
        assert_eq!((read("accept_ra", "ipv6"), read("arp_filter", "ipv4")), (ra0, arp0), "restored on DEL");
        host.run("tuning", "DEL", &ns.path(), "t1", ifname, &check_in).ok();
        cfg["sysctl"] = json!({"net.ipv4.conf.IFNAME.no_such_leaf": "1"});
        let e = host.run("tuning", "ADD", &ns.path(), "t2", ifname, &with_prev(&cfg.to_string(), &prev)).err(7);
        assert!(e["msg"].as_str().unwrap().contains("no_such_leaf"), "{e}");
    }
}
