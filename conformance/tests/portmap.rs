//! portmap, chained after bridge + host-local: real listeners in a
//! container namespace, real clients in other namespaces (another "host",
//! the host itself, the container itself), over IPv4 and IPv6; conflicts,
//! DEL/CHECK/GC by owner, 500 mappings, and bad input leaving nothing.
//!
//! Not tested: `[::1]:hostPort` from the host. The kernel has no
//! `route_localnet` for IPv6, so a packet from `::1` can never leave
//! through the bridge (the reference plugin has the same limit).

use conformance::fixture::{with_prev, Host};
use conformance::{witness, TestNs};
use serde_json::{json, Value};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const TABLE: &str = "cnirs-portmap";
const MAPS: [&str; 10] = ["hp4", "hp4all", "hp6", "hp6all", "cond4", "cond4all", "cond6", "cond6all", "masq4", "masq6"];

// ---- sockets inside a namespace ----

/// Runs `f` on a thread that has entered namespace `ns`; sockets it makes
/// stay in that namespace.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = File::open(&path).expect("opening the namespace");
        // SAFETY: setns on a valid namespace fd only changes this thread.
        let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("namespace thread")
}

/// TCP and UDP servers on `[::]:port` (both IP versions) that answer
/// with the address they see the client as.
struct Server {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

fn peer_text(a: SocketAddr) -> String {
    a.ip().to_canonical().to_string()
}

impl Server {
    fn start(ns: &TestNs, port: u16) -> Server {
        let addr: SocketAddr = format!("[::]:{port}").parse().unwrap();
        let (tcp, udp) = in_ns(&ns.name, move || {
            (TcpListener::bind(addr).expect("tcp bind"), UdpSocket::bind(addr).expect("udp bind"))
        });
        tcp.set_nonblocking(true).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (s1, s2) = (stop.clone(), stop.clone());
        let t1 = std::thread::spawn(move || {
            while !s1.load(Ordering::Relaxed) {
                match tcp.accept() {
                    Ok((mut c, peer)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.write_all(peer_text(peer).as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        let t2 = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !s2.load(Ordering::Relaxed) {
                if let Ok((_, peer)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(peer_text(peer).as_bytes(), peer);
                }
            }
        });
        Server { stop, threads: vec![t1, t2] }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Connects over TCP from `ns`; what the server saw as our address.
fn tcp(ns: &TestNs, to: &str) -> Result<String, String> {
    let to: SocketAddr = to.parse().unwrap();
    in_ns(&ns.name, move || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    })
}

/// Sends a UDP datagram from `ns` (a few tries); the server's answer.
fn udp(ns: &TestNs, to: &str) -> Result<String, String> {
    let to: SocketAddr = to.parse().unwrap();
    in_ns(&ns.name, move || {
        let local = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let s = UdpSocket::bind(local).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_millis(700))).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            s.send_to(b"hi", to).map_err(|e| e.to_string())?;
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                return Ok(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        Err("no answer".into())
    })
}

// ---- the topology ----

/// A host with a bridge network (10.66.0.0/24, fd00:66::/64, gateway .1)
/// and one container on it, plus an "outside" namespace on a second link
/// (host 198.51.100.1 and .3, 2001:db8:1::1 and ::3; client .2 / ::2)
/// that has no route to the containers: only the mappings let it in.
struct World {
    host: Host,
    ctr: TestNs,
    client: TestNs,
    bridge_conf: String,
    result: Value,
}

fn bridge_net(name: &str, extra: Value) -> Value {
    let mut v = json!({
        "cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": "cni-pm0",
        "isGateway": true, "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.66.0.0/24"}], [{"subnet": "fd00:66::/64"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
        }
    });
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    v
}

fn world(prefix: &str) -> World {
    let host = Host::new(prefix);
    let client = TestNs::new(&format!("{prefix}-out"));
    client.ok(&["ip", "link", "set", "lo", "up"]);
    let h = &host.ns;
    h.ok(&["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", &client.name]);
    for a in ["198.51.100.1/24", "198.51.100.3/24"] {
        h.ok(&["ip", "addr", "add", a, "dev", "up0"]);
    }
    for a in ["2001:db8:1::1/64", "2001:db8:1::3/64"] {
        h.ok(&["ip", "addr", "add", a, "dev", "up0", "nodad"]);
    }
    h.ok(&["ip", "link", "set", "up0", "up"]);
    client.ok(&["ip", "addr", "add", "198.51.100.2/24", "dev", "up1"]);
    client.ok(&["ip", "addr", "add", "2001:db8:1::2/64", "dev", "up1", "nodad"]);
    client.ok(&["ip", "link", "set", "up1", "up"]);
    h.ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
    let bridge_conf = host.conf(bridge_net("pmnet", json!({})));
    let ctr = TestNs::new(&format!("{prefix}-c"));
    let result = host.run("bridge", "ADD", &ctr.path(), "web", "eth0", &bridge_conf).ok().json();
    World { host, ctr, client, bridge_conf, result }
}

/// A portmap config as libcni sends it: the conflist entry with
/// `runtimeConfig.portMappings` and the previous result.
fn pm_conf(net: &str, extra: Value, mappings: Value, prev: Option<&Value>) -> String {
    let mut v = json!({
        "cniVersion": "1.0.0", "name": net, "type": "portmap",
        "capabilities": {"portMappings": true}, "snat": true,
        "runtimeConfig": {"portMappings": mappings}
    });
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    if let Some(p) = prev {
        v["prevResult"] = p.clone();
    }
    v.to_string()
}

/// A result as bridge would give for a container at `v4` (and `v6`).
fn synthetic(v4: &str, v6: Option<&str>) -> Value {
    let mut ips = vec![json!({"interface": 2, "address": format!("{v4}/16"), "gateway": "10.0.0.1"})];
    if let Some(v6) = v6 {
        ips.push(json!({"interface": 2, "address": format!("{v6}/64")}));
    }
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "cni0"}, {"name": "veth0"}, {"name": "eth0", "sandbox": "/run/netns/none"}],
        "ips": ips,
        "dns": {}
    })
}

