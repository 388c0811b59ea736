//! ADD: admit the container's addresses from prevResult (set elements
//! owned by the attachment) and make sure the shared rules are in place,
//! all in one nftables transaction, and pass prevResult through unchanged.
//! The rule in iptables-nft's FORWARD chain joins that transaction only
//! when it is missing, under a host-wide lock, so concurrent first ADDs
//! insert it once.

use crate::config::{self, Backend, FirewallConf, IngressPolicy};
use crate::{firewalld, forward, lock, ruleset};
use cni::result::CniResult;
use cni::{Context, Error};
use kernel::nft::{Batch, Socket};
use netcore::owner::OwnerKey;
use std::net::IpAddr;

/// What ADD and CHECK both act on: prevResult, the nftables socket (its
/// backend checked), the container's addresses and, with the sameBridge
/// policy, the bridge they are admitted from (none when there are no
/// addresses: then there is nothing to do).
pub(crate) struct Target {
    /// The earlier plugins' result, passed through by ADD.
    pub prev: CniResult,
    /// Open, and the backend the config asks for is usable.
    pub sock: Socket,
    /// The container interface's addresses.
    pub ips: Vec<IpAddr>,
    /// The bridge of the sameBridge policy.
    pub bridge: Option<String>,
}

/// Loads the config and reads [`Target`] from the call.
pub(crate) fn target(ctx: &Context) -> Result<Target, Error> {
    let conf = config::load(ctx)?;
    let prev =
        ctx.prev_result()?.ok_or_else(|| Error::invalid_config("firewall: missing prevResult from earlier plugin"))?;
    let sock = Socket::open()?;
    check_backend(&conf, &sock)?;
    let ips = addresses(&prev, &ctx.ifname);
    let bridge = match conf.ingress {
        IngressPolicy::SameBridge if !ips.is_empty() => Some(bridge_name(&prev)?),
        _ => None,
    };
    Ok(Target { prev, sock, ips, bridge })
}

/// Runs ADD.
pub fn add(ctx: &Context) -> Result<CniResult, Error> {
    let t = target(ctx)?;
    if t.ips.is_empty() {
        return Ok(t.prev);
    }
    let o = ruleset::objects()?;
    let owner = OwnerKey::of(ctx);
    let mut batch = Batch::new();
    ruleset::ensure(&mut batch, &o)?;
    ruleset::add_attachment(&mut batch, &o, &owner, &t.ips, t.bridge.as_deref())?;
    commit(&t.sock, &batch)?;
    Ok(t.prev)
}

/// Commits `batch`, plus our rule in each iptables-nft FORWARD chain that
/// lacks it, as one transaction. Only the first ADD (or one after someone
/// flushed FORWARD) finds the rule missing; it takes the setup lock and
/// looks again, so of concurrent ADDs exactly one inserts it. A FORWARD
/// chain removed between the look and the commit fails the commit with
/// `NotFound`: then look and commit once more.
fn commit(sock: &Socket, batch: &Batch) -> Result<(), Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = if forward::missing(sock)?.is_empty() {
            sock.commit(batch)
        } else {
            let _guard = lock::lock()?;
            let mut with_forward = batch.clone();
            forward::insert(&mut with_forward, &forward::missing(sock)?)?;
            sock.commit(&with_forward)
        };
        match result {
            Err(e) if e.is_not_found() && attempt < 2 => continue,
            r => return Ok(r?),
        }
    }
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
fn addresses(prev: &CniResult, ifname: &str) -> Vec<IpAddr> {
    let mine: Vec<IpAddr> = prev.container_ips(ifname).iter().map(|ip| ip.address.ip()).collect();
    if mine.is_empty() {
        prev.ips.iter().map(|ip| ip.address.ip()).collect()
    } else {
        mine
    }
}

/// The bridge for same-bridge: `interfaces[0]` of prevResult, a host
/// interface, as the bridge plugin reports it.
fn bridge_name(prev: &CniResult) -> Result<String, Error> {
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
