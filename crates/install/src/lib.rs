//! Installing plugin binaries and a network config onto a live node.
//!
//! A runtime may exec any plugin at any moment, also while a DaemonSet's init
//! container or a config-management run upgrades `/opt/cni/bin`. Writing over
//! a binary in place fails with "text file busy" while it runs, and a runtime
//! that execs a half-written file fails the pod. So every file is written to
//! a temporary file in the target directory, fsynced, and renamed over the
//! old one: an exec sees the old binary or the new one, whole. The directory
//! is fsynced after the renames, so a crash leaves either version on disk.
//! (The write is `atomic_file`'s, with `Durability::Contents`.)

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Marks our temporary files: `.<name>.cni-install-<pid>.<n>` (and
/// `.<name>.cni-install-<pid>` from older releases).
const TMP_MARK: &str = ".cni-install-";

/// Mode of an installed binary.
const BIN_MODE: u32 = 0o755;
/// Mode of an installed network config (the runtime reads it, nobody execs it).
const CONF_MODE: u32 = 0o644;

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The target did not exist, or differed: written and renamed into place.
    Installed,
    /// The target already had these bytes and this mode: left alone.
    Unchanged,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Installed => "installed",
            Action::Unchanged => "unchanged",
        })
    }
}

/// An error with the path it concerns, so the operator knows which file.
#[derive(Debug)]
pub struct InstallError {
    /// What was being done, with the path.
    pub what: String,
    /// The system error.
    pub source: io::Error,
}

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for InstallError {}

fn ctx<T>(r: io::Result<T>, what: impl FnOnce() -> String) -> Result<T, InstallError> {
    r.map_err(|source| InstallError { what: what(), source })
}

/// An exclusive `flock` on a directory, held while we write into it, so two
/// installers never interleave and our leftover temp files are ours to clear.
struct DirLock {
    _dir: File,
}

impl DirLock {
    /// Takes the lock on `dir`, waiting for another installer to finish.
    pub fn take(dir: &Path) -> Result<DirLock, InstallError> {
        let f = ctx(File::open(dir), || format!("opening {}", dir.display()))?;
        // SAFETY: flock on a file descriptor we own for the life of `f`.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(InstallError {
                what: format!("locking {}", dir.display()),
                source: io::Error::last_os_error(),
            });
        }
        Ok(DirLock { _dir: f })
    }
}

/// Whether `target` is a regular file (not a symlink) holding exactly `data`
/// with permission bits `mode`.
fn same_file(target: &Path, data: &[u8], mode: u32) -> bool {
    let Ok(meta) = fs::symlink_metadata(target) else { return false };
    if !meta.file_type().is_file() || meta.len() != data.len() as u64 || meta.mode() & 0o7777 != mode {
        return false;
    }
    let Ok(mut f) = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(target) else {
        return false;
    };
    let mut buf = Vec::with_capacity(data.len());
    f.read_to_end(&mut buf).is_ok() && buf == data
}

/// Writes `data` as `dir/name` with exactly `mode` through a temporary
/// file in `dir` (`atomic_file`: fsynced, then renamed over the old
/// file), unless it already holds exactly that. The caller fsyncs `dir`
/// afterwards, once for all its files ([`sync_dir`]).
fn replace_file(dir: &Path, name: &str, data: &[u8], mode: u32) -> Result<Action, InstallError> {
    let target = dir.join(name);
    if same_file(&target, data, mode) {
        return Ok(Action::Unchanged);
    }
    let prefix = format!(".{name}{TMP_MARK}");
    let o = atomic_file::Options::new(mode).durability(atomic_file::Durability::Contents).temp_prefix(&prefix);
    ctx(atomic_file::replace(&target, data, &o), || format!("installing {}", target.display()))?;
    Ok(Action::Installed)
}

/// fsyncs a directory, so the renames into it survive a crash.
fn sync_dir(dir: &Path) -> Result<(), InstallError> {
    ctx(atomic_file::sync_dir(dir), || format!("syncing {}", dir.display()))
}

