//! DEL and GC: the daemon releases the lease (DHCPRELEASE to the server
//! while the container still holds the address) and forgets it. DEL of
//! an unknown attachment, or with the container gone, succeeds.

use crate::proto::Op;
use crate::{ask, config::Config, request, UNREACHABLE};
use cni::{Context, Error};

/// DEL.
pub fn del(ctx: &Context) -> Result<(), Error> {
    let conf = Config::load(ctx)?;
    ask(&conf.socket, &request(ctx, Op::Del, &conf)?, UNREACHABLE).map(|_| ())
}

/// GC: leases of this network whose attachment is not in the runtime's
/// valid list are released. Without a list nothing is.
pub fn gc(ctx: &Context) -> Result<(), Error> {
    let Some(valid) = ctx.valid_attachments()? else { return Ok(()) };
    let conf = Config::load(ctx)?;
    let mut req = request(ctx, Op::Gc, &conf)?;
    req.valid = valid.into_iter().map(|a| (a.container_id, a.ifname)).collect();
    ask(&conf.socket, &req, UNREACHABLE).map(|_| ())
}
