//! The listening sockets on `<gateway>:53`, made with `IP_FREEBIND` so a
//! gateway address the kernel still holds as tentative (IPv6 DAD) can be
//! bound, and `IPV6_V6ONLY` so the two families never overlap. A port
//! already held is reported with the process holding it, read from
//! `/proc/net/{udp,tcp}[6]` and `/proc/<pid>/fd`.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd};

/// The DNS port.
pub const PORT: u16 = 53;

fn setopt(fd: libc::c_int, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: a c_int option on a socket we own.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn bound(addr: SocketAddr, kind: libc::c_int) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain socket(2); the fd is owned from here on.
    let raw = unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh, valid fd.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    use std::os::fd::AsRawFd;
    let raw = fd.as_raw_fd();
    match addr {
        SocketAddr::V4(_) => setopt(raw, libc::IPPROTO_IP, libc::IP_FREEBIND, 1)?,
        SocketAddr::V6(_) => {
            setopt(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
            setopt(raw, libc::IPPROTO_IPV6, libc::IPV6_FREEBIND, 1)?;
        }
    }
    if kind == libc::SOCK_STREAM {
        // Restarting right after a stop must not wait for TIME_WAIT.
        setopt(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    }
    let (storage, len) = sockaddr(addr);
    // SAFETY: storage holds a sockaddr of `len` bytes.
    if unsafe { libc::bind(raw, &storage as *const _ as *const libc::sockaddr, len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if kind == libc::SOCK_STREAM {
        // SAFETY: listen on a bound stream socket.
        if unsafe { libc::listen(raw, 128) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            (ss, std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            (ss, std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

/// A UDP socket on `ip:53`, or an error naming the address and whoever holds it.
pub fn udp(ip: IpAddr) -> Result<UdpSocket, String> {
    bound(SocketAddr::new(ip, PORT), libc::SOCK_DGRAM).map(UdpSocket::from).map_err(|e| explain("udp", ip, e))
}

/// A TCP listener on `ip:53`, or an error naming the address and whoever holds it.
pub fn tcp(ip: IpAddr) -> Result<TcpListener, String> {
    bound(SocketAddr::new(ip, PORT), libc::SOCK_STREAM).map(TcpListener::from).map_err(|e| explain("tcp", ip, e))
}

fn explain(proto: &str, ip: IpAddr, e: io::Error) -> String {
    let at = SocketAddr::new(ip, PORT);
    if e.raw_os_error() == Some(libc::EADDRINUSE) {
        let who = holder(proto, ip).unwrap_or_else(|| "another process".into());
        return format!("port {PORT}/{proto} on {at} is already taken by {who}");
    }
    format!("cannot listen on {at} ({proto}): {e}")
}

/// Parses one address of `/proc/net/{udp,tcp}[6]` (`0100000A:0035`).
fn proc_addr(field: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = field.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let ip = match a.len() {
        8 => IpAddr::from(u32::from_str_radix(a, 16).ok()?.to_ne_bytes()),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                let w = u32::from_str_radix(&a[i * 8..i * 8 + 8], 16).ok()?;
                b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            IpAddr::from(b)
        }
        _ => return None,
    };
    Some((ip, port))
}

/// "pid N (comm)" of a process holding `proto` port 53 on `ip` (or on
/// the wildcard address), as far as /proc tells.
pub fn holder(proto: &str, ip: IpAddr) -> Option<String> {
    let file = format!("/proc/net/{proto}{}", if ip.is_ipv4() { "" } else { "6" });
    let text = std::fs::read_to_string(file).ok()?;
    let inode = text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (a, port) = proc_addr(f.get(1)?)?;
        // TCP: only a listener (state 0A) holds the port.
        let listening = proto != "tcp" || f.get(3) == Some(&"0A");
        (port == PORT && listening && (a == ip || a.is_unspecified())).then(|| f.get(9).map(|s| s.to_string()))?
    })?;
    let want = format!("socket:[{inode}]");
    for p in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()) {
                let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
                return Some(format!("pid {pid} ({})", comm.trim()));
            }
        }
    }
    Some(format!("a socket (inode {inode}) of a process this user cannot see"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_addresses() {
        assert_eq!(proc_addr("0100000A:0035"), Some(("10.0.0.1".parse().unwrap(), 53)));
        assert_eq!(proc_addr("00000000000000000000000001000000:0035"), Some(("::1".parse().unwrap(), 53)));
    }
}
