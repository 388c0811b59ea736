//! 32 ADDs (and then 32 DELs) at once against one table, as a runtime
//! starting many pods does: shared objects are created idempotently, rules
//! never duplicate, every container's elements land, and a host port taken
//! twice fails cleanly for exactly one of the two. Needs root.

mod nft_support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Barrier;

use kernel::nft::*;
use kernel::Kind;
use nft_support::{Masq, Portmap, TestNs};

const N: usize = 32;

fn masq_for(i: usize) -> Masq {
    let net = i % 4;
    Masq::new("cnirs-nat", &format!("n{net}"), &format!("10.{net}.0.0/16"), &format!("fd0{net}::/64"))
}

fn addrs(i: usize) -> [IpAddr; 2] {
    let net = i % 4;
    [format!("10.{net}.0.{}", i + 2).parse().unwrap(), format!("fd0{net}::{:x}", i + 2).parse().unwrap()]
}

#[test]
fn concurrent_masq_adds_and_dels_converge() {
    let ns = TestNs::new();
    let barrier = Barrier::new(N);
    std::thread::scope(|s| {
        for i in 0..N {
            let (ns, barrier) = (&ns, &barrier);
            s.spawn(move || {
                let m = masq_for(i);
                let batch = m.add(&addrs(i), &format!("n{}/c{i}/eth0", i % 4));
                ns.run(|| {
                    barrier.wait();
                    batch.commit().unwrap();
                });
            });
        }
    });
    let json = ns.ruleset_json();
    let objs = json["nftables"].as_array().unwrap();
    let rules_in = |chain: &str| objs.iter().filter(|o| o["rule"]["chain"] == chain).count();
    assert_eq!(rules_in("postrouting"), 2);
    for net in 0..4 {
        assert_eq!(rules_in(&format!("masq-n{net}")), 2);
    }
    ns.run(|| {
        let sock = Socket::open().unwrap();
        for net in 0..4 {
            let m = masq_for(net);
            let v4 = sock.list_elements(&m.v4).unwrap();
            assert_eq!(v4.len(), N / 4);
            for e in &v4 {
                let c = e.comment.as_deref().unwrap();
                let i: usize = c.split('/').nth(1).unwrap()[1..].parse().unwrap();
                assert_eq!(e.key, [Value::from(addrs(i)[0])], "{c}");
            }
            assert_eq!(sock.list_elements(&m.v6).unwrap().len(), N / 4);
        }
        assert_eq!(sock.list_elements(&masq_for(0).nets4).unwrap().len(), 4);
    });

    std::thread::scope(|s| {
        for i in 0..N {
            let (ns, barrier) = (&ns, &barrier);
            s.spawn(move || {
                let m = masq_for(i);
                ns.run(|| {
                    let sock = Socket::open().unwrap();
                    barrier.wait();
                    let del = m.del(&sock, &format!("n{}/c{i}/eth0", i % 4));
                    assert_eq!(del.len(), 2);
                    sock.commit(&del).unwrap();
                });
            });
        }
    });
    ns.run(|| {
        let sock = Socket::open().unwrap();
        for net in 0..4 {
            assert!(sock.list_elements(&masq_for(net).v4).unwrap().is_empty());
            assert!(sock.list_elements(&masq_for(net).v6).unwrap().is_empty());
        }
    });
}

#[test]
fn concurrent_port_mappings_and_one_conflict() {
    let ns = TestNs::new();
    let barrier = Barrier::new(N + 2);
    let results: Vec<Result<(), kernel::Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..N + 2)
            .map(|i| {
                let (ns, barrier) = (&ns, &barrier);
                s.spawn(move || {
                    let p = Portmap::new("cnirs-portmap");
                    let mut b = p.setup();
                    // The last two containers both want host port 5000.
                    let host_port = if i >= N { 5000 } else { 10000 + i as u16 };
                    let ctr: IpAddr = format!("10.88.{}.{}", i / 200, i % 200 + 2).parse().unwrap();
                    p.map(&mut b, Value::TCP, None, host_port, SocketAddr::new(ctr, 80), &format!("pm/c{i}/eth0"));
                    ns.run(|| {
                        barrier.wait();
                        b.commit()
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results[..N].iter().all(|r| r.is_ok()), "{results:?}");
    let conflict: Vec<_> = results[N..].iter().collect();
    assert_eq!(conflict.iter().filter(|r| r.is_ok()).count(), 1, "{conflict:?}");
    let err = conflict.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert_eq!(err.kind, Kind::Exists);
    assert!(err.what.starts_with("adding element tcp . 5000 : 10.88.0."), "{}", err.what);
    ns.run(|| {
        let p = Portmap::new("cnirs-portmap");
        let sock = Socket::open().unwrap();
        assert_eq!(sock.list_elements(&p.hp4all).unwrap().len(), N + 1);
        assert_eq!(sock.list_rules(&p.hostports).unwrap().len(), 4);
        assert_eq!(sock.list_rules(&p.pre).unwrap().len(), 1);
    });
}
