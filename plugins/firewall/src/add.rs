//! ADD: admit the container's addresses from prevResult (one batch of set
//! elements owned by the attachment), make sure the shared rules are in
//! place (under a lock, only when something is missing), and pass
//! prevResult through unchanged.

use crate::config::{self, Backend, FirewallConf, IngressPolicy};
use crate::{firewalld, forward, lock, ruleset};
use cni::result::CniResult;
use cni::{Context, Error};
use netcore::nft::{Batch, Socket};
use netcore::owner::OwnerKey;
use std::net::IpAddr;

/// Runs ADD.
pub fn add(ctx: &Context) -> Result<CniResult, Error> {
    let conf = config::load(ctx)?;
    let prev =
        ctx.prev_result()?.ok_or_else(|| Error::invalid_config("firewall: missing prevResult from earlier plugin"))?;
    let sock = Socket::open()?;
    check_backend(&conf, &sock)?;
    let ips = addresses(&prev, &ctx.ifname);
    if ips.is_empty() {
        return Ok(prev);
    }
    let bridge = match conf.ingress {
        IngressPolicy::SameBridge => Some(bridge_name(&prev)?),
        IngressPolicy::Open => None,
    };
    let o = ruleset::objects()?;
    let owner = OwnerKey::of(ctx);
    let mut batch = Batch::new();
    ruleset::ensure(&mut batch, &o)?;
    ruleset::add_attachment(&mut batch, &o, &owner, &ips, bridge.as_deref())?;
    sock.commit(&batch)?;
    if let Err(e) = ensure_shared(&sock, &o) {
        let _ = ruleset::release(&sock, &o, &|c| owner.matches(c));
        return Err(e);
    }
    Ok(prev)
}

/// Refuses the firewalld backend where firewalld does not run.
pub fn check_backend(conf: &FirewallConf, sock: &Socket) -> Result<(), Error> {
    if conf.backend != Backend::Firewalld {
        return Ok(());
    }
    if !firewalld::running(sock) {
        return Err(Error::invalid_config(
            "firewall: backend \"firewalld\" was requested but firewalld is not running",
        )
        .with_details("use backend \"\", \"iptables\" or \"nftables\" (all mean this plugin's nftables table)"));
    }
    log::warn!("firewall: firewalld zones are not managed; admission is by table inet {}", ruleset::TABLE);
    Ok(())
}

/// The container's addresses: those prevResult gives `ifname`, or every
/// address when it names none for it (as the reference takes them all).
pub fn addresses(prev: &CniResult, ifname: &str) -> Vec<IpAddr> {
    let mine: Vec<IpAddr> = prev.container_ips(ifname).iter().map(|ip| ip.address.ip()).collect();
    if mine.is_empty() {
        prev.ips.iter().map(|ip| ip.address.ip()).collect()
    } else {
        mine
    }
}

/// The bridge for same-bridge: `interfaces[0]` of prevResult, a host
/// interface, as the bridge plugin reports it.
pub fn bridge_name(prev: &CniResult) -> Result<String, Error> {
    let need =
        "ingressPolicy \"same-bridge\" needs the bridge as interfaces[0] of prevResult: chain firewall after bridge";
    let i = prev.interfaces.first().ok_or_else(|| Error::invalid_config(format!("firewall: {need}")))?;
    if !i.sandbox.is_empty() {
        return Err(Error::invalid_config(format!("firewall: {need} (interfaces[0] {:?} is in a sandbox)", i.name)));
    }
    if let Some((why, _)) = cni::validate::interface_name_problem(&i.name) {
        return Err(Error::invalid_config(format!("firewall: bridge name {:?} in prevResult: {why}", i.name)));
    }
    Ok(i.name.clone())
}

/// Writes what every container relies on and nobody owns (the mark rules,
/// the iptables-nft FORWARD rule) if any is missing, under the setup lock.
pub fn ensure_shared(sock: &Socket, o: &ruleset::Objects) -> Result<(), Error> {
    if ruleset::missing_mark_rules(sock, o)?.is_empty() && forward::missing(sock)?.is_empty() {
        return Ok(());
    }
    let _guard = lock::lock()?;
    let marks = ruleset::missing_mark_rules(sock, o)?;
    ruleset::ensure_mark_rules(o, &marks)?;
    let families = forward::missing(sock)?;
    if !families.is_empty() {
        let mut batch = Batch::new();
        forward::insert(&mut batch, &families)?;
        sock.commit(&batch)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::result::{Interface, IpConfig};

    fn result(sandbox_first: bool) -> CniResult {
        let sb = |b: bool| if b { "/run/netns/x".to_string() } else { String::new() };
        CniResult {
            interfaces: vec![
                Interface { name: "cni-podman1".into(), sandbox: sb(sandbox_first), ..Default::default() },
                Interface { name: "veth1".into(), ..Default::default() },
                Interface { name: "eth0".into(), sandbox: "/run/netns/x".into(), ..Default::default() },
            ],
            ips: vec![
                IpConfig { interface: Some(2), address: "10.89.0.2/24".parse().unwrap(), gateway: None },
                IpConfig { interface: Some(2), address: "fd00::2/64".parse().unwrap(), gateway: None },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn addresses_and_bridge() {
        let r = result(false);
        assert_eq!(addresses(&r, "eth0").len(), 2);
        assert_eq!(addresses(&r, "eth9").len(), 2, "falls back to every address");
        assert_eq!(bridge_name(&r).unwrap(), "cni-podman1");
        assert!(bridge_name(&result(true)).unwrap_err().msg.contains("sandbox"));
        assert!(bridge_name(&CniResult::default()).unwrap_err().msg.contains("interfaces[0]"));
    }
}
