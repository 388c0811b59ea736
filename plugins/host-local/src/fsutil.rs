//! File primitives the store is built on: a file appears under its final
//! name with its whole content, or not at all, even if the process is
//! killed half-way (the content is written to a temp file first).
//!
//! No primitive follows a symlink at the name it opens, creates or
//! replaces (`O_NOFOLLOW`, `O_EXCL`, rename over the link itself), so a
//! link planted in the store cannot redirect a write or a read elsewhere.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Name prefix of temp files; a store treats any such file it finds while
/// holding the lock as the leftover of a killed call.
pub const TEMP_PREFIX: &str = "tmp.";

/// A temp path in `dir` that no other call uses (pid + counter).
fn temp_path(dir: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{TEMP_PREFIX}{}.{n}", std::process::id()))
}

/// Creates a fresh temp file in `dir` (`O_EXCL|O_NOFOLLOW`: never through
/// a link); a name taken by something planted is skipped.
fn open_temp(dir: &Path, mode: u32) -> io::Result<(PathBuf, fs::File)> {
    let mut tries = 0;
    loop {
        let path = temp_path(dir);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 16 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Writes `content` to a fresh temp file in `dir`; returns its path and
/// the open file (for [`persist`] once it has its final name).
fn write_temp(dir: &Path, content: &[u8], mode: u32) -> io::Result<(PathBuf, fs::File)> {
    let (path, mut f) = open_temp(dir, mode)?;
    if let Err(e) = f.write_all(content) {
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok((path, f))
}

/// Puts a file just renamed to `target` on disk: its data, then the entry
/// in its directory. Syncing the data after the rename lets one journal
/// commit carry both the data and the rename (on ext4 the directory's own
/// sync then finds little left to write): about half the cost of syncing
/// before. A crash before this returns can leave the file empty; the call
/// has not returned then, so nothing was handed out on the strength of it.
/// (Timed as phase `fsync` under `make bench PROFILE=1`.)
fn persist(f: &fs::File, target: &Path) -> io::Result<()> {
    phases::time("fsync", String::new, || {
        f.sync_data()?;
        OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(parent(target))?.sync_all()
    })
}

fn parent(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new("."))
}

fn cstring(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has a NUL"))
}

/// `renameat2(RENAME_NOREPLACE)`: moves `from` to `to` unless `to` exists.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    const RENAME_NOREPLACE: libc::c_uint = 1;
    let (from, to) = (cstring(from)?, cstring(to)?);
    // SAFETY: both pointers are valid NUL-terminated strings for the call.
    let rc = unsafe {
        libc::syscall(libc::SYS_renameat2, libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), RENAME_NOREPLACE)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Creates `target` holding `content` if no file of that name exists:
/// `Ok(true)` when created (file and directory on disk), `Ok(false)` when
/// the name was taken. The temp file lives in `tmp_dir` (same file system
/// as `target`).
pub fn create_new(tmp_dir: &Path, target: &Path, content: &[u8], mode: u32) -> io::Result<bool> {
    let (tmp, f) = write_temp(tmp_dir, content, mode)?;
    let outcome = match rename_noreplace(&tmp, target) {
        Ok(()) => return persist(&f, target).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // File systems without RENAME_NOREPLACE: link() never replaces either.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)) => {
            match fs::hard_link(&tmp, target) {
                Ok(()) => persist(&f, target).map(|()| true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    let _ = fs::remove_file(&tmp);
    outcome
}

/// Replaces (or creates) the file `target` with one holding `content`,
/// in one step and on disk (a temp file in `tmp_dir`, renamed over it).
pub fn replace(tmp_dir: &Path, target: &Path, content: &[u8], mode: u32) -> io::Result<()> {
    let (tmp, f) = write_temp(tmp_dir, content, mode)?;
    if let Err(e) = fs::rename(&tmp, target) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    persist(&f, target)
}

/// Replaces (or creates) the symlink `target` with one to `text`, in one
/// step (a temp symlink in `tmp_dir`, then a rename over the old one).
pub fn replace_symlink(tmp_dir: &Path, target: &Path, text: &str) -> io::Result<()> {
    let tmp = temp_path(tmp_dir);
    std::os::unix::fs::symlink(text, &tmp)?;
    fs::rename(&tmp, target).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
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
pub fn open_own(path: &Path, mode: u32, truncate: bool) -> io::Result<fs::File> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(truncate)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hl-fsutil-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn create_new_never_replaces_and_leaves_no_temp() {
        let d = tempdir("create");
        let t = d.join("10.0.0.2");
        assert!(create_new(&d, &t, b"a\r\neth0", 0o644).unwrap());
        assert!(!create_new(&d, &t, b"b\r\neth0", 0o644).unwrap());
        assert_eq!(fs::read(&t).unwrap(), b"a\r\neth0");
        let names: Vec<_> = fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let l = d.join("link");
        replace_symlink(&d, &l, "v2=10.0.0.2").unwrap();
        replace_symlink(&d, &l, "v2=10.0.0.3").unwrap();
        assert_eq!(fs::read_link(&l).unwrap(), PathBuf::from("v2=10.0.0.3"));
        remove(&l).unwrap();
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
        assert!(!create_new(&d, &link, b"c\r\neth0", 0o600).unwrap());
        // A marker rewritten in place: the link is replaced, not followed.
        let f = open_own(&link, 0o600, true).unwrap();
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
        let planted = temp_path(&d);
        let next = planted.file_name().unwrap().to_string_lossy().rsplit_once('.').unwrap().1.parse::<u64>().unwrap();
        let base = planted.to_string_lossy().rsplit_once('.').unwrap().0.to_string();
        for n in 1..=4 {
            std::os::unix::fs::symlink(&victim, format!("{base}.{}", next + n)).unwrap();
        }
        assert!(create_new(&d, &d.join("10.0.0.9"), b"x", 0o600).unwrap());
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        fs::remove_dir_all(&d).unwrap();
    }
}
