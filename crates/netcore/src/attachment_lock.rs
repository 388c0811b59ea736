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
//! The lock is `flock(2)` on `/run/cni/attachment-locks/<network
//! hash>/<attachment hash>` (hashes, so no name or id can make a path too
//! long; two attachments that share a hash only wait for each other). A
//! SIGKILLed holder releases it. DEL removes the file while holding the
//! lock, and GC removes those of the network's attachments that are not
//! valid and not held; a waiter that then gets the lock on a removed file
//! notices (the name no longer leads to the inode it locked) and locks the
//! new file instead, so exclusion holds across removal.

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

/// The directory of a network's lock files inside `dir`.
fn network_dir(dir: &Path, network: &str) -> PathBuf {
    dir.join(format!("{:016x}", crate::naming::fnv1a64(&[network])))
}

/// The name of an attachment's lock file in its network's directory.
fn lock_name(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{:016x}", crate::naming::fnv1a64(&[network, container_id, ifname]))
}

/// The lock file of an attachment inside `dir`.
pub fn lock_path(dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    network_dir(dir, network).join(lock_name(network, container_id, ifname))
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
fn lock_in(dir: &Path, network: &str, container_id: &str, ifname: &str) -> Result<AttachmentLock, Error> {
    let net_dir = network_dir(dir, network);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&net_dir)
        .map_err(|e| io_error("creating the directory of", &net_dir, e))?;
    let path = lock_path(dir, network, container_id, ifname);
    loop {
        let file = kernel::flock::open(&path).map_err(|e| io_error("opening", &path, e))?;
        let held = file.metadata().map_err(|e| io_error("inspecting", &path, e))?;
        kernel::flock::lock(&file).map_err(|e| io_error("locking", &path, e))?;
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

/// The commands of an interface plugin, run as every one of them must
/// run: ADD, DEL and CHECK of one attachment under its lock (a DEL sent
/// while its ADD runs waits for it, then undoes it; DEL removes the lock
/// file), and GC removing the lock files of the attachments it collected.
pub struct Locked(pub cni::skel::Commands);

impl cni::Plugin for Locked {
    fn name(&self) -> &'static str {
        self.0.name
    }
    fn add(&self, ctx: &cni::Context) -> Result<cni::CniResult, Error> {
        let _held = of(ctx)?;
        (self.0.add)(ctx)
    }
    fn del(&self, ctx: &cni::Context) -> Result<(), Error> {
        let held = of(ctx)?;
        let done = (self.0.del)(ctx);
        held.remove();
        done
    }
    fn check(&self, ctx: &cni::Context) -> Result<(), Error> {
        let _held = of(ctx)?;
        (self.0.check)(ctx)
    }
    fn gc(&self, ctx: &cni::Context) -> Result<(), Error> {
        let done = (self.0.gc)(ctx);
        gc_of(ctx);
        done
    }
    fn status(&self, ctx: &cni::Context) -> Result<(), Error> {
        (self.0.status)(ctx)
    }
}

/// GC of the call's network: [`gc`] with the runtime's valid list; no
/// list removes nothing (as every GC).
fn gc_of(ctx: &cni::Context) {
    if let Ok(Some(valid)) = ctx.valid_attachments() {
        gc(&ctx.conf.name, &valid);
    }
}

/// GC: removes the lock files of `network` (in [`LOCK_DIR`]) that belong
/// to no attachment in `valid` and that no call holds now.
pub fn gc(network: &str, valid: &[cni::config::Attachment]) {
    gc_in(Path::new(LOCK_DIR), network, valid)
}

/// [`gc`] with the lock files in `dir`. Failures only leave small files
/// behind, so they are logged, not returned.
fn gc_in(dir: &Path, network: &str, valid: &[cni::config::Attachment]) {
    let keep: std::collections::HashSet<String> =
        valid.iter().map(|a| lock_name(network, &a.container_id, &a.ifname)).collect();
    let net_dir = network_dir(dir, network);
    let Ok(entries) = fs::read_dir(&net_dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep.contains(&name) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
        else {
            continue;
        };
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue; // a call of that attachment runs: not ours to remove
        }
        let same = match (file.metadata(), fs::symlink_metadata(&path)) {
            (Ok(a), Ok(b)) => a.is_file() && a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if same {
            AttachmentLock { file, path }.remove();
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

    #[test]
    fn gc_removes_only_free_lock_files_of_invalid_attachments_of_its_network() {
        let d = tempdir("gc");
        let att = |cid: &str| cni::config::Attachment { container_id: cid.into(), ifname: "eth0".into() };
        for cid in ["valid", "stale", "busy"] {
            drop(lock_in(&d, "net", cid, "eth0").unwrap());
        }
        drop(lock_in(&d, "other", "stale", "eth0").unwrap());
        let busy = lock_in(&d, "net", "busy", "eth0").unwrap();
        gc_in(&d, "net", &[att("valid")]);
        assert!(lock_path(&d, "net", "valid", "eth0").exists());
        assert!(!lock_path(&d, "net", "stale", "eth0").exists());
        assert!(lock_path(&d, "net", "busy", "eth0").exists(), "held by a call: kept");
        assert!(lock_path(&d, "other", "stale", "eth0").exists(), "another network's: kept");
        drop(busy);
        let _ = fs::remove_dir_all(&d);
    }
}
