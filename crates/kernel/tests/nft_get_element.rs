//! `Socket::get_element`: one element by key, with its value and comment,
//! from plain and concatenated-interval sets; absent keys and sets are
//! `None`. Runs in a throwaway namespace (needs root).

mod nft_support;

use kernel::nft::*;
use nft_support::TestNs;
use std::net::Ipv4Addr;

fn v4(a: [u8; 4]) -> Value {
    Value::Ipv4(Ipv4Addr::from(a))
}

#[test]
fn get_element_finds_one_key_with_its_owner() {
    let ns = TestNs::new();
    let t = Table::new(Family::Inet, "cnirs-get").unwrap();
    use DataType::*;
    let map = t.map("hp4all", &[InetProto, InetService], &[Ipv4Addr, InetService]).unwrap();
    let masq = t.set("masq4", &[Ipv4Addr, Ipv4Addr, InetProto, InetService]).unwrap().interval().unwrap();
    let single = t.set("ranges", &[Ipv4Addr]).unwrap().interval().unwrap();
    let mapping =
        Element::new([Value::TCP, Value::Port(8080)]).data([v4([10, 0, 0, 2]), Value::Port(80)]).comment("n/c1/eth0");
    let range = Element::range(
        [v4([10, 0, 0, 0]), v4([10, 0, 0, 2]), Value::TCP, Value::Port(80)],
        [v4([10, 0, 0, 255]), v4([10, 0, 0, 2]), Value::TCP, Value::Port(80)],
    )
    .comment("n/c1/eth0");
    ns.run(|| {
        let sock = Socket::open().unwrap();
        // No table yet: nothing to find, no error.
        assert_eq!(sock.get_element(&map, &mapping).unwrap(), None);
        let mut b = Batch::new();
        b.add_table(&t).add_set(&map).add_set(&masq).add_set(&single);
        b.add_element(&map, mapping.clone()).add_element(&masq, range.clone());
        for p in 0..500u16 {
            let other = Element::new([Value::UDP, Value::Port(p + 1)])
                .data([v4([10, 0, 1, 2]), Value::Port(53)])
                .comment("n/c2/eth0");
            b.add_element(&map, other);
        }
        sock.commit(&b).unwrap();

        assert_eq!(
            sock.get_element(&map, &Element::new([Value::TCP, Value::Port(8080)])).unwrap(),
            Some(mapping.clone())
        );
        assert_eq!(sock.get_element(&map, &Element::new([Value::TCP, Value::Port(8081)])).unwrap(), None);
        let got = sock.get_element(&masq, &range).unwrap().expect("the range");
        assert_eq!(
            (got.key, got.key_end, got.comment),
            (range.key.clone(), range.key_end.clone(), range.comment.clone())
        );
        let missing = Element::range(
            [v4([10, 0, 0, 0]), v4([10, 0, 0, 3]), Value::TCP, Value::Port(80)],
            [v4([10, 0, 0, 255]), v4([10, 0, 0, 3]), Value::TCP, Value::Port(80)],
        );
        assert_eq!(sock.get_element(&masq, &missing).unwrap(), None);
        let e = sock.get_element(&single, &Element::new([v4([10, 0, 0, 1])])).unwrap_err();
        assert_eq!(e.kind, kernel::Kind::Invalid);
        let other_set = t.map("nope", &[InetProto, InetService], &[Ipv4Addr, InetService]).unwrap();
        assert_eq!(sock.get_element(&other_set, &mapping).unwrap(), None);
    });
}
