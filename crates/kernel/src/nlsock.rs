//! The one way this crate opens a netlink socket: both buses it speaks,
//! rtnetlink ([`crate::netlink`]) and netfilter ([`crate::nfnetlink`]),
//! need the same socket, bound to a port the kernel picks, and the same
//! integer `SOL_NETLINK` options.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType};

/// A netlink socket of `protocol` in the calling thread's network
/// namespace, close-on-exec, bound to a port the kernel picks.
pub(crate) fn open_bound(protocol: SockProtocol) -> nix::Result<OwnedFd> {
    let fd = socket::socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, protocol)?;
    socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
    Ok(fd)
}

/// Sets an integer socket option nix has no name for.
pub(crate) fn set_int(fd: &impl AsFd, level: i32, name: i32, value: i32) -> std::io::Result<()> {
    // SAFETY: value is a live i32 of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}
