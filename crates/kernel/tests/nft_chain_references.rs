//! `Socket::chain_references`: how many verdict-map elements and rules of
//! other chains point at a chain, not counting its own rules, so a shared
//! chain can be deleted when its last user goes. Runs in a throwaway
//! namespace (needs root).

mod nft_support;

use kernel::nft::*;
use nft_support::TestNs;
use std::net::Ipv4Addr;

#[test]
fn counts_jumps_to_a_chain_but_not_its_own_rules() {
    let ns = TestNs::new();
    let t = Table::new(Family::Inet, "cnirs-refs").unwrap();
    let vmap = t.vmap("masq4", &[DataType::Ipv4Addr]).unwrap();
    let target = t.chain("masq-net").unwrap();
    let elem = |last: u8| Element::new([Value::Ipv4(Ipv4Addr::new(10, 0, 0, last))]).verdict(target.jump());
    ns.run(|| {
        let sock = Socket::open().unwrap();
        assert_eq!(sock.chain_references(&target).unwrap(), None);
        let mut b = Batch::new();
        b.add_table(&t).add_set(&vmap).add_chain(&target);
        b.replace_rules(&target, [Rule::new(&target).masquerade(), Rule::new(&target).accept()]);
        sock.commit(&b).unwrap();
        assert_eq!(sock.chain_references(&target).unwrap(), Some(0), "its own rules do not count");
        let mut b = Batch::new();
        b.add_element(&vmap, elem(2)).add_element(&vmap, elem(3));
        sock.commit(&b).unwrap();
        assert_eq!(sock.chain_references(&target).unwrap(), Some(2));
        let mut b = Batch::new();
        b.destroy_element(&vmap, &elem(2));
        sock.commit(&b).unwrap();
        assert_eq!(sock.chain_references(&target).unwrap(), Some(1));
        // The kernel refuses to delete a chain still pointed at.
        let mut b = Batch::new();
        b.delete_chain(&target);
        assert!(sock.commit(&b).is_err());
        let mut b = Batch::new();
        b.destroy_element(&vmap, &elem(3));
        sock.commit(&b).unwrap();
        assert_eq!(sock.chain_references(&target).unwrap(), Some(0));
        let mut b = Batch::new();
        b.delete_chain(&target);
        sock.commit(&b).unwrap();
        assert_eq!(sock.chain_references(&target).unwrap(), None);
    });
}
