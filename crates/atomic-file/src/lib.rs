//! Atomic files: the one way the suite writes a file that a reader (a
//! runtime exec'ing a binary, a plugin reading a lease, a daemon restarted
//! at any moment) must see whole or not at all. The content goes to a
//! fresh temp file beside the target, which is then renamed over it, so a
//! reader sees the old file or the new one, never a part, even when the
//! writer is killed half-way.
//!
//! What the sites differ in is an [`Options`]: the file's mode (applied
//! exactly, whatever the umask), whether the name may already exist
//! ([`create_new`] never replaces: host-local's leases, where replacing
//! would hand one address out twice), where the temp file lives and how it
//! is named (so a site's own sweep can find the leftover of a killed
//! writer), and how durable the write is ([`Durability`]).
//!
//! Every temp file is created `O_EXCL|O_NOFOLLOW` under a name unique to
//! this process and write (pid and a counter); a name already taken (a
//! leftover of a killed process that had our pid, or something planted)
//! is skipped and left alone, never followed, never removed (it may be a
//! live writer's in another pid namespace). A write that fails removes its
//! own temp file. The rename replaces a symlink at the target, never
//! writes through it.
//!
//! Cost of durability, p50 of 20 new 30-byte files on ext4 (the shared
//! 2-core test VM's virtio disk under a load of 14; the unit test
//! `durability_costs` prints it): no sync 57 µs, [`Durability::Contents`]
//! 6.5 ms, [`Durability::OnDisk`] 11.4 ms, [`Durability::NewOnDisk`]
//! 8.1 ms: a sync costs a hundred times the write. Syncing the data after
//! the rename lets one journal commit carry both the data and the rename,
//! so the directory's sync then finds little left. Sites whose files a
//! reboot ends anyway (state under `/run`, a tmpfs) ask for
//! [`Durability::None`].
//!
//! A crate of its own (libc, log and the phase probes only) rather than a
//! module of `kernel`: cni-install and cnitool write files this way too,
//! and depending on `kernel` would bring them its 38 more crates (tokio,
//! rtnetlink, nftnl) and, in the `pkgtest` profile, 27% more cni-install
//! (625 -> 796 KB) and 12% more cnitool.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How much of a write is on disk when the call returns (what a power
/// loss or kernel crash can take back; a killed process never leaves a
/// part in any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// No sync: the whole-or-old guarantee for readers only. For state a
    /// reboot ends anyway (`/run` is a tmpfs) or a cache whose loss costs
    /// a rebuild.
    None,
    /// The file is fsynced (data and metadata, the mode included) before
    /// the rename, so after a crash the target holds the old content or
    /// the new, whole; the rename itself may be lost until the directory is
    /// synced, which the caller does once after several writes
    /// ([`sync_dir`]: cni-install's many binaries).
    Contents,
    /// [`Durability::Contents`], then the directory is fsynced: the new
    /// file is on disk before the call returns, and a crash before then
    /// leaves the old one whole.
    OnDisk,
    /// The rename first, then `fdatasync` of the file and fsync of the
    /// directory: on disk before the call returns, at about half the cost
    /// of [`Durability::OnDisk`]. A crash before the return can leave the
    /// target empty, so only for a reader that handles an empty file and a
    /// caller that hands out nothing before the return (host-local's
    /// leases, whose store reads an empty lease as never handed out).
    NewOnDisk,
}

/// How one site writes its files (see the module's opening paragraph).
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    mode: u32,
    durability: Durability,
    temp_dir: Option<&'a Path>,
    temp_prefix: &'a str,
}