/// Removes our temporary files that a killed run left in `dir` (call it
/// with the [`DirLock`] held).
fn remove_leftovers(dir: &Path) -> Result<Vec<PathBuf>, InstallError> {
    let mut removed = Vec::new();
    for entry in ctx(fs::read_dir(dir), || format!("reading {}", dir.display()))? {
        let entry = ctx(entry, || format!("reading {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = name.starts_with('.')
            && name
                .rsplit_once(TMP_MARK)
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
        if ours && entry.file_type().is_ok_and(|t| t.is_file()) {
            ctx(fs::remove_file(entry.path()), || format!("removing {}", entry.path().display()))?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

/// The binaries to install from `from`: its regular files (symlinks
/// followed) with an execute bit, not hidden, sorted by name. LICENSE,
/// INSTALL and the like beside them in a release tarball are skipped.
fn binaries_in(from: &Path) -> Result<Vec<String>, InstallError> {
    let mut names = Vec::new();
    for entry in ctx(fs::read_dir(from), || format!("reading {}", from.display()))? {
        let entry = ctx(entry, || format!("reading {}", from.display()))?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let meta = ctx(fs::metadata(entry.path()), || format!("reading {}", entry.path().display()))?;
        if meta.is_file() && meta.mode() & 0o111 != 0 {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Installs every binary of `from` into `to` (created if missing), each
/// replaced atomically, under `to`'s lock. Returns what happened to each.
fn install_binaries(from: &Path, to: &Path) -> Result<Vec<(String, Action)>, InstallError> {
    let names = binaries_in(from)?;
    if names.is_empty() {
        return Err(InstallError {
            what: format!("{} holds no executable file", from.display()),
            source: io::Error::from(io::ErrorKind::NotFound),
        });
    }
    ctx(fs::create_dir_all(to), || format!("creating {}", to.display()))?;
    let _lock = DirLock::take(to)?;
    remove_leftovers(to)?;
    let mut done = Vec::new();
    for name in names {
        let src = from.join(&name);
        let data = ctx(fs::read(&src), || format!("reading {}", src.display()))?;
        done.push((name.clone(), replace_file(to, &name, &data, BIN_MODE)?));
    }
    sync_dir(to)?;
    Ok(done)
}

/// Installs the network config `file` into `conf_dir` under its own file
/// name, atomically and only if it changed. It must parse as a conflist
/// (`.conflist`) or a single config (`.conf`, `.json`), so a broken file
/// never replaces a working one.
fn install_conf(file: &Path, conf_dir: &Path) -> Result<(String, Action), InstallError> {
    let data = ctx(fs::read(file), || format!("reading {}", file.display()))?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| InstallError {
            what: format!("{}: no file name", file.display()),
            source: io::Error::from(io::ErrorKind::InvalidInput),
        })?
        .to_string();
    let single = !name.ends_with(".conflist");
    cni::NetConfList::from_bytes(&data, single).map_err(|e| InstallError {
        what: format!("{}: not a valid network config ({})", file.display(), e.msg),
        source: io::Error::from(io::ErrorKind::InvalidData),
    })?;
    ctx(fs::create_dir_all(conf_dir), || format!("creating {}", conf_dir.display()))?;
    let _lock = DirLock::take(conf_dir)?;
    remove_leftovers(conf_dir)?;
    let action = replace_file(conf_dir, &name, &data, CONF_MODE)?;
    sync_dir(conf_dir)?;
    Ok((name, action))
}

/// The command line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--from DIR`: where the new binaries are.
    pub from: PathBuf,
    /// `--to DIR`: the runtime's plugin directory.
    pub to: PathBuf,
    /// `--conflist FILE`: a network config to install too.
    pub conflist: Option<PathBuf>,
    /// `--conf-dir DIR`: where it goes (default `/etc/cni/net.d`).
    pub conf_dir: PathBuf,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Install.
    Install(Options),
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// The usage text.
pub const USAGE: &str = "\
cni-install: install CNI plugin binaries (and a network config) onto a node while
runtimes keep exec'ing the plugins: each file is written to a temporary file in
the target directory, fsynced, and renamed over the old one.

Usage:
  cni-install --from DIR --to DIR [--conflist FILE [--conf-dir DIR]]

Options:
  --from DIR       directory holding the new binaries (every executable file)
  --to DIR         the runtime's plugin directory, e.g. /opt/cni/bin
  --conflist FILE  also install this network config (only written if changed;
                   refused if it does not parse)
  --conf-dir DIR   where the config goes (default /etc/cni/net.d)
  --version        show the version and git commit of this build
  -h, --help       show this text
";

/// Parses the arguments after the program name.
pub fn parse_args(args: &[String]) -> Result<Request, String> {
    let (mut from, mut to, mut conflist, mut conf_dir) = (None, None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let slot = match key {
            "-h" | "--help" => return Ok(Request::Help),
            "--version" => return Ok(Request::Version),
            "--from" => &mut from,
            "--to" => &mut to,
            "--conflist" => &mut conflist,
            "--conf-dir" => &mut conf_dir,
            other => return Err(format!("unknown argument {other:?}")),
        };
        let value = match inline {
            Some(v) => v,
            None => it.next().cloned().ok_or_else(|| format!("{key} needs a value"))?,
        };
        if value.is_empty() {
            return Err(format!("{key} needs a value"));
        }
        *slot = Some(PathBuf::from(value));
    }
    let from = from.ok_or("--from is required")?;
    let to = to.ok_or("--to is required")?;
    if conf_dir.is_some() && conflist.is_none() {
        return Err("--conf-dir needs --conflist".into());
    }
    Ok(Request::Install(Options {
        from,
        to,
        conflist,
        conf_dir: conf_dir.unwrap_or_else(|| PathBuf::from("/etc/cni/net.d")),
    }))
}

/// Runs an install: the binaries, then the config (so a config never names
/// a plugin that is not there yet). Returns one line per file.
pub fn run(opts: &Options) -> Result<Vec<String>, InstallError> {
    let mut lines = Vec::new();
    for (name, action) in install_binaries(&opts.from, &opts.to)? {
        lines.push(format!("{action} {}", opts.to.join(name).display()));
    }
    if let Some(file) = &opts.conflist {
        let (name, action) = install_conf(file, &opts.conf_dir)?;
        lines.push(format!("{action} {}", opts.conf_dir.join(name).display()));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_the_command_line() {
        let Request::Install(o) = parse_args(&args("--from a --to b")).unwrap() else { panic!() };
        assert_eq!((o.from, o.to, o.conflist), (PathBuf::from("a"), PathBuf::from("b"), None));
        assert_eq!(o.conf_dir, PathBuf::from("/etc/cni/net.d"));
        let Request::Install(o) = parse_args(&args("--from=a --to b --conflist c.conflist --conf-dir=d")).unwrap()
        else {
            panic!()
        };
        assert_eq!((o.conflist, o.conf_dir), (Some(PathBuf::from("c.conflist")), PathBuf::from("d")));
        assert_eq!(parse_args(&args("--version")), Ok(Request::Version));
        assert_eq!(parse_args(&args("--from a -h")), Ok(Request::Help));
        assert!(parse_args(&args("--from a")).unwrap_err().contains("--to"));
        assert!(parse_args(&args("--to a")).unwrap_err().contains("--from"));
        assert!(parse_args(&args("--from a --to")).unwrap_err().contains("needs a value"));
        assert!(parse_args(&args("--from a --to b --conf-dir d")).unwrap_err().contains("--conflist"));
        assert!(parse_args(&args("--from a --to b x")).unwrap_err().contains("unknown"));
    }

    fn exe(dir: &Path, name: &str, data: &[u8]) {
        let p = dir.join(name);
        fs::write(&p, data).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn installs_changed_binaries_and_leaves_the_rest() {
        let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        exe(src.path(), "bridge", b"one");
        exe(src.path(), "loopback", b"two");
        fs::write(src.path().join("LICENSE"), "text").unwrap();
        let done = install_binaries(src.path(), dst.path()).unwrap();
        assert_eq!(done, vec![("bridge".into(), Action::Installed), ("loopback".into(), Action::Installed)]);
        assert!(!dst.path().join("LICENSE").exists());
        assert_eq!(fs::metadata(dst.path().join("bridge")).unwrap().mode() & 0o7777, BIN_MODE);

        exe(src.path(), "bridge", b"one, new");
        let done = install_binaries(src.path(), dst.path()).unwrap();
        assert_eq!(done, vec![("bridge".into(), Action::Installed), ("loopback".into(), Action::Unchanged)]);
        assert_eq!(fs::read(dst.path().join("bridge")).unwrap(), b"one, new");
        // Nothing but the binaries: no temp file, no lock file.
        let mut left: Vec<_> = fs::read_dir(dst.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left, vec!["bridge", "loopback"]);
    }

    #[test]
    fn a_symlink_at_the_target_is_replaced_not_followed() {
        let (src, dst, other) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        exe(src.path(), "bridge", b"new");
        exe(other.path(), "bridge", b"old");
        std::os::unix::fs::symlink(other.path().join("bridge"), dst.path().join("bridge")).unwrap();
        install_binaries(src.path(), dst.path()).unwrap();
        assert!(fs::symlink_metadata(dst.path().join("bridge")).unwrap().file_type().is_file());
        assert_eq!(fs::read(other.path().join("bridge")).unwrap(), b"old");
    }

    #[test]
    fn leftovers_of_a_killed_run_are_removed() {
        let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        exe(src.path(), "bridge", b"one");
        fs::write(dst.path().join(".bridge.cni-install-4242"), "half").unwrap();
        fs::write(dst.path().join(".bridge.cni-install-4243.7"), "half").unwrap();
        fs::write(dst.path().join(".keep-me"), "theirs").unwrap();
        install_binaries(src.path(), dst.path()).unwrap();
        assert!(!dst.path().join(".bridge.cni-install-4242").exists());
        assert!(!dst.path().join(".bridge.cni-install-4243.7").exists());
        assert!(dst.path().join(".keep-me").exists());
    }

    #[test]
    fn an_empty_source_is_an_error() {
        let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let e = install_binaries(src.path(), dst.path()).unwrap_err();
        assert!(e.to_string().contains("no executable"), "{e}");
    }

    #[test]
    fn a_config_is_written_only_when_changed_and_only_when_valid() {
        let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let f = src.path().join("10-net.conflist");
        fs::write(&f, r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"loopback"}]}"#).unwrap();
        assert_eq!(install_conf(&f, dst.path()).unwrap(), ("10-net.conflist".into(), Action::Installed));
        let before = fs::metadata(dst.path().join("10-net.conflist")).unwrap().ino();
        assert_eq!(install_conf(&f, dst.path()).unwrap().1, Action::Unchanged);
        assert_eq!(fs::metadata(dst.path().join("10-net.conflist")).unwrap().ino(), before);
        assert_eq!(fs::metadata(dst.path().join("10-net.conflist")).unwrap().mode() & 0o7777, CONF_MODE);

        fs::write(&f, r#"{"cniVersion":"1.0.0","name":"net","plugins":[]}"#).unwrap();
        let e = install_conf(&f, dst.path()).unwrap_err();
        assert!(e.to_string().contains("not a valid network config"), "{e}");
        let kept = fs::read_to_string(dst.path().join("10-net.conflist")).unwrap();
        assert!(kept.contains("loopback"), "the working config stays: {kept}");
    }
}
