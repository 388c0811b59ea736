//! macvlan: underlay networking on an underlay each test builds itself. A
//! "host" namespace holds the master `m0`, one end of a veth pair (this
//! kernel has no dummy driver, and the machine's NIC is never used); the
//! other end `p0` sits in a "peer" namespace with `10.77.0.1/24` and
//! `fd77::1/64`, standing for another machine on the same segment. The
//! plugin runs inside the host namespace, IPAM is this repo's host-local
//! with a private `dataDir`.

use conformance::bins::run_binary;
use conformance::{bin, bin_dir, run_plugin, witness, PluginRun, TestNs};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

const NET: &str = "mvnet";
const PEER_V4: &str = "10.77.0.1";
const PEER_V6: &str = "fd77::1";

/// The segment: host namespace with master `m0`, peer namespace with `p0`,
/// and a host-local data dir; everything is removed on drop.
struct Underlay {
    host: TestNs,
    peer: TestNs,
    data: PathBuf,
}

impl Underlay {
    fn new() -> Underlay {
        let host = TestNs::new("mvh");
        let peer = TestNs::new("mvp");
        host.ok(&["ip", "link", "add", "m0", "type", "veth", "peer", "name", "p0", "netns", &peer.name]);
        host.ok(&["ip", "link", "set", "m0", "up"]);
        peer.ok(&["ip", "link", "set", "p0", "up"]);
        peer.ok(&["ip", "addr", "add", &format!("{PEER_V4}/24"), "dev", "p0"]);
        peer.ok(&["ip", "addr", "add", &format!("{PEER_V6}/64"), "dev", "p0", "nodad"]);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let data = std::env::temp_dir().join(format!("mv-conf-{}-{n}", std::process::id()));
        Underlay { host, peer, data }
    }

