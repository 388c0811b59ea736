//! Lock files: the one way the suite opens and `flock(2)`s a file that
//! serialises calls (attachment locks, host-local's store, dnsname's
//! network lock, the firewall's setup lock, vxlan's namespace lock).
//!
//! A lock file lives in a root-owned directory under `/run` or a data
//! directory, so it is opened as an attacker would least like: created
//! mode 0600, never through a symlink (`O_NOFOLLOW`: a planted link could
//! make root create or lock a file elsewhere), never blocking on a FIFO
//! planted at the name (`O_NONBLOCK`), not inherited by children
//! (`O_CLOEXEC`), and refused when it is not a regular file. The lock is
//! held by the open file description, so dropping the `File` (or the
//! process dying, even by SIGKILL) releases it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The error for a lock path that is a symlink or not a regular file.
pub fn not_regular(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{} is not a regular file", path.display()))
}

/// Opens the lock file at `path`, creating it (mode 0600) when missing,
/// never through a symlink; a name that is not a regular file is
/// [`not_regular`].
pub fn open(path: &Path) -> io::Result<File> {
    // Read-only: a lock needs no write access (std's `create` would ask
    // for it, so O_CREAT goes in as a flag; the mode is passed regardless).
    let file = OpenOptions::new()
        .read(true)
        .mode(0o600)
        .custom_flags(libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| if e.raw_os_error() == Some(libc::ELOOP) { not_regular(path) } else { e })?;
    if !file.metadata()?.is_file() {
        return Err(not_regular(path));
    }
    Ok(file)
}

/// Blocks until `file` holds an exclusive `flock` (retrying when a signal
/// interrupts the wait).
pub fn lock(file: &File) -> io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor the caller owns for the call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// [`open`] then [`lock`]: the lock file at `path`, held until dropped
/// (the tests' shorthand).
#[cfg(test)]
fn open_locked(path: &Path) -> io::Result<File> {
    let file = open(path)?;
    lock(&file)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn tempdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("kernel-flock-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn busy(path: &Path) -> bool {
        let f = File::open(path).unwrap();
        // SAFETY: flock on a descriptor we own.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
    }

    #[test]
    fn creates_0600_and_excludes_until_dropped() {
        let d = tempdir("excl");
        let p = d.join("lock");
        let held = open_locked(&p).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        // Opened read-only: no write access is asked for.
        // SAFETY: F_GETFL on a descriptor we own.
        let fl = unsafe { libc::fcntl(held.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(fl & libc::O_ACCMODE, libc::O_RDONLY);
        assert!(busy(&p), "a second open file description must not get the lock");
        drop(held);
        assert!(!busy(&p));
        // An existing lock file is reused, not truncated or replaced.
        drop(open_locked(&p).unwrap());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn refuses_a_symlink_a_directory_and_a_fifo() {
        let d = tempdir("refuse");
        let target = d.join("target");
        std::os::unix::fs::symlink(&target, d.join("link")).unwrap();
        let e = open(&d.join("link")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert!(!target.exists(), "nothing is created through the link");
        fs::create_dir(d.join("dir")).unwrap();
        assert!(open(&d.join("dir")).is_err());
        let fifo = std::ffi::CString::new(d.join("fifo").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let e = open(&d.join("fifo")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        let _ = fs::remove_dir_all(&d);
    }
}
