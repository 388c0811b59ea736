//! The DHCP exchanges of a client, each over a UDP socket created inside
//! the container's namespace and bound to its interface (the socket stays
//! in that namespace whatever thread uses it). Packets are encoded and
//! decoded by `dhcproto`.
//!
//! - acquire: DISCOVER/OFFER/REQUEST/ACK from 0.0.0.0, broadcast flag set
//!   so the server broadcasts its replies (the address is not on the
//!   interface yet);
//! - renew (T1): REQUEST unicast from the leased address to the server;
//! - rebind (T2): REQUEST broadcast from the leased address;
//! - release: DHCPRELEASE unicast from the leased address to the server,
//!   so that it reaches the server as any other packet of that host.

use crate::proto::{LeaseRoute, Terms};
use dhcproto::v4::{
    Decodable, Decoder, DhcpOption, Encodable, Flags, HType, Message, MessageType, Opcode, OptionCode, UnknownOption,
};
use kernel::netns::Netns;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

/// DHCP ports.
const SERVER_PORT: u16 = 67;
const CLIENT_PORT: u16 = 68;

/// The longest wait before a request is sent again (RFC 2131 starts at 4 s;
/// a LAN server answers in milliseconds, so we start at 1 s).
const MAX_RESEND: Duration = Duration::from_secs(4);

/// What a client sends besides the protocol's own options.
#[derive(Debug, Clone)]
pub struct Params {
    /// Option 61, sent as is (type octet included).
    pub client_id: Vec<u8>,
    /// Option 55.
    pub request: Vec<u8>,
    /// Other options: (code, value).
    pub provide: Vec<(u8, Vec<u8>)>,
}

/// What a DHCPACK granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The address and options.
    pub terms: Terms,
    /// Lease time (option 51); None for an infinite lease.
    pub lease: Option<u32>,
    /// T1 (option 58).
    pub t1: Option<u32>,
    /// T2 (option 59).
    pub t2: Option<u32>,
}

/// How a renewal ended when the server answered.
#[derive(Debug)]
pub enum Answer {
    /// DHCPACK.
    Ack(Granted),
    /// DHCPNAK: the server refuses the address.
    Nak,
}

/// A socket in the container's namespace, bound to `ifname` and `bind:68`,
/// with the interface's MAC. Brings the interface up when `up` (the
/// interface plugin asks IPAM before it does so itself).
pub fn open(netns: &Path, ifname: &str, bind: Ipv4Addr, up: bool) -> Result<(UdpSocket, [u8; 6]), String> {
    let ns = Netns::open(netns).map_err(|e| e.to_string())?;
    ns.enter(|| -> Result<(UdpSocket, [u8; 6]), String> {
        let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(|e| format!("socket: {e}"))?;
        sock.set_reuse_address(true).map_err(|e| format!("SO_REUSEADDR: {e}"))?;
        sock.set_broadcast(true).map_err(|e| format!("SO_BROADCAST: {e}"))?;
        sock.bind_device(Some(ifname.as_bytes())).map_err(|e| format!("binding to interface {ifname}: {e}"))?;
        let mac = ifreq::hwaddr(&sock, ifname).map_err(|e| format!("reading the MAC of {ifname}: {e}"))?;
        if up {
            ifreq::set_up(&sock, ifname).map_err(|e| format!("bringing {ifname} up: {e}"))?;
        }
        sock.bind(&SocketAddr::V4(SocketAddrV4::new(bind, CLIENT_PORT)).into())
            .map_err(|e| format!("binding {bind}:{CLIENT_PORT} on {ifname}: {e}"))?;
        Ok((sock.into(), mac))
    })
    .map_err(|e| e.to_string())?
}

