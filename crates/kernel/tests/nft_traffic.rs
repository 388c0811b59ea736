//! Real packets through our rules: three namespaces ("host" routing between
//! a "container" and a "client"), TCP listeners and connections made by the
//! test threads themselves inside those namespaces. This proves the raw
//! expressions (concatenated lookups, map values in registers, NAT) do what
//! `nft` would do. Needs root; no traffic leaves the namespaces.

mod nft_support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kernel::nft::*;
use nft_support::{link, Masq, Portmap, TestNs};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A TCP server in a namespace that answers every connection with the
/// peer address it sees (v4-mapped addresses shown as IPv4).
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(ns: &TestNs, addr: SocketAddr) -> Server {
        let listener = ns.run(|| TcpListener::bind(addr).expect("binding the test server"));
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut conn, peer)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.write_all(peer.ip().to_canonical().to_string().as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server { stop, thread: Some(thread) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects from inside `ns` and returns what the server saw as our address.
fn ask(ns: &TestNs, to: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    ns.run(|| {
        let mut s = TcpStream::connect_timeout(&to, timeout)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })
}

const OK: Duration = Duration::from_secs(5);
const FAIL: Duration = Duration::from_millis(1500);

/// host routes between container (10.88.0.2, fd88::2) and client
/// (198.51.100.2, 2001:db8:1::2). The client has no route to the container
/// network, so only NAT on the host lets them talk.
struct Topo {
    host: TestNs,
    ctr: TestNs,
    client: TestNs,
}

fn topo() -> Topo {
    let (host, ctr, client) = (TestNs::new(), TestNs::new(), TestNs::new());
    link(&host, "to-ctr", &["10.88.0.1/24", "fd88::1/64"], &ctr, "eth0", &["10.88.0.2/24", "fd88::2/64"]);
    link(
        &host,
        "to-cli",
        &["198.51.100.1/24", "2001:db8:1::1/64"],
        &client,
        "eth0",
        &["198.51.100.2/24", "2001:db8:1::2/64"],
    );
    ctr.sh("ip route add default via 10.88.0.1 && ip -6 route add default via fd88::1");
    host.sh("sysctl -qw net.ipv4.ip_forward=1 && sysctl -qw net.ipv6.conf.all.forwarding=1");
    Topo { host, ctr, client }
}

#[test]
fn portmap_dnat_maps_hairpin_and_del() {
    let t = topo();
    let p = Portmap::new("cnirs-portmap");
    let owner = "pm/c1/eth0";
    t.host.run(|| {
        let mut b = p.setup();
        p.map(&mut b, Value::TCP, Some(ip("198.51.100.1")), 8080, sa("10.88.0.2:80"), owner);
        p.map(&mut b, Value::TCP, None, 9090, sa("10.88.0.2:80"), owner);
        p.map(&mut b, Value::TCP, Some(ip("2001:db8:1::1")), 8080, sa("[fd88::2]:80"), owner);
        p.map(&mut b, Value::TCP, None, 9090, sa("[fd88::2]:80"), owner);
        // A mapping for another container that must not catch our traffic.
        p.map(&mut b, Value::UDP, Some(ip("198.51.100.1")), 8080, sa("10.88.0.9:80"), "pm/c2/eth0");
        b.commit().unwrap();
    });
    let _server = Server::start(&t.ctr, sa("[::]:80"));

    // Mapping on one host address, and on all of them; v4 and v6.
    assert_eq!(ask(&t.client, sa("198.51.100.1:8080"), OK).unwrap(), "198.51.100.2");
    assert_eq!(ask(&t.client, sa("198.51.100.1:9090"), OK).unwrap(), "198.51.100.2");
    assert_eq!(ask(&t.client, sa("[2001:db8:1::1]:8080"), OK).unwrap(), "2001:db8:1::2");
    assert_eq!(ask(&t.client, sa("[2001:db8:1::1]:9090"), OK).unwrap(), "2001:db8:1::2");
    // From the host itself (output hook).
    assert_eq!(ask(&t.host, sa("198.51.100.1:8080"), OK).unwrap(), "198.51.100.1");
    // Hairpin: the container reaches itself through the host port and is
    // masqueraded to the host's address (otherwise it would drop its own
    // address as a martian source).
    assert_eq!(ask(&t.ctr, sa("198.51.100.1:8080"), OK).unwrap(), "10.88.0.1");
    assert_eq!(ask(&t.ctr, sa("[2001:db8:1::1]:9090"), OK).unwrap(), "fd88::1");

    // DEL by owner: the mappings are gone, the other container's stays.
    t.host.run(|| {
        let sock = Socket::open().unwrap();
        let mut b = Batch::new();
        for set in [&p.hp4, &p.hp4all, &p.hp6, &p.hp6all, &p.hairpin4, &p.hairpin6] {
            for e in sock.list_elements(set).unwrap().iter().filter(|e| e.comment.as_deref() == Some(owner)) {
                b.delete_element(set, e);
            }
        }
        assert_eq!(b.len(), 6);
        sock.commit(&b).unwrap();
        assert_eq!(sock.list_elements(&p.hp4).unwrap().len(), 1);
    });
    assert!(ask(&t.client, sa("198.51.100.1:8080"), FAIL).is_err());
    assert!(ask(&t.client, sa("[2001:db8:1::1]:9090"), FAIL).is_err());
}

#[test]
fn hairpin_needs_its_set_element() {
    let t = topo();
    let p = Portmap::new("cnirs-portmap");
    t.host.run(|| {
        let mut b = p.setup();
        p.map(&mut b, Value::TCP, None, 9090, sa("10.88.0.2:80"), "pm/c1/eth0");
        b.commit().unwrap();
        let hairpin = Element::new([Value::from(ip("10.88.0.2")), Value::from(ip("10.88.0.2"))]);
        Batch::new().delete_element(&p.hairpin4, &hairpin).commit().unwrap();
    });
    let _server = Server::start(&t.ctr, sa("0.0.0.0:80"));
    assert_eq!(ask(&t.client, sa("198.51.100.1:9090"), OK).unwrap(), "198.51.100.2");
    assert!(ask(&t.ctr, sa("198.51.100.1:9090"), FAIL).is_err());
}

#[test]
fn masquerade_by_source_set_with_subnet_exemption() {
    let t = topo();
    let m = Masq::new("cnirs-nat", "n1", "10.88.0.0/24", "fd88::/64");
    let owner = "n1/c1/eth0";
    t.host.run(|| m.add(&[ip("10.88.0.2"), ip("fd88::2")], owner).commit().unwrap());
    let _server = Server::start(&t.client, sa("[::]:7000"));

    assert_eq!(ask(&t.ctr, sa("198.51.100.2:7000"), OK).unwrap(), "198.51.100.1");
    assert_eq!(ask(&t.ctr, sa("[2001:db8:1::2]:7000"), OK).unwrap(), "2001:db8:1::1");

    // `ip daddr != <prefix>`: exempting the client's network stops the
    // masquerade (and so the connection); a prefix beside it does not.
    let exempt = |prefix: &str| {
        let rule = Rule::new(&m.chain)
            .in_set(&[Field::Ip4Saddr], &m.v4)
            .prefix(Field::Ip4Daddr, prefix.parse().unwrap(), CmpOp::Neq)
            .masquerade();
        t.host.run(|| Batch::new().flush_chain(&m.chain).add_rule(rule).commit().unwrap());
    };
    exempt("198.51.100.0/25");
    assert!(ask(&t.ctr, sa("198.51.100.2:7000"), FAIL).is_err());
    exempt("198.51.100.128/25");
    assert_eq!(ask(&t.ctr, sa("198.51.100.2:7000"), OK).unwrap(), "198.51.100.1");

    // DEL by owner: no more masquerade for that container.
    t.host.run(|| {
        let sock = Socket::open().unwrap();
        sock.commit(&m.del(&sock, owner)).unwrap();
    });
    assert!(ask(&t.ctr, sa("198.51.100.2:7000"), FAIL).is_err());
    assert!(ask(&t.ctr, sa("[2001:db8:1::2]:7000"), FAIL).is_err());
}

#[test]
fn forward_filter_admits_only_set_members() {
    let t = topo();
    let m = Masq::new("cnirs-nat", "n1", "10.88.0.0/24", "fd88::/64");
    let fw = Table::new(Family::Inet, "cnirs-fw").unwrap();
    let fwd =
        fw.base_chain("forward", Hook::Forward, ChainType::Filter, priority::FILTER).unwrap().with_policy(Policy::Drop);
    let admitted = fw.set("admitted4", &[DataType::Ipv4Addr]).unwrap();
    t.host.run(|| {
        m.add(&[ip("10.88.0.2")], "n1/c1/eth0").commit().unwrap();
        let mut b = Batch::new();
        b.add_table(&fw).add_chain(&fwd).add_set(&admitted).replace_rules(
            &fwd,
            [
                Rule::new(&fwd).ct_state(CtState::ESTABLISHED | CtState::RELATED).accept(),
                Rule::new(&fwd)
                    .cmp(Field::Iifname, CmpOp::Eq, Value::Ifname("to-ctr".into()))
                    .in_set(&[Field::Ip4Saddr], &admitted)
                    .counter()
                    .accept(),
            ],
        );
        b.commit().unwrap();
    });
    let _server = Server::start(&t.client, sa("0.0.0.0:7000"));
    assert!(ask(&t.ctr, sa("198.51.100.2:7000"), FAIL).is_err());
    t.host.run(|| {
        Batch::new()
            .add_element(&admitted, Element::new([Value::from(ip("10.88.0.2"))]).comment("c1"))
            .commit()
            .unwrap()
    });
    assert_eq!(ask(&t.ctr, sa("198.51.100.2:7000"), OK).unwrap(), "198.51.100.1");
}

#[test]
fn bridge_spoofcheck_drops_frames_from_a_foreign_mac() {
    let (host, ctr) = (TestNs::new(), TestNs::new());
    host.sh("ip link add br0 type bridge && ip addr add 10.77.0.1/24 dev br0 && ip link set br0 up");
    link(&host, "veth1", &[], &ctr, "eth0", &["10.77.0.2/24"]);
    host.sh("ip link set veth1 master br0");
    ctr.sh("ip link set eth0 address 02:00:00:00:00:01");
    let t = Table::new(Family::Bridge, "cnirs-spoof").unwrap();
    let pre = t.base_chain("pre", Hook::Prerouting, ChainType::Filter, priority::BRIDGE_FILTER).unwrap();
    let ports = t.set("ports", &[DataType::Ifname]).unwrap();
    let allowed = t.set("allowed", &[DataType::Ifname, DataType::EtherAddr]).unwrap();
    host.run(|| {
        let mut b = Batch::new();
        b.add_table(&t).add_chain(&pre).add_set(&ports).add_set(&allowed).replace_rules(
            &pre,
            [Rule::new(&pre)
                .in_set(&[Field::Iifname], &ports)
                .not_in_set(&[Field::Iifname, Field::EtherSaddr], &allowed)
                .drop()],
        );
        b.add_element(&ports, Element::new([Value::Ifname("veth1".into())]).comment("c1/eth0"));
        b.add_element(&allowed, Element::new([Value::Ifname("veth1".into()), Value::Ether([2, 0, 0, 0, 0, 1])]));
        b.commit().unwrap();
    });
    let _server = Server::start(&host, sa("10.77.0.1:7100"));
    assert_eq!(ask(&ctr, sa("10.77.0.1:7100"), OK).unwrap(), "10.77.0.2");
    // Same IP, another MAC: the bridge drops it before anything else sees it.
    ctr.sh("ip neigh flush dev eth0; ip link set eth0 address 02:00:00:00:00:66");
    host.sh("ip neigh flush dev br0");
    assert!(ask(&ctr, sa("10.77.0.1:7100"), FAIL).is_err());
    // Allowing that MAC too lets it through again: the drop was ours.
    host.run(|| {
        let e = Element::new([Value::Ifname("veth1".into()), Value::Ether([2, 0, 0, 0, 0, 0x66])]);
        Batch::new().add_element(&allowed, e).commit().unwrap()
    });
    assert_eq!(ask(&ctr, sa("10.77.0.1:7100"), OK).unwrap(), "10.77.0.2");
}