    /// A v4 macvlan + host-local config at `version`; each key of `extra`
    /// replaces the config's (`null` removes it).
    fn conf(&self, version: &str, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": version,
            "name": NET,
            "type": "macvlan",
            "master": "m0",
            "ipam": {
                "type": "host-local",
                "dataDir": self.data,
                "ranges": [[{"subnet": "10.77.0.0/24", "gateway": PEER_V4}]],
                "routes": [{"dst": "0.0.0.0/0"}]
            }
        });
        for (k, v) in extra.as_object().expect("extra is an object") {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    /// The dual-stack IPAM section.
    fn dual_ipam(&self) -> Value {
        json!({
            "type": "host-local",
            "dataDir": self.data,
            "ranges": [[{"subnet": "10.77.0.0/24", "gateway": PEER_V4}], [{"subnet": "fd77::/64", "gateway": PEER_V6}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
        })
    }

    /// Runs the plugin in the host namespace as a runtime would.
    fn run_with(&self, cmd: &str, netns: &str, cid: &str, ifname: &str, args: &str, conf: &Value) -> PluginRun {
        let path = bin_dir().display().to_string();
        let env = [
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", cid),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", ifname),
            ("CNI_ARGS", args),
            ("CNI_PATH", path.as_str()),
        ];
        run_plugin(Some(&self.host.name), "macvlan", &env, &conf.to_string())
    }

    /// Runs `cmd` for container `cid` with `eth0` in `ctr`.
    fn run(&self, cmd: &str, ctr: &TestNs, cid: &str, conf: &Value) -> PluginRun {
        self.run_with(cmd, &ctr.path(), cid, "eth0", "", conf)
    }

    /// The addresses host-local holds for the network.
    fn leases(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.data.join(NET)) else { return Vec::new() };
        let mut v: Vec<String> = dir
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.parse::<IpAddr>().is_ok())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Underlay {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// `conf` with the ADD result as prevResult (what DEL and CHECK get).
fn with_prev(conf: &Value, add: &PluginRun) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = add.json();
    c
}

/// The `ip -j -d` view of `dev` in `ns`, which must exist.
fn link_of(ns: &TestNs, dev: &str) -> Value {
    witness::link(ns, dev).unwrap_or_else(|| panic!("no {dev} in {}", ns.name))
}

fn mode_of(ns: &TestNs, dev: &str) -> String {
    let l = link_of(ns, dev);
    assert_eq!(l["linkinfo"]["info_kind"], "macvlan", "{l}");
    l["linkinfo"]["info_data"]["mode"].as_str().unwrap().to_string()
}

fn is_up(l: &Value) -> bool {
    l["flags"].as_array().unwrap().iter().any(|f| f == "UP")
}

fn global_addresses(ns: &TestNs, dev: &str) -> Vec<String> {
    witness::addresses(ns, dev).into_iter().filter(|a| !a.starts_with("fe80:")).collect()
}

fn sysctl(ns: &TestNs, key: &str) -> String {
    ns.ok(&["cat", &format!("/proc/sys/{key}")]).trim().to_string()
}

#[test]
fn bridge_mode_containers_reach_each_other_and_the_segment() {
    let u = Underlay::new();
    let (c1, c2) = (TestNs::new("mvc"), TestNs::new("mvc"));
    let dns = json!({"nameservers": ["10.77.0.53"], "search": ["lan"]});
    let conf = u.conf("1.0.0", json!({"mode": "bridge", "dns": dns}));
    let add1 = u.run("ADD", &c1, "mv-br-1", &conf).ok();
    let add2 = u.run("ADD", &c2, "mv-br-2", &conf).ok();

    let r = add1.json();
    assert_eq!(r["cniVersion"], "1.0.0");
    let ifaces = r["interfaces"].as_array().unwrap();
    assert_eq!(ifaces.len(), 1, "{r}");
    assert_eq!(ifaces[0]["name"], "eth0");
    assert_eq!(ifaces[0]["sandbox"], c1.path().as_str());
    let l1 = link_of(&c1, "eth0");
    assert_eq!(ifaces[0]["mac"], l1["address"], "result MAC is the link's");
    assert_eq!(r["ips"][0]["interface"], 0);
    assert_eq!(r["ips"][0]["address"], "10.77.0.2/24");
    assert_eq!(r["ips"][0]["gateway"], PEER_V4);
    assert_eq!(r["routes"], json!([{"dst": "0.0.0.0/0"}]));
    assert_eq!(r["dns"], dns, "result dns is the config's");
    assert_eq!(add2.json()["ips"][0]["address"], "10.77.0.3/24");

    assert_eq!(mode_of(&c1, "eth0"), "bridge");
    assert!(is_up(&l1));
    assert_eq!(witness::addresses(&c1, "eth0")[0], "10.77.0.2/24");
    assert_eq!(sysctl(&c1, "net/ipv4/conf/eth0/arp_notify"), "1");
    // The MACs differ from each other and from the master.
    let master_mac = link_of(&u.host, "m0")["address"].clone();
    assert_ne!(l1["address"], link_of(&c2, "eth0")["address"]);
    assert_ne!(l1["address"], master_mac);

    assert!(c1.ping("10.77.0.3"), "container to container in bridge mode");
    assert!(c1.ping(PEER_V4), "container to the segment");
    assert!(u.peer.ping("10.77.0.3"), "segment to container");

    let check = u.run("CHECK", &c1, "mv-br-1", &with_prev(&conf, &add1)).ok();
    assert!(check.stdout.is_empty() && check.stderr.is_empty(), "{check:?}");

    assert_eq!(u.leases(), ["10.77.0.2", "10.77.0.3"]);
    for (ns, cid, add) in [(&c1, "mv-br-1", &add1), (&c2, "mv-br-2", &add2)] {
        for _ in 0..2 {
            let d = u.run("DEL", ns, cid, &with_prev(&conf, add)).ok();
            assert!(d.stdout.is_empty() && d.stderr.is_empty(), "{d:?}");
        }
        assert_eq!(witness::link_names(ns), ["lo"]);
    }
    assert!(u.leases().is_empty());
    assert!(witness::link(&u.host, "m0").is_some(), "the master stays");
}

#[test]
fn private_mode_isolates_containers() {
    let u = Underlay::new();
    let (c1, c2) = (TestNs::new("mvc"), TestNs::new("mvc"));
    let conf = u.conf("1.0.0", json!({"mode": "private"}));
    u.run("ADD", &c1, "mv-pr-1", &conf).ok();
    u.run("ADD", &c2, "mv-pr-2", &conf).ok();
    assert_eq!(mode_of(&c1, "eth0"), "private");
    assert!(c1.ping(PEER_V4) && c2.ping(PEER_V4), "both still reach the segment");
    assert!(!c1.ping("10.77.0.3"), "private mode must isolate siblings");
    assert!(!c2.ping("10.77.0.2"), "private mode must isolate siblings");
    u.run("DEL", &c1, "mv-pr-1", &conf).ok();
    u.run("DEL", &c2, "mv-pr-2", &conf).ok();
}

#[test]
fn other_modes_and_options_reach_the_kernel() {
    let u = Underlay::new();
    for mode in ["vepa", "passthru", "source"] {
        let c = TestNs::new("mvc");
        let conf = u.conf("1.0.0", json!({"mode": mode, "ipam": {}}));
        u.run("ADD", &c, "mv-mode", &conf).ok();
        assert_eq!(mode_of(&c, "eth0"), mode);
        u.run("DEL", &c, "mv-mode", &conf).ok();
        assert_eq!(witness::link_names(&c), ["lo"]);
    }
    let c = TestNs::new("mvc");
    let conf = u.conf("1.0.0", json!({"mtu": 1400, "bcqueuelen": 321, "ipam": {}}));
    u.run("ADD", &c, "mv-opt", &conf).ok();
    let l = link_of(&c, "eth0");
    assert_eq!(l["mtu"], 1400);
    assert_eq!(l["linkinfo"]["info_data"]["bcqueuelen"], 321, "{l}");
}

#[test]
fn dual_stack_and_v6_only_addresses_show_in_ip_addr() {
    let u = Underlay::new();
    let c = TestNs::new("mvc");
    let conf = u.conf("1.0.0", json!({"ipam": u.dual_ipam()}));
    let add = u.run("ADD", &c, "mv-ds", &conf).ok();
    let r = add.json();
    assert_eq!(r["ips"].as_array().unwrap().len(), 2, "{r}");
    assert!(r["ips"].as_array().unwrap().iter().all(|ip| ip["interface"] == 0));
    let addrs = witness::addresses(&c, "eth0");
    assert!(addrs.contains(&"10.77.0.2/24".to_string()), "{addrs:?}");
    assert!(addrs.contains(&"fd77::2/64".to_string()), "{addrs:?}");
    let routes = witness::ip(&c, &["-6", "route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], PEER_V6, "{routes}");
    // No DAD wait by default: the address is usable as soon as ADD returns.
    assert!(witness::v6_nodad(&c, "eth0"));
    // IPv6 addresses are announced too (unsolicited neighbour advertisements).
    assert_eq!(sysctl(&c, "net/ipv6/conf/eth0/ndisc_notify"), "1");
    assert!(c.ping(PEER_V4) && c.ping(PEER_V6));
    assert!(u.peer.ping("fd77::2"));
    u.run("CHECK", &c, "mv-ds", &with_prev(&conf, &add)).ok();
    u.run("DEL", &c, "mv-ds", &with_prev(&conf, &add)).ok();
    assert!(u.leases().is_empty());

    let c6 = TestNs::new("mvc");
    let mut ipam = u.dual_ipam();
    ipam["ranges"] = json!([[{"subnet": "fd77::/64", "gateway": PEER_V6}]]);
    ipam["routes"] = json!([{"dst": "::/0"}]);
    let conf = u.conf("1.0.0", json!({"ipam": ipam}));
    let r = u.run("ADD", &c6, "mv-v6", &conf).ok().json();
    assert_eq!(r["ips"], json!([{"interface": 0, "address": "fd77::2/64", "gateway": PEER_V6}]));
    assert_eq!(global_addresses(&c6, "eth0"), ["fd77::2/64"]);
    assert!(c6.ping(PEER_V6));
    u.run("DEL", &c6, "mv-v6", &conf).ok();
}

#[test]
fn opt_in_dad_waits_and_still_works() {
    let u = Underlay::new();
    let c = TestNs::new("mvc");
    let conf = u.conf("1.0.0", json!({"ipam": u.dual_ipam(), "enabledad": true}));
    u.run("ADD", &c, "mv-dad", &conf).ok();
    assert!(!witness::v6_nodad(&c, "eth0"));
    let a = witness::ip(&c, &["-6", "addr", "show", "dev", "eth0", "scope", "global"]);
    assert!(a[0]["addr_info"][0].get("tentative").is_none(), "DAD settled before ADD returned: {a}");
    assert!(c.ping(PEER_V6));
}

#[test]
fn config_errors_are_code_7_naming_the_field_and_leave_nothing() {
    let u = Underlay::new();
    let c = TestNs::new("mvc");
    for (extra, field) in [
        (json!({"master": "nosuch0"}), "master"),
        (json!({"mtu": 9000}), "mtu"),
        (json!({"mode": "bogus"}), "mode"),
        (json!({"master": null}), "master"),
    ] {
        let conf = u.conf("1.0.0", extra.clone());
        let v = u.run("ADD", &c, "mv-bad", &conf).err(7);
        let msg = v["msg"].as_str().unwrap();
        assert!(msg.contains(&format!("\"{field}\"")), "{extra}: {v}");
        assert_eq!(witness::link_names(&c), ["lo"], "{extra}: nothing left in the container");
        assert!(u.leases().is_empty(), "{extra}: no address taken");
    }
    let v = u.run("ADD", &c, "mv-bad", &u.conf("1.0.0", json!({"mtu": 9000}))).err(7);
    assert!(v["msg"].as_str().unwrap().contains("1500"), "names the master's MTU: {v}");
    let links = witness::link_names(&u.host);
    assert_eq!(links.len(), 2, "host untouched: {links:?}");
}

#[test]
fn failures_after_the_link_exists_roll_everything_back() {
    let u = Underlay::new();
    // IPAM fails (one-address range, already taken): the link is removed.
    let mut ipam = u.conf("1.0.0", json!({}))["ipam"].clone();
    ipam["ranges"] = json!([[{"subnet": "10.77.0.0/24", "rangeStart": "10.77.0.9", "rangeEnd": "10.77.0.9"}]]);
    let conf = u.conf("1.0.0", json!({"ipam": ipam}));
    let (c1, c2) = (TestNs::new("mvc"), TestNs::new("mvc"));
    u.run("ADD", &c1, "mv-rb-1", &conf).ok();
    let r = u.run("ADD", &c2, "mv-rb-2", &conf);
    assert_ne!(r.code, 0, "{r:?}");
    assert_eq!(witness::link_names(&c2), ["lo"]);
    assert_eq!(u.leases(), ["10.77.0.9"]);

    // A route the kernel refuses (unreachable gateway): the lease is released too.
    let u = Underlay::new();
    let mut ipam = u.conf("1.0.0", json!({}))["ipam"].clone();
    ipam["routes"] = json!([{"dst": "10.99.0.0/16", "gw": "10.200.0.1"}]);
    let conf = u.conf("1.0.0", json!({"ipam": ipam}));
    let c = TestNs::new("mvc");
    let r = u.run("ADD", &c, "mv-rb-3", &conf);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.json()["msg"].as_str().unwrap().contains("10.99.0.0/16"), "{r:?}");
    assert_eq!(witness::link_names(&c), ["lo"]);
    assert!(u.leases().is_empty(), "the IP was released");
}

#[test]
fn an_existing_ifname_is_an_error_and_nothing_changes() {
    let u = Underlay::new();
    let c = TestNs::new("mvc");
    let conf = u.conf("1.0.0", json!({}));
    u.run("ADD", &c, "mv-dup-1", &conf).ok();
    let before = link_of(&c, "eth0");
    let v = u.run("ADD", &c, "mv-dup-2", &conf).err(102);
    assert!(v["msg"].as_str().unwrap().contains("eth0") && v["msg"].as_str().unwrap().contains("already exists"));
    let after = link_of(&c, "eth0");
    assert_eq!(
        (before["ifindex"].clone(), before["address"].clone()),
        (after["ifindex"].clone(), after["address"].clone())
    );
    assert_eq!(u.leases(), ["10.77.0.2"], "the second ADD took no address");
    // The same attachment added again: refused, its lease stays.
    u.run("ADD", &c, "mv-dup-1", &conf).err(102);
    assert_eq!(u.leases(), ["10.77.0.2"], "the live attachment's lease stays");
    // A same-named link of another kind is refused too, and DEL leaves it alone.
    let c2 = TestNs::new("mvc");
    c2.ok(&["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0"]);
    u.run("ADD", &c2, "mv-dup-3", &conf).err(102);
    u.run("DEL", &c2, "mv-dup-3", &conf).ok();
    assert!(witness::link(&c2, "eth0").is_some(), "DEL never deletes a link that is not a macvlan");
}

#[test]
fn del_works_after_the_master_is_gone_and_without_a_netns() {
    let u = Underlay::new();
    let c = TestNs::new("mvc");
    let conf = u.conf("1.0.0", json!({}));
    let add = u.run("ADD", &c, "mv-gone", &conf).ok();
    u.host.ok(&["ip", "link", "del", "m0"]);
    assert_eq!(u.leases(), ["10.77.0.2"]);
    let d = u.run("DEL", &c, "mv-gone", &with_prev(&conf, &add)).ok();
    assert!(d.stdout.is_empty(), "{d:?}");
    assert!(u.leases().is_empty(), "IPAM released although the master is gone");
    assert_eq!(witness::link_names(&c), ["lo"]);

    // Empty CNI_NETNS (containerd) and a namespace that is already gone.
    let u = Underlay::new();
    let c = TestNs::new("mvc");
    u.run("ADD", &c, "mv-nons", &conf_for(&u)).ok();
    u.run_with("DEL", "", "mv-nons", "eth0", "", &conf_for(&u)).ok();
    assert!(u.leases().is_empty());
    let gone = c.path();
    drop(c);
    u.run_with("DEL", &gone, "mv-nons", "eth0", "", &conf_for(&u)).ok();
}

fn conf_for(u: &Underlay) -> Value {
    u.conf("1.0.0", json!({}))
}

#[test]
fn mac_from_capability_args_and_cni_args_in_that_order() {
    let u = Underlay::new();
    let rt = json!({"mac": "02:aa:00:00:00:01"});
    let args = json!({"cni": {"mac": "02:aa:00:00:00:02"}});
    let env_mac = "MAC=02:aa:00:00:00:03";
    for (extra, cni_args, want) in [
        (json!({"runtimeConfig": rt, "args": args}), env_mac, "02:aa:00:00:00:01"),
        (json!({"args": args}), env_mac, "02:aa:00:00:00:02"),
        (json!({}), env_mac, "02:aa:00:00:00:03"),
    ] {
        let c = TestNs::new("mvc");
        let mut conf = u.conf("1.0.0", extra);
        conf["ipam"] = json!({});
        let r = u.run_with("ADD", &c.path(), "mv-mac", "eth0", cni_args, &conf).ok().json();
        assert_eq!(r["interfaces"][0]["mac"], want, "{r}");
        assert_eq!(link_of(&c, "eth0")["address"], want);
        // No IPAM: L2 only, up, without addresses, and no ips in the result.
        assert!(r.get("ips").is_none(), "{r}");
        assert!(is_up(&link_of(&c, "eth0")));
        assert!(global_addresses(&c, "eth0").is_empty());
        u.run_with("DEL", &c.path(), "mv-mac", "eth0", cni_args, &conf).ok();
    }
    // A legacy version can't print an L2-only result: refused before anything is made.
    let c = TestNs::new("mvc");
    let v = u.run("ADD", &c, "mv-l2old", &u.conf("0.2.0", json!({"ipam": {}}))).err(1);
    assert!(v["msg"].as_str().unwrap().contains("no valid IP addresses"), "{v}");
    assert_eq!(witness::link_names(&c), ["lo"]);
    // CNI_ARGS the plugin does not know are refused unless IgnoreUnknown is set.
    let c = TestNs::new("mvc");
    let conf = u.conf("1.0.0", json!({"ipam": {}}));
    let v = u.run_with("ADD", &c.path(), "mv-mac", "eth0", "FOO=bar", &conf).err(4);
    assert!(v["msg"].as_str().unwrap().contains("FOO=bar"), "{v}");
    u.run_with("ADD", &c.path(), "mv-mac", "eth0", "IgnoreUnknown=1;FOO=bar", &conf).ok();
}

#[test]
fn check_finds_what_drifted() {
    let u = Underlay::new();
    let c = TestNs::new("mvc");
    let conf = u.conf("1.0.0", json!({}));
    let add = u.run("ADD", &c, "mv-chk", &conf).ok();
    let prev = with_prev(&conf, &add);
    u.run("CHECK", &c, "mv-chk", &prev).ok();

    let mut other_mode = prev.clone();
    other_mode["mode"] = json!("private");
    let v = u.run("CHECK", &c, "mv-chk", &other_mode).err(100);
    assert!(v["msg"].as_str().unwrap().contains("mode"), "{v}");

    let mut other_sandbox = prev.clone();
    other_sandbox["prevResult"]["interfaces"][0]["sandbox"] = json!("/run/netns/elsewhere");
    let v = u.run("CHECK", &c, "mv-chk", &other_sandbox).err(100);
    assert!(v["msg"].as_str().unwrap().contains("sandbox"), "{v}");

    let v = u.run("CHECK", &c, "mv-chk", &conf).err(7);
    assert!(v["msg"].as_str().unwrap().contains("prevResult"), "{v}");

    c.ok(&["ip", "addr", "del", "10.77.0.2/24", "dev", "eth0"]);
    let v = u.run("CHECK", &c, "mv-chk", &prev).err(100);
    assert!(v["msg"].as_str().unwrap().contains("10.77.0.2/24"), "{v}");

    c.ok(&["ip", "link", "set", "eth0", "address", "02:bb:00:00:00:09"]);
    let v = u.run("CHECK", &c, "mv-chk", &prev).err(100);
    assert!(v["msg"].as_str().unwrap().contains("Mac"), "{v}");

    // Another macvlan master in the host: CHECK says the parent is wrong.
    u.host.ok(&["ip", "link", "add", "m2", "type", "veth", "peer", "name", "m3"]);
    let mut other_master = prev.clone();
    other_master["master"] = json!("m2");
    let v = u.run("CHECK", &c, "mv-chk", &other_master).err(100);
    assert!(v["msg"].as_str().unwrap().contains("master"), "{v}");
}

#[test]
fn master_inside_the_container_with_link_in_container() {
    let u = Underlay::new();
    let c = TestNs::new("mvc");
    c.ok(&["ip", "link", "add", "cm0", "type", "veth", "peer", "name", "q0", "netns", &u.peer.name]);
    c.ok(&["ip", "link", "set", "cm0", "up"]);
    u.peer.ok(&["ip", "link", "set", "q0", "up"]);
    u.peer.ok(&["ip", "addr", "add", "10.78.0.1/24", "dev", "q0"]);
    let mut ipam = u.conf("1.0.0", json!({}))["ipam"].clone();
    ipam["ranges"] = json!([[{"subnet": "10.78.0.0/24", "gateway": "10.78.0.1"}]]);
    let conf = u.conf("1.0.0", json!({"master": "cm0", "linkInContainer": true, "ipam": ipam}));
    // The host has no cm0: without linkInContainer this is a missing master.
    let mut host_side = conf.clone();
    host_side["linkInContainer"] = json!(false);
    u.run("ADD", &c, "mv-lic", &host_side).err(7);

    let add = u.run("ADD", &c, "mv-lic", &conf).ok();
    let l = link_of(&c, "eth0");
    // `ip` names the parent when it is in the same namespace.
    assert_eq!(l["link"], "cm0", "parent is the container's cm0: {l}");
    assert!(l.get("link_netnsid").is_none(), "{l}");
    assert!(c.ping("10.78.0.1"));
    u.run("CHECK", &c, "mv-lic", &with_prev(&conf, &add)).ok();
    u.run("DEL", &c, "mv-lic", &conf).ok();
    assert!(witness::link(&c, "eth0").is_none());
    assert!(witness::link(&c, "cm0").is_some(), "the master stays");
}

#[test]
fn master_defaults_to_the_default_route_interface() {
    let u = Underlay::new();
    u.host.ok(&["ip", "link", "add", "other0", "type", "veth", "peer", "name", "other1"]);
    u.host.ok(&["ip", "route", "add", "default", "dev", "m0"]);
    let c = TestNs::new("mvc");
    let conf = u.conf("1.0.0", json!({"master": null}));
    let add = u.run("ADD", &c, "mv-def", &conf).ok();
    let l = link_of(&c, "eth0");
    assert_eq!(l["link_index"], link_of(&u.host, "m0")["ifindex"], "{l}");
    assert!(c.ping(PEER_V4));
    u.run("CHECK", &c, "mv-def", &with_prev(&conf, &add)).ok();
    u.run("DEL", &c, "mv-def", &conf).ok();
}

/// Runs a command without attachment (STATUS, GC) in the host namespace.
fn run_plain(u: &Underlay, cmd: &str, conf: &Value) -> PluginRun {
    let path = bin_dir().display().to_string();
    run_plugin(Some(&u.host.name), "macvlan", &[("CNI_COMMAND", cmd), ("CNI_PATH", &path)], &conf.to_string())
}

#[test]
fn status_and_gc_go_to_ipam() {
    let u = Underlay::new();
    let c = TestNs::new("mvc");
    let conf = u.conf("1.1.0", json!({}));
    u.run("ADD", &c, "mv-gc", &conf).ok();
    let s = run_plain(&u, "STATUS", &conf).ok();
    assert!(s.stdout.is_empty(), "{s:?}");
    let mut broken = conf.clone();
    broken["ipam"]["type"] = json!("no-such-ipam");
    let v = run_plain(&u, "STATUS", &broken).err(7);
    assert!(v["msg"].as_str().unwrap().contains("no-such-ipam"), "{v}");

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "mv-gc", "ifname": "eth0"}]);
    run_plain(&u, "GC", &gc).ok();
    assert_eq!(u.leases(), ["10.77.0.2"], "a valid attachment keeps its address");
    gc["cni.dev/valid-attachments"] = json!([]);
    run_plain(&u, "GC", &gc).ok();
    assert!(u.leases().is_empty(), "GC reached host-local");
}