/// Elements of every portmap map, as `nft -j` shows them.
fn all_elements(ns: &TestNs) -> Vec<String> {
    MAPS.iter()
        .flat_map(|m| witness::nft_elements(ns, TABLE, m).into_iter().map(move |e| format!("{m}: {e}")))
        .collect()
}

fn ruleset(ns: &TestNs) -> String {
    ns.ok(&["nft", "list", "ruleset"])
}

// ---- traffic ----

#[test]
fn traffic_reaches_the_container_in_every_way_over_ipv4_and_ipv6() {
    let w = world("pm-traffic");
    let maps = json!([
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
        {"hostPort": 8081, "containerPort": 80, "protocol": "tcp", "hostIP": "198.51.100.3"},
        {"hostPort": 8081, "containerPort": 80, "protocol": "tcp", "hostIP": "2001:db8:1::3"}
    ]);
    let conf = pm_conf("pmnet", json!({}), maps, Some(&w.result));
    let out = w.host.run("portmap", "ADD", &w.ctr.path(), "web", "eth0", &conf).ok().json();
    assert_eq!(out, w.result, "portmap prints prevResult unchanged");
    let _srv80 = Server::start(&w.ctr, 80);
    let _srv53 = Server::start(&w.ctr, 53);

    // From another host: the server sees the client itself (no NAT of the source).
    assert_eq!(tcp(&w.client, "198.51.100.1:8080").unwrap(), "198.51.100.2");
    assert_eq!(tcp(&w.client, "[2001:db8:1::1]:8080").unwrap(), "2001:db8:1::2");
    assert_eq!(udp(&w.client, "198.51.100.1:5353").unwrap(), "198.51.100.2");
    assert_eq!(udp(&w.client, "[2001:db8:1::1]:5353").unwrap(), "2001:db8:1::2");
    // Every host address answers for a mapping without hostIP.
    assert_eq!(tcp(&w.client, "198.51.100.3:8080").unwrap(), "198.51.100.2");

    // From the host itself, to its own address.
    assert_eq!(tcp(&w.host.ns, "198.51.100.1:8080").unwrap(), "198.51.100.1");
    assert_eq!(tcp(&w.host.ns, "[2001:db8:1::1]:8080").unwrap(), "2001:db8:1::1");
    assert_eq!(udp(&w.host.ns, "198.51.100.1:5353").unwrap(), "198.51.100.1");
    // From the host to 127.0.0.1: masqueraded to the bridge address.
    assert_eq!(tcp(&w.host.ns, "127.0.0.1:8080").unwrap(), "10.66.0.1");
    assert_eq!(udp(&w.host.ns, "127.0.0.1:5353").unwrap(), "10.66.0.1");
    assert_eq!(w.host.ns.ok(&["sysctl", "-n", "net.ipv4.conf.cni-pm0.route_localnet"]).trim(), "1");
    assert_eq!(w.host.ns.ok(&["sysctl", "-n", "net.ipv4.conf.up0.route_localnet"]).trim(), "0");

    // Hairpin: the container reaches itself through the host address.
    assert_eq!(tcp(&w.ctr, "198.51.100.1:8080").unwrap(), "10.66.0.1");
    assert_eq!(tcp(&w.ctr, "[2001:db8:1::1]:8080").unwrap(), "fd00:66::1");
    assert_eq!(udp(&w.ctr, "198.51.100.1:5353").unwrap(), "10.66.0.1");

    // A second container of the bridge reaches the first one's mapping.
    let other = TestNs::new("pm-traffic-c2");
    w.host.run("bridge", "ADD", &other.path(), "other", "eth0", &w.bridge_conf).ok();
    assert_eq!(tcp(&other, "198.51.100.1:8080").unwrap(), "10.66.0.1");
    assert_eq!(tcp(&other, "[2001:db8:1::1]:8080").unwrap(), "fd00:66::1");

    // hostIP: only that address answers.
    assert_eq!(tcp(&w.client, "198.51.100.3:8081").unwrap(), "198.51.100.2");
    assert_eq!(tcp(&w.client, "[2001:db8:1::3]:8081").unwrap(), "2001:db8:1::2");
    assert!(tcp(&w.client, "198.51.100.1:8081").is_err());
    assert!(tcp(&w.client, "[2001:db8:1::1]:8081").is_err());

    let check = with_prev(&conf, &w.result);
    w.host.run("portmap", "CHECK", &w.ctr.path(), "web", "eth0", &check).ok();

    // DEL: every way in is closed and no element is left.
    w.host.run("portmap", "DEL", &w.ctr.path(), "web", "eth0", &conf).ok();
    assert!(tcp(&w.client, "198.51.100.1:8080").is_err());
    assert!(tcp(&w.client, "[2001:db8:1::1]:8080").is_err());
    assert!(udp(&w.client, "198.51.100.1:5353").is_err());
    assert!(tcp(&w.host.ns, "127.0.0.1:8080").is_err());
    assert!(all_elements(&w.host.ns).is_empty(), "{:?}", all_elements(&w.host.ns));
    w.host.run("portmap", "DEL", &w.ctr.path(), "web", "eth0", &conf).ok();
    w.host.run("portmap", "CHECK", &w.ctr.path(), "web", "eth0", &check).err(100);
}

