//! The policy every plugin shares, on top of the `kernel` crate: attaching
//! veths and bridges, gateways, interface configuration from a result,
//! masquerade, IPAM delegation, naming, sandbox checks, the owner key of
//! shared state and its claims, the per-attachment lock, point-to-point
//! links. It speaks `cni::Error` to plugins; kernel operations are the
//! `kernel` crate's, which plugins import directly.

pub mod attach;
pub mod attachment_lock;
pub mod claims;
pub mod gateway;
pub mod ifconfig;
pub mod ipam;
pub mod masq;
pub mod naming;
pub mod owner;
pub mod p2p;
pub mod sandbox;

#[cfg(test)]
mod tests {
    /// Kernel errors reach the runtime with the codes and messages they
    /// always had: transient 11, missing kernel feature 103, else 100.
    #[test]
    fn kernel_errors_keep_their_cni_codes() {
        let cni_of = |errno| cni::Error::from(kernel::Error::from_errno("adding link", errno));
        assert_eq!(cni_of(libc::EBUSY).code, cni::error::code::TRY_AGAIN);
        assert_eq!(cni_of(libc::EAGAIN).code, cni::error::code::TRY_AGAIN);
        assert_eq!(cni_of(libc::EOPNOTSUPP).code, cni::error::code::UNSUPPORTED_KERNEL);
        assert_eq!(cni_of(libc::ENOENT).code, cni::error::code::PLUGIN);
        assert_eq!(cni_of(libc::EPERM).msg, format!("adding link: {}", std::io::Error::from_raw_os_error(libc::EPERM)));
        let busy = kernel::Error::new(kernel::Kind::Busy, "listing", "no reply from the kernel");
        assert_eq!(cni::Error::from(busy).code, cni::error::code::TRY_AGAIN);
    }
}