/// Replaces the parts of a result that differ from run to run.
fn normalize(raw: &str, mac: &str, sandbox: &str) -> String {
    let mut s = raw.replace(sandbox, "SANDBOX");
    if !mac.is_empty() {
        s = s.replace(mac, "MAC");
    }
    s
}

#[test]
fn results_match_the_reference_plugin_byte_for_byte() {
    let reference = Path::new("/usr/lib/cni/macvlan");
    if !reference.exists() {
        eprintln!("skipped: no reference plugin in /usr/lib/cni");
        return;
    }
    for version in ["0.2.0", "0.3.1", "0.4.0", "1.0.0"] {
        let ours_u = Underlay::new();
        let theirs_u = Underlay::new();
        let (ours_c, theirs_c) = (TestNs::new("mvc"), TestNs::new("mvc"));
        // Dual-stack once: the reference then waits ~2 s for IPv6 DAD.
        let conf = |u: &Underlay| {
            let ipam = if version == "1.0.0" { u.dual_ipam() } else { u.conf(version, json!({}))["ipam"].clone() };
            u.conf(version, json!({"ipam": ipam, "dns": {"nameservers": ["10.77.0.53"]}}))
        };
        let ours = ours_u.run("ADD", &ours_c, "mv-ref", &conf(&ours_u)).ok();
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "mv-ref"),
            ("CNI_NETNS", &*theirs_c.path()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", ""),
            ("CNI_PATH", "/usr/lib/cni"),
        ]
        .map(|(k, v)| (k, v.to_string()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reference = Path::new("/usr/lib/cni/macvlan");
        let theirs = run_binary(Some(&theirs_u.host.name), reference, &env, &conf(&theirs_u).to_string());
        assert_eq!(theirs.code, 0, "reference failed: {theirs:?}");
        let mac_of = |ns: &TestNs| link_of(ns, "eth0")["address"].as_str().unwrap().to_string();
        assert_eq!(
            normalize(&ours.stdout, &mac_of(&ours_c), &ours_c.path()),
            normalize(&theirs.stdout, &mac_of(&theirs_c), &theirs_c.path()),
            "result at {version} differs from the reference"
        );
        let (a, b) = (witness::addresses(&ours_c, "eth0"), witness::addresses(&theirs_c, "eth0"));
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    }
}

#[test]
fn example_conflist_runs_through_cnitool() {
    let u = Underlay::new();
    // The example's segment: the peer is its gateway, the host's default
    // route leaves through m0 (the example names no master).
    u.peer.ok(&["ip", "addr", "add", "192.168.77.1/24", "dev", "p0"]);
    u.peer.ok(&["ip", "addr", "add", "fd00:77::1/64", "dev", "p0", "nodad"]);
    u.host.ok(&["ip", "route", "add", "default", "dev", "m0"]);
    let c = TestNs::new("mvc");

    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut list: Value =
        serde_json::from_slice(&std::fs::read(repo.join("cni-conf/30-macvlan.conflist")).unwrap()).unwrap();
    assert_eq!(list["cniVersion"], "1.0.0");
    // Only the store moves: never write to the machine's /var/lib/cni.
    list["plugins"][0]["ipam"]["dataDir"] = json!(u.data);
    let confdir = u.data.join("conf");
    let cache = u.data.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::create_dir_all(&confdir).unwrap();
    std::fs::write(confdir.join("30-macvlan.conflist"), list.to_string()).unwrap();

    let tool = |cmd: &str, cap_args: &str| {
        std::process::Command::new("ip")
            .args(["netns", "exec", &u.host.name])
            .arg(bin("cnitool"))
            .args([cmd, "underlay", &c.path()])
            .env("NETCONFPATH", &confdir)
            .env("CNI_PATH", bin_dir())
            .env("CNI_CACHE_DIR", &cache)
            .env("CAP_ARGS", cap_args)
            .output()
            .unwrap()
    };
    let out = tool("add", r#"{"mac":"02:77:00:00:00:42"}"#);
    assert!(out.status.success(), "{out:?}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["interfaces"][0]["mac"], "02:77:00:00:00:42", "the mac capability: {r}");
    assert_eq!(r["ips"][0]["address"], "192.168.77.200/24");
    assert_eq!(r["ips"][1]["address"], "fd00:77::c8/64");
    assert_eq!(r["dns"]["nameservers"][0], "192.168.77.1");
    assert_eq!(mode_of(&c, "eth0"), "bridge");
    assert!(c.ping("192.168.77.1") && c.ping("fd00:77::1"));
    assert!(tool("check", "").status.success());
    assert!(tool("del", "").status.success());
    assert_eq!(witness::link_names(&c), ["lo"]);
    assert!(tool("del", "").status.success());
}