/// A request of `kind` from `mac`, with `ciaddr`, the client's options and
/// `extra`. The broadcast flag is set while the client has no address.
fn message(
    kind: MessageType,
    xid: u32,
    mac: &[u8; 6],
    ciaddr: Ipv4Addr,
    p: &Params,
    extra: Vec<DhcpOption>,
) -> Message {
    let mut m =
        Message::new_with_id(xid, ciaddr, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, mac);
    m.set_opcode(Opcode::BootRequest).set_htype(HType::Eth);
    if ciaddr.is_unspecified() {
        m.set_flags(Flags::default().set_broadcast());
    }
    let opts = m.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ClientIdentifier(p.client_id.clone()));
    if kind != MessageType::Release {
        opts.insert(DhcpOption::MaxMessageSize(1500));
        opts.insert(DhcpOption::ParameterRequestList(p.request.iter().map(|c| OptionCode::from(*c)).collect()));
        for (code, value) in &p.provide {
            opts.insert(DhcpOption::Unknown(UnknownOption::new(OptionCode::from(*code), value.clone())));
        }
    }
    for o in extra {
        opts.insert(o);
    }
    m
}

fn encode(m: &Message) -> Result<Vec<u8>, String> {
    m.to_vec().map_err(|e| format!("encoding a DHCP message: {e}"))
}

/// Sends `m` to `to` and waits for a reply to it that `accept` takes,
/// sending again after 1, 2, 4, 4… s, until `deadline`.
fn exchange<T>(
    sock: &UdpSocket,
    to: SocketAddrV4,
    m: &Message,
    mac: &[u8; 6],
    deadline: Instant,
    mut accept: impl FnMut(&Message, SocketAddr) -> Option<T>,
) -> Result<T, String> {
    let bytes = encode(m)?;
    let mut resend = Duration::from_secs(1);
    let mut buf = vec![0u8; 1500];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("no answer to DHCP{} from {to}", kind_name(m)));
        }
        sock.send_to(&bytes, to).map_err(|e| format!("sending DHCP{} to {to}: {e}", kind_name(m)))?;
        let next = (now + resend).min(deadline);
        resend = (resend * 2).min(MAX_RESEND);
        while let Some(left) = next.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
            sock.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("receiving: {e}")),
            };
            let Ok(reply) = Message::decode(&mut Decoder::new(&buf[..n])) else { continue };
            if reply.opcode() != Opcode::BootReply
                || reply.xid() != m.xid()
                || reply.chaddr().get(..6) != Some(&mac[..])
            {
                continue;
            }
            if let Some(t) = accept(&reply, from) {
                return Ok(t);
            }
        }
    }
}

fn kind_name(m: &Message) -> &'static str {
    match m.opts().msg_type() {
        Some(MessageType::Discover) => "DISCOVER",
        Some(MessageType::Request) => "REQUEST",
        Some(MessageType::Release) => "RELEASE",
        _ => "",
    }
}

fn server_of(m: &Message, from: SocketAddr) -> Ipv4Addr {
    match m.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => *s,
        _ => match from {
            SocketAddr::V4(a) => *a.ip(),
            SocketAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        },
    }
}

