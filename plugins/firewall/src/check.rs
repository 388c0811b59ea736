//! CHECK: the container's addresses are admitted, its same-bridge policy
//! is in place, and the shared rules (mark rules, the iptables-nft FORWARD
//! rule where that chain exists) are there.

use crate::add::target;
use crate::{forward, ruleset};
use cni::{Context, Error};
use kernel::nft::Family;

/// Runs CHECK.
pub fn check(ctx: &Context) -> Result<(), Error> {
    let t = target(ctx)?;
    let (sock, ips) = (&t.sock, &t.ips);
    if ips.is_empty() {
        return Ok(());
    }
    let o = ruleset::objects()?;
    let mut problems = ruleset::verify(sock, &o, ips, t.bridge.as_deref())?;
    for (family, v4) in [(Family::Ip, true), (Family::Ip6, false)] {
        if ips.iter().any(|ip| ip.is_ipv4() == v4) && forward::status(sock, family)? == Some(false) {
            problems.push(format!("{} lacks the rule that accepts admitted traffic", forward::chain(family)?));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::plugin(format!("firewall: {}", problems.join("; "))))
    }
}
