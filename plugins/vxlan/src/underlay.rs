//! The underlay: which local address is this host's VTEP address and
//! which link carries the encapsulated packets. Read-only, and checked
//! before anything changes: an address no local interface holds is a
//! config error (code 7 naming the field), not a VTEP that never works.

use crate::config::{bad, VxConf};
use cni::Error;
use kernel::netlink::{AddrScope, Address, Handle, Link};
use std::net::IpAddr;

/// The VXLAN header overhead on an IPv4 underlay: outer IPv4 (20) + UDP
/// (8) + VXLAN (8) + inner Ethernet (14).
const OVERHEAD_V4: u32 = 50;
/// The same on an IPv6 underlay (outer header 40).
const OVERHEAD_V6: u32 = 70;

/// This host's end of the underlay.
#[derive(Debug, Clone)]
pub struct Underlay {
    /// The local VTEP address (source of the encapsulated packets).
    pub ip: IpAddr,
    /// The link holding it.
    pub link: Link,
    /// The MTU of the VTEP, the bridge and the containers' interfaces.
    pub mtu: u32,
}

/// Whether `a` can be a VTEP address.
fn usable(a: &Address) -> bool {
    a.scope == AddrScope::Global && !a.is_tentative() && !a.dad_failed()
}

/// The address to use on `link`: IPv4 first (the required underlay), then IPv6.
fn pick(addrs: &[Address], index: u32) -> Option<IpAddr> {
    let mine: Vec<&Address> = addrs.iter().filter(|a| a.index == index && usable(a)).collect();
    mine.iter().find(|a| a.net.is_ipv4()).or_else(|| mine.first()).map(|a| a.net.ip())
}

/// Resolves `underlayInterface` / `underlayIP` (or, with neither, the
/// interface of the default route) against the host, and the MTU. Reads
/// only the addresses of the one link concerned when it is known (every
/// ADD runs this, and a host holds addresses for each of its containers);
/// all addresses only to find the holder of a bare `underlayIP`.
pub fn resolve(h: &Handle, conf: &VxConf) -> Result<Underlay, Error> {
    let (link, ip) = match (&conf.underlay_interface, conf.underlay_ip) {
        (Some(name), want) => {
            let link = h
                .link_by_name(name)?
                .ok_or_else(|| bad("underlayInterface", format!("no link called {name:?} on this host")))?;
            let addrs = h.addresses(link.index)?;
            let ip = match want {
                Some(ip) => {
                    if !addrs.iter().any(|a| a.index == link.index && a.net.ip() == ip) {
                        return Err(bad("underlayIP", format!("{ip} is not an address of underlayInterface {name:?}")));
                    }
                    ip
                }
                None => pick(&addrs, link.index).ok_or_else(|| {
                    bad("underlayInterface", format!("{name:?} has no global IP address to use as the VTEP address"))
                })?,
            };
            (link, ip)
        }
        (None, Some(ip)) => {
            let addrs = h.all_addresses(None)?;
            let a = addrs
                .iter()
                .find(|a| a.net.ip() == ip)
                .ok_or_else(|| bad("underlayIP", format!("no local interface holds {ip}")))?;
            let link = h
                .link_by_index(a.index)?
                .ok_or_else(|| bad("underlayIP", format!("the link holding {ip} disappeared")))?;
            (link, ip)
        }
        (None, None) => {
            let index = h.default_route_interface()?.ok_or_else(|| {
                bad(
                    "underlayInterface",
                    "neither underlayInterface nor underlayIP is given, and there is no default route",
                )
            })?;
            let link = h.link(index)?;
            let ip = pick(&h.addresses(index)?, index).ok_or_else(|| {
                bad("underlayInterface", format!("the default route's link {:?} has no global IP address", link.name))
            })?;
            (link, ip)
        }
    };
    let overhead = if ip.is_ipv4() { OVERHEAD_V4 } else { OVERHEAD_V6 };
    let max = link.mtu.saturating_sub(overhead);
    let mtu = match conf.mtu {
        Some(m) if m > max => {
            return Err(bad(
                "mtu",
                format!(
                    "{m} does not fit: the underlay {:?} has MTU {} and VXLAN needs {overhead} bytes",
                    link.name, link.mtu
                ),
            ))
        }
        Some(m) => m,
        None if max < 68 => {
            return Err(bad("underlayInterface", format!("{:?} has MTU {}, too small for VXLAN", link.name, link.mtu)))
        }
        None => max,
    };
    Ok(Underlay { ip, link, mtu })
}