/// Acquires a lease on `ifname` in `netns` (DISCOVER to ACK), before
/// `deadline`; a NAK starts over. Returns the lease and the interface's MAC.
pub fn acquire(netns: &Path, ifname: &str, p: &Params, deadline: Instant) -> Result<(Granted, [u8; 6]), String> {
    let (sock, mac) = open(netns, ifname, Ipv4Addr::UNSPECIFIED, true)?;
    let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT);
    loop {
        let xid: u32 = random_u32();
        let discover = message(MessageType::Discover, xid, &mac, Ipv4Addr::UNSPECIFIED, p, Vec::new());
        let (offered, server) = exchange(&sock, bcast, &discover, &mac, deadline, |r, from| {
            r.opts().has_msg_type(MessageType::Offer).then(|| (r.yiaddr(), server_of(r, from)))
        })?;
        let request = message(
            MessageType::Request,
            xid,
            &mac,
            Ipv4Addr::UNSPECIFIED,
            p,
            vec![DhcpOption::RequestedIpAddress(offered), DhcpOption::ServerIdentifier(server)],
        );
        let answer = exchange(&sock, bcast, &request, &mac, deadline, |r, from| match r.opts().msg_type() {
            Some(MessageType::Ack) => Some(granted(r, from)),
            Some(MessageType::Nak) => Some(Err("NAK".to_string())),
            _ => None,
        })?;
        match answer {
            Ok(g) => return Ok((g, mac)),
            Err(e) if e == "NAK" => {
                log::info!("{ifname} in {}: server {server} refused {offered}, starting over", netns.display());
                continue;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Renews (`server` given: unicast) or rebinds (`None`: broadcast) the
/// lease of `leased`, from that address, waiting until `deadline`.
pub fn renew(
    netns: &Path,
    ifname: &str,
    p: &Params,
    leased: Ipv4Addr,
    server: Option<Ipv4Addr>,
    deadline: Instant,
) -> Result<Answer, String> {
    let (sock, mac) = open(netns, ifname, leased, false)?;
    let to = SocketAddrV4::new(server.unwrap_or(Ipv4Addr::BROADCAST), SERVER_PORT);
    let request = message(MessageType::Request, random_u32(), &mac, leased, p, Vec::new());
    let answer = exchange(&sock, to, &request, &mac, deadline, |r, from| match r.opts().msg_type() {
        Some(MessageType::Ack) => Some(granted(r, from).map(Answer::Ack)),
        Some(MessageType::Nak) => Some(Ok(Answer::Nak)),
        _ => None,
    })?;
    answer
}

/// Sends DHCPRELEASE of `leased` to `server`, from `leased` (the
/// container must still hold the address). Nothing is answered.
///
/// When the address is no longer on the interface the release is broadcast
/// from 0.0.0.0 instead (what the reference always does), which a server
/// may ignore.
pub fn release(netns: &Path, ifname: &str, p: &Params, leased: Ipv4Addr, server: Ipv4Addr) -> Result<(), String> {
    let (sock, mac, to) = match open(netns, ifname, leased, false) {
        Ok((sock, mac)) => (sock, mac, SocketAddrV4::new(server, SERVER_PORT)),
        Err(e) => {
            log::info!("{ifname}: cannot send from {leased} ({e}); broadcasting the release");
            let (sock, mac) = open(netns, ifname, Ipv4Addr::UNSPECIFIED, false)?;
            (sock, mac, SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT))
        }
    };
    let m = message(MessageType::Release, random_u32(), &mac, leased, p, vec![DhcpOption::ServerIdentifier(server)]);
    sock.send_to(&encode(&m)?, to).map_err(|e| format!("sending DHCPRELEASE to {to}: {e}"))?;
    Ok(())
}
/// Reads the lease out of a DHCPACK.
pub fn granted(m: &Message, from: SocketAddr) -> Result<Granted, String> {
    let opts = m.opts();
    let prefix = match opts.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => {
            mask_prefix(*mask).ok_or_else(|| format!("DHCPACK has an invalid subnet mask {mask}"))?
        }
        _ => return Err("DHCP option Subnet Mask not found in DHCPACK".into()),
    };
    let router = match opts.get(OptionCode::Router) {
        Some(DhcpOption::Router(r)) => r.first().copied(),
        _ => None,
    };
    let mut routes = Vec::new();
    let mut gateway = router;
    if let Some(DhcpOption::ClasslessStaticRoute(list)) = opts.get(OptionCode::ClasslessStaticRoute) {
        // RFC 3442: with option 121 the client ignores the router and
        // static-route options.
        gateway = None;
        for (net, gw) in list {
            routes.push(LeaseRoute {
                dst: net.network(),
                prefix: net.prefix_len(),
                gw: (!gw.is_unspecified()).then_some(*gw),
            });
        }
    }
    if routes.is_empty() {
        gateway = router;
        if let Some(DhcpOption::StaticRoutingTable(list)) = opts.get(OptionCode::StaticRoutingTable) {
            for (dst, gw) in list {
                routes.push(LeaseRoute { dst: *dst, prefix: classful_prefix(*dst), gw: Some(*gw) });
            }
        }
        if let Some(gw) = router {
            routes.push(LeaseRoute { dst: Ipv4Addr::UNSPECIFIED, prefix: 0, gw: Some(gw) });
        }
    }
    let dns = match opts.get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(d)) => d.clone(),
        _ => Vec::new(),
    };
    let domain = match opts.get(OptionCode::DomainName) {
        Some(DhcpOption::DomainName(d)) => d.clone(),
        _ => String::new(),
    };
    let secs = |code| match opts.get(code) {
        Some(DhcpOption::AddressLeaseTime(s) | DhcpOption::Renewal(s) | DhcpOption::Rebinding(s)) => Some(*s),
        _ => None,
    };
    let lease = secs(OptionCode::AddressLeaseTime).filter(|s| *s != u32::MAX);
    let address = m.yiaddr();
    if address.is_unspecified() || address.is_broadcast() {
        return Err(format!("DHCPACK grants no usable address ({address})"));
    }
    Ok(Granted {
        terms: Terms { address, prefix, server: server_of(m, from), gateway, routes, dns, domain },
        lease,
        t1: secs(OptionCode::Renewal),
        t2: secs(OptionCode::Rebinding),
    })
}

