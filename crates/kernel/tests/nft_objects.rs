//! nftables objects against the real kernel, each test in its own network
//! namespace, with `nft list` as the independent witness. Needs root.

mod nft_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use kernel::nft::*;
use kernel::Kind;
use nft_support::{Masq, Portmap, TestNs};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn masq_add_is_idempotent_and_nft_reads_it_back() {
    let ns = TestNs::new();
    let m = Masq::new("cnirs-nat", "n1", "10.1.0.0/16", "fd01::/64");
    ns.run(|| {
        let b = m.add(&[ip("10.1.0.2"), ip("fd01::2")], "n1/c1/eth0");
        b.commit().unwrap();
        b.commit().unwrap();
        m.add(&[ip("10.1.0.3")], "n1/c2/eth0").commit().unwrap();
    });
    let text = ns.nft_list("table inet cnirs-nat");
    assert!(text.contains("ip saddr @n1-v4 ip daddr != 10.1.0.0/16 ip daddr != 224.0.0.0/4 masquerade"), "{text}");
    assert!(text.contains("ip6 saddr @n1-v6 ip6 daddr != fd01::/64 ip6 daddr != ff00::/8 masquerade"), "{text}");
    assert!(text.contains("ip saddr vmap @masq-nets4"), "{text}");
    assert!(text.contains("10.1.0.0/16 : goto masq-n1"), "{text}");
    assert!(text.contains("type nat hook postrouting priority srcnat"), "{text}");
    let set = ns.nft_list("set inet cnirs-nat n1-v4");
    assert!(set.contains("10.1.0.2 comment \"n1/c1/eth0\""), "{set}");
    assert!(set.contains("10.1.0.3 comment \"n1/c2/eth0\""), "{set}");
    // Flush + add in the same batch: three ADDs, still exactly two rules.
    let json = ns.ruleset_json();
    let rules = json["nftables"].as_array().unwrap().iter().filter(|o| o["rule"]["chain"] == "masq-n1").count();
    assert_eq!(rules, 2);
}

#[test]
fn masq_del_by_owner_without_addresses() {
    let ns = TestNs::new();
    let m = Masq::new("cnirs-nat", "n1", "10.1.0.0/16", "fd01::/64");
    ns.run(|| {
        m.add(&[ip("10.1.0.2"), ip("fd01::2")], "n1/c1/eth0").commit().unwrap();
        m.add(&[ip("10.1.0.3"), ip("fd01::3")], "n1/c2/eth0").commit().unwrap();
        let sock = Socket::open().unwrap();
        let del = m.del(&sock, "n1/c1/eth0");
        assert_eq!(del.len(), 2);
        sock.commit(&del).unwrap();
        // A second DEL finds nothing and does nothing.
        assert!(m.del(&sock, "n1/c1/eth0").is_empty());
        let left: Vec<Element> = sock.list_elements(&m.v4).unwrap();
        assert_eq!(left, [Element::new([Value::from(ip("10.1.0.3"))]).comment("n1/c2/eth0")]);
        assert_eq!(sock.list_elements(&m.v6).unwrap().len(), 1);
    });
}

#[test]
fn errors_carry_the_errno_and_name_the_object() {
    let ns = TestNs::new();
    let t = Table::new(Family::Inet, "cnirs-err").unwrap();
    let missing = Table::new(Family::Inet, "nope").unwrap();
    let m = t
        .map("hp4all", &[DataType::InetProto, DataType::InetService], &[DataType::Ipv4Addr, DataType::InetService])
        .unwrap();
    let s = t.set("s", &[DataType::Ipv4Addr]).unwrap();
    let key = || Element::new([Value::TCP, Value::Port(8080)]);
    ns.run(|| {
        let e = Batch::new().delete_table(&missing).commit().unwrap_err();
        assert_eq!(e.kind, Kind::NotFound);
        assert_eq!(e.errno, Some(libc::ENOENT));
        assert_eq!(e.what, "deleting table inet nope");

        let mut b = Batch::new();
        b.create_table(&t).add_set(&m).add_set(&s);
        b.commit().unwrap();
        assert_eq!(b.commit().unwrap_err().kind, Kind::Exists);

        Batch::new()
            .add_element(&m, key().data([Value::Ipv4([10, 0, 0, 2].into()), Value::Port(80)]))
            .commit()
            .unwrap();
        // Same key, same value: fine (retried ADD).
        Batch::new()
            .add_element(&m, key().data([Value::Ipv4([10, 0, 0, 2].into()), Value::Port(80)]))
            .commit()
            .unwrap();
        // Same key, another container: the port is taken.
        let e = Batch::new()
            .add_element(&m, key().data([Value::Ipv4([10, 0, 0, 3].into()), Value::Port(80)]))
            .commit()
            .unwrap_err();
        assert_eq!(e.kind, Kind::Exists);
        assert_eq!(e.what, "adding element tcp . 8080 : 10.0.0.3 . 80 to map inet cnirs-err hp4all");
        // create = exclusive.
        let one = Element::new([Value::Ipv4(Ipv4Addr::new(10, 0, 0, 9))]);
        Batch::new().create_element(&s, one.clone()).commit().unwrap();
        assert!(Batch::new().create_element(&s, one.clone()).commit().unwrap_err().is_exists());
        // The error names the failing message, not the first one.
        let mut b = Batch::new();
        b.add_table(&t).add_set(&s).delete_element(&s, &Element::new([Value::Ipv4(Ipv4Addr::new(10, 9, 9, 9))]));
        let e = b.commit().unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(e.what, "deleting element 10.9.9.9 from set inet cnirs-err s");
        // Wrong types never reach the kernel.
        let e = Batch::new().add_element(&s, Element::new([Value::Port(1)])).commit().unwrap_err();
        assert_eq!((e.kind, e.errno), (Kind::Invalid, None));
    });
}

