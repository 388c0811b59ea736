//! Mark rules (`Rule::mark`, `Rule::has_mark_bits`) against the real
//! kernel, in a throwaway namespace, with `nft list` and `iptables -S` as
//! witnesses: the rules a table uses to tell another what it decided go
//! through the same `Batch` as everything else. Needs root.

mod nft_support;

use kernel::nft::*;
use nft_support::TestNs;

#[test]
fn set_and_clear_rules_read_back_as_nft_writes_them() {
    let ns = TestNs::new();
    let t = Table::new(Family::Inet, "cnirs-marktest").unwrap();
    let admit = t.chain("admit").unwrap();
    let unmark = t.base_chain("unmark", Hook::Forward, ChainType::Filter, 5).unwrap();
    ns.run(|| {
        let mut b = Batch::new();
        b.add_table(&t).add_chain(&admit).add_chain(&unmark);
        b.add_rule(Rule::new(&admit).mark(MarkOp::Set(0x1000_0000)).comment("admit"));
        b.add_rule(Rule::new(&unmark).mark(MarkOp::Clear(0x1000_0000)).comment("unmark"));
        b.commit().unwrap();
        let sock = Socket::open().unwrap();
        let rules = sock.list_rules(&admit).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].comment.as_deref(), Some("admit"));
    });
    let text = ns.nft_list("table inet cnirs-marktest");
    assert!(text.contains("meta mark set meta mark | 0x10000000 comment \"admit\""), "{text}");
    assert!(text.contains("meta mark set meta mark & 0xefffffff comment \"unmark\""), "{text}");
}

#[test]
fn a_mark_rule_for_a_missing_chain_is_not_found() {
    let ns = TestNs::new();
    let t = Table::new(Family::Inet, "cnirs-marktest").unwrap();
    let mut b = Batch::new();
    b.add_table(&t).add_rule(Rule::new(&t.chain("nope").unwrap()).mark(MarkOp::Set(1)));
    let e = ns.run(|| b.commit().unwrap_err());
    assert!(e.is_not_found(), "{e}");
    assert!(!ns.nft_list("ruleset").contains("cnirs-marktest"), "nothing of the batch stayed");
}

#[test]
fn the_mark_moves_a_packet_between_tables() {
    // A bit set by one table's rule is seen by another table's match, and
    // cleared by a later rule: traffic on lo passes a table that drops
    // everything unmarked only while the marking rule exists.
    let ns = TestNs::new();
    ns.sh("ip link set lo up");
    let marker = Table::new(Family::Inet, "cnirs-marktest").unwrap();
    let set = marker.base_chain("set", Hook::Output, ChainType::Filter, -10).unwrap();
    let gate = Table::new(Family::Inet, "cnirs-markgate").unwrap();
    let check = gate.base_chain("check", Hook::Output, ChainType::Filter, 0).unwrap().with_policy(Policy::Drop);
    let clear = gate.base_chain("clear", Hook::Output, ChainType::Filter, 10).unwrap();
    ns.run(|| {
        let mut b = Batch::new();
        b.add_table(&gate).add_chain(&check).add_chain(&clear);
        b.add_rule(Rule::new(&check).has_mark_bits(0x100).counter().accept());
        b.add_rule(Rule::new(&clear).mark(MarkOp::Clear(0x100)));
        b.commit().unwrap();
    });
    let (ok, _) = ns.try_sh("ping -c1 -W1 127.0.0.1");
    assert!(!ok, "unmarked traffic is dropped");
    ns.run(|| {
        let mut b = Batch::new();
        b.add_table(&marker).add_chain(&set).add_rule(Rule::new(&set).mark(MarkOp::Set(0x100)));
        b.commit().unwrap();
    });
    let (ok, out) = ns.try_sh("ping -c1 -W1 127.0.0.1");
    assert!(ok, "marked traffic passes: {out}");
    let text = ns.nft_list("table inet cnirs-markgate");
    assert!(text.contains("meta mark & 0x00000100 == 0x00000100 counter packets"), "{text}");
}

#[test]
fn iptables_reads_a_mark_match() {
    // The match as the firewall plugin writes it into iptables-nft's
    // FORWARD chain: iptables must print it as `-m mark`.
    let ns = TestNs::new();
    ns.sh("iptables -P FORWARD DROP");
    let t = Table::new(Family::Ip, "filter").unwrap();
    let fwd = t.chain("FORWARD").unwrap();
    ns.run(|| {
        let rule = Rule::new(&fwd).has_mark_bits(0x1000_0000).counter().accept().comment("cnirs test");
        let mut b = Batch::new();
        b.insert_rule(rule);
        b.commit().unwrap();
    });
    let s = ns.sh("iptables -S FORWARD");
    assert!(
        s.contains("-A FORWARD -m mark --mark 0x10000000/0x10000000 -m comment --comment \"cnirs test\" -j ACCEPT"),
        "{s}"
    );
}
