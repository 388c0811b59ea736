//! CHECK: the attachment's record is on disk and the network's server
//! answers. A server found dead is restarted, and CHECK still reports
//! that it was missing.

use crate::config;
use crate::server;
use crate::store::NetDir;
use cni::{Context, Error};

/// Runs CHECK.
pub fn check(ctx: &Context) -> Result<(), Error> {
    ctx.args.check_known(config::KNOWN_ARGS)?;
    let conf = config::load(ctx)?;
    config::container_name(ctx)?;
    let result = ctx.require_prev_result()?;
    crate::add::network_of(&result, &ctx.ifname)?;
    let net = NetDir::new(&conf.data_dir, &ctx.conf.name)?;
    let _lock = net.lock()?;
    if !net.has(&ctx.container_id, &ctx.ifname)? {
        return Err(Error::plugin(format!(
            "dnsname: no record for container {} ({}) on network {}",
            ctx.container_id, ctx.ifname, ctx.conf.name
        )));
    }
    if server::alive(&net)? {
        return Ok(());
    }
    let restarted = server::start(&net);
    Err(Error::plugin(format!(
        "dnsname: the name server of network {} was not running; {}",
        ctx.conf.name,
        match restarted {
            Ok(()) => "restarted it".to_string(),
            Err(e) => format!("restarting it failed: {}", e.msg),
        }
    )))
}

/// STATUS: the config is usable (its `domainName` and `dataDir`).
pub fn status(ctx: &Context) -> Result<(), Error> {
    config::load(ctx).map(|_| ())
}
