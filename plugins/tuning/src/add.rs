//! ADD: check every option, note the values they replace, write them to
//! the state file, then apply; a failure undoes what was applied and
//! removes the file. The result is prevResult with the new MAC.

use crate::config::{self, KNOWN_ARGS};
use crate::link::{self, Target};
use crate::state::Store;
use cni::{CniResult, Context, Error};
use kernel::netlink::Handle;
use netcore::sandbox;

/// Runs ADD.
pub fn add(ctx: &Context) -> Result<CniResult, Error> {
    ctx.args.check_known(KNOWN_ARGS)?;
    let conf = config::load(ctx)?;
    let mut result = ctx.require_prev_result()?;
    let steps = link::steps(&conf);
    if steps.is_empty() {
        return Ok(result);
    }
    let ns = sandbox::open_required(ctx.netns.as_deref())?;
    let handle = Handle::in_netns(&ns)?;
    let found = handle.link_by_name(&ctx.ifname)?;
    let link = match found {
        Some(l) => l,
        None if conf.touches_link() => {
            return Err(Error::plugin(format!(
                "tuning: interface {:?} not found in the container's namespace {}",
                ctx.ifname,
                ns.path().display()
            )))
        }
        None => Default::default(),
    };
    let target = Target { ns: &ns, handle: &handle, index: link.index, ifname: &ctx.ifname };
    let saved = link::snapshot(&target, &link, &conf)?;
    let store = Store::new(&conf.data_dir, &ctx.conf.name)?;
    store.save(&ctx.container_id, &ctx.ifname, &saved)?;
    if let Err(e) = link::apply_all(&target, &steps, &saved) {
        let _ = store.remove(&ctx.container_id, &ctx.ifname);
        return Err(e);
    }
    for iface in result.interfaces.iter_mut().filter(|i| i.name == ctx.ifname) {
        if let Some(mac) = conf.mac {
            iface.mac = config::mac_text(&mac);
        }
        if let (Some(mtu), Some(_)) = (conf.mtu, iface.mtu) {
            iface.mtu = Some(mtu);
        }
    }
    Ok(result)
}
