//! ADD: one address from each range set for (container id, ifname).
//!
//! Idempotent: an attachment that already holds an address in a set gets
//! that address back, so a repeated ADD never takes a second lease. All
//! choices are made (and every error found) before anything is written;
//! the index entry is written before the leases, so a SIGKILL at any point
//! leaves nothing a later DEL cannot find.

use crate::config::{Config, Mode};
use crate::dns;
use crate::range::RangeSet;
use crate::store::{Open, Store};
use cni::config::Dns;
use cni::error::code;
use cni::result::IpConfig;
use cni::{CniResult, Context, Error};
use std::net::IpAddr;

/// The address chosen for one range set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pick {
    /// Index of the range set.
    set: usize,
    /// The address.
    ip: IpAddr,
    /// Whether this call reserves it (else the attachment already held it).
    new: bool,
    /// Whether the caller asked for exactly this address.
    requested: bool,
}

/// Runs ADD.
pub fn add(ctx: &Context) -> Result<CniResult, Error> {
    ctx.args.check_known(&["IP"])?;
    let conf = Config::load(ctx, Mode::Add)?;
    let dns = match &conf.resolv_conf {
        Some(path) => dns::read(path)?,
        None => Dns::default(),
    };
    let requests = assign_requests(&conf)?;
    let store = Store::open(&conf.data_dir, &conf.network, Open::Create)?
        .ok_or_else(|| Error::io("store vanished while being created"))?;
    store.ensure_index()?;
    let (cid, ifname) = (ctx.container_id.as_str(), ctx.ifname.as_str());
    let held = store.held(cid, ifname)?;
    for ip in &held {
        store.restore_lease(*ip, cid, ifname)?;
    }
    let mut picks = plan(&conf, &store, &held, &requests, cid, ifname)?;
    commit(&conf, &store, &held, &mut picks, cid, ifname)?;
    Ok(result(&conf, &picks, dns))
}

/// Gives each requested address to the range set that contains it; an
/// address no set contains, two for one set, or a reserved address (the
/// gateway, network, broadcast) is a config error, as nothing can satisfy it.
fn assign_requests(conf: &Config) -> Result<Vec<Option<IpAddr>>, Error> {
    let mut per_set: Vec<Option<IpAddr>> = vec![None; conf.sets.len()];
    let mut unmatched = Vec::new();
    for &ip in &conf.requested {
        let Some(i) = conf.sets.iter().position(|s| s.range_for(ip).is_some()) else {
            unmatched.push(ip.to_string());
            continue;
        };
        if let Some(why) = conf.sets[i].excluded(ip) {
            return Err(Error::invalid_config(format!("requested IP address {ip} is {why}"))
                .with_details(format!("network {:?} never hands out that address", conf.network)));
        }
        if let Some(other) = per_set[i] {
            return Err(Error::invalid_config(format!(
                "requested IP addresses {other} and {ip} are both in range set {i} ({})",
                conf.sets[i]
            ))
            .with_details("a range set gives one address per attachment"));
        }
        per_set[i] = Some(ip);
    }
    if !unmatched.is_empty() {
        let sets: Vec<String> = conf.sets.iter().map(RangeSet::to_string).collect();
        return Err(Error::invalid_config(format!("failed to allocate all requested IPs: {}", unmatched.join(" ")))
            .with_details(format!(
                "no range set of network {:?} contains them; the range sets are [{}]",
                conf.network,
                sets.join("] [")
            )));
    }
    Ok(per_set)
}

/// The first free address of `set` after `after` (round-robin), found by
/// one stat per candidate.
fn find_free(store: &Store, set: &RangeSet, after: Option<IpAddr>) -> Result<Option<IpAddr>, Error> {
    for ip in set.walk(after) {
        if !store.lease_exists(ip)? {
            return Ok(Some(ip));
        }
    }
    Ok(None)
}

fn exhausted(conf: &Config, store: &Store, set: usize) -> Error {
    Error::new(
        code::IPAM_EXHAUSTED,
        format!(
            "failed to allocate for range {set} of network {:?}: no IP addresses available in range set: {}",
            conf.network, conf.sets[set]
        ),
    )
    .with_details(format!(
        "every address of range set {set} is reserved in {}; release some with DEL or GC, or widen the range",
        store.dir().display()
    ))
}

