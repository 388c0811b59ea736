//! firewall, chained after bridge + host-local (and portmap): on a host
//! whose iptables FORWARD policy is DROP (as Docker sets it; iptables here
//! is iptables-nft), container traffic passes only while the plugin's
//! entries exist; `iptables -S` still prints the chain; same-bridge blocks
//! other bridge networks; CHECK, DEL (also without namespace or
//! prevResult), GC, parallel ADDs and bad input.
//!
//! Every test runs the plugins in its own host namespace and sets the
//! FORWARD policy only there.

use conformance::fixture::{with_prev, Host};
use conformance::{witness, TestNs};
use serde_json::{json, Value};
use std::path::Path;

const TABLE: &str = "cnirs-firewall";
const RULE: &str =
    "-A FORWARD -m mark --mark 0x10000000/0x10000000 -m comment --comment \"cnirs-firewall: admit CNI containers\" -j ACCEPT";

fn bridge_conf(host: &Host, net: &str, bridge: &str, v4: &str, v6: Option<&str>) -> String {
    let mut ranges = vec![json!([{ "subnet": v4 }])];
    if let Some(v6) = v6 {
        ranges.push(json!([{ "subnet": v6 }]));
    }
    host.conf(json!({
        "cniVersion": "1.0.0", "name": net, "type": "bridge", "bridge": bridge, "isGateway": true,
        "hairpinMode": true,
        "ipam": {"type": "host-local", "ranges": ranges, "routes": [{"dst": "0.0.0.0/0"}]}
    }))
}

fn fw_conf(net: &str, extra: Value) -> String {
    let mut v = json!({"cniVersion": "1.0.0", "name": net, "type": "firewall", "backend": ""});
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    v.to_string()
}

fn addr(result: &Value, v4: bool) -> String {
    let ips = result["ips"].as_array().unwrap();
    let a = ips.iter().map(|i| i["address"].as_str().unwrap()).find(|a| a.contains('.') == v4).unwrap();
    a.split('/').next().unwrap().to_string()
}

/// Docker's setting, inside the test's host namespace only.
fn forward_drop(host: &Host) {
    host.ns.ok(&["iptables", "-P", "FORWARD", "DROP"]);
    host.ns.ok(&["ip6tables", "-P", "FORWARD", "DROP"]);
}

fn our_rules(host: &Host, tool: &str) -> usize {
    host.ns.ok(&[tool, "-S", "FORWARD"]).lines().filter(|l| l.contains("cnirs-firewall")).count()
}

/// A container on a bridge network: its namespace and the bridge result.
struct Ctr {
    ns: TestNs,
    id: String,
    result: Value,
}

fn attach(host: &Host, conf: &str, id: &str) -> Ctr {
    let ns = TestNs::new(&format!("fw-{id}"));
    let result = host.run("bridge", "ADD", &ns.path(), id, "eth0", conf).ok().json();
    Ctr { ns, id: id.to_string(), result }
}

fn fw(host: &Host, cmd: &str, c: &Ctr, conf: &str) -> conformance::PluginRun {
    host.run("firewall", cmd, &c.ns.path(), &c.id, "eth0", &with_prev(conf, &c.result))
}

