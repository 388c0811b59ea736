//! One lock per attachment (network, container id, ifname), held for the
//! whole ADD, DEL and CHECK of an interface plugin that delegates IPAM.
//!
//! A runtime that restarts may send DEL for an attachment while its ADD is
//! still running. Without this lock the DEL releases the lease and removes
//! what exists so far, and the ADD then finishes the rest and exits 0: the
//! container keeps an address the store no longer reserves, and the next
//! container is handed the same one. With it, the two run one after the
//! other: either the DEL undoes a finished ADD, or the ADD runs after a DEL
//! that found nothing. IPAM plugins never take it (their ADD runs inside
//! the caller's, which holds it).
//!
//! The lock is `flock(2)` on `/run/cni/attachment-locks/<hash>` (a hash of
//! the three names, so no id can make the name too long; two attachments
//! that share a hash only wait for each other). A SIGKILLed holder releases
//! it. DEL removes the file while holding the lock; a waiter that then gets
//! the lock on the removed file notices (the name no longer leads to the
//! inode it locked) and locks the new file instead, so exclusion holds
//! across removal.

use cni::Error;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where the lock files live.
pub const LOCK_DIR: &str = "/run/cni/attachment-locks";

/// A held attachment lock; released on drop.
pub struct AttachmentLock {
    file: File,
    path: PathBuf,
}

/// The lock file of an attachment inside `dir`.
pub fn lock_path(dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    dir.join(format!("{:016x}", crate::naming::fnv1a64(&[network, container_id, ifname])))
}

fn io_error(what: &str, path: &Path, e: io::Error) -> Error {
    Error::io(format!("{what} attachment lock {}: {e}", path.display()))
}

/// Blocks until the call's attachment is locked: what an interface
/// plugin's ADD, DEL and CHECK take first.
pub fn of(ctx: &cni::Context) -> Result<AttachmentLock, Error> {
    lock(&ctx.conf.name, &ctx.container_id, &ctx.ifname)
}

/// Blocks until the attachment is locked (in [`LOCK_DIR`]).
pub fn lock(network: &str, container_id: &str, ifname: &str) -> Result<AttachmentLock, Error> {
    lock_in(Path::new(LOCK_DIR), network, container_id, ifname)
}

/// [`lock`] with the lock files in `dir`.
pub fn lock_in(dir: &Path, network: &str, container_id: &str, ifname: &str) -> Result<AttachmentLock, Error> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_error("creating the directory of", dir, e))?;
    let path = lock_path(dir, network, container_id, ifname);
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| io_error("opening", &path, e))?;
        let held = file.metadata().map_err(|e| io_error("inspecting", &path, e))?;
        if !held.is_file() {
            return Err(io_error("using", &path, io::Error::other("not a regular file")));
        }
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(io_error("locking", &path, e));
            }
        }
        // A DEL that held it before us may have removed the file: then the
        // lock we hold protects nothing, and the name leads elsewhere.
        match fs::symlink_metadata(&path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                return Ok(AttachmentLock { file, path });
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error("inspecting", &path, e)),
        }
    }
}

impl AttachmentLock {
    /// Removes the lock file and releases the lock (DEL: the attachment is
    /// gone; a waiter moves on to a new file). A failure only leaves a
    /// small file behind, so it is logged, not returned.
    pub fn remove(self) {
        if let Err(e) = fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!("removing attachment lock {}: {e}", self.path.display());
            }
        }
        drop(self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("attachment-lock-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn excludes_a_second_holder_also_across_removal() {
        let d = tempdir("excl");
        let first = lock_in(&d, "net", "c1", "eth0").unwrap();
        // Another attachment is not blocked.
        drop(lock_in(&d, "net", "c2", "eth0").unwrap());
        let (tx, rx) = mpsc::channel();
        let dir = d.clone();
        let waiter = std::thread::spawn(move || {
            let l = lock_in(&dir, "net", "c1", "eth0").unwrap();
            tx.send(()).unwrap();
            l
        });
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err(), "the second holder must wait");
        first.remove();
        rx.recv_timeout(Duration::from_secs(5)).expect("the waiter gets the lock after removal");
        let second = waiter.join().unwrap();
        // The waiter holds the file that is now at the name, so a third
        // caller waits for it.
        let path = lock_path(&d, "net", "c1", "eth0");
        let f = File::open(&path).unwrap();
        // SAFETY: flock on a descriptor we own.
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, -1);
        drop(second);
        let _ = fs::remove_dir_all(&d);
    }
}