/// Chooses an address for every range set without writing anything.
fn plan(
    conf: &Config,
    store: &Store,
    held: &[IpAddr],
    requests: &[Option<IpAddr>],
    cid: &str,
    ifname: &str,
) -> Result<Vec<Pick>, Error> {
    let mut picks = Vec::with_capacity(conf.sets.len());
    for (i, set) in conf.sets.iter().enumerate() {
        if let Some(&ip) = held.iter().find(|ip| set.range_for(**ip).is_some()) {
            if let Some(want) = requests[i].filter(|w| *w != ip) {
                return Err(Error::new(
                    code::CONFLICT,
                    format!(
                        "container {cid} ({ifname}) already holds {ip} in range set {i}; it cannot also get {want}"
                    ),
                )
                .with_details("run DEL for the attachment before asking for another address"));
            }
            picks.push(Pick { set: i, ip, new: false, requested: false });
            continue;
        }
        if let Some(ip) = requests[i] {
            if let Some(owner) = store.read_lease(ip)? {
                let who = match &owner.ifname {
                    Some(n) => format!("container {} ({n})", owner.container_id),
                    None => format!("container {}", owner.container_id),
                };
                return Err(Error::new(
                    code::CONFLICT,
                    format!("requested IP address {ip} is not available in range set {set}: it is held by {who}"),
                )
                .with_details(format!("network {:?}", conf.network)));
            }
            picks.push(Pick { set: i, ip, new: true, requested: true });
            continue;
        }
        let ip = find_free(store, set, store.last_reserved(i))?.ok_or_else(|| exhausted(conf, store, i))?;
        picks.push(Pick { set: i, ip, new: true, requested: false });
    }
    Ok(picks)
}

/// Writes the plan: index entry first, then the leases, then the
/// round-robin markers. Undoes its own leases on failure.
fn commit(
    conf: &Config,
    store: &Store,
    held: &[IpAddr],
    picks: &mut [Pick],
    cid: &str,
    ifname: &str,
) -> Result<(), Error> {
    if picks.iter().all(|p| !p.new) {
        return Ok(());
    }
    let mut intent: Vec<IpAddr> = held.iter().copied().chain(picks.iter().map(|p| p.ip)).collect();
    store.record(cid, ifname, &intent)?;
    let mut created: Vec<IpAddr> = Vec::new();
    let undo = |created: &[IpAddr], e: Error| -> Error {
        for ip in created {
            if let Err(e) = store.remove_lease(*ip) {
                log::warn!("rolling back {ip}: {e}");
            }
        }
        if let Err(e) = store.record(cid, ifname, held) {
            log::warn!("rolling back the index entry of {cid} ({ifname}): {e}");
        }
        e
    };
    for pick in picks.iter_mut().filter(|p| p.new) {
        loop {
            match store.create_lease(pick.ip, cid, ifname) {
                Ok(true) => {
                    created.push(pick.ip);
                    break;
                }
                // Taken since the plan: only a writer that ignores the lock
                // can do that. A requested address is then a conflict; any
                // other pick moves on to the next free address.
                Ok(false) if pick.requested => {
                    let e = Error::new(code::CONFLICT, format!("requested IP address {} was taken meanwhile", pick.ip));
                    return Err(undo(&created, e));
                }
                Ok(false) => {
                    let next = match find_free(store, &conf.sets[pick.set], Some(pick.ip)) {
                        Ok(Some(ip)) => ip,
                        Ok(None) => return Err(undo(&created, exhausted(conf, store, pick.set))),
                        Err(e) => return Err(undo(&created, e)),
                    };
                    pick.ip = next;
                    intent.push(next);
                    if let Err(e) = store.record(cid, ifname, &intent) {
                        return Err(undo(&created, e));
                    }
                }
                Err(e) => return Err(undo(&created, e)),
            }
        }
    }
    for pick in picks.iter().filter(|p| p.new) {
        // The reference records requested addresses too. Round-robin is best
        // effort: a failure here does not fail the ADD.
        if let Err(e) = store.set_last_reserved(pick.set, pick.ip) {
            log::warn!("{e}");
        }
    }
    let final_ips: Vec<IpAddr> = held.iter().copied().chain(picks.iter().map(|p| p.ip)).collect();
    if final_ips.len() != intent.len() {
        // Only after a retry: trim addresses tried but not taken.
        if let Err(e) = store.record(cid, ifname, &final_ips) {
            log::warn!("trimming the index entry of {cid} ({ifname}): {e}");
        }
    }
    Ok(())
}

/// The IPAM result: one address per range set, with the range's gateway,
/// the configured routes and the resolv.conf DNS.
fn result(conf: &Config, picks: &[Pick], dns: Dns) -> CniResult {
    let ips = picks
        .iter()
        .map(|p| {
            let r = conf.sets[p.set].range_for(p.ip).expect("picked inside the set");
            IpConfig { interface: None, address: r.with_prefix(p.ip), gateway: Some(r.gateway) }
        })
        .collect();
    CniResult { interfaces: Vec::new(), ips, routes: conf.routes.clone(), dns }
}