#[test]
fn conditions_and_snat_options_change_who_gets_in() {
    let w = world("pm-cond");
    let _srv = Server::start(&w.ctr, 80);
    // A second attachment to the same container address (a prevResult
    // without interfaces), with conditions per IP version.
    let ip4 = w.result["ips"][0]["address"].as_str().unwrap().to_string();
    let ip6 = w.result["ips"][1]["address"].as_str().unwrap().to_string();
    let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": ip4}, {"address": ip6}], "dns": {}});
    let conf = pm_conf(
        "pmnet",
        json!({"conditionsV4": ["ip saddr != 198.51.100.2"], "conditionsV6": ["ip6", "saddr", "2001:db8:1::2"]}),
        json!([{"hostPort": 8083, "containerPort": 80, "protocol": "tcp"}]),
        Some(&prev),
    );
    w.host.run("portmap", "ADD", &w.ctr.path(), "web", "eth1", &conf).ok();
    assert!(tcp(&w.client, "198.51.100.1:8083").is_err(), "v4 client excluded by conditionsV4");
    assert_eq!(tcp(&w.host.ns, "198.51.100.1:8083").unwrap(), "198.51.100.1");
    assert_eq!(tcp(&w.client, "[2001:db8:1::1]:8083").unwrap(), "2001:db8:1::2");
    assert!(tcp(&w.host.ns, "[2001:db8:1::1]:8083").is_err(), "host excluded by conditionsV6");
    w.host.run("portmap", "CHECK", &w.ctr.path(), "web", "eth1", &conf).ok();
    w.host.run("portmap", "DEL", &w.ctr.path(), "web", "eth1", &conf).ok();
    assert!(!ruleset(&w.host.ns).contains("pmc-"), "the conditions chain is gone");

    // snat false: the hairpin is not masqueraded, so it cannot work.
    let conf =
        pm_conf("pmnet", json!({"snat": false}), json!([{"hostPort": 8084, "containerPort": 80}]), Some(&w.result));
    w.host.run("portmap", "ADD", &w.ctr.path(), "web", "eth0", &conf).ok();
    assert_eq!(tcp(&w.client, "198.51.100.1:8084").unwrap(), "198.51.100.2");
    assert!(tcp(&w.ctr, "198.51.100.1:8084").is_err(), "no masquerade, no hairpin");
    assert!(witness::nft_elements(&w.host.ns, TABLE, "masq4").is_empty());
    w.host.run("portmap", "DEL", &w.ctr.path(), "web", "eth0", &conf).ok();

    // masqAll: even the outside client is masqueraded.
    let conf =
        pm_conf("pmnet", json!({"masqAll": true}), json!([{"hostPort": 8085, "containerPort": 80}]), Some(&w.result));
    w.host.run("portmap", "ADD", &w.ctr.path(), "web", "eth0", &conf).ok();
    assert_eq!(tcp(&w.client, "198.51.100.1:8085").unwrap(), "10.66.0.1");
    assert_eq!(tcp(&w.client, "[2001:db8:1::1]:8085").unwrap(), "fd00:66::1");
    w.host.run("portmap", "DEL", &w.ctr.path(), "web", "eth0", &conf).ok();
    assert!(all_elements(&w.host.ns).is_empty());
}

