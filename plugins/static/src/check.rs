//! CHECK: every address the config gives is in prevResult, with the same
//! prefix length and, where the config names one, the same gateway. The
//! reference only compares the gateway of an address it finds; a missing
//! address or a changed prefix passes there and fails here, because the
//! container no longer has what the config says it should.

use crate::config::Config;
use cni::{Context, Error};

/// Runs CHECK.
pub fn check(ctx: &Context) -> Result<(), Error> {
    let conf = Config::load(ctx)?;
    let prev = ctx.require_prev_result()?;
    let ifname = &ctx.ifname;
    for want in &conf.addresses {
        let Some(got) = prev.ips.iter().find(|ip| ip.address.ip() == want.address.ip()) else {
            return Err(Error::plugin(format!("static: address {} is not in prevResult of {ifname}", want.address))
                .with_details("the result of the ADD does not hold an address the config gives"));
        };
        if got.address.prefix() != want.address.prefix() {
            return Err(Error::plugin(format!(
                "static: address {} on interface {ifname} has prefix length {}, the config says {}",
                want.address.ip(),
                got.address.prefix(),
                want.address.prefix()
            )));
        }
        if want.gateway.is_some() && got.gateway != want.gateway {
            return Err(Error::plugin(format!(
                "static: Failed to match addr {} on interface {ifname}",
                want.address.ip()
            ))
            .with_details(format!(
                "gateway in prevResult: {}, in the config: {}",
                got.gateway.map_or("none".to_string(), |g| g.to_string()),
                want.gateway.map_or("none".to_string(), |g| g.to_string())
            )));
        }
    }
    Ok(())
}
