//! CHECK: every element ADD would install is there, with the same target
//! and owner, and the table's fixed rules are in place. A missing or
//! altered mapping is reported by name.

use crate::add::container_addrs;
use crate::config;
use crate::nft_maps::{self, describe_key, show_data, Layout};
use cni::{Context, Error};
use kernel::nft::{Chain, Socket};
use netcore::owner::{container_of, OwnerKey};

fn failed(msg: String) -> Error {
    Error::plugin(format!("portmap CHECK: {msg}"))
}

fn rule_count(sock: &Socket, chain: &Chain) -> Result<usize, Error> {
    match sock.list_rules(chain) {
        Ok(r) => Ok(r.len()),
        Err(e) if e.is_not_found() => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Runs CHECK.
pub fn check(ctx: &Context) -> Result<(), Error> {
    let conf = config::load(ctx)?;
    let prev = ctx.require_prev_result()?;
    let mappings = config::mappings(ctx)?;
    if mappings.is_empty() {
        return Ok(());
    }
    let owner = OwnerKey::of(ctx).key();
    let layout = Layout::new()?;
    let plan = nft_maps::plan(&layout, &conf, &mappings, &container_addrs(&prev, &ctx.ifname), &owner)?;
    if plan.is_empty() {
        return Ok(());
    }
    let sock = Socket::open()?;
    if !sock.has_table(&layout.table)? {
        return Err(failed(format!("table inet {} is missing", nft_maps::TABLE)));
    }
    for (set, want) in &plan.dnat {
        match sock.get_element(set, want)? {
            None => {
                return Err(failed(format!("mapping {} -> {} is missing", describe_key(&want.key), show_data(want))))
            }
            Some(h) if h.data != want.data || h.comment != want.comment => {
                let by = h.comment.as_deref().map(container_of).unwrap_or_else(|| "nobody".into());
                return Err(failed(format!(
                    "mapping {} was altered: it goes to {} (container {by:?}) instead of {}",
                    describe_key(&want.key),
                    show_data(&h),
                    show_data(want)
                )));
            }
            Some(_) => {}
        }
    }
    for (set, want) in &plan.cond {
        if !sock.get_element(set, want)?.is_some_and(|h| h.data == want.data && h.comment == want.comment) {
            return Err(failed(format!("the conditions of {} are not applied", describe_key(&want.key))));
        }
    }
    for (set, want) in &plan.masq {
        let found = sock.get_element(set, want)?;
        if !found.is_some_and(|h| h.data == want.data && h.comment == want.comment) {
            return Err(failed(format!("masquerade element {want} is missing from {}", set.name())));
        }
    }
    if let Some((chain, rules)) = &plan.chain {
        if rule_count(&sock, chain)? != rules.len() {
            return Err(failed(format!("the conditions chain {} is missing or altered", chain.name())));
        }
    }
    for (chain, rules) in &plan.masq_chains {
        if rule_count(&sock, chain)? != rules.len() {
            return Err(failed(format!("the masquerade chain {} is missing or altered", chain.name())));
        }
    }
    let fixed = [
        (&layout.prerouting, 1),
        (&layout.output, 1),
        (&layout.postrouting, layout.postrouting_rules().len()),
        (&layout.hostports, layout.hostports_rules().len()),
        (&layout.masq_all, 1),
    ];
    for (chain, n) in fixed {
        if rule_count(&sock, chain)? != n {
            return Err(failed(format!(
                "chain {} of table inet {} is missing or altered",
                chain.name(),
                nft_maps::TABLE
            )));
        }
    }
    Ok(())
}
