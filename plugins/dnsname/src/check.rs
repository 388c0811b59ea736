//! CHECK: the attachment's record is on disk with the name and addresses
//! the runtime knows, and the network's server answers. A server found dead is restarted, and CHECK still reports
//! that it was missing.

use crate::config;
use crate::server;
use crate::store::{record_file, NetDir};
use cni::{Context, Error};

/// Runs CHECK.
pub fn check(ctx: &Context) -> Result<(), Error> {
    ctx.args.check_known(config::KNOWN_ARGS)?;
    let conf = config::load(ctx)?;
    let name = config::container_name(ctx)?;
    let result = ctx.require_prev_result()?;
    let attached = crate::add::network_of(&result, &ctx.ifname)?;
    let net = NetDir::new(&conf.data_dir, &ctx.conf.name)?;
    let file = record_file(&ctx.container_id, &ctx.ifname)?;
    let missing = || {
        Error::plugin(format!(
            "dnsname: no record for container {} ({}) on network {}",
            ctx.container_id, ctx.ifname, ctx.conf.name
        ))
    };
    // A network never added has nothing to check, and CHECK creates nothing
    // (taking the lock would make its directory).
    if !net.dir.exists() {
        return Err(missing());
    }
    let _lock = net.lock()?;
    let Some(rec) = net.load_file(&file) else {
        return Err(missing());
    };
    if rec.name != name || rec.ips != attached.ips {
        return Err(Error::plugin(format!(
            "dnsname: the record of container {} says {} at {:?}, the runtime {name} at {:?}",
            ctx.container_id, rec.name, rec.ips, attached.ips
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
