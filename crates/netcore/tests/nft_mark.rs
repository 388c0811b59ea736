//! Mark rules against the real kernel, in a throwaway namespace, with
//! `nft list` and `iptables -S` as witnesses. Needs root.

mod nft_support;

use netcore::nft::*;
use netcore::nft_mark::{append, MarkOp};
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
        b.commit().unwrap();
        append(&t, "admit", MarkOp::Set(0x1000_0000), "admit").unwrap();
        append(&t, "unmark", MarkOp::Clear(0x1000_0000), "unmark").unwrap();
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
fn a_missing_chain_is_not_found() {
    let ns = TestNs::new();
    let t = Table::new(Family::Inet, "cnirs-marktest").unwrap();
    let e = ns.run(|| append(&t, "nope", MarkOp::Set(1), "x").unwrap_err());
    assert!(e.is_not_found(), "{e}");
}

#[test]
fn iptables_reads_a_table_with_a_mark_match() {
    // The match side as the firewall plugin writes it into iptables-nft's
    // FORWARD chain: iptables must print it as `-m mark`.
    let ns = TestNs::new();
    let (ok, _) = ns.try_sh("iptables -P FORWARD DROP");
    if !ok {
        eprintln!("iptables-nft not available; skipped");
        return;
    }
    let t = Table::new(Family::Ip, "filter").unwrap();
    let fwd = t.chain("FORWARD").unwrap();
    ns.run(|| {
        let bit = 0x1000_0000u32.to_ne_bytes().to_vec();
        let rule = Rule::new(&fwd)
            .expr(Expr::Meta { key: MetaKey::Mark, dreg: Reg::R1 })
            .expr(Expr::Bitwise { sreg: Reg::R1, dreg: Reg::R1, mask: bit.clone(), xor: vec![0; 4] })
            .expr(Expr::Cmp { sreg: Reg::R1, op: CmpOp::Eq, data: bit })
            .counter()
            .accept()
            .comment("cnirs test");
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
