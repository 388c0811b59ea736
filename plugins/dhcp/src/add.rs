//! ADD: the daemon acquires (or, for a repeated ADD, returns) the lease;
//! the result carries the address, gateway, routes and name servers.

use crate::proto::{LeaseView, Op};
use crate::{ask, config::Config, request, UNREACHABLE};
use cni::config::Dns;
use cni::result::{IpConfig, Route};
use cni::{CniResult, Context, Error};
use ipnetwork::{IpNetwork, Ipv4Network};
use std::net::{IpAddr, Ipv4Addr};

/// ADD.
pub fn add(ctx: &Context) -> Result<CniResult, Error> {
    let conf = Config::load(ctx)?;
    let reply = ask(&conf.socket, &request(ctx, Op::Add, &conf)?, UNREACHABLE)?;
    let lease = reply.lease.ok_or_else(|| Error::io("the dhcp daemon answered ADD without a lease"))?;
    to_result(&lease)
}

/// The CNI result of a lease.
fn to_result(l: &LeaseView) -> Result<CniResult, Error> {
    let net = |a: Ipv4Addr, p: u8| {
        Ipv4Network::new(a, p).map(IpNetwork::V4).map_err(|e| Error::io(format!("the dhcp daemon sent {a}/{p}: {e}")))
    };
    let ips = vec![IpConfig {
        interface: None,
        address: net(l.terms.address, l.terms.prefix)?,
        gateway: l.terms.gateway.map(IpAddr::V4),
    }];
    let mut routes = Vec::new();
    for r in &l.terms.routes {
        let dst = net(r.dst, r.prefix)?;
        let mut route = Route::new(dst, r.gw.map(IpAddr::V4));
        if r.gw.is_none() {
            // On-link (RFC 3442 router 0.0.0.0): no gateway, link scope.
            route.scope = Some(253);
        }
        routes.push(route);
    }
    let dns = Dns {
        nameservers: l.terms.dns.iter().map(ToString::to_string).collect(),
        domain: l.terms.domain.clone(),
        search: Vec::new(),
        options: Vec::new(),
    };
    Ok(CniResult { interfaces: Vec::new(), ips, routes, dns })
}
