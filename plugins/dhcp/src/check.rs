//! CHECK and STATUS. CHECK asks the daemon for the attachment's lease and
//! fails when it holds none, when the lease was lost, when its renewal
//! is failing (the server no longer answers), or when the address in
//! prevResult is not the leased one. STATUS fails when the daemon is not
//! running.

use crate::proto::Op;
use crate::{ask, config::Config, request, UNREACHABLE};
use cni::error::code;
use cni::{Context, Error};
use std::net::IpAddr;

/// CHECK.
pub fn check(ctx: &Context) -> Result<(), Error> {
    let conf = Config::load(ctx)?;
    let prev = ctx.require_prev_result()?;
    let reply = ask(&conf.socket, &request(ctx, Op::Check, &conf)?, UNREACHABLE)?;
    let lease = reply.lease.ok_or_else(|| Error::io("the dhcp daemon answered CHECK without a lease"))?;
    if let Some(problem) = &lease.problem {
        return Err(Error::new(
            code::PLUGIN,
            format!("lease of {}/{} is {}: {problem}", lease.terms.address, lease.terms.prefix, lease.state),
        )
        .with_details(format!("server {}, lease expires in {} s", lease.terms.server, lease.expires_in)));
    }
    let leased = IpAddr::V4(lease.terms.address);
    if !prev.ips.iter().any(|ip| ip.address.ip() == leased) {
        let had: Vec<String> = prev.ips.iter().map(|ip| ip.address.to_string()).collect();
        return Err(Error::new(
            code::PLUGIN,
            format!(
                "prevResult has {} but the lease is {}/{}",
                had.join(", "),
                lease.terms.address,
                lease.terms.prefix
            ),
        ));
    }
    Ok(())
}

/// STATUS: ready when the daemon answers.
pub fn status(ctx: &Context) -> Result<(), Error> {
    let conf = Config::load(ctx)?;
    let req = crate::proto::Request { op: Some(Op::Status), network: ctx.conf.name.clone(), ..Default::default() };
    ask(&conf.socket, &req, code::NOT_AVAILABLE).map(|_| ())
}
