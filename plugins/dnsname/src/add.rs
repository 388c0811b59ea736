//! ADD: the container's name and aliases with its addresses from
//! prevResult become its record file; the network's server is told (or
//! started, and waited for), so the name resolves when ADD returns. The
//! result is prevResult with the gateways as name servers and the domain
//! as search domain, from which the runtime writes resolv.conf.

use crate::config;
use crate::server::{self, Told};
use crate::store::{NetDir, Record, ServerConf};
use cni::{CniResult, Context, Error};
use ipnetwork::IpNetwork;
use std::net::IpAddr;

/// What prevResult tells of an attachment: its network's gateways (the
/// name servers), its subnets, and its own addresses.
pub struct Attached {
    /// Gateway addresses, where the server listens.
    pub gateways: Vec<IpAddr>,
    /// The subnets of the addresses: the clients served.
    pub subnets: Vec<IpNetwork>,
    /// The container's addresses.
    pub ips: Vec<IpNetwork>,
}

/// The gateways (name servers) and subnets of the attachment's addresses.
pub fn network_of(result: &CniResult, ifname: &str) -> Result<Attached, Error> {
    let mut gateways = Vec::new();
    let mut subnets = Vec::new();
    let mut ips = Vec::new();
    for ip in result.container_ips(ifname) {
        ips.push(ip.address);
        let net = IpNetwork::new(ip.address.network(), ip.address.prefix()).expect("a valid prefix");
        if !subnets.contains(&net) {
            subnets.push(net);
        }
        if let Some(gw) = ip.gateway {
            if !gateways.contains(&gw) {
                gateways.push(gw);
            }
        }
    }
    if ips.is_empty() {
        return Err(Error::invalid_config(format!(
            "dnsname: prevResult has no address for {ifname:?}: chain dnsname after a plugin that assigns one"
        )));
    }
    if gateways.is_empty() {
        return Err(Error::invalid_config(
            "dnsname: prevResult has no gateway address: the name server listens on the network's gateway",
        ));
    }
    Ok(Attached { gateways, subnets, ips })
}

/// Runs ADD.
pub fn add(ctx: &Context) -> Result<CniResult, Error> {
    ctx.args.check_known(config::KNOWN_ARGS)?;
    let conf = config::load(ctx)?;
    let name = config::container_name(ctx)?;
    let aliases = config::aliases(ctx)?;
    let mut result = ctx.require_prev_result()?;
    let Attached { gateways, subnets, ips } = network_of(&result, &ctx.ifname)?;
    let net = NetDir::new(&conf.data_dir, &ctx.conf.name)?;
    let rec = Record { container_id: ctx.container_id.clone(), ifname: ctx.ifname.clone(), name, aliases, ips };

    let _lock = net.lock()?;
    let server_conf = ServerConf {
        network: ctx.conf.name.clone(),
        domain: conf.domain.clone(),
        gateways: gateways.clone(),
        subnets,
        resolv_conf: conf.resolv_conf.clone(),
    };
    let file = net.save(&rec)?;
    let outcome = server::tell(&net, &format!("update {file}")).and_then(|told| match told {
        Told::Applied => Ok(()),
        Told::Stopped | Told::NotRunning => {
            net.save_server_conf(&server_conf)?;
            server::start(&net)
        }
    });
    if let Err(e) = outcome {
        // Nothing half-made: our record goes, and with the last one the rest.
        let _ = net.remove(&ctx.container_id, &ctx.ifname);
        if !server::alive(&net).unwrap_or(true) {
            let _ = net.clean_if_empty();
        }
        return Err(e);
    }

    for gw in &gateways {
        let s = gw.to_string();
        result.dns.nameservers.retain(|n| n != &s);
    }
    let mut servers: Vec<String> = gateways.iter().map(IpAddr::to_string).collect();
    servers.append(&mut result.dns.nameservers);
    result.dns.nameservers = servers;
    if !result.dns.search.iter().any(|s| s.eq_ignore_ascii_case(&conf.domain)) {
        result.dns.search.push(conf.domain);
    }
    Ok(result)
}