impl<'a> Options<'a> {
    /// A file of permission bits `mode`, not synced, its temp file beside
    /// the target named `.tmp.<pid>.<n>`.
    pub const fn new(mode: u32) -> Options<'a> {
        Options { mode, durability: Durability::None, temp_dir: None, temp_prefix: ".tmp." }
    }

    /// How durable the write is.
    pub const fn durability(self, durability: Durability) -> Options<'a> {
        Options { durability, ..self }
    }

    /// Puts the temp file in `dir` (on the target's file system) instead of
    /// beside the target: a store whose directory another program scans
    /// (host-local's, which the reference plugin reads) keeps it out of
    /// sight.
    pub const fn temp_in(self, dir: &'a Path) -> Options<'a> {
        Options { temp_dir: Some(dir), ..self }
    }

    /// Names the temp file `<prefix><pid>.<n>`, so the site's sweep of a
    /// killed writer's leftovers recognises it.
    pub const fn temp_prefix(self, prefix: &'a str) -> Options<'a> {
        Options { temp_prefix: prefix, ..self }
    }

    fn temp_dir_for(&self, target: &'a Path) -> &'a Path {
        self.temp_dir.unwrap_or_else(|| parent(target))
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_name(dir: &Path, prefix: &str, n: u64) -> PathBuf {
    dir.join(format!("{prefix}{}.{n}", std::process::id()))
}

/// The name the next write of this process with `prefix` into `dir` tries
/// first: for a test that plants something there.
pub fn next_temp_path(dir: &Path, prefix: &str) -> PathBuf {
    temp_name(dir, prefix, COUNTER.load(Ordering::Relaxed))
}

/// Tries this many names before giving up (each taken one was planted or
/// left by a killed process with our pid: never many).
const TEMP_TRIES: u32 = 16;

/// Creates a fresh temp file (`O_EXCL|O_NOFOLLOW`); a taken name is
/// skipped.
fn open_temp(o: &Options, target: &Path) -> io::Result<(PathBuf, File)> {
    let dir = o.temp_dir_for(target);
    let mut tries = 0;
    loop {
        let path = temp_name(dir, o.temp_prefix, COUNTER.fetch_add(1, Ordering::Relaxed));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(o.mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries + 1 < TEMP_TRIES => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The temp file with `content` and exactly `mode` (the umask may have
/// cleared bits), synced when the durability asks it before the rename.
/// On error the temp file is gone. The file comes back open only when it
/// is synced after the rename ([`Durability::NewOnDisk`]): otherwise it is
/// closed before the rename, so that nobody exec'ing the target ever finds
/// it open for writing (`ETXTBSY`: cni-install replaces binaries that are
/// being exec'd).
fn write_temp(o: &Options, target: &Path, content: &[u8]) -> io::Result<(PathBuf, Option<File>)> {
    let (path, mut f) = open_temp(o, target)?;
    let filled = (|| {
        f.write_all(content)?;
        f.set_permissions(fs::Permissions::from_mode(o.mode))?;
        if matches!(o.durability, Durability::Contents | Durability::OnDisk) {
            phases::time("fsync", String::new, || f.sync_all())?;
        }
        Ok(())
    })();
    match filled {
        Ok(()) => Ok((path, (o.durability == Durability::NewOnDisk).then_some(f))),
        Err(e) => {
            let _ = fs::remove_file(&path);
            Err(e)
        }
    }
}

/// What the durability asks once the file has its final name.
fn after_rename(o: &Options, f: Option<&File>, target: &Path) -> io::Result<()> {
    match (o.durability, f) {
        (Durability::OnDisk, _) => phases::time("fsync", String::new, || sync_dir(parent(target))),
        (Durability::NewOnDisk, Some(f)) => phases::time("fsync", String::new, || {
            f.sync_data()?;
            sync_dir(parent(target))
        }),
        _ => Ok(()),
    }
}

/// Replaces (or creates) `target` with a file holding `content`, in one
/// step; a symlink at `target` is replaced, not followed.
pub fn replace(target: &Path, content: &[u8], o: &Options) -> io::Result<()> {
    let (tmp, f) = write_temp(o, target, content)?;
    if let Err(e) = fs::rename(&tmp, target) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    after_rename(o, f.as_ref(), target)
}

/// Creates `target` holding `content` unless the name exists (anything at
/// it, a symlink included, is never replaced nor followed): `Ok(true)` when
/// created, `Ok(false)` when the name was taken.
pub fn create_new(target: &Path, content: &[u8], o: &Options) -> io::Result<bool> {
    let (tmp, f) = write_temp(o, target, content)?;
    let outcome = match rename_noreplace(&tmp, target) {
        Ok(()) => return after_rename(o, f.as_ref(), target).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // File systems without RENAME_NOREPLACE: link() never replaces either.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)) => {
            match fs::hard_link(&tmp, target) {
                Ok(()) => after_rename(o, f.as_ref(), target).map(|()| true),
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
/// step (a temp symlink, then a rename over the old one); the mode is not
/// used, the durability is.
pub fn replace_symlink(target: &Path, text: &str, o: &Options) -> io::Result<()> {
    let dir = o.temp_dir_for(target);
    let mut tries = 0;
    let tmp = loop {
        let tmp = temp_name(dir, o.temp_prefix, COUNTER.fetch_add(1, Ordering::Relaxed));
        match std::os::unix::fs::symlink(text, &tmp) {
            Ok(()) => break tmp,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries + 1 < TEMP_TRIES => tries += 1,
            Err(e) => return Err(e),
        }
    };
    if let Err(e) = fs::rename(&tmp, target) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    match o.durability {
        Durability::None => Ok(()),
        _ => phases::time("fsync", String::new, || sync_dir(parent(target))),
    }
}

/// How old a temp file must be before [`sweep_stale`] takes it for a
/// killed writer's: a write holds its temp file for milliseconds, so an
/// hour-old one has no live writer, whatever pid namespace it was in.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether `name` is a temp name of this crate: `.tmp.<pid>.<n>` (the
/// default prefix) or `.<anything>.tmp.<pid>.<n>` (a site's own prefix
/// ending in `.tmp.`, like vxlan's and the runtime cache's).
fn is_temp_name(name: &[u8]) -> bool {
    let Ok(name) = std::str::from_utf8(name) else { return false };
    let mut parts = name.rsplitn(3, '.');
    let (Some(n), Some(pid), Some(rest)) = (parts.next(), parts.next(), parts.next()) else { return false };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(n) && digits(pid) && name.starts_with('.') && (rest == ".tmp" || rest.ends_with(".tmp"))
}

/// Removes from `dir` the temp files that writers killed between the
/// create and the rename left there: regular files with a temp name
/// ([`Options::temp_prefix`] ending in `.tmp.`, the default included) not
/// changed for `min_age` ([`STALE_AFTER`] for a real sweep). Nothing is
/// followed; a missing directory is nothing to do. For sites without a
/// lock of their own, from their GC. Returns the names removed.
pub fn sweep_stale(dir: &Path, min_age: std::time::Duration) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let now = std::time::SystemTime::now();
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry?;
        if !is_temp_name(entry.file_name().as_bytes()) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let old = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).is_some_and(|age| age >= min_age);
        if meta.file_type().is_file() && old {
            match fs::remove_file(entry.path()) {
                Ok(()) => removed.push(entry.path()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// [`sweep_stale`] with [`STALE_AFTER`], for a GC that must not fail on
/// it: what is removed, or why the sweep could not run, is logged.
pub fn sweep_stale_logged(dir: &Path) {
    match sweep_stale(dir, STALE_AFTER) {
        Ok(removed) => removed.iter().for_each(|p| log::info!("removed {}, a killed write's leftover", p.display())),
        Err(e) => log::warn!("sweeping the leftover temp files of {}: {e}", dir.display()),
    }
}

/// fsyncs a directory, so the renames into it survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(dir)?.sync_all()
}

fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn cstring(p: &Path) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has a NUL"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("atomic-file-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<_> = fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        v.sort();
        v
    }

    #[test]
    fn temp_names_are_the_default_prefix_or_a_site_prefix_ending_in_tmp() {
        for yes in [".tmp.12.0", ".state.json.tmp.345.17", ".net1-c1-eth0.tmp.9.3"] {
            assert!(is_temp_name(yes.as_bytes()), "{yes}");
        }
        for no in
            ["state.json", ".tmp.", ".tmp.12", ".tmp.12.x", "x.tmp.1.2", ".hl-tmp.1.2", ".tmp.1.2.json", "10.1.2.3"]
        {
            assert!(!is_temp_name(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn the_sweep_removes_only_old_temp_files() {
        let d = tempdir("sweep");
        let old = |name: &str| {
            let p = d.join(name);
            fs::write(&p, "half").unwrap();
            let an_hour_ago = std::time::SystemTime::now() - STALE_AFTER - std::time::Duration::from_secs(60);
            File::options().write(true).open(&p).unwrap().set_modified(an_hour_ago).unwrap();
            p
        };
        let gone = [old(".peers.json.tmp.77.3"), old(".tmp.1.0")];
        old("state.json");
        fs::write(d.join(".tmp.2.0"), "a live writer's").unwrap();
        let victim = d.join("victim");
        fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, d.join(".tmp.3.0")).unwrap();
        let mut removed = sweep_stale(&d, STALE_AFTER).unwrap();
        removed.sort();
        assert_eq!(removed, gone);
        assert_eq!(names(&d), [".tmp.2.0", ".tmp.3.0", "state.json", "victim"]);
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(sweep_stale(&d.join("missing"), STALE_AFTER).unwrap().is_empty());
    }

    #[test]
    fn a_leftover_temp_is_skipped_never_followed_and_no_temp_is_left() {
        let d = tempdir("leftover");
        let victim = d.join("victim");
        fs::write(&victim, "precious").unwrap();
        // A killed writer's leftover and a planted link at the next names.
        let o = Options::new(0o644).temp_prefix(".t.");
        let next = next_temp_path(&d, ".t.");
        fs::write(&next, "half").unwrap();
        let base = next.to_string_lossy().rsplit_once('.').unwrap().0.to_string();
        let n: u64 = next.to_string_lossy().rsplit_once('.').unwrap().1.parse().unwrap();
        for k in 1..4 {
            std::os::unix::fs::symlink(&victim, format!("{base}.{}", n + k)).unwrap();
        }
        replace(&d.join("state.json"), b"new", &o).unwrap();
        assert_eq!(fs::read(d.join("state.json")).unwrap(), b"new");
        assert_eq!(fs::read(&victim).unwrap(), b"precious", "no write through a planted link");
        assert_eq!(fs::read(&next).unwrap(), b"half", "a leftover is the site's sweep's to remove");
        // Nothing of ours is left beside the target.
        let ours: Vec<_> = names(&d).into_iter().filter(|x| x.starts_with(".t.")).collect();
        assert_eq!(ours.len(), 4, "only the planted four: {ours:?}");
        // A failing write (the target is a directory) leaves no temp either.
        fs::create_dir(d.join("dir")).unwrap();
        fs::write(d.join("dir/x"), "").unwrap();
        assert!(replace(&d.join("dir"), b"x", &o).is_err());
        assert_eq!(names(&d).into_iter().filter(|x| x.starts_with(".t.")).count(), 4);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn create_new_refuses_an_existing_name_and_a_symlink_there() {
        let d = tempdir("noreplace");
        let o = Options::new(0o600).durability(Durability::NewOnDisk).temp_in(&d).temp_prefix("tmp.");
        let store = d.join("store");
        fs::create_dir(&store).unwrap();
        let t = store.join("10.0.0.2");
        assert!(create_new(&t, b"a", &o).unwrap());
        assert!(!create_new(&t, b"b", &o).unwrap());
        assert_eq!(fs::read(&t).unwrap(), b"a");
        // A symlink at the name: taken, never followed nor replaced.
        let victim = d.join("victim");
        fs::write(&victim, "precious").unwrap();
        let l = store.join("10.0.0.3");
        std::os::unix::fs::symlink(&victim, &l).unwrap();
        assert!(!create_new(&l, b"c", &o).unwrap());
        assert!(fs::symlink_metadata(&l).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        // replace(), by contrast, replaces the link itself.
        replace(&l, b"d", &o).unwrap();
        assert!(fs::symlink_metadata(&l).unwrap().file_type().is_file());
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        // The temp files lived in `d` and are all gone.
        assert_eq!(names(&d), ["store", "victim"]);
        assert_eq!(names(&store), ["10.0.0.2", "10.0.0.3"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_mode_is_exactly_the_one_asked_whatever_the_umask() {
        // Group and other write bits, which the usual umask (022) clears at
        // creation: only the explicit chmod keeps them. (The umask itself is
        // process-wide, so a test does not change it under its neighbours.)
        let d = tempdir("mode");
        let (a, b, c) = (d.join("bin"), d.join("conf"), d.join("lease"));
        replace(&a, b"#!", &Options::new(0o775).durability(Durability::Contents)).unwrap();
        replace(&b, b"{}", &Options::new(0o664).durability(Durability::OnDisk)).unwrap();
        assert!(create_new(&c, b"x", &Options::new(0o600)).unwrap());
        let m = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!((m(&a), m(&b), m(&c)), (0o775, 0o664, 0o600));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_symlink_is_replaced_in_one_step() {
        let d = tempdir("symlink");
        let o = Options::new(0o600).temp_prefix("tmp.");
        let l = d.join("link");
        replace_symlink(&l, "v2=10.0.0.2", &o).unwrap();
        replace_symlink(&l, "v2=10.0.0.3", &o).unwrap();
        assert_eq!(fs::read_link(&l).unwrap(), PathBuf::from("v2=10.0.0.3"));
        assert_eq!(names(&d), ["link"]);
        fs::remove_dir_all(&d).unwrap();
    }

    /// Prints what each durability costs here (the figures in the module's
    /// opening paragraph); asserts only that every write landed.
    #[test]
    fn durability_costs() {
        let d = std::env::var_os("CARGO_TARGET_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
            .join(format!("kernel-atomic-cost-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        for dur in [Durability::None, Durability::Contents, Durability::OnDisk, Durability::NewOnDisk] {
            let o = Options::new(0o600).durability(dur);
            let mut times = Vec::new();
            for i in 0..20 {
                let t = std::time::Instant::now();
                assert!(create_new(&d.join(format!("{dur:?}-{i}")), b"0123456789abcdef0123456789abcd", &o).unwrap());
                times.push(t.elapsed());
            }
            times.sort();
            eprintln!("atomic_file {dur:?}: p50 {:?}", times[times.len() / 2]);
        }
        fs::remove_dir_all(&d).unwrap();
    }
}