#[test]
fn a_udp_flow_that_predates_the_mapping_is_redirected_after_add() {
    let w = world("pm-ct");
    let _srv = Server::start(&w.ctr, 53);
    // Any mapping: the NAT table makes the host track connections.
    let first = pm_conf("pmnet", json!({}), json!([{"hostPort": 8080, "containerPort": 80}]), Some(&w.result));
    w.host.run("portmap", "ADD", &w.ctr.path(), "web", "eth0", &first).ok();
    // A client keeps sending from one source port to a port not mapped yet:
    // conntrack remembers that flow as "to the host itself".
    let sock = in_ns(&w.client.name, || UdpSocket::bind("198.51.100.2:40053").unwrap());
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let ask = |sock: &UdpSocket| -> Option<String> {
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            sock.send_to(b"hi", "198.51.100.1:5400").ok()?;
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        None
    };
    assert_eq!(ask(&sock), None, "nothing listens on the host");
    let ip4 = w.result["ips"][0]["address"].as_str().unwrap().to_string();
    let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": ip4}], "dns": {}});
    let dns =
        pm_conf("pmnet", json!({}), json!([{"hostPort": 5400, "containerPort": 53, "protocol": "udp"}]), Some(&prev));
    w.host.run("portmap", "ADD", &w.ctr.path(), "web", "eth1", &dns).ok();
    // The same flow now reaches the container: its stale entry was deleted.
    assert_eq!(ask(&sock).as_deref(), Some("198.51.100.2"));
}

