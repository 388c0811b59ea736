//! Timings of typical batches (not a pass/fail test: run with
//! `cargo test -p netcore --release --test nft_bench -- --ignored --nocapture`).
//! Needs root; works in its own namespace.

mod nft_support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use netcore::nft::*;
use nft_support::{Masq, Portmap, TestNs};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(n: usize, mut f: impl FnMut(usize)) -> Duration {
    median(
        (0..n)
            .map(|i| {
                let t = Instant::now();
                f(i);
                t.elapsed()
            })
            .collect(),
    )
}

#[test]
#[ignore]
fn commit_times() {
    let ns = TestNs::new();
    ns.run(|| {
        let m = Masq::new("cnirs-nat", "n1", "10.0.0.0/8", "fd00::/8");
        let p = Portmap::new("cnirs-portmap");
        p.setup().commit().unwrap();
        let owner = |i: usize| format!("n1/c{i}/eth0");
        let v4 =
            |i: usize| -> IpAddr { format!("10.{}.{}.{}", i / 62500, (i / 250) % 250, i % 250 + 1).parse().unwrap() };
        let masq_add = time(200, |i| m.add(&[v4(i)], &owner(i)).commit().unwrap());
        eprintln!("masq ADD batch ({} msgs, socket open included): {masq_add:?}", m.add(&[v4(0)], "x").len());
        let elem_only = time(200, |i| {
            Batch::new()
                .add_element(&m.v4, Element::new([Value::from(v4(i + 300))]).comment(owner(i)))
                .commit()
                .unwrap()
        });
        eprintln!("masq ADD, element only: {elem_only:?}");
        let del = time(50, |i| {
            let sock = Socket::open().unwrap();
            sock.commit(&m.del(&sock, &owner(i))).unwrap();
        });
        eprintln!("masq DEL by owner (list + delete; socket close waits for RCU): {del:?}");
        let mut b = Batch::new();
        let unconditional = time(50, |i| {
            b = m.add(&[v4(i + 900)], &owner(i));
            b.flush_chain(&m.chain);
            b.commit().unwrap()
        });
        eprintln!("masq ADD with an unconditional flush of one chain: {unconditional:?}");
        let pm_add = time(200, |i| {
            let mut b = Batch::new();
            p.map(&mut b, Value::TCP, None, 20000 + i as u16, SocketAddr::new(v4(i), 80), &owner(i));
            b.commit().unwrap();
        });
        eprintln!("portmap ADD (1 mapping + hairpin): {pm_add:?}");

        // Grow the map to 10k elements, then time one more ADD and a DEL by owner.
        let sock = Socket::open().unwrap();
        for chunk in (200..10_000).collect::<Vec<_>>().chunks(1000) {
            let mut b = Batch::new();
            for &i in chunk {
                p.map(&mut b, Value::TCP, None, 20000 + i as u16, SocketAddr::new(v4(i), 80), &owner(i));
            }
            sock.commit(&b).unwrap();
        }
        let pm_add_10k = time(50, |i| {
            let mut b = Batch::new();
            p.map(&mut b, Value::UDP, None, 20000 + i as u16, SocketAddr::new(v4(i), 80), &owner(i));
            sock.commit(&b).unwrap();
        });
        eprintln!("portmap ADD with 10k mappings present: {pm_add_10k:?}");
        let list = time(5, |_| assert!(sock.list_elements(&p.hp4all).unwrap().len() >= 10_000));
        eprintln!("list_elements of a 10k-element map: {list:?}");
        let bulk = Instant::now();
        let mut b = Batch::new();
        for i in 10_000..20_000 {
            b.add_element(&m.v4, Element::new([Value::from(v4(i))]).comment(owner(i)));
        }
        sock.commit(&b).unwrap();
        eprintln!("one batch of 10k set elements: {:?}", bulk.elapsed());
    });
}
