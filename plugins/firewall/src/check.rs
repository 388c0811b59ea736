//! CHECK: the container's addresses are admitted, its same-bridge policy
//! is in place, and the shared rules (mark rules, the iptables-nft FORWARD
//! rule where that chain exists) are there.

use crate::add::{addresses, bridge_name, check_backend};
use crate::config::{self, IngressPolicy};
use crate::{forward, ruleset};
use cni::{Context, Error};
use kernel::nft::{Family, Socket};

/// Runs CHECK.
pub fn check(ctx: &Context) -> Result<(), Error> {
    let conf = config::load(ctx)?;
    let prev =
        ctx.prev_result()?.ok_or_else(|| Error::invalid_config("firewall: missing prevResult from earlier plugin"))?;
    let sock = Socket::open()?;
    check_backend(&conf, &sock)?;
    let ips = addresses(&prev, &ctx.ifname);
    if ips.is_empty() {
        return Ok(());
    }
    let bridge = match conf.ingress {
        IngressPolicy::SameBridge => Some(bridge_name(&prev)?),
        IngressPolicy::Open => None,
    };
    let o = ruleset::objects()?;
    let mut problems = ruleset::verify(&sock, &o, &ips, bridge.as_deref())?;
    for (family, v4) in [(Family::Ip, true), (Family::Ip6, false)] {
        if ips.iter().any(|ip| ip.is_ipv4() == v4) && forward::status(&sock, family)? == Some(false) {
            problems.push(format!("{} lacks the rule that accepts admitted traffic", forward::chain(family)?));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::plugin(format!("firewall: {}", problems.join("; "))))
    }
}