/// The prefix length of a contiguous netmask.
fn mask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    (m.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// Option 33 destinations are classful (RFC 2132 5.8).
fn classful_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// A transaction id; not secret, only unlikely to repeat.
fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 4 {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return t.subsec_nanos() ^ std::process::id();
    }
    u32::from_ne_bytes(b)
}

/// Interface ioctls on a socket: they act in the socket's namespace.
mod ifreq {
    use socket2::Socket;
    use std::io;
    use std::os::fd::AsRawFd;

    fn request(name: &str) -> io::Result<libc::ifreq> {
        // SAFETY: ifreq is plain data; all zeroes is a valid value.
        let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
        if name.len() >= r.ifr_name.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface name too long"));
        }
        for (d, s) in r.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        Ok(r)
    }

    fn ioctl(sock: &Socket, op: libc::Ioctl, r: &mut libc::ifreq) -> io::Result<()> {
        // SAFETY: `r` is a valid ifreq for the interface ioctls used here.
        if unsafe { libc::ioctl(sock.as_raw_fd(), op, r as *mut libc::ifreq) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The interface's hardware address.
    pub fn hwaddr(sock: &Socket, name: &str) -> io::Result<[u8; 6]> {
        let mut r = request(name)?;
        ioctl(sock, libc::SIOCGIFHWADDR, &mut r)?;
        // SAFETY: SIOCGIFHWADDR filled the hwaddr member.
        let data = unsafe { r.ifr_ifru.ifru_hwaddr.sa_data };
        let mut mac = [0u8; 6];
        for (m, d) in mac.iter_mut().zip(data.iter()) {
            *m = *d as u8;
        }
        Ok(mac)
    }

    /// Sets IFF_UP unless it is set.
    pub fn set_up(sock: &Socket, name: &str) -> io::Result<()> {
        let mut r = request(name)?;
        ioctl(sock, libc::SIOCGIFFLAGS, &mut r)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        let flags = unsafe { r.ifr_ifru.ifru_flags };
        if flags & libc::IFF_UP as libc::c_short != 0 {
            return Ok(());
        }
        r.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        ioctl(sock, libc::SIOCSIFFLAGS, &mut r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask_prefix(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(mask_prefix(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(mask_prefix(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(mask_prefix(Ipv4Addr::new(255, 0, 255, 0)), None);
    }

    fn ack(extra: Vec<DhcpOption>) -> Message {
        let mut m = Message::new_with_id(
            7,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(10, 1, 0, 5),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &[1, 2, 3, 4, 5, 6],
        );
        m.set_opcode(Opcode::BootReply);
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(MessageType::Ack));
        o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
        o.insert(DhcpOption::Router(vec![Ipv4Addr::new(10, 1, 0, 1)]));
        o.insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 1, 0, 2)));
        o.insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(10, 1, 0, 53)]));
        o.insert(DhcpOption::AddressLeaseTime(120));
        for x in extra {
            o.insert(x);
        }
        // Round trip through the wire format, as a server's packet.
        Message::from_bytes(&m.to_vec().unwrap()).unwrap()
    }

    fn from() -> SocketAddr {
        "10.1.0.2:67".parse().unwrap()
    }

    #[test]
    fn router_gives_default_route() {
        let g = granted(&ack(vec![]), from()).unwrap();
        assert_eq!(
            (g.terms.address, g.terms.prefix, g.terms.server),
            (Ipv4Addr::new(10, 1, 0, 5), 24, Ipv4Addr::new(10, 1, 0, 2))
        );
        assert_eq!(g.terms.gateway, Some(Ipv4Addr::new(10, 1, 0, 1)));
        assert_eq!(
            g.terms.routes,
            vec![LeaseRoute { dst: Ipv4Addr::UNSPECIFIED, prefix: 0, gw: Some(Ipv4Addr::new(10, 1, 0, 1)) }]
        );
        assert_eq!(g.terms.dns, vec![Ipv4Addr::new(10, 1, 0, 53)]);
        assert_eq!((g.lease, g.t1, g.t2), (Some(120), None, None));
    }

    #[test]
    fn classless_routes_win_over_router() {
        let net: ipnet::Ipv4Net = "192.168.50.0/24".parse().unwrap();
        let def: ipnet::Ipv4Net = "0.0.0.0/0".parse().unwrap();
        let g = granted(
            &ack(vec![DhcpOption::ClasslessStaticRoute(vec![
                (net, Ipv4Addr::new(10, 1, 0, 9)),
                (def, Ipv4Addr::new(10, 1, 0, 8)),
            ])]),
            from(),
        )
        .unwrap();
        assert_eq!(g.terms.gateway, None);
        assert_eq!(
            g.terms.routes,
            vec![
                LeaseRoute { dst: Ipv4Addr::new(192, 168, 50, 0), prefix: 24, gw: Some(Ipv4Addr::new(10, 1, 0, 9)) },
                LeaseRoute { dst: Ipv4Addr::UNSPECIFIED, prefix: 0, gw: Some(Ipv4Addr::new(10, 1, 0, 8)) },
            ]
        );
    }

    #[test]
    fn missing_mask_is_an_error() {
        let mut m = ack(vec![]);
        m.opts_mut().remove(OptionCode::SubnetMask);
        assert!(granted(&m, from()).unwrap_err().contains("Subnet Mask"));
    }

    #[test]
    fn request_carries_client_options() {
        let p = Params {
            client_id: b"\0abc/net/eth0".to_vec(),
            request: vec![1, 3, 6, 121],
            provide: vec![(12, b"pod-a".to_vec())],
        };
        let m = message(MessageType::Discover, 9, &[2, 0, 0, 0, 0, 1], Ipv4Addr::UNSPECIFIED, &p, Vec::new());
        let back = Message::from_bytes(&m.to_vec().unwrap()).unwrap();
        assert!(back.flags().broadcast());
        assert_eq!(
            back.opts().get(OptionCode::ClientIdentifier),
            Some(&DhcpOption::ClientIdentifier(p.client_id.clone()))
        );
        assert_eq!(back.opts().get(OptionCode::Hostname), Some(&DhcpOption::Hostname("pod-a".into())));
        match back.opts().get(OptionCode::ParameterRequestList) {
            Some(DhcpOption::ParameterRequestList(l)) => assert_eq!(l.len(), 4),
            other => panic!("{other:?}"),
        }
    }
}
