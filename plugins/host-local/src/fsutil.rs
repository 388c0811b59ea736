//! File primitives the store is built on. A file appears under its final
//! name with its whole content, or not at all, even if the process is
//! killed half-way: leases and index entries are written by
//! `atomic_file` with the options below.
//!
//! No primitive follows a symlink at the name it opens, creates or
//! replaces (`O_NOFOLLOW`, `O_EXCL`, rename over the link itself), so a
//! link planted in the store cannot redirect a write or a read elsewhere.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Mode of every file the store creates (leases, markers, lock, index
/// seal): only root reads or writes them.
pub const FILE_MODE: u32 = 0o600;

/// Name prefix of temp files (`atomic_file` writes them in the
/// index directory); a store treats any such file it finds while holding
/// the lock as the leftover of a killed call.
pub const TEMP_PREFIX: &str = "tmp.";

/// How the store writes a lease: mode 0600, temp file in the index
/// directory (out of the reference plugin's sight), and on disk before
/// the call returns. The data is synced after the rename (one journal
/// commit carries the data and the rename, about half the cost of syncing
/// before); a crash before ADD returns can leave the lease empty, which
/// the store reads as [`crate::store::Lease::Empty`], and nothing was
/// handed out on the strength of it. (Timed as phase `fsync` under
/// `make bench PROFILE=1`.)
pub fn lease_options(index_dir: &Path) -> atomic_file::Options<'_> {
    atomic_file::Options::new(FILE_MODE)
        .durability(atomic_file::Durability::NewOnDisk)
        .temp_in(index_dir)
        .temp_prefix(TEMP_PREFIX)
}

/// How the index writes its entries (symlinks): replaced in one step, not
/// synced (the index is rebuilt from the leases when it is lost).
pub fn index_options(index_dir: &Path) -> atomic_file::Options<'_> {
    atomic_file::Options::new(FILE_MODE).temp_in(index_dir).temp_prefix(TEMP_PREFIX)
}

fn cstring(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has a NUL"))
}

/// Removes a file; one that is already gone counts as removed.
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Sets the modification time of `path` one nanosecond before its current
/// value. Any later change to the directory sets its mtime to the current
/// (coarse) clock, which is never earlier than the old value, so the change
/// shows even when it happens within the same clock tick.
pub fn backdate_mtime(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path)?;
    let (sec, nsec) = match m.mtime_nsec() {
        0 => (m.mtime() - 1, 999_999_999),
        n => (m.mtime(), n - 1),
    };
    let times = [
        libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
        libc::timespec { tv_sec: sec as libc::time_t, tv_nsec: nsec as _ },
    ];
    let c = cstring(path)?;
    // SAFETY: valid path and a two-element timespec array.
    if unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The error for a name that is not a regular file (a planted symlink, a
/// directory, a FIFO): never followed, never trusted. The lock files'
/// module says it the same way.
pub use kernel::flock::not_regular;

/// Whether `e` says the name is not a regular file ([`not_regular`], or
/// `ELOOP` from `O_NOFOLLOW` on a symlink).
pub fn is_not_regular(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData || e.raw_os_error() == Some(libc::ELOOP)
}

/// Reads at most `max` bytes of a regular file; `None` when it does not
/// exist. A symlink is not followed and, like any other file type, is an
/// error ([`is_not_regular`]); `Some` with `max + 1` bytes means the file
/// is larger than `max`.
pub fn read_small(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(not_regular(path)),
        Err(e) => return Err(e),
    };
    if !f.metadata()?.is_file() {
        return Err(not_regular(path));
    }
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    Ok(Some(buf))
}

/// Opens `path` for writing without following a symlink there, creating
/// it with `mode`; a symlink or other non-file planted at the name is
/// removed first (the caller holds the store lock and owns the name).
/// The content is left as it is: callers overwrite it in place.
pub fn open_own(path: &Path, mode: u32) -> io::Result<fs::File> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
    };
    let f = match open() {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            log::warn!("{} was a symlink: replacing it with a file instead of writing through it", path.display());
            remove(path)?;
            open()?
        }
        other => other?,
    };
    if !f.metadata()?.is_file() {
        return Err(not_regular(path));
    }
    Ok(f)
}

/// Replaces the whole content of `f` (from [`open_own`]) with `bytes`:
/// written over the old content, then cut to length. Unlike a truncating
/// open, a rewrite of the same length frees and reallocates no block, so
/// ext4 needs no journal handle for it; a reader racing the two steps (none
/// does: the store lock) could see a torn file.
pub fn rewrite_in_place(f: &fs::File, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(bytes, 0)?;
    f.set_len(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hl-fsutil-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn leases_never_replace_and_leave_no_temp() {
        let d = tempdir("create");
        let idx = d.join(".host-local-index");
        fs::create_dir(&idx).unwrap();
        let t = d.join("10.0.0.2");
        assert!(atomic_file::create_new(&t, b"a\r\neth0", &lease_options(&idx)).unwrap());
        assert!(!atomic_file::create_new(&t, b"b\r\neth0", &lease_options(&idx)).unwrap());
        assert_eq!(fs::read(&t).unwrap(), b"a\r\neth0");
        let l = idx.join("link");
        atomic_file::replace_symlink(&l, "v2=10.0.0.2", &index_options(&idx)).unwrap();
        atomic_file::replace_symlink(&l, "v2=10.0.0.3", &index_options(&idx)).unwrap();
        assert_eq!(fs::read_link(&l).unwrap(), PathBuf::from("v2=10.0.0.3"));
        assert_eq!(fs::read_dir(&idx).unwrap().count(), 1, "no temp file is left in the index");
        remove(&l).unwrap();
        let names: Vec<_> = fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        let before = fs::metadata(&d).unwrap().modified().unwrap();
        backdate_mtime(&d).unwrap();
        let after = fs::metadata(&d).unwrap().modified().unwrap();
        assert_eq!(before.duration_since(after).unwrap(), std::time::Duration::from_nanos(1));
        remove(&t).unwrap();
        assert!(fs::metadata(&d).unwrap().modified().unwrap() > after, "a same-tick change shows");
        remove(&t).unwrap();
        assert_eq!(read_small(&t, 10).unwrap(), None);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn planted_symlinks_are_neither_followed_nor_written_through() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempdir("links");
        let victim = d.join("victim");
        fs::write(&victim, "precious").unwrap();
        let link = d.join("lease");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        // Reading: an error that says so, not the victim's content.
        let e = read_small(&link, 100).unwrap_err();
        assert!(is_not_regular(&e), "{e}");
        // A new lease at the name: refused (the name is taken), victim intact.
        assert!(!atomic_file::create_new(&link, b"c\r\neth0", &lease_options(&d)).unwrap());
        // A marker rewritten in place: the link is replaced, not followed.
        let f = open_own(&link, 0o600).unwrap();
        drop(f);
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_file());
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::metadata(&link).unwrap().permissions().mode() & 0o777, 0o600);
        // A directory is not a regular file either; larger-than-max shows.
        fs::create_dir(d.join("dir")).unwrap();
        assert!(is_not_regular(&read_small(&d.join("dir"), 10).unwrap_err()));
        fs::write(d.join("big"), [b'x'; 20]).unwrap();
        assert_eq!(read_small(&d.join("big"), 10).unwrap().unwrap().len(), 11);
        // A temp name taken by a planted link is skipped.
        let planted = atomic_file::next_temp_path(&d, TEMP_PREFIX);
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        assert!(atomic_file::create_new(&d.join("10.0.0.9"), b"x", &lease_options(&d)).unwrap());
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        fs::remove_dir_all(&d).unwrap();
    }
}