#[test]
fn a_failed_batch_changes_nothing() {
    let ns = TestNs::new();
    let t = Table::new(Family::Inet, "cnirs-atomic").unwrap();
    let gone = Table::new(Family::Ip, "gone").unwrap();
    ns.run(|| {
        let mut b = Batch::new();
        b.add_table(&t).add_chain(&t.chain("c").unwrap()).delete_table(&gone);
        assert!(b.commit().unwrap_err().is_not_found());
        assert!(!Socket::open().unwrap().has_table(&t).unwrap());
    });
    assert!(!ns.nft_list("ruleset").contains("cnirs-atomic"));
}

#[test]
fn destroy_ignores_missing_objects() {
    let ns = TestNs::new();
    let t = Table::new(Family::Inet, "cnirs-destroy").unwrap();
    let s = t.set("s", &[DataType::Ipv4Addr]).unwrap();
    let c = t.chain("c").unwrap();
    let e = Element::new([Value::Ipv4(Ipv4Addr::new(10, 0, 0, 1))]);
    ns.run(|| {
        Batch::new().add_table(&t).add_set(&s).add_chain(&c).commit().unwrap();
        Batch::new().destroy_element(&s, &e).commit().unwrap();
        let mut b = Batch::new();
        b.destroy_rule(&c, 12345).destroy_chain(&c).destroy_set(&s);
        b.commit().unwrap();
        b.commit().unwrap();
        // Elements are only "destroyed" from a set that exists.
        assert!(Batch::new().destroy_element(&s, &e).commit().unwrap_err().is_not_found());
        Batch::new().destroy_table(&t).destroy_table(&t).commit().unwrap();
        assert!(!Socket::open().unwrap().has_table(&t).unwrap());
    });
}

#[test]
fn portmap_maps_as_nft_shows_them() {
    let ns = TestNs::new();
    let p = Portmap::new("cnirs-portmap");
    ns.run(|| {
        let mut b = p.setup();
        p.map(&mut b, Value::TCP, Some(ip("198.51.100.1")), 8080, SocketAddr::new(ip("10.88.0.2"), 80), "pm/c1/eth0");
        p.map(&mut b, Value::UDP, None, 5353, SocketAddr::new(ip("10.88.0.2"), 53), "pm/c1/eth0");
        p.map(&mut b, Value::SCTP, Some(ip("2001:db8::1")), 9000, SocketAddr::new(ip("fd88::2"), 9001), "pm/c1/eth0");
        b.commit().unwrap();
        p.setup().commit().unwrap();
    });
    let hp4 = ns.nft_list("map inet cnirs-portmap hp4");
    assert!(hp4.contains("type inet_proto . ipv4_addr . inet_service : ipv4_addr . inet_service"), "{hp4}");
    assert!(hp4.contains("tcp . 198.51.100.1 . 8080 comment \"pm/c1/eth0\" : 10.88.0.2 . 80"), "{hp4}");
    let all = ns.nft_list("map inet cnirs-portmap hp4all");
    assert!(all.contains("type inet_proto . inet_service : ipv4_addr . inet_service"), "{all}");
    assert!(all.contains("udp . 5353 comment \"pm/c1/eth0\" : 10.88.0.2 . 53"), "{all}");
    let hp6 = ns.nft_list("map inet cnirs-portmap hp6");
    assert!(hp6.contains("sctp . 2001:db8::1 . 9000 comment \"pm/c1/eth0\" : fd88::2 . 9001"), "{hp6}");
    let chain = ns.nft_list("chain inet cnirs-portmap hostports");
    assert!(chain.contains("dnat ip to meta l4proto . ip daddr . th dport map @hp4"), "{chain}");
    assert!(chain.contains("dnat ip6 to meta l4proto . ip6 daddr . th dport map @hp6"), "{chain}");
    assert!(chain.contains("dnat ip to meta l4proto . th dport map @hp4all"), "{chain}");
    let pre = ns.nft_list("chain inet cnirs-portmap prerouting");
    assert!(pre.contains("fib daddr type local jump hostports"), "{pre}");
    let post = ns.nft_list("chain inet cnirs-portmap postrouting");
    assert!(post.contains("ip saddr . ip daddr @hairpin4 masquerade"), "{post}");
    // setup() ran twice: the fixed rules are not duplicated.
    assert_eq!(chain.matches("dnat").count(), 4, "{chain}");
}