#[test]
fn the_bridge_example_conflist_maps_ports_through_cnitool() {
    // `docker run -p 8888:80` with cni-conf/10-bridge.conflist, unchanged
    // but for its IPAM store.
    let w = world("pm-tool");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cni-conf/10-bridge.conflist");
    let mut list: Value = serde_json::from_str(&std::fs::read_to_string(src).unwrap()).unwrap();
    assert_eq!(list["plugins"][1]["type"], "portmap", "the example chains portmap");
    conformance::demo::point_stores_at(&mut list, &w.host.dir.join("tool-ipam"));
    let netconf = w.host.dir.join("net.d");
    std::fs::create_dir_all(&netconf).unwrap();
    std::fs::write(netconf.join("10-bridge.conflist"), list.to_string()).unwrap();
    let ctr = TestNs::new("pm-tool-c");
    let cnitool = |cmd: &str| {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &w.host.ns.name])
            .arg(conformance::bin("cnitool"))
            .args([cmd, "cni-rs", &ctr.path()])
            .env("NETCONFPATH", &netconf)
            .env("CNI_PATH", conformance::bin_dir())
            .env("CNI_CACHE_DIR", w.host.dir.join("cache"))
            .env("CAP_ARGS", r#"{"portMappings":[{"hostPort":8888,"containerPort":80,"protocol":"tcp"}]}"#)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cnitool {cmd}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let r: Value = serde_json::from_str(&cnitool("add")).unwrap();
    let ip4 = r["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_string();
    let _srv = Server::start(&ctr, 80);
    assert_eq!(tcp(&w.client, "198.51.100.1:8888").unwrap(), "198.51.100.2");
    assert_eq!(tcp(&w.client, "[2001:db8:1::1]:8888").unwrap(), "2001:db8:1::2");
    assert_eq!(tcp(&w.host.ns, "127.0.0.1:8888").unwrap(), "10.88.0.1");
    assert!(ip4.starts_with("10.88."), "{r}");
    cnitool("check");
    cnitool("del");
    assert!(tcp(&w.client, "198.51.100.1:8888").is_err());
    assert!(all_elements(&w.host.ns).is_empty(), "{:?}", all_elements(&w.host.ns));
}

// ---- ownership ----

#[test]
fn a_taken_host_port_is_refused_naming_both_containers() {
    let host = Host::new("pm-conflict");
    let run =
        |cmd: &str, cid: &str, ifname: &str, conf: &str| host.run("portmap", cmd, "/run/netns/none", cid, ifname, conf);
    let a = pm_conf(
        "net",
        json!({}),
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
               {"hostPort": 9000, "containerPort": 90, "protocol": "tcp", "hostIP": "192.0.2.1"}]),
        Some(&synthetic("10.0.0.2", Some("fd00::2"))),
    );
    run("ADD", "alpha", "eth0", &a).ok();
    let before = ruleset(&host.ns);
    let taken = pm_conf(
        "net",
        json!({}),
        json!([{"hostPort": 7000, "containerPort": 70}, {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
        Some(&synthetic("10.0.0.3", None)),
    );
    let e = run("ADD", "beta", "eth0", &taken).err(102);
    let msg = e["msg"].as_str().unwrap();
    assert!(msg.contains("\"alpha\"") && msg.contains("\"beta\"") && msg.contains("8080"), "{e}");
    assert_eq!(ruleset(&host.ns), before, "a refused ADD changes nothing");
    let same_ip = pm_conf(
        "net",
        json!({}),
        json!([{"hostPort": 9000, "containerPort": 90, "hostIP": "192.0.2.1"}]),
        Some(&synthetic("10.0.0.3", None)),
    );
    run("ADD", "beta", "eth0", &same_ip).err(102);
    // Another protocol, or another specific host address, is no conflict.
    let fine = pm_conf(
        "net",
        json!({}),
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "udp"},
               {"hostPort": 8080, "containerPort": 80, "protocol": "sctp"},
               {"hostPort": 9000, "containerPort": 90, "hostIP": "192.0.2.2"}]),
        Some(&synthetic("10.0.0.3", None)),
    );
    run("ADD", "beta", "eth0", &fine).ok();
    // A repeated ADD of the same attachment is not a conflict with itself.
    run("ADD", "alpha", "eth0", &a).ok();
    run("CHECK", "alpha", "eth0", &a).ok();
    // DEL of beta leaves alpha whole.
    run("DEL", "beta", "eth0", &fine).ok();
    run("CHECK", "alpha", "eth0", &a).ok();
    let left = all_elements(&host.ns);
    assert!(left.iter().all(|e| !e.contains("10.0.0.3")), "{left:?}");
    assert!(left.iter().any(|e| e.contains("10.0.0.2")), "{left:?}");
}

#[test]
fn del_is_keyed_by_network_container_and_ifname() {
    let host = Host::new("pm-owner");
    let run =
        |cmd: &str, cid: &str, ifname: &str, conf: &str| host.run("portmap", cmd, "/run/netns/none", cid, ifname, conf);
    let prev = synthetic("10.0.0.2", Some("fd00::2"));
    // tcp and udp of one container; the same container on a second network.
    let net_a = pm_conf(
        "neta",
        json!({}),
        json!([{"hostPort": 53, "containerPort": 53, "protocol": "tcp"},
               {"hostPort": 53, "containerPort": 53, "protocol": "udp"}]),
        Some(&prev),
    );
    let net_b = pm_conf("netb", json!({}), json!([{"hostPort": 8443, "containerPort": 443}]), Some(&prev));
    run("ADD", "c1", "eth0", &net_a).ok();
    run("ADD", "c1", "eth0", &net_b).ok();
    let n_before = all_elements(&host.ns).len();
    // DEL without portMappings (a runtime that does not resend them).
    let bare = json!({"cniVersion": "1.0.0", "name": "neta", "type": "portmap"}).to_string();
    run("DEL", "c1", "eth0", &bare).ok();
    let left = all_elements(&host.ns);
    assert!(left.iter().all(|e| !e.contains(" 53")), "{left:?}");
    assert!(left.iter().any(|e| e.contains("8443")), "netb stays: {left:?}");
    assert!(left.len() < n_before);
    run("CHECK", "c1", "eth0", &net_b).ok();
    // CHECK reports a removed and an altered mapping.
    host.ns.ok(&["nft", "delete", "element", "inet", TABLE, "hp6all", "{ tcp . 8443 }"]);
    let e = run("CHECK", "c1", "eth0", &net_b).err(100);
    assert!(e["msg"].as_str().unwrap().contains("missing"), "{e}");
    host.ns.ok(&["nft", "add", "element", "inet", TABLE, "hp6all", "{ tcp . 8443 : fd00::9 . 443 }"]);
    let e = run("CHECK", "c1", "eth0", &net_b).err(100);
    assert!(e["msg"].as_str().unwrap().contains("altered"), "{e}");
    run("DEL", "c1", "eth0", &net_b).ok();
    let left = all_elements(&host.ns);
    assert_eq!(left, ["hp6all: {\"concat\":[\"tcp\",8443]}"], "only the foreign element stays");
}

