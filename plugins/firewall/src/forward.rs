//! The one rule we add outside our own table: at the top of iptables-nft's
//! `FORWARD` chain (`ip filter FORWARD`, `ip6 filter FORWARD`), when that
//! chain exists, accept what our table marked as admitted:
//!
//! ```text
//! -A FORWARD -m mark --mark 0x10000000/0x10000000 -m comment --comment "cnirs-firewall: ..." -j ACCEPT
//! ```
//!
//! A packet must be accepted by every base chain on the forward hook, so
//! with Docker's `iptables -P FORWARD DROP` nothing in our table alone can
//! let container traffic through (the reference plugin inserts `-j
//! CNI-FORWARD` there for the same reason). The rule is built only from
//! expressions iptables-nft translates back (`meta mark`, `bitwise`,
//! `cmp`, `counter`, a comment, `accept`), so `iptables -S` and
//! `iptables-save` print it faithfully and a save/restore round trip keeps
//! its meaning. It is the same for every container and stays when they
//! are gone (it accepts nothing unmarked), like the reference's jump.

use crate::ruleset::MARK;
use kernel::nft::{Batch, Chain, Family, Rule, Socket, Table};

/// The comment that identifies our rule (`-m comment --comment`).
pub const COMMENT: &str = "cnirs-firewall: admit CNI containers";

/// The iptables-nft tables whose FORWARD chain we open: IPv4 and IPv6.
const FAMILIES: [Family; 2] = [Family::Ip, Family::Ip6];

/// `filter FORWARD` of `family`, as iptables-nft names it.
pub fn chain(family: Family) -> kernel::Result<Chain> {
    Table::new(family, "filter")?.chain("FORWARD")
}

/// The rule: `meta mark & MARK == MARK counter accept`, with our comment.
pub fn rule(chain: &Chain) -> Rule {
    Rule::new(chain).has_mark_bits(MARK).counter().accept().comment(COMMENT)
}

/// Where the FORWARD chain of `family` stands: `None` when iptables-nft has
/// no such chain here (nothing to open), `Some(true)` when our rule is in it.
pub fn status(sock: &Socket, family: Family) -> kernel::Result<Option<bool>> {
    match sock.list_rules(&chain(family)?) {
        Ok(rules) => Ok(Some(rules.iter().any(|r| r.comment.as_deref() == Some(COMMENT)))),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The families whose FORWARD chain exists without our rule.
pub fn missing(sock: &Socket) -> kernel::Result<Vec<Family>> {
    let mut out = Vec::new();
    for f in FAMILIES {
        if status(sock, f)? == Some(false) {
            out.push(f);
        }
    }
    Ok(out)
}

/// Adds to `batch` our rule at the top of each of `families`' FORWARD.
pub fn insert(batch: &mut Batch, families: &[Family]) -> kernel::Result<()> {
    for f in families {
        batch.insert_rule(rule(&chain(*f)?));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_builds_for_both_families() {
        let mut b = Batch::new();
        insert(&mut b, &FAMILIES).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(chain(Family::Ip6).unwrap().to_string(), "chain ip6 filter FORWARD");
    }
}
