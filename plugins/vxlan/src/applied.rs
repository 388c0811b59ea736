//! Which peer table was last applied to a VTEP, so that an ADD whose table
//! has not changed since skips the peers: parsing 16,000 entries and
//! comparing them with the kernel's neighbours, FDB entries and routes
//! cost more than a second per ADD. `vxlan reconcile` always compares and
//! repairs, and CHECK always verifies every entry.
//!
//! One small file per VTEP under [`STATE_DIR`], named by the network
//! namespace's cookie (`SO_NETNS_COOKIE`, never reused while the machine
//! runs, unlike a namespace's inode number or a link's index) and the VTEP
//! name; it holds the VTEP's ifindex and the table's digest. A VTEP that
//! was just created, or recreated (another index), or a missing or
//! unreadable file, means a full reconcile. The file is removed before
//! entries are changed and written after they all were, so an interrupted
//! reconcile is never taken for a finished one. Without a cookie (a kernel
//! older than 5.14) nothing is recorded and every ADD reconciles.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// Where the records live (tmpfs: gone at reboot, with the VTEPs).
const STATE_DIR: &str = "/run/cni/vxlan";

/// `SO_NETNS_COOKIE` (asm-generic), which the libc crate does not define.
const SO_NETNS_COOKIE: libc::c_int = 71;

/// Largest record read.
const MAX_RECORD: usize = 256;

/// The record of one VTEP in the calling thread's namespace.
pub struct Applied {
    path: PathBuf,
    index: u32,
}

/// The calling thread's network namespace cookie, if the kernel has them.
fn netns_cookie() -> Option<u64> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").or_else(|_| std::net::UdpSocket::bind("[::1]:0")).ok()?;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cookie`.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    (rc == 0 && len as usize == std::mem::size_of::<u64>()).then_some(cookie)
}

impl Applied {
    /// The record of VTEP `name` (ifindex `index`), `None` when the
    /// namespace cannot be told apart from others.
    pub fn of(name: &str, index: u32) -> Option<Applied> {
        let cookie = netns_cookie()?;
        Some(Applied { path: PathBuf::from(STATE_DIR).join(format!("{cookie:016x}-{name}")), index })
    }

    fn text(&self, digest: &str) -> String {
        format!("{} {digest}\n", self.index)
    }

    /// Whether `digest` is the table last applied to this very VTEP.
    pub fn matches(&self, digest: &str) -> bool {
        let Ok(f) =
            fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&self.path)
        else {
            return false;
        };
        let mut buf = Vec::new();
        if std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_RECORD as u64), &mut buf).is_err() {
            return false;
        }
        buf == self.text(digest).as_bytes()
    }

    /// Forgets the record, before the entries change.
    pub fn forget(&self) {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                log::warn!("vxlan: removing {}: {e}", self.path.display())
            }
            _ => {}
        }
    }

    /// Records `digest` as applied (`atomic_file`, mode 0600, not
    /// synced: whole or absent). A failure only costs the next ADD a full
    /// reconcile.
    pub fn record(&self, digest: &str) {
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        let prefix = format!("{name}.tmp.");
        let write = || -> std::io::Result<()> {
            fs::create_dir_all(STATE_DIR)?;
            atomic_file::replace(
                &self.path,
                self.text(digest).as_bytes(),
                &atomic_file::Options::new(0o600).temp_prefix(&prefix),
            )
        };
        if let Err(e) = write() {
            log::warn!("vxlan: recording the applied peer table in {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_stable_within_a_namespace() {
        let a = netns_cookie();
        assert!(a.is_some(), "this kernel has SO_NETNS_COOKIE");
        assert_eq!(a, netns_cookie());
    }

    #[test]
    fn record_matches_only_its_digest_and_index() {
        let name = format!("test-{}", std::process::id());
        let a = Applied::of(&name, 7).unwrap();
        a.forget();
        assert!(!a.matches("d1"));
        a.record("d1");
        assert!(a.matches("d1"));
        assert!(!a.matches("d2"));
        assert!(!Applied::of(&name, 8).unwrap().matches("d1"), "a recreated VTEP has another index");
        a.forget();
        assert!(!a.matches("d1"));
    }
}