#[test]
fn forward_drop_admits_containers_only_while_their_entries_exist() {
    let host = Host::new("fw-drop");
    forward_drop(&host);
    let conf = bridge_conf(&host, "fwnet", "cni-fw0", "10.71.0.0/24", Some("fd00:71::/64"));
    let (c1, c2) = (attach(&host, &conf, "d1"), attach(&host, &conf, "d2"));
    let (a2, a2v6) = (addr(&c2.result, true), addr(&c2.result, false));
    assert!(!c1.ns.ping(&a2), "FORWARD DROP blocks c1 -> c2 before the firewall plugin");
    assert!(!c1.ns.ping(&a2v6), "ip6tables FORWARD DROP blocks it over IPv6 too");

    // The three backend names the reference knows all mean our table.
    let r1 = fw(&host, "ADD", &c1, &fw_conf("fwnet", json!({"backend": "iptables"}))).ok().json();
    assert_eq!(r1, {
        let mut r = c1.result.clone();
        r["cniVersion"] = json!("1.0.0");
        r
    });
    fw(&host, "ADD", &c2, &fw_conf("fwnet", json!({"backend": "nftables"}))).ok();
    // The blocked attempt left c2's IPv6 neighbour entry INCOMPLETE (the
    // solicitation is forwarded traffic too); start resolution afresh.
    c1.ns.ok(&["ip", "-6", "neigh", "flush", "dev", "eth0"]);
    assert!(c1.ns.ping(&a2), "c1 -> c2 passes once both are admitted");
    assert!(c2.ns.ping(&addr(&c1.result, true)));
    assert!(c1.ns.ping(&a2v6), "and over IPv6");

    // iptables-nft still lists the chain, with our one rule on top.
    let s = host.ns.ok(&["iptables", "-S", "FORWARD"]);
    assert_eq!(s.lines().collect::<Vec<_>>(), vec!["-P FORWARD DROP", RULE], "{s}");
    assert_eq!(our_rules(&host, "ip6tables"), 1);
    let save = host.ns.ok(&["iptables-save"]);
    assert!(save.contains(RULE), "{save}");
    assert_eq!(witness::nft_elements(&host.ns, TABLE, "ctr4").len(), 2);
    assert_eq!(witness::nft_elements(&host.ns, TABLE, "ctr6").len(), 2);

    for c in [&c1, &c2] {
        let r = fw(&host, "CHECK", c, &fw_conf("fwnet", json!({}))).ok();
        assert!(r.stdout.is_empty());
    }

    // DEL of c2: c2 can no longer open connections (c1 still can, and
    // gets its replies: c1 is admitted, as with the reference's rules).
    fw(&host, "DEL", &c2, &fw_conf("fwnet", json!({}))).ok();
    assert!(!c2.ns.ping(&addr(&c1.result, true)), "c2 -> c1 stops after c2's DEL");
    assert!(c1.ns.ping(&a2), "c1 is still admitted");
    let left = witness::nft_elements(&host.ns, TABLE, "ctr4");
    assert_eq!(left, vec![addr(&c1.result, true)]);
    fw(&host, "DEL", &c1, &fw_conf("fwnet", json!({}))).ok();
    assert!(!c1.ns.ping(&a2), "c1 -> c2 stops after both DELs");
    assert!(witness::nft_elements(&host.ns, TABLE, "ctr4").is_empty());

    // DEL without prevResult and with the namespace gone still removes
    // the entries (found by owner); again is fine.
    fw(&host, "ADD", &c1, &fw_conf("fwnet", json!({}))).ok();
    assert_eq!(witness::nft_elements(&host.ns, TABLE, "ctr4").len(), 1);
    let path = c1.ns.path();
    drop(c1);
    host.run("firewall", "DEL", &path, "d1", "eth0", &fw_conf("fwnet", json!({}))).ok();
    host.run("firewall", "DEL", "", "d1", "eth0", &fw_conf("fwnet", json!({}))).ok();
    assert!(witness::nft_elements(&host.ns, TABLE, "ctr4").is_empty());
    assert!(witness::nft_elements(&host.ns, TABLE, "ctr6").is_empty());
    // The shared rule stays (it accepts nothing unmarked), listed cleanly.
    assert_eq!(our_rules(&host, "iptables"), 1);
}

// ---- a TCP service in a namespace, a client in another ----

/// A listener in `ns` on port 80 that answers every connection with "hi",
/// until the guard is dropped.
fn serve(ns: &TestNs) -> conformance::tcp::Server {
    conformance::tcp::Server::start(&ns.name, "0.0.0.0:80", "hi").expect("listening on :80")
}

fn connect(ns: &TestNs, to: &str) -> bool {
    conformance::tcp::request(&ns.name, to).is_ok_and(|s| s == "hi")
}

