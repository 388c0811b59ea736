//! Network namespaces by path: open one, run a closure with the calling thread
//! inside it, and always come back. A netlink or nftables socket opened inside
//! the closure stays bound to that namespace after the thread has left it,
//! which is how the plugins get handles on a container without keeping a
//! thread switched into it.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
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
    ///
    /// The path is first opened with `O_PATH`, which never blocks and never
    /// runs a device's open (a FIFO, a tty, `/dev/null`), and its filesystem
    /// is checked; only an nsfs file is then reopened for reading.
    pub fn open(path: impl AsRef<Path>) -> Result<Netns> {
        let path = path.as_ref();
        let what = || format!("opening netns {}", path.display());
        let probe = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| Error::from_io(what(), &e))?;
        check_is_nsfs(&probe).map_err(|cause| Error::new(Kind::Invalid, what(), cause))?;
        // setns needs a real descriptor: reopen the very inode the probe holds.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(format!("/proc/self/fd/{}", probe.as_raw_fd()))
            .map_err(|e| Error::from_io(what(), &e))?;
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

/// Checks that `file` (an `O_PATH` descriptor is enough) lives on nsfs,
/// also what `/proc/<pid>/ns/net` resolves to, so a stale regular file left
/// at a netns path (what an unmounted bind mount leaves), a FIFO or a device
/// is refused with a clear message before anything opens it for real.
fn check_is_nsfs(file: &File) -> std::result::Result<(), String> {
    let fs = fstatfs(file).map_err(|e| format!("statfs: {e}"))?;
    let magic = fs.filesystem_type();
    if magic != NSFS_MAGIC {
        return Err(format!(
            "not a network namespace: unknown FS magic {:x} (expected a bind-mounted or /proc namespace file)",
            magic.0
        ));
    }
    Ok(())
}

/// Checks that `file` is a namespace of type CLONE_NEWNET when the kernel
/// can tell, so a `/proc/<pid>/ns/uts` is refused here rather than by setns.
fn check_is_netns(file: &File) -> std::result::Result<(), String> {
    check_is_nsfs(file)?;
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
    fn fifo_directory_and_device_are_refused_without_blocking() {
        let d = std::env::temp_dir().join(format!("netns-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let fifo = d.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // A blocking open of a FIFO with no writer would never return.
        for p in [fifo.as_path(), d.as_path(), Path::new("/dev/null")] {
            let e = Netns::open(p).unwrap_err();
            assert_eq!(e.kind, Kind::Invalid, "{p:?}: {e}");
            assert!(e.cause.contains("unknown FS magic"), "{e}");
        }
        std::fs::remove_dir_all(&d).unwrap();
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