#[test]
fn gc_removes_mappings_of_attachments_not_valid() {
    let host = Host::new("pm-gc");
    let run = |cmd: &str, cid: &str, net: &str, port: u16, ip: &str| {
        let mut v: Value = serde_json::from_str(&pm_conf(
            net,
            json!({}),
            json!([{"hostPort": port, "containerPort": 80}]),
            Some(&synthetic(ip, None)),
        ))
        .unwrap();
        v["cniVersion"] = "1.1.0".into();
        v["prevResult"]["cniVersion"] = "1.1.0".into();
        host.run("portmap", cmd, "/run/netns/none", cid, "eth0", &v.to_string())
    };
    run("ADD", "keep", "gcnet", 8001, "10.0.0.2").ok();
    run("ADD", "gone", "gcnet", 8002, "10.0.0.3").ok();
    run("ADD", "elsewhere", "othernet", 8003, "10.0.0.4").ok();
    let gc = json!({"cniVersion": "1.1.0", "name": "gcnet", "type": "portmap",
                    "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]});
    // Without a valid list nothing is removed.
    let no_list = json!({"cniVersion": "1.1.0", "name": "gcnet", "type": "portmap"});
    host.run("portmap", "GC", "", "", "", &no_list.to_string()).ok();
    assert_eq!(witness::nft_elements(&host.ns, TABLE, "hp4all").len(), 3);
    host.run("portmap", "GC", "", "", "", &gc.to_string()).ok();
    let mut left = witness::nft_elements(&host.ns, TABLE, "hp4all");
    left.sort();
    assert_eq!(left, ["{\"concat\":[\"tcp\",8001]}", "{\"concat\":[\"tcp\",8003]}"]);
    run("CHECK", "keep", "gcnet", 8001, "10.0.0.2").ok();
}

/// Netfilter netlink sockets of processes (port id not 0; the kernel's own
/// is 0) in namespace `ns`, from its `/proc/net/netlink`.
fn nfnetlink_sockets(ns: &TestNs) -> Vec<String> {
    const NETLINK_NETFILTER: &str = "12";
    ns.ok(&["cat", "/proc/net/netlink"])
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&NETLINK_NETFILTER) && f.get(2) != Some(&"0")
        })
        .map(str::to_string)
        .collect()
}

/// DEL and GC leave the close of their netfilter socket to the kernel (it
/// would only wait for the kernel to free deleted objects' memory): what
/// they delete is gone when they return, and the socket itself goes soon
/// after, without any process of ours.
#[test]
fn del_and_gc_remove_everything_before_returning_and_their_socket_goes_too() {
    let host = Host::new("pm-close");
    let conf = |port: u16, ip: &str, ip6: &str| {
        let mut v: Value = serde_json::from_str(&pm_conf(
            "closenet",
            json!({}),
            json!([{"hostPort": port, "containerPort": 80, "protocol": "udp"}]),
            Some(&synthetic(ip, Some(ip6))),
        ))
        .unwrap();
        v["cniVersion"] = "1.1.0".into();
        v["prevResult"]["cniVersion"] = "1.1.0".into();
        v.to_string()
    };
    let run = |cmd: &str, cid: &str, c: &str| host.run("portmap", cmd, "/run/netns/none", cid, "eth0", c);
    for round in 0..3 {
        let (a, b) = (conf(8100, "10.0.0.5", "fd00::5"), conf(8101, "10.0.0.6", "fd00::6"));
        run("ADD", "a", &a).ok();
        run("ADD", "b", &b).ok();
        assert_eq!(all_elements(&host.ns).len(), 8, "round {round}: 2 families x (DNAT + masquerade) x 2");
        run("DEL", "a", &a).ok();
        let left = all_elements(&host.ns);
        assert_eq!(left.len(), 4, "round {round}: only b's elements stay after a's DEL: {left:?}");
        assert!(left.iter().all(|e| !e.contains("8100") && !e.contains("10.0.0.5")), "{left:?}");
        let gc = json!({"cniVersion": "1.1.0", "name": "closenet", "type": "portmap",
                        "cni.dev/valid-attachments": []});
        host.run("portmap", "GC", "", "", "", &gc.to_string()).ok();
        assert_eq!(all_elements(&host.ns), Vec::<String>::new(), "round {round}: GC removed b");
        let rules = ruleset(&host.ns);
        assert!(!rules.contains("masq-10.0.0.0_16"), "the network's chain went with its last element:\n{rules}");
    }
    // The sockets DEL and GC handed to the kernel are closed by it.
    let since = Instant::now();
    let deadline = since + Duration::from_secs(30);
    let mut open = nfnetlink_sockets(&host.ns);
    while !open.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        open = nfnetlink_sockets(&host.ns);
    }
    eprintln!("netfilter sockets left after the last GC returned: gone after {:?}", since.elapsed());
    assert_eq!(open, Vec::<String>::new(), "netfilter sockets still open in the host namespace");
}

