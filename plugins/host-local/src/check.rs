//! CHECK: the addresses in prevResult are still reserved for this
//! attachment (or, with no prevResult addresses, it holds at least one).

use crate::config::{Config, Mode};
use crate::store::{Lease, Open, Store};
use cni::error::code;
use cni::{Context, Error};
use std::net::IpAddr;

/// Runs CHECK.
pub fn check(ctx: &Context) -> Result<(), Error> {
    let conf = Config::load(ctx, Mode::Verify)?;
    let (cid, ifname) = (ctx.container_id.as_str(), ctx.ifname.as_str());
    // Only addresses this network could have given; a chain may add others.
    let ips: Vec<IpAddr> = ctx
        .prev_result()?
        .map(|r| r.ips.iter().map(|c| c.address.ip()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|ip| conf.sets.iter().any(|s| s.range_for(*ip).is_some()))
        .collect();
    let not_found = || {
        Error::plugin(format!("host-local: Failed to find address added by container {cid}"))
            .with_details(format!("no lease of {cid} ({ifname}) in network {:?}", conf.network))
    };
    let store = Store::open(&conf.data_dir, &conf.network, Open::Existing)?;
    let Some(store) = store else { return Err(not_found()) };
    if ips.is_empty() {
        store.ensure_index()?;
        if !store.held(cid, ifname)?.is_empty() {
            return Ok(());
        }
        for ip in store.candidates(cid, None)? {
            if store.owner(ip)?.is_some_and(|o| o.is_legacy_of(cid)) {
                return Ok(());
            }
        }
        return Err(not_found());
    }
    store.ensure_index()?;
    for ip in ips {
        if store.lease(ip)? == Some(Lease::Empty) {
            let listed = store.candidates(cid, Some(ifname))?.contains(&ip);
            return Err(store.empty_error(ip, listed.then_some((cid, ifname))));
        }
        match store.read_lease(ip)? {
            Some(o) if o.is(cid, ifname) || o.is_legacy_of(cid) => {}
            Some(o) => {
                return Err(Error::new(
                    code::CONFLICT,
                    format!(
                        "address {ip} of container {cid} ({ifname}) is held by container {} ({}) in network {:?}",
                        o.container_id,
                        o.ifname.as_deref().unwrap_or("any interface"),
                        conf.network
                    ),
                ))
            }
            None => {
                return Err(Error::plugin(format!(
                    "address {ip} of container {cid} ({ifname}) is not reserved in network {:?}",
                    conf.network
                )))
            }
        }
    }
    Ok(())
}
