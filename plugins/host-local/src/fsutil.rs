//! File primitives the store is built on: a file appears under its final
//! name with its whole content, or not at all, even if the process is
//! killed half-way (the content is written to a temp file first).

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

/// Writes `content` to a fresh temp file in `dir` and returns its path.
fn write_temp(dir: &Path, content: &[u8], mode: u32) -> io::Result<PathBuf> {
    let path = temp_path(dir);
    let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&path)?;
    if let Err(e) = f.write_all(content) {
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
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
/// `Ok(true)` when created, `Ok(false)` when the name was taken. The temp
/// file lives in `tmp_dir` (same file system as `target`).
pub fn create_new(tmp_dir: &Path, target: &Path, content: &[u8], mode: u32) -> io::Result<bool> {
    let tmp = write_temp(tmp_dir, content, mode)?;
    let outcome = match rename_noreplace(&tmp, target) {
        Ok(()) => return Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // File systems without RENAME_NOREPLACE: link() never replaces either.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)) => {
            match fs::hard_link(&tmp, target) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    let _ = fs::remove_file(&tmp);
    outcome
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
    let m = fs::metadata(path)?;
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
    if unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads at most `max` bytes of a file; `None` when it does not exist.
pub fn read_small(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    Ok(Some(buf))
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
}