// ---- scale ----

#[test]
fn five_hundred_mappings_then_del_of_all_leaves_no_element() {
    let host = Host::new("pm-scale");
    let confs: Vec<(String, String)> = (0..500u32)
        .map(|i| {
            let ip = format!("10.1.{}.{}", i / 250, i % 250 + 2);
            let conf = pm_conf(
                "scale",
                json!({}),
                json!([{"hostPort": 10000 + i, "containerPort": 80}]),
                Some(&synthetic(&ip, None)),
            );
            (format!("ctr{i}"), conf)
        })
        .collect();
    let started = Instant::now();
    std::thread::scope(|s| {
        for chunk in confs.chunks(63) {
            let host = &host;
            s.spawn(move || {
                for (cid, conf) in chunk {
                    host.run("portmap", "ADD", "/run/netns/none", cid, "eth0", conf).ok();
                }
            });
        }
    });
    eprintln!("500 portmap ADDs (8 in parallel, each via ip netns exec): {:?}", started.elapsed());
    assert_eq!(witness::nft_elements(&host.ns, TABLE, "hp4all").len(), 500);
    // The rule count does not grow with mappings: 4 DNAT lookups, 2
    // masquerade lookups (`ct status dnat`), the masqAll chain, and the
    // network's chain (its subnet and localhost).
    let rules = ruleset(&host.ns).lines().filter(|l| l.contains("dnat") || l.contains("masquerade")).count();
    assert_eq!(rules, 9, "{}", ruleset(&host.ns));
    std::thread::scope(|s| {
        for chunk in confs.chunks(63) {
            let host = &host;
            s.spawn(move || {
                for (cid, conf) in chunk {
                    host.run("portmap", "DEL", "/run/netns/none", cid, "eth0", conf).ok();
                }
            });
        }
    });
    assert!(all_elements(&host.ns).is_empty(), "{:?}", all_elements(&host.ns));
}

// ---- input ----

#[test]
fn bad_input_is_code_7_naming_the_field_and_changes_nothing() {
    let host = Host::new("pm-bad");
    let prev = synthetic("10.0.0.2", Some("fd00::2"));
    let cases: Vec<(Value, Value, &str)> = vec![
        (json!({}), json!([{"hostPort": 0, "containerPort": 80}]), "hostPort"),
        (json!({}), json!([{"hostPort": 65536, "containerPort": 80}]), "hostPort"),
        (json!({}), json!([{"hostPort": 80, "containerPort": 70000}]), "containerPort"),
        (json!({}), json!([{"hostPort": 80, "containerPort": 80, "protocol": "icmp"}]), "protocol"),
        (json!({}), json!([{"hostPort": 80, "containerPort": 80, "hostIP": "localhost"}]), "hostIP"),
        (json!({"conditionsV4": ["-s", "10.0.0.0/8"]}), json!([{"hostPort": 80, "containerPort": 80}]), "conditionsV4"),
        (json!({"conditionsV6": ["tcp dport 80"]}), json!([{"hostPort": 80, "containerPort": 80}]), "conditionsV6"),
        (json!({"markMasqBit": 40}), json!([{"hostPort": 80, "containerPort": 80}]), "markMasqBit"),
        (
            json!({"markMasqBit": 1, "externalSetMarkChain": "X"}),
            json!([{"hostPort": 80, "containerPort": 80}]),
            "externalSetMarkChain",
        ),
    ];
    for (extra, maps, field) in cases {
        let conf = pm_conf("bad", extra.clone(), maps.clone(), Some(&prev));
        let e = host.run("portmap", "ADD", "/run/netns/none", "c1", "eth0", &conf).err(7);
        assert!(e["msg"].as_str().unwrap().contains(field), "{extra} {maps}: {e}");
        assert!(!ruleset(&host.ns).contains(TABLE), "{extra} {maps}: nftables changed");
    }
    let conf = pm_conf("bad", json!({}), json!([{"hostPort": 80, "containerPort": 80}]), None);
    let e = host.run("portmap", "ADD", "/run/netns/none", "c1", "eth0", &conf).err(7);
    assert!(e["msg"].as_str().unwrap().contains("prevResult"), "{e}");
    // No mappings: prevResult back, nftables untouched.
    let conf = pm_conf("bad", json!({}), json!([]), Some(&prev));
    let out = host.run("portmap", "ADD", "/run/netns/none", "c1", "eth0", &conf).ok().json();
    assert_eq!(out, prev);
    assert!(!ruleset(&host.ns).contains(TABLE));
    // The iptables-only options are accepted as no-ops.
    let conf = pm_conf("bad", json!({"markMasqBit": 13}), json!([{"hostPort": 80, "containerPort": 80}]), Some(&prev));
    host.run("portmap", "ADD", "/run/netns/none", "c1", "eth0", &conf).ok();
    host.run("portmap", "DEL", "/run/netns/none", "c1", "eth0", &conf).ok();
}