#[test]
fn a_port_mapping_from_another_namespace_passes_only_while_admitted() {
    let host = Host::new("fw-pm");
    forward_drop(&host);
    // The "outside": a client namespace on the host's uplink, no route to
    // the containers, so it can only come in through the mapping.
    let client = host.outside("fw-pm-out");
    host.ns.ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);

    let conf = bridge_conf(&host, "fwpm", "cni-fwpm", "10.72.0.0/24", None);
    let web = attach(&host, &conf, "web");
    let _server = serve(&web.ns);
    let pm = json!({"cniVersion": "1.0.0", "name": "fwpm", "type": "portmap",
                    "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}});
    let pm = with_prev(&pm.to_string(), &web.result);
    let after_pm = host.run("portmap", "ADD", &web.ns.path(), "web", "eth0", &pm).ok().json();
    assert!(!connect(&client, "198.51.100.1:8080"), "FORWARD DROP blocks the mapped port before the firewall");

    let fwc = with_prev(&fw_conf("fwpm", json!({})), &after_pm);
    host.run("firewall", "ADD", &web.ns.path(), "web", "eth0", &fwc).ok();
    assert!(connect(&client, "198.51.100.1:8080"), "the mapped port passes once the container is admitted");
    host.run("firewall", "CHECK", &web.ns.path(), "web", "eth0", &fwc).ok();

    host.run("firewall", "DEL", &web.ns.path(), "web", "eth0", &fwc).ok();
    assert!(!connect(&client, "198.51.100.1:8080"), "and stops after DEL");
    host.run("portmap", "DEL", &web.ns.path(), "web", "eth0", &pm).ok();
}

#[test]
fn same_bridge_blocks_traffic_from_another_bridge_network() {
    // Without a DROP policy the block is the plugin's own, not iptables';
    // with one, admission and the policy work together.
    for drop in [false, true] {
        let host = Host::new("fw-sb");
        if drop {
            forward_drop(&host);
        }
        let a = bridge_conf(&host, "fwsba", "cni-fwsba", "10.73.1.0/24", None);
        let b = bridge_conf(&host, "fwsbb", "cni-fwsbb", "10.73.2.0/24", None);
        let (a1, a2, b1) = (attach(&host, &a, "sba1"), attach(&host, &a, "sba2"), attach(&host, &b, "sbb1"));
        let ip_a1 = addr(&a1.result, true);
        assert_eq!(b1.ns.ping(&ip_a1), !drop, "routed between the bridges before the firewall (drop={drop})");
        let same = fw_conf("fwsba", json!({"ingressPolicy": "same-bridge"}));
        for c in [&a1, &a2] {
            fw(&host, "ADD", c, &same).ok();
        }
        fw(&host, "ADD", &b1, &fw_conf("fwsbb", json!({"ingressPolicy": "open"}))).ok();
        assert!(!b1.ns.ping(&ip_a1), "another bridge cannot open connections into a same-bridge container ({drop})");
        assert!(a2.ns.ping(&ip_a1), "its own bridge can ({drop})");
        assert!(a1.ns.ping(&addr(&b1.result, true)), "it still reaches out, replies come back ({drop})");
        assert!(host.ns.ping(&ip_a1), "the host itself is not forwarded traffic ({drop})");
        fw(&host, "CHECK", &a1, &same).ok();
        assert_eq!(witness::nft_elements(&host.ns, TABLE, "iso4").len(), 2);
        assert_eq!(witness::nft_elements(&host.ns, TABLE, "own4").len(), 2);

        fw(&host, "DEL", &a1, &same).ok();
        assert_eq!(witness::nft_elements(&host.ns, TABLE, "iso4"), vec![addr(&a2.result, true)]);
        assert_eq!(witness::nft_elements(&host.ns, TABLE, "own4").len(), 1);
        // b1 is admitted, and a1 has no same-bridge entry any more.
        assert!(b1.ns.ping(&ip_a1), "a1 is open again after its DEL ({drop})");
    }
}

#[test]
fn check_reports_what_is_missing() {
    let host = Host::new("fw-chk");
    forward_drop(&host);
    let conf = bridge_conf(&host, "fwchk", "cni-fwchk", "10.74.0.0/24", None);
    let c = attach(&host, &conf, "k1");
    let fwc = fw_conf("fwchk", json!({}));
    fw(&host, "ADD", &c, &fwc).ok();
    fw(&host, "CHECK", &c, &fwc).ok();
    let ip = addr(&c.result, true);
    host.ns.ok(&["nft", "delete", "element", "inet", TABLE, "ctr4", &format!("{{ {ip} }}")]);
    let e = fw(&host, "CHECK", &c, &fwc).err(100);
    assert!(e["msg"].as_str().unwrap().contains(&format!("{ip} is not admitted")), "{e}");
    fw(&host, "ADD", &c, &fwc).ok();
    fw(&host, "CHECK", &c, &fwc).ok();
    host.ns.ok(&["iptables", "-F", "FORWARD"]);
    let e = fw(&host, "CHECK", &c, &fwc).err(100);
    assert!(e["msg"].as_str().unwrap().contains("chain ip filter FORWARD lacks"), "{e}");
    // The next ADD puts the shared rule back, once.
    fw(&host, "ADD", &c, &fwc).ok();
    assert_eq!(our_rules(&host, "iptables"), 1);
    fw(&host, "CHECK", &c, &fwc).ok();
    // prevResult is required, as in the reference.
    let e = host.run("firewall", "CHECK", &c.ns.path(), "k1", "eth0", &fwc).err(7);
    assert!(e["msg"].as_str().unwrap().contains("prevResult"), "{e}");
}

#[test]
fn gc_removes_entries_of_containers_that_are_gone() {
    let host = Host::new("fw-gc");
    let conf = bridge_conf(&host, "fwgc", "cni-fwgc", "10.75.0.0/24", None);
    let other = bridge_conf(&host, "fwgcx", "cni-fwgcx", "10.75.1.0/24", None);
    let (g1, g2, x1) = (attach(&host, &conf, "g1"), attach(&host, &conf, "g2"), attach(&host, &other, "x1"));
    for c in [&g1, &g2] {
        fw(&host, "ADD", c, &fw_conf("fwgc", json!({"ingressPolicy": "same-bridge"}))).ok();
    }
    fw(&host, "ADD", &x1, &fw_conf("fwgcx", json!({}))).ok();
    let gc = |valid: Option<Value>| {
        let mut v = json!({"cniVersion": "1.1.0", "name": "fwgc", "type": "firewall"});
        if let Some(l) = valid {
            v["cni.dev/valid-attachments"] = l;
        }
        host.run("firewall", "GC", "", "", "", &v.to_string()).ok();
    };
    gc(None);
    assert_eq!(witness::nft_elements(&host.ns, TABLE, "ctr4").len(), 3, "no list: nothing removed");
    gc(Some(json!([{"containerID": "g1", "ifname": "eth0"}])));
    let left = witness::nft_elements(&host.ns, TABLE, "ctr4");
    assert_eq!(left.len(), 2, "g2 gone; g1 kept; the other network untouched: {left:?}");
    assert!(left.contains(&addr(&g1.result, true)) && left.contains(&addr(&x1.result, true)));
    assert_eq!(witness::nft_elements(&host.ns, TABLE, "iso4"), vec![addr(&g1.result, true)]);
    gc(Some(json!([])));
    assert_eq!(witness::nft_elements(&host.ns, TABLE, "ctr4"), vec![addr(&x1.result, true)]);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let host = Host::new("fw-bad");
    forward_drop(&host);
    let conf = bridge_conf(&host, "fwbad", "cni-fwbad", "10.76.0.0/24", None);
    let c = attach(&host, &conf, "b1");
    let before = host.ns.ok(&["nft", "list", "ruleset"]);
    for (extra, needle) in [
        (json!({"backend": "pf"}), "unknown backend"),
        (json!({"ingressPolicy": "closed"}), "unknown ingress policy"),
        (json!({"iptablesAdminChainName": "has space"}), "iptablesAdminChainName"),
    ] {
        let e = fw(&host, "ADD", &c, &fw_conf("fwbad", extra.clone())).err(7);
        assert!(e["msg"].as_str().unwrap().contains(needle), "{extra}: {e}");
    }
    // same-bridge needs the bridge as interfaces[0].
    let mut no_bridge = c.result.clone();
    no_bridge["interfaces"] = json!([no_bridge["interfaces"][2]]);
    no_bridge["ips"][0]["interface"] = json!(0);
    let stdin = with_prev(&fw_conf("fwbad", json!({"ingressPolicy": "same-bridge"})), &no_bridge);
    let e = host.run("firewall", "ADD", &c.ns.path(), "b1", "eth0", &stdin).err(7);
    assert!(e["msg"].as_str().unwrap().contains("interfaces[0]"), "{e}");
    let e = host.run("firewall", "ADD", &c.ns.path(), "b1", "eth0", &fw_conf("fwbad", json!({}))).err(7);
    assert!(e["msg"].as_str().unwrap().contains("prevResult"), "{e}");
    assert_eq!(host.ns.ok(&["nft", "list", "ruleset"]), before, "nothing changed");
    // iptablesAdminChainName is accepted for compatibility.
    fw(&host, "ADD", &c, &fw_conf("fwbad", json!({"iptablesAdminChainName": "CNI-ADMIN"}))).ok();
    // A DEL with a config ADD would refuse still cleans up.
    fw(&host, "DEL", &c, &fw_conf("fwbad", json!({"backend": "pf"}))).ok();
    assert!(witness::nft_elements(&host.ns, TABLE, "ctr4").is_empty());
}

#[test]
fn firewalld_backend_only_where_firewalld_runs_and_status_says_so() {
    let host = Host::new("fw-fwd");
    let conf = bridge_conf(&host, "fwfd", "cni-fwfd", "10.78.0.0/24", None);
    let c = attach(&host, &conf, "f1");
    let status = |backend: &str| {
        let v = json!({"cniVersion": "1.1.0", "name": "fwfd", "type": "firewall", "backend": backend});
        host.run("firewall", "STATUS", "", "", "", &v.to_string())
    };
    assert!(status("").ok().stdout.is_empty());
    // A firewalld on the machine itself (its pid file) would count as running.
    let machine_has_firewalld = ["/run/firewalld.pid", "/var/run/firewalld.pid"].iter().any(|p| Path::new(p).exists());
    if !machine_has_firewalld {
        let e = status("firewalld").err(50);
        assert!(e["msg"].as_str().unwrap().contains("firewalld is not running"), "{e}");
        fw(&host, "ADD", &c, &fw_conf("fwfd", json!({"backend": "firewalld"}))).err(7);
    }
    // firewalld's nftables backend keeps table inet firewalld where it runs.
    host.ns.ok(&["nft", "add", "table", "inet", "firewalld"]);
    status("firewalld").ok();
    fw(&host, "ADD", &c, &fw_conf("fwfd", json!({"backend": "firewalld"}))).ok();
    assert_eq!(witness::nft_elements(&host.ns, TABLE, "ctr4"), vec![addr(&c.result, true)]);
    fw(&host, "DEL", &c, &fw_conf("fwfd", json!({"backend": "firewalld"}))).ok();
    assert!(witness::nft_elements(&host.ns, TABLE, "ctr4").is_empty());
}

#[test]
fn parallel_first_adds_insert_one_forward_rule() {
    let host = Host::new("fw-par");
    forward_drop(&host);
    let conf = bridge_conf(&host, "fwpar", "cni-fwpar", "10.77.0.0/24", None);
    let ctrs: Vec<Ctr> = (0..16).map(|i| attach(&host, &conf, &format!("p{i}"))).collect();
    let fwc = fw_conf("fwpar", json!({}));
    std::thread::scope(|s| {
        let hs: Vec<_> = ctrs.iter().map(|c| s.spawn(|| fw(&host, "ADD", c, &fwc))).collect();
        for h in hs {
            h.join().unwrap().ok();
        }
    });
    assert_eq!(our_rules(&host, "iptables"), 1);
    assert_eq!(our_rules(&host, "ip6tables"), 1);
    let json = witness::nft_ruleset(&host.ns);
    let marks = json.iter().filter(|o| o["rule"]["table"] == TABLE && o["rule"]["chain"] == "admit").count();
    assert_eq!(marks, 1, "one mark rule");
    assert_eq!(witness::nft_elements(&host.ns, TABLE, "ctr4").len(), 16);
    assert!(ctrs[0].ns.ping(&addr(&ctrs[15].result, true)));
    std::thread::scope(|s| {
        let hs: Vec<_> = ctrs.iter().map(|c| s.spawn(|| fw(&host, "DEL", c, &fwc))).collect();
        for h in hs {
            h.join().unwrap().ok();
        }
    });
    assert!(witness::nft_elements(&host.ns, TABLE, "ctr4").is_empty());
}

// ---- one transaction per ADD, witnessed by `nft monitor` ----

/// `nft monitor` running in a namespace (a child we started, killed by
/// its pid on drop), collecting what it prints.
struct Monitor {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ns: String,
    marks: u32,
}

impl Monitor {
    fn start(ns: &TestNs) -> Monitor {
        use std::io::BufRead;
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &ns.name, "nft", "monitor"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("starting nft monitor");
        let out = child.stdout.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        let mut m = Monitor { child, lines, ns: ns.name.clone(), marks: 0 };
        m.mark();
        m
    }

    /// Makes a change of our own (an empty table) and waits until the
    /// monitor prints it: everything printed after the returned index
    /// happened after this call. Repeats the change until the monitor,
    /// which may still be subscribing, sees one.
    fn mark(&mut self) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            self.marks += 1;
            let name = format!("fwmon{}", self.marks);
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", &self.ns, "nft", "add", "table", "inet", &name])
                .output()
                .unwrap();
            assert!(out.status.success());
            let want = format!("add table inet {name}");
            let until = std::time::Instant::now() + std::time::Duration::from_millis(300);
            while std::time::Instant::now() < until {
                let lines = self.lines.lock().unwrap();
                if let Some(i) = lines.iter().position(|l| l == &want) {
                    // The marker's own generation line follows it.
                    if let Some(g) = lines[i..].iter().position(|l| l.starts_with("# new generation")) {
                        return i + g + 1;
                    }
                }
                drop(lines);
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            assert!(std::time::Instant::now() < deadline, "nft monitor never printed our marker");
        }
    }

    /// What the monitor printed while `f` ran: its lines, and how many of
    /// them announce a new generation (one per committed transaction).
    fn during(&mut self, f: impl FnOnce()) -> (Vec<String>, usize) {
        let start = self.mark();
        f();
        let end = self.mark();
        let lines = self.lines.lock().unwrap();
        // Up to the last marker's own "add table" line.
        let seen: Vec<String> =
            lines[start..end].iter().take_while(|l| !l.starts_with("add table inet fwmon")).cloned().collect();
        let generations = seen.iter().filter(|l| l.starts_with("# new generation")).count();
        (seen, generations)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Handle of every rule in our table and in iptables-nft's FORWARD chains,
/// by (family, table, chain), as `nft -j -a` lists them.
fn shared_rule_handles(host: &Host) -> Vec<(String, String, String, u64)> {
    let v: Value = serde_json::from_str(&host.ns.ok(&["nft", "-j", "-a", "list", "ruleset"])).unwrap();
    let mut out: Vec<_> = v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter(|r| r["table"] == TABLE || (r["table"] == "filter" && r["chain"] == "FORWARD"))
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("family"), s("table"), s("chain"), r["handle"].as_u64().unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn add_is_one_transaction_and_a_repeated_add_rewrites_no_shared_rule() {
    let host = Host::new("fw-one");
    forward_drop(&host);
    let conf = bridge_conf(&host, "fwone", "cni-fwone", "10.79.0.0/24", Some("fd00:79::/64"));
    let (c1, c2) = (attach(&host, &conf, "o1"), attach(&host, &conf, "o2"));
    let fwc = fw_conf("fwone", json!({"ingressPolicy": "same-bridge"}));
    let mut mon = Monitor::start(&host.ns);

    // The first ADD writes the table, its rules, the container's elements
    // and the rule in ip and ip6 filter FORWARD: all in one transaction.
    let (lines, generations) = mon.during(|| {
        fw(&host, "ADD", &c1, &fwc).ok();
    });
    assert_eq!(generations, 1, "one transaction: {lines:#?}");
    let forward_rules = lines.iter().filter(|l| l.contains(" rule ") && l.contains(" filter FORWARD ")).count();
    assert_eq!(forward_rules, 2, "the FORWARD rules are part of it: {lines:#?}");
    assert_eq!(our_rules(&host, "iptables"), 1);
    assert_eq!(our_rules(&host, "ip6tables"), 1);
    let handles = shared_rule_handles(&host);
    assert!(handles.len() > 10, "{handles:?}");

    // Another container: its elements only, in one transaction; no rule is
    // deleted or rewritten, every handle stays.
    let (lines, generations) = mon.during(|| {
        fw(&host, "ADD", &c2, &fwc).ok();
    });
    assert_eq!(generations, 1, "{lines:#?}");
    assert!(lines.iter().all(|l| !l.contains(" rule ")), "no rule touched: {lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("add element inet cnirs-firewall ctr4")), "{lines:#?}");
    assert_eq!(shared_rule_handles(&host), handles);

    // The same ADD again changes nothing at all.
    let (lines, _) = mon.during(|| {
        fw(&host, "ADD", &c2, &fwc).ok();
    });
    assert!(lines.iter().all(|l| !l.contains(" rule ")), "{lines:#?}");
    assert_eq!(shared_rule_handles(&host), handles);
    assert!(c1.ns.ping(&addr(&c2.result, true)), "and traffic passes FORWARD DROP");

    // What a repeated ADD costs (printed, not asserted).
    let mut ms: Vec<f64> = (0..20)
        .map(|_| {
            let t = std::time::Instant::now();
            fw(&host, "ADD", &c2, &fwc).ok();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    eprintln!("firewall repeated ADD: median {:.1} ms, min {:.1} ms, max {:.1} ms", ms[10], ms[0], ms[19]);
    assert_eq!(shared_rule_handles(&host), handles);
}
