//! Network namespaces by path: open one, run a closure with the calling thread
//! inside it, and always come back. A netlink or nftables socket opened inside
//! the closure stays bound to that namespace after the thread has left it,
//! which is how the plugins get handles on a container without keeping a
//! thread switched into it.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

use crate::error::{Error, Kind, Result};

/// The namespace file of the calling thread (not of the process: threads may differ).
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// `NS_GET_NSTYPE` ioctl (`_IO(0xb7, 0x3)`): tells which kind of namespace an nsfs fd is.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// An open network namespace; holding the fd keeps the namespace alive even if
/// its bind mount is removed meanwhile.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Opens the namespace at `path` (e.g. `CNI_NETNS`). `Kind::NotFound` when the
    /// path does not exist, `Kind::Invalid` when it is not a network namespace.
    pub fn open(path: impl AsRef<Path>) -> Result<Netns> {
        let path = path.as_ref();
        let what = || format!("opening netns {}", path.display());
        let file = File::open(path).map_err(|e| Error::from_io(what(), &e))?;
        check_is_netns(&file).map_err(|cause| Error::new(Kind::Invalid, what(), cause))?;
        Ok(Netns { file, path: path.to_path_buf() })
    }

    /// The namespace the calling thread is in now, e.g. to compare a
    /// `CNI_NETNS` against it (DEL of loopback must never act on the host).
    pub fn current() -> Result<Netns> {
        Netns::open(THREAD_NETNS)
    }

    /// Whether `path` names a network namespace that can be opened; DEL uses it
    /// to tell "container already gone" from a real error.
    pub fn exists(path: impl AsRef<Path>) -> bool {
        Netns::open(path).is_ok()
    }

    /// The path this namespace was opened from, for error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace's identity (device, inode): two handles with equal ids are
    /// the same namespace, whatever path they were opened through.
    pub fn id(&self) -> Result<(u64, u64)> {
        let m =
            self.file.metadata().map_err(|e| Error::from_io(format!("stat of netns {}", self.path.display()), &e))?;
        Ok((m.dev(), m.ino()))
    }

    /// Whether the calling thread is in this namespace right now.
    pub fn is_current(&self) -> Result<bool> {
        Ok(self.id()? == Netns::current()?.id()?)
    }

    /// Runs `f` with the calling thread switched into this namespace, then
    /// switches back, also when `f` panics. Sockets opened inside stay in it.
    ///
    /// If switching back fails the process aborts: carrying on in the wrong
    /// namespace could change the host instead of the container.
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let back = Netns::current()?;
        if back.id()? == self.id()? {
            return Ok(f());
        }
        setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::from_errno(format!("entering netns {}", self.path.display()), e as i32))?;
        let _restore = Restore(back);
        Ok(f())
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Netns {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// Switches the thread back into the namespace it came from when dropped.
struct Restore(Netns);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Err(e) = setns(self.0.file.as_fd(), CloneFlags::CLONE_NEWNET) {
            log::error!("cannot switch back to netns {}: {e}; aborting", self.0.path.display());
            std::process::abort();
        }
    }
}

/// Checks that `file` is a network namespace (an nsfs file, also what
/// `/proc/<pid>/ns/net` opens to, of type CLONE_NEWNET when the kernel can
/// tell), so a stale regular file left at a netns path is refused with a clear
/// message rather than by setns later.
fn check_is_netns(file: &File) -> std::result::Result<(), String> {
    let fs = fstatfs(file).map_err(|e| format!("statfs: {e}"))?;
    if fs.filesystem_type() != NSFS_MAGIC {
        return Err("not a network namespace (expected a bind-mounted or /proc namespace file)".into());
    }
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
    let nstype = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if nstype >= 0 && nstype != libc::CLONE_NEWNET {
        return Err("not a network namespace (another kind of namespace)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_path_is_not_found() {
        let e = Netns::open("/nonexistent/netns/x").unwrap_err();
        assert_eq!(e.kind, Kind::NotFound);
        assert!(e.what.contains("/nonexistent/netns/x"), "{e}");
        assert!(!Netns::exists("/nonexistent/netns/x"));
    }

    #[test]
    fn regular_file_is_refused() {
        let e = Netns::open("/proc/self/status").unwrap_err();
        assert_eq!(e.kind, Kind::Invalid, "{e}");
        let e = Netns::open("/etc/hostname").or_else(|_| Netns::open("/etc/passwd")).unwrap_err();
        assert_eq!(e.kind, Kind::Invalid, "{e}");
    }

    #[test]
    fn other_namespace_kind_is_refused() {
        let e = Netns::open("/proc/thread-self/ns/uts").unwrap_err();
        assert_eq!(e.kind, Kind::Invalid, "{e}");
    }

    #[test]
    fn current_is_current_and_entering_it_is_a_no_op() {
        let ns = Netns::current().unwrap();
        assert!(ns.is_current().unwrap());
        assert_eq!(ns.enter(|| 7).unwrap(), 7);
        assert!(ns.is_current().unwrap());
    }
}
