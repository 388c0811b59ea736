//! One lock per host network namespace around the overlay's host side, so
//! concurrent ADDs and `vxlan reconcile` never interleave their reads and
//! writes of the VTEP, the bridge and the peer entries.
//!
//! The lock is `flock(2)` on the namespace itself (`/proc/thread-self/ns/net`,
//! an nsfs inode every process of the namespace opens the same): it needs
//! no state directory, can't go stale, is released when the process dies
//! (even by SIGKILL), and two namespaces on one machine (two hosts of a
//! test, or a host and a nested one) never block each other, which a lock
//! file under `/run` shared by both would do.

use cni::Error;
use std::fs::File;

/// A held lock; released on drop.
pub struct HostLock {
    _file: File,
}

/// Blocks until this thread's network namespace is locked.
pub fn lock() -> Result<HostLock, Error> {
    let path = "/proc/thread-self/ns/net";
    let file = File::open(path).map_err(|e| Error::io(format!("opening {path} to lock the host's overlay: {e}")))?;
    kernel::flock::lock(&file).map_err(|e| Error::io(format!("locking {path}: {e}")))?;
    Ok(HostLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn excludes_a_second_holder_until_dropped() {
        let held = lock().unwrap();
        let f = File::open("/proc/thread-self/ns/net").unwrap();
        // SAFETY: flock on a descriptor we own.
        let busy = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(busy, -1, "a second open file description must not get the lock");
        drop(held);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    }
}
