//! Planning against the kernel's state: a repeated ADD re-sends no chain
//! and rewrites no rule (so it deletes nothing and the socket closes
//! without waiting for an RCU grace period), while real changes still go
//! through. Needs root.

mod nft_support;

use std::net::IpAddr;

use kernel::nft::*;
use nft_support::{Masq, Portmap, TestNs};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_repeated_add_sends_only_what_is_missing() {
    let ns = TestNs::new();
    let m = Masq::new("cnirs-nat", "n1", "10.1.0.0/16", "fd01::/64");
    ns.run(|| {
        let sock = Socket::open().unwrap();
        let first = m.add(&[ip("10.1.0.2")], "n1/c1/eth0");
        let plan = sock.plan(&first).unwrap().descriptions();
        assert!(plan.contains(&"adding chain inet cnirs-nat masq-n1".to_string()), "{plan:#?}");
        assert_eq!(plan.iter().filter(|d| d.starts_with("flushing chain")).count(), 2, "{plan:#?}");
        sock.commit(&first).unwrap();

        let second = m.add(&[ip("10.1.0.3")], "n1/c2/eth0");
        let plan = sock.plan(&second).unwrap().descriptions();
        assert!(!plan.iter().any(|d| d.contains("chain")), "{plan:#?}");
        assert!(plan.contains(&"adding element 10.1.0.3 to set inet cnirs-nat n1-v4".to_string()), "{plan:#?}");
        let handles = sock.list_rules(&m.chain).unwrap();
        sock.commit(&second).unwrap();
        assert_eq!(sock.list_rules(&m.chain).unwrap(), handles);
    });
}

#[test]
fn changed_or_tampered_rules_are_rewritten() {
    let ns = TestNs::new();
    let p = Portmap::new("cnirs-portmap");
    ns.run(|| p.setup().commit().unwrap());
    // Someone adds a rule to our chain: the next ADD puts ours back alone.
    ns.sh("nft add rule inet cnirs-portmap hostports counter");
    ns.run(|| {
        let sock = Socket::open().unwrap();
        assert_eq!(sock.list_rules(&p.hostports).unwrap().len(), 5);
        let plan = sock.plan(&p.setup()).unwrap().descriptions();
        assert!(plan.contains(&"flushing chain inet cnirs-portmap hostports".to_string()), "{plan:#?}");
        assert!(!plan.contains(&"flushing chain inet cnirs-portmap prerouting".to_string()), "{plan:#?}");
        sock.commit(&p.setup()).unwrap();
        assert_eq!(sock.list_rules(&p.hostports).unwrap().len(), 4);

        // A different rule list (a comment changed) is a rewrite too.
        let mut b = Batch::new();
        b.replace_rules(&p.pre, [Rule::new(&p.pre).fib_daddr_local().jump(&p.hostports).comment("v2")]);
        sock.commit(&b).unwrap();
        let rules = sock.list_rules(&p.pre).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].comment.as_deref(), Some("v2"));
        assert!(sock.plan(&b).unwrap().is_empty());
    });
    let pre = ns.nft_list("chain inet cnirs-portmap prerouting");
    assert!(pre.contains("fib daddr type local jump hostports comment \"v2\""), "{pre}");
}

#[test]
fn policy_changes_are_not_pruned() {
    let ns = TestNs::new();
    let t = Table::new(Family::Inet, "cnirs-fw").unwrap();
    let fwd = t.base_chain("forward", Hook::Forward, ChainType::Filter, priority::FILTER).unwrap();
    ns.run(|| {
        let sock = Socket::open().unwrap();
        sock.commit(Batch::new().add_table(&t).add_chain(&fwd)).unwrap();
        assert!(sock.plan(Batch::new().add_chain(&fwd)).unwrap().is_empty());
        assert!(sock.plan(Batch::new().add_chain(&fwd.clone().with_policy(Policy::Accept))).unwrap().is_empty());
        let drop = fwd.clone().with_policy(Policy::Drop);
        assert_eq!(sock.plan(Batch::new().add_chain(&drop)).unwrap().len(), 1);
        sock.commit(Batch::new().add_chain(&drop)).unwrap();
    });
    assert!(ns.nft_list("chain inet cnirs-fw forward").contains("policy drop"));
}

#[test]
fn replace_elements_sends_the_difference() {
    let ns = TestNs::new();
    let t = Table::new(Family::Inet, "cnirs-ex").unwrap();
    let s = t.set("exempt4", &[DataType::Ipv4Addr]).unwrap().interval().unwrap();
    let pfx = |p: &str| Element::prefix(p.parse().unwrap());
    ns.run(|| {
        let sock = Socket::open().unwrap();
        let mut b = Batch::new();
        b.add_table(&t).add_set(&s).replace_elements(&s, [pfx("10.1.0.0/16"), pfx("224.0.0.0/4")]);
        sock.commit(&b).unwrap();
        // Tables and sets are re-sent (an update of those is free); the
        // elements are not.
        assert_eq!(sock.plan(&b).unwrap().len(), 2);

        let mut b = Batch::new();
        b.replace_elements(&s, [pfx("10.0.0.0/8"), pfx("224.0.0.0/4").comment("mcast")]);
        let plan = sock.plan(&b).unwrap().descriptions();
        assert_eq!(plan.len(), 4, "{plan:#?}");
        sock.commit(&b).unwrap();
        let mut got: Vec<String> = sock.list_elements(&s).unwrap().iter().map(|e| e.to_string()).collect();
        got.sort();
        assert_eq!(got, ["10.0.0.0-10.255.255.255", "224.0.0.0-239.255.255.255"]);
        assert!(sock.plan(&b).unwrap().is_empty());
    });
}

#[test]
fn chains_of_the_same_name_in_another_table_are_not_taken_for_ours() {
    let ns = TestNs::new();
    let p = Portmap::new("cnirs-portmap");
    // Another table of the family holds chains named like ours, one with rules.
    ns.sh("nft add table inet other; nft add chain inet other hostports; nft add rule inet other hostports counter");
    ns.sh("nft add chain inet other prerouting");
    ns.run(|| {
        let sock = Socket::open().unwrap();
        let plan = sock.plan(&p.setup()).unwrap().descriptions();
        assert!(plan.contains(&"adding chain inet cnirs-portmap hostports".to_string()), "{plan:#?}");
        sock.commit(&p.setup()).unwrap();
        let plan = sock.plan(&p.setup()).unwrap().descriptions();
        assert!(!plan.iter().any(|d| d.contains("chain")), "a second setup touches no chain: {plan:#?}");
        assert_eq!(sock.list_rules(&p.hostports).unwrap().len(), 4);
    });
}