#[test]
fn add_prints_prev_result_in_the_config_version() {
    let host = Host::new("pm-ver");
    let prev = json!({
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "eth0", "sandbox": "/run/netns/none"}],
        "ips": [{"version": "4", "interface": 0, "address": "10.0.0.2/24", "gateway": "10.0.0.1"}],
        "dns": {}
    });
    let mut v: Value =
        serde_json::from_str(&pm_conf("ver", json!({}), json!([{"hostPort": 80, "containerPort": 80}]), Some(&prev)))
            .unwrap();
    v["cniVersion"] = "0.4.0".into();
    let r = host.run("portmap", "ADD", "/run/netns/none", "c1", "eth0", &v.to_string()).ok();
    assert_eq!(r.json(), prev);
    assert!(!r.stdout.ends_with('\n'));
    host.run("portmap", "DEL", "/run/netns/none", "c1", "eth0", &v.to_string()).ok();
    // CHECK of an attachment without mappings passes; STATUS (1.1) is ready
    // when nftables answers.
    let none = pm_conf("ver", json!({}), json!([]), Some(&synthetic("10.0.0.2", None)));
    host.run("portmap", "CHECK", "/run/netns/none", "c1", "eth0", &none).ok();
    let status = json!({"cniVersion": "1.1.0", "name": "ver", "type": "portmap"}).to_string();
    let r = host.run("portmap", "STATUS", "", "", "", &status).ok();
    assert!(r.stdout.is_empty(), "{r:?}");
}

/// Behind ptp each container has a /32 host route on its own host end: the
/// kernel's route to the container picks that end, which alone gets
/// `route_localnet`, and `127.0.0.1:hostPort` from the host reaches the
/// container. The other container's host end and the uplink stay as they were.
#[test]
fn localhost_reaches_a_ptp_container_through_its_own_host_end() {
    let host = Host::new("pm-ptp");
    let h = &host.ns;
    h.ok(&["ip", "link", "set", "lo", "up"]);
    h.ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let ptp = host.conf(json!({
        "cniVersion": "1.0.0", "name": "pmptp", "type": "ptp",
        "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.67.0.0/24" }]], "routes": [{"dst": "0.0.0.0/0"}] }
    }));
    let (a, b) = (TestNs::new("pm-ptp-a"), TestNs::new("pm-ptp-b"));
    let ra = host.run("ptp", "ADD", &a.path(), "a", "eth0", &ptp).ok().json();
    host.run("ptp", "ADD", &b.path(), "b", "eth0", &ptp).ok();
    let ends = host.veths();
    assert_eq!(ends.len(), 2, "{ends:?}");
    let a_end = ra["interfaces"][0]["name"].as_str().unwrap().to_string();
    let b_end = ends.iter().find(|e| **e != a_end).unwrap().clone();
    let conf =
        pm_conf("pmptp", json!({}), json!([{"hostPort": 8090, "containerPort": 80, "protocol": "tcp"}]), Some(&ra));
    host.run("portmap", "ADD", &a.path(), "a", "eth0", &conf).ok();
    let _srv = Server::start(&a, 80);
    let a_ip = ra["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_string();
    assert!(tcp(h, "127.0.0.1:8090").is_ok(), "127.0.0.1:8090 from the host reaches container a ({a_ip})");
    let sysctl = |dev: &str| h.ok(&["sysctl", "-n", &format!("net.ipv4.conf.{dev}.route_localnet")]).trim().to_string();
    assert_eq!(sysctl(&a_end), "1", "a's host end");
    assert_eq!(sysctl(&b_end), "0", "b's host end is not a's route");
    host.run("portmap", "DEL", &a.path(), "a", "eth0", &conf).ok();
    assert!(tcp(h, "127.0.0.1:8090").is_err(), "the mapping is gone after DEL");
}