#[test]
fn list_elements_decodes_every_kind_of_set() {
    let ns = TestNs::new();
    let t = Table::new(Family::Inet, "cnirs-list").unwrap();
    let hp4 = t
        .map(
            "hp4",
            &[DataType::InetProto, DataType::Ipv4Addr, DataType::InetService],
            &[DataType::Ipv4Addr, DataType::InetService],
        )
        .unwrap();
    let ranges = t.set("ranges", &[DataType::Ipv4Addr]).unwrap().interval().unwrap();
    let ranges6 = t.set("ranges6", &[DataType::Ipv6Addr]).unwrap().interval().unwrap();
    let ports = t.set("ports", &[DataType::InetProto, DataType::InetService]).unwrap().interval().unwrap();
    let c = t.chain("target").unwrap();
    let vm = t.vmap("vm", &[DataType::Ifname]).unwrap();
    let many: Vec<Element> = (0..300u16)
        .map(|i| {
            Element::new([Value::TCP, Value::Ipv4([192, 0, 2, 1].into()), Value::Port(10000 + i)])
                .data([Value::Ipv4([10, 88, (i / 250) as u8, (i % 250) as u8 + 2].into()), Value::Port(80)])
                .comment(format!("net/c{}/eth0", i % 7))
        })
        .collect();
    let r = vec![
        Element::prefix("10.0.0.0/8".parse().unwrap()).comment("cluster"),
        Element::range([Value::Ipv4([192, 168, 1, 1].into())], [Value::Ipv4([192, 168, 1, 5].into())]),
        Element::new([Value::Ipv4([192, 168, 2, 1].into())]),
        Element::prefix("224.0.0.0/3".parse().unwrap()),
    ];
    ns.run(|| {
        let mut b = Batch::new();
        b.add_table(&t).add_chain(&c).add_set(&hp4).add_set(&ranges).add_set(&ranges6).add_set(&ports).add_set(&vm);
        for e in &many {
            b.add_element(&hp4, e.clone());
        }
        for e in &r {
            b.add_element(&ranges, e.clone());
        }
        b.add_element(&ranges6, Element::prefix("fd00::/8".parse().unwrap()).comment("ula"));
        b.add_element(
            &ports,
            Element::range([Value::TCP, Value::Port(1000)], [Value::TCP, Value::Port(1999)]).comment("range"),
        );
        b.add_element(&vm, Element::new([Value::Ifname("veth1".into())]).verdict(c.jump()).comment("v"));
        b.commit().unwrap();

        let sock = Socket::open().unwrap();
        let mut got = sock.list_elements(&hp4).unwrap();
        got.sort_by_key(|e| e.key[2].to_string());
        let mut want = many.clone();
        want.sort_by_key(|e| e.key[2].to_string());
        assert_eq!(got, want);

        let mut got = sock.list_elements(&ranges).unwrap();
        got.sort_by_key(|e| e.to_string());
        let mut want: Vec<Element> = r
            .iter()
            .cloned()
            .map(|mut e| {
                e.key_end.get_or_insert_with(|| e.key.clone());
                e
            })
            .collect();
        want.sort_by_key(|e| e.to_string());
        assert_eq!(got, want);
        assert_eq!(
            sock.list_elements(&ranges6).unwrap()[0].to_string(),
            "fd00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        let p = sock.list_elements(&ports).unwrap();
        assert_eq!((p[0].to_string(), p[0].comment.as_deref()), ("tcp . 1000-tcp . 1999".to_string(), Some("range")));
        let v = sock.list_elements(&vm).unwrap();
        assert_eq!(
            v,
            [Element::new([Value::Ifname("veth1".into())]).verdict(Verdict::Jump("target".into())).comment("v")]
        );

        // Delete a range and a prefix by what list_elements returned.
        let mut b = Batch::new();
        for e in sock
            .list_elements(&ranges)
            .unwrap()
            .iter()
            .filter(|e| e.comment.as_deref() == Some("cluster") || e.key[0] == Value::Ipv4([192, 168, 1, 1].into()))
        {
            b.delete_element(&ranges, e);
        }
        b.commit().unwrap();
        assert_eq!(sock.list_elements(&ranges).unwrap().len(), 2);

        let missing = t.set("missing", &[DataType::Ipv4Addr]).unwrap();
        assert!(sock.list_elements(&missing).unwrap_err().is_not_found());
        assert!(sock.has_set(&hp4).unwrap() && !sock.has_set(&missing).unwrap());
    });
    let text = ns.nft_list("set inet cnirs-list ranges");
    assert!(text.contains("192.168.2.1"), "{text}");
    assert!(text.contains("224.0.0.0/3"), "{text}");
}

#[test]
fn rules_are_listed_and_deleted_by_handle() {
    let ns = TestNs::new();
    let t = Table::new(Family::Ip, "cnirs-rules").unwrap();
    let c = t.base_chain("fwd", Hook::Forward, ChainType::Filter, priority::FILTER).unwrap().with_policy(Policy::Drop);
    ns.run(|| {
        let mut b = Batch::new();
        b.add_table(&t).add_chain(&c);
        b.add_rule(Rule::new(&c).ct_state(CtState::ESTABLISHED | CtState::RELATED).accept().comment("est"));
        b.add_rule(
            Rule::new(&c)
                .cmp(Field::Iifname, CmpOp::Eq, Value::Ifname("veth1".into()))
                .counter()
                .accept()
                .comment("c1"),
        );
        b.insert_rule(Rule::new(&c).cmp(Field::ThDport, CmpOp::Eq, Value::Port(22)).drop().comment("first"));
        b.commit().unwrap();
        let sock = Socket::open().unwrap();
        let rules = sock.list_rules(&c).unwrap();
        let comments: Vec<_> = rules.iter().map(|r| r.comment.as_deref().unwrap()).collect();
        assert_eq!(comments, ["first", "est", "c1"]);
        sock.commit(Batch::new().delete_rule(&c, rules[2].handle)).unwrap();
        assert_eq!(sock.list_rules(&c).unwrap().len(), 2);
        assert!(sock.list_rules(&t.chain("none").unwrap()).unwrap_err().is_not_found());
        assert!(sock.has_chain(&c).unwrap());
    });
    let text = ns.nft_list("table ip cnirs-rules");
    assert!(text.contains("policy drop"), "{text}");
    assert!(text.contains("ct state established,related accept comment \"est\""), "{text}");
}

#[test]
fn bridge_spoofcheck_set_of_ifname_and_mac() {
    let ns = TestNs::new();
    let t = Table::new(Family::Bridge, "cnirs-spoof").unwrap();
    let c = t.base_chain("pre", Hook::Prerouting, ChainType::Filter, priority::BRIDGE_FILTER).unwrap();
    let ports = t.set("ports", &[DataType::Ifname]).unwrap();
    let ok = t.set("allowed", &[DataType::Ifname, DataType::EtherAddr]).unwrap();
    ns.run(|| {
        let mut b = Batch::new();
        b.add_table(&t).add_chain(&c).add_set(&ports).add_set(&ok).flush_chain(&c);
        b.add_rule(
            Rule::new(&c)
                .in_set(&[Field::Iifname], &ports)
                .not_in_set(&[Field::Iifname, Field::EtherSaddr], &ok)
                .drop(),
        );
        b.add_element(&ports, Element::new([Value::Ifname("veth1".into())]).comment("c1/eth0"));
        b.add_element(
            &ok,
            Element::new([Value::Ifname("veth1".into()), Value::Ether([2, 0, 0, 0, 0, 1])]).comment("c1/eth0"),
        );
        b.commit().unwrap();
        let got = Socket::open().unwrap().list_elements(&ok).unwrap();
        assert_eq!(got[0].key[1], Value::Ether([2, 0, 0, 0, 0, 1]));
    });
    let text = ns.nft_list("table bridge cnirs-spoof");
    assert!(text.contains("iifname @ports iifname . ether saddr != @allowed drop"), "{text}");
    assert!(text.contains("\"veth1\" . 02:00:00:00:00:01 comment \"c1/eth0\""), "{text}");
}

#[test]
fn a_socket_stays_in_the_namespace_it_was_opened_in() {
    let a = TestNs::new();
    let b = TestNs::new();
    let t = Table::new(Family::Inet, "cnirs-where").unwrap();
    let sock = a.run(|| Socket::open().unwrap());
    let before = sock.generation().unwrap();
    b.run(|| sock.commit(Batch::new().add_table(&t)).unwrap());
    assert!(sock.generation().unwrap() > before);
    assert!(a.nft_list("tables").contains("cnirs-where"));
    assert!(!b.nft_list("tables").contains("cnirs-where"));
}
