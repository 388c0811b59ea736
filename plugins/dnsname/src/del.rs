//! DEL: the attachment's record goes and the server is told, so the name
//! is gone when DEL returns; with the last record the server exits and
//! everything but the lock file goes. Idempotent, and needs neither the
//! container, its namespace, the server nor a prevResult.

use crate::config;
use crate::server::{self, Told};
use crate::store::NetDir;
use cni::{Context, Error};
use std::collections::HashSet;

/// Runs DEL.
pub fn del(ctx: &Context) -> Result<(), Error> {
    let net = NetDir::new(&config::data_dir(ctx)?, &ctx.conf.name)?;
    if !net.dir.exists() {
        return Ok(());
    }
    let _lock = net.lock()?;
    let file = net.remove(&ctx.container_id, &ctx.ifname)?;
    settle(&net, &format!("update {file}"))
}

/// Tells the server about a change, then removes the network's files if
/// no record is left and no server runs.
fn settle(net: &NetDir, line: &str) -> Result<(), Error> {
    match server::tell(net, line) {
        Ok(Told::Applied) => Ok(()),
        Ok(Told::Stopped | Told::NotRunning) => net.clean_if_empty().map(|_| ()),
        Err(e) => {
            // A server that does not answer keeps its files; the record is gone.
            log::warn!("{e}");
            Ok(())
        }
    }
}

/// GC: records of attachments not in the valid list are removed, then
/// the server reloads (and exits if none is left).
pub fn gc(ctx: &Context) -> Result<(), Error> {
    let Some(valid) = ctx.valid_attachments()? else {
        return Ok(());
    };
    let live: HashSet<(String, String)> = valid.into_iter().map(|a| (a.container_id, a.ifname)).collect();
    let net = NetDir::new(&config::data_dir(ctx)?, &ctx.conf.name)?;
    if !net.dir.exists() {
        return Ok(());
    }
    let _lock = net.lock()?;
    atomic_file::sweep_stale_logged(&net.records());
    atomic_file::sweep_stale_logged(&net.dir);
    let mut removed = 0;
    for file in net.record_files()? {
        let keep = net.load_file(&file).is_some_and(|r| live.contains(&(r.container_id, r.ifname)));
        if !keep {
            let path = net.records().join(&file);
            std::fs::remove_file(&path)
                .map_err(|e| Error::io(format!("dnsname: GC: removing {}: {e}", path.display())))?;
            removed += 1;
        }
    }
    if removed == 0 {
        return Ok(());
    }
    settle(&net, "reload")
}
