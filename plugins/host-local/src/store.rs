//! The on-disk store, in the reference plugin's layout so that a node can
//! switch implementations without losing allocations:
//!
//! ```text
//! <dataDir>/<network>/          mode 0755
//!     lock                      empty; flock(2) on it serialises every call
//!     10.1.2.3, fd00::5         one lease per address: "<containerID>\r\n<ifname>"
//!                               (older leases hold only "<containerID>")
//!     last_reserved_ip.<N>      the address range set N handed out last
//!     .host-local-index/        ours (see `index`); the reference never
//!                               matches anything in it
//! ```
//!
//! Leases are created with their content in one step (temp file, then a
//! no-replace rename), so a lease file is never empty or half-written and
//! no address is ever held twice. The lock is held for the whole call.
//!
//! Files are created mode 0600 (directories 0755, as the reference) and
//! never through a symlink: a link planted at a lease name keeps the
//! address reserved and is reported like a corrupt lease; a link at the
//! lock or at the store directory itself is refused with an error; a link
//! at a marker or in the index is replaced by our own file.
//!
//! A lease whose content is not `<containerID>[\r\n<ifname>]` with a valid
//! id and interface name (empty, e.g. left by a reference plugin killed
//! between create and write, binary, too large, not a regular file) is
//! *corrupt*: its address is never handed out, no DEL or GC removes it,
//! CHECK of an attachment that should hold it fails naming the file, and
//! GC reports it. An administrator removes it once no container uses the
//! address. The one exception is an empty lease (see [`Lease::Empty`]).
//!
//! A lease is on disk (file and directory fsynced) before ADD returns, so
//! a crash of the node cannot empty a lease whose address was handed out.

use crate::fsutil::{self, FILE_MODE};
use cni::Error;
use std::cell::Cell;
use std::fs::{self, File};
use std::io;
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The lock file's name (the reference's go-filemutex file).
pub const LOCK_FILE: &str = "lock";
/// Prefix of the per-range-set round-robin markers.
const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// The index directory's name inside a store (the index module keeps it;
/// the store only knows where it is).
pub const INDEX_DIR: &str = ".host-local-index";
/// Largest lease file read. Ours are under 150 bytes (ADD refuses longer
/// ids, `cni::limits::MAX_CONTAINER_ID`), but an older release or the
/// reference may have written any id the environment can carry (one
/// variable holds at most 128 KiB), and DEL and GC must still read it.
const MAX_LEASE: u64 = 128 * 1024 + 64;

/// Maps an I/O failure to the spec's I/O error, naming what failed.
pub fn io_error(what: impl std::fmt::Display, e: io::Error) -> Error {
    Error::io(format!("{what}: {e}"))
}

/// Who holds a lease, as its file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The container id.
    pub container_id: String,
    /// The interface; `None` for a legacy lease that holds only the id.
    pub ifname: Option<String>,
}

/// What a lease file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// A well-formed lease.
    Held(Owner),
    /// An empty file: what a reference plugin killed between creating the
    /// lease and writing it leaves (its ADD never returned the address), or
    /// a crash of the node before an unsynced lease reached the disk, or a
    /// truncation. When the index lists the address for an attachment, it
    /// is that attachment's: its DEL releases it, GC keeps it while it is
    /// valid, its repeated ADD rewrites it. Otherwise it is nobody's and
    /// only GC releases it.
    Empty,
    /// Content no writer of the format produces; why, for the report.
    Corrupt(String),
}

impl Owner {
    /// Parses lease content strictly: UTF-8, a valid container id, and
    /// optionally `\r\n` and a valid interface name, with whitespace around
    /// the whole ignored (the reference trims it). Anything else is corrupt.
    fn parse_strict(content: &[u8]) -> Result<Owner, String> {
        if content.len() as u64 > MAX_LEASE {
            return Err(format!("larger than {MAX_LEASE} bytes"));
        }
        let text = std::str::from_utf8(content).map_err(|_| "not UTF-8 text".to_string())?;
        let text = text.trim();
        if text.is_empty() {
            return Err("empty (truncated)".into());
        }
        let (cid, ifname) = match text.split_once("\r\n") {
            Some((cid, ifname)) => (cid, Some(ifname)),
            None => (text, None),
        };
        if !cni::validate::is_valid_id(cid) {
            return Err(format!("{cid:?} is not a container id"));
        }
        if let Some(i) = ifname {
            if let Some((why, _)) = cni::validate::interface_name_problem(i) {
                return Err(format!("interface name {i:?}: {why}"));
            }
        }
        Ok(Owner { container_id: cid.to_string(), ifname: ifname.map(str::to_string) })
    }

    /// Parses lease content leniently (whitespace around it is ignored, as
    /// the reference trims it); [`Owner::parse_strict`] is what the store uses.
    pub fn parse(content: &[u8]) -> Owner {
        let text = String::from_utf8_lossy(content);
        let text = text.trim();
        match text.split_once("\r\n") {
            Some((cid, ifname)) => Owner { container_id: cid.to_string(), ifname: Some(ifname.to_string()) },
            None => Owner { container_id: text.to_string(), ifname: None },
        }
    }

    /// The lease content for an attachment.
    pub fn content(container_id: &str, ifname: &str) -> String {
        format!("{container_id}\r\n{ifname}").trim().to_string()
    }

    /// Whether this is exactly the attachment (container id, ifname).
    pub fn is(&self, container_id: &str, ifname: &str) -> bool {
        self.container_id == container_id && self.ifname.as_deref() == Some(ifname)
    }

    /// Whether this is a legacy (id-only) lease of the container.
    pub fn is_legacy_of(&self, container_id: &str) -> bool {
        self.ifname.is_none() && self.container_id == container_id
    }
}

/// Whether a store directory is created when missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// ADD: create `<dataDir>/<network>` as needed.
    Create,
    /// DEL, CHECK, GC: a missing store holds nothing; do not create it.
    Existing,
}

/// One network's store, locked for as long as this value lives.
pub struct Store {
    /// `<dataDir>/<network>`.
    pub(crate) dir: PathBuf,
    /// The index directory inside it.
    pub(crate) index_dir: PathBuf,
    /// Set by every change; the index seal is renewed on drop.
    pub(crate) dirty: Cell<bool>,
    /// Whether the index is known to list every lease (see `index`).
    pub(crate) consistent: Cell<bool>,
    /// Held flock; released when the store is dropped, after the seal.
    _lock: File,
}

impl Store {
    /// Opens (and with [`Open::Create`] creates) the store of `network` and
    /// takes its lock. `None` when the store does not exist and `how` is
    /// [`Open::Existing`].
    pub fn open(data_dir: &Path, network: &str, how: Open) -> Result<Option<Store>, Error> {
        let dir = data_dir.join(network);
        // The name was validated; this guards the join itself.
        if dir.parent() != Some(data_dir) {
            return Err(Error::invalid_config(format!("network name {network:?} would escape the data directory")));
        }
        match how {
            Open::Create => fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&dir)
                .map_err(|e| io_error(format!("creating store directory {}", dir.display()), e))?,
            Open::Existing => match fs::metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(Error::io(format!("store {} is not a directory", dir.display()))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_error(format!("opening store {}", dir.display()), e)),
            },
        }
        // The store itself must be a directory, not a link to one: every
        // name below is resolved through it.
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                return Err(Error::io(format!(
                    "store {} is not a directory (a symlink?): refusing to use it",
                    dir.display()
                ))
                .with_details("remove it; host-local creates the store directory itself"))
            }
            Err(e) => return Err(io_error(format!("opening store {}", dir.display()), e)),
        }
        let lock = lock(&dir.join(LOCK_FILE))?;
        if crate::parent::is_gone() {
            return Err(Error::new(
                cni::error::code::TRY_AGAIN,
                "the runtime or plugin that started this call is gone: not changing the store",
            )
            .with_details("a delegate whose caller was killed must not reserve or release addresses after it"));
        }
        let index_dir = dir.join(INDEX_DIR);
        Ok(Some(Store { dir, index_dir, dirty: Cell::new(false), consistent: Cell::new(false), _lock: lock }))
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lease file of `ip` (named by the address text, as the reference).
    fn lease_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    /// Whether a lease file exists for `ip` (one stat, no read).
    pub fn lease_exists(&self, ip: IpAddr) -> Result<bool, Error> {
        match fs::symlink_metadata(self.lease_path(ip)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(format!("checking lease {ip}"), e)),
        }
    }

    /// What the lease file of `ip` holds, or `None` when it is free.
    pub fn lease(&self, ip: IpAddr) -> Result<Option<Lease>, Error> {
        match fsutil::read_small(&self.lease_path(ip), MAX_LEASE) {
            Ok(None) => Ok(None),
            Ok(Some(c)) if c.trim_ascii().is_empty() => Ok(Some(Lease::Empty)),
            Ok(Some(c)) => Ok(Some(match Owner::parse_strict(&c) {
                Ok(o) => Lease::Held(o),
                Err(why) => Lease::Corrupt(why),
            })),
            Err(e) if fsutil::is_not_regular(&e) => Ok(Some(Lease::Corrupt("not a regular file".into()))),
            Err(e) => Err(io_error(format!("reading lease {ip}"), e)),
        }
    }

    /// The error that reports a corrupt lease.
    pub fn corrupt_error(&self, ip: IpAddr, why: &str) -> Error {
        Error::io(format!("lease file {} is corrupt: {why}", self.lease_path(ip).display())).with_details(format!(
            "{ip} stays reserved and is not released by DEL or GC; remove the file once no container uses {ip}"
        ))
    }

    /// The error that reports an empty lease; `listed_for` is the
    /// attachment the index lists it for, if any.
    pub fn empty_error(&self, ip: IpAddr, listed_for: Option<(&str, &str)>) -> Error {
        let path = self.lease_path(ip);
        match listed_for {
            Some((cid, ifname)) => Error::io(format!(
                "lease file {} is empty (truncated); the index records {ip} for container {cid} ({ifname})",
                path.display()
            ))
            .with_details(format!(
                "{ip} stays reserved for it: GC keeps it while the attachment is valid, its DEL releases it, \
                 and its ADD rewrites the file"
            )),
            None => Error::io(format!(
                "lease file {} is empty (truncated) and no index entry names its owner",
                path.display()
            ))
            .with_details(format!("{ip} is not handed out until GC releases it (GC releases such a lease)")),
        }
    }

    /// The holder of `ip`, or `None` when it is free; a corrupt or empty
    /// lease is an error that names the file.
    pub fn read_lease(&self, ip: IpAddr) -> Result<Option<Owner>, Error> {
        match self.lease(ip)? {
            None => Ok(None),
            Some(Lease::Held(o)) => Ok(Some(o)),
            Some(Lease::Empty) => Err(self.empty_error(ip, None)),
            Some(Lease::Corrupt(why)) => Err(self.corrupt_error(ip, &why)),
        }
    }

    /// The holder of `ip` when its lease is well-formed; a corrupt lease is
    /// logged and read as held by nobody we can name (so it is neither
    /// released nor counted as anyone's).
    pub fn owner(&self, ip: IpAddr) -> Result<Option<Owner>, Error> {
        match self.lease(ip)? {
            None => Ok(None),
            Some(Lease::Held(o)) => Ok(Some(o)),
            Some(Lease::Empty) => {
                log::warn!("lease file {} is empty (truncated)", self.lease_path(ip).display());
                Ok(None)
            }
            Some(Lease::Corrupt(why)) => {
                log::warn!("{}", self.corrupt_error(ip, &why));
                Ok(None)
            }
        }
    }

    /// Reserves `ip` for the attachment; `false` when it was already taken.
    pub fn create_lease(&self, ip: IpAddr, container_id: &str, ifname: &str) -> Result<bool, Error> {
        self.dirty.set(true);
        self.ensure_index_dir()?;
        let content = Owner::content(container_id, ifname);
        atomic_file::create_new(&self.lease_path(ip), content.as_bytes(), &fsutil::lease_options(&self.index_dir))
            .map_err(|e| io_error(format!("reserving {ip} in {}", self.dir.display()), e))
    }

    /// Rewrites the emptied lease of `ip` for the attachment its index
    /// entry lists it for (ADD of that attachment); other leases are left.
    pub fn restore_lease(&self, ip: IpAddr, container_id: &str, ifname: &str) -> Result<(), Error> {
        if self.lease(ip)? != Some(Lease::Empty) {
            return Ok(());
        }
        self.dirty.set(true);
        self.ensure_index_dir()?;
        let content = Owner::content(container_id, ifname);
        log::warn!("rewriting the emptied lease {} for {container_id} ({ifname})", self.lease_path(ip).display());
        atomic_file::replace(&self.lease_path(ip), content.as_bytes(), &fsutil::lease_options(&self.index_dir))
            .map_err(|e| io_error(format!("rewriting lease {ip} in {}", self.dir.display()), e))
    }

    /// Releases `ip` (a lease already gone is fine).
    pub fn remove_lease(&self, ip: IpAddr) -> Result<(), Error> {
        self.dirty.set(true);
        fsutil::remove(&self.lease_path(ip)).map_err(|e| io_error(format!("releasing {ip}"), e))
    }

    fn last_reserved_path(&self, set: usize) -> PathBuf {
        self.dir.join(format!("{LAST_RESERVED_PREFIX}{set}"))
    }

    /// The raw content of `last_reserved_ip.<set>`, if any.
    pub(crate) fn last_reserved_raw(&self, set: usize) -> io::Result<Option<Vec<u8>>> {
        fsutil::read_small(&self.last_reserved_path(set), 64)
    }

    /// The address range set `set` handed out last; unreadable means none
    /// (allocation then starts at the beginning, as the reference does).
    pub fn last_reserved(&self, set: usize) -> Option<IpAddr> {
        let raw = self.last_reserved_raw(set).ok()??;
        String::from_utf8_lossy(&raw).trim().parse().ok()
    }

    /// Records the round-robin position of range set `set` (in place, as
    /// the reference; a symlink planted there is replaced, not followed).
    /// Rewritten in place rather than opened with O_TRUNC: freeing and
    /// reallocating the file's block on every ADD costs ext4 a journal
    /// handle (~0.3 ms on the ADD's path). A torn write is harmless: the
    /// position is only where the next search starts.
    pub fn set_last_reserved(&self, set: usize, ip: IpAddr) -> Result<(), Error> {
        self.dirty.set(true);
        let path = self.last_reserved_path(set);
        fsutil::open_own(&path, FILE_MODE)
            .and_then(|f| fsutil::rewrite_in_place(&f, ip.to_string().as_bytes()))
            .map_err(|e| io_error(format!("writing {}", path.display()), e))
    }

    /// Every lease in the store, read from disk (the reference's walk; used
    /// only to rebuild the index, by GC, and for ids too long to index),
    /// corrupt ones included.
    pub fn leases(&self) -> Result<Vec<(IpAddr, Lease)>, Error> {
        let fail = |e| io_error(format!("listing {}", self.dir.display()), e);
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(fail)? {
            let entry = entry.map_err(fail)?;
            let Some(ip) = lease_name(entry.file_name().as_bytes()) else { continue };
            if let Some(lease) = self.lease(ip)? {
                out.push((ip, lease));
            }
        }
        Ok(out)
    }

    /// Creates the index directory if needed; anything else at its name (a
    /// planted symlink, a file) is removed first, so that nothing written
    /// into the index can land outside the store.
    pub(crate) fn ensure_index_dir(&self) -> Result<(), Error> {
        let fail = |e| io_error(format!("creating {}", self.index_dir.display()), e);
        match fs::symlink_metadata(&self.index_dir) {
            Ok(m) if m.file_type().is_dir() => return Ok(()),
            Ok(_) => {
                log::warn!("{} is not a directory: replacing it", self.index_dir.display());
                fsutil::remove(&self.index_dir).map_err(fail)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e)),
        }
        match fs::DirBuilder::new().mode(0o755).create(&self.index_dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(fail(e)),
            _ => Ok(()),
        }
    }
}

/// The address a directory entry is the lease of: its name must be the
/// canonical text of an address (anything else is not a lease).
pub fn lease_name(name: &[u8]) -> Option<IpAddr> {
    let name = std::str::from_utf8(name).ok()?;
    let ip: IpAddr = name.parse().ok()?;
    (ip.to_string() == name).then_some(ip)
}

/// Opens the lock file (creating it mode 0600, never through a symlink).
pub fn open_lock(path: &Path) -> io::Result<File> {
    kernel::flock::open(path)
}

/// Opens and flocks the lock file. A lock that is a symlink (or not a
/// file) is refused: following it could create or lock a file elsewhere,
/// and removing it could break the exclusion other callers rely on.
fn lock(path: &Path) -> Result<File, Error> {
    let file = open_lock(path).map_err(|e| {
        let err = io_error(format!("opening lock {}", path.display()), e);
        if fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_file()) {
            err.with_details("the lock file is not a regular file; remove it while no CNI call runs on this network")
        } else {
            err
        }
    })?;
    kernel::flock::lock(&file).map_err(|e| io_error(format!("locking {}", path.display()), e))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        let o = Owner::parse(b"abc\r\neth0");
        assert!(o.is("abc", "eth0"));
        assert!(!o.is("abc", "eth1"));
        assert!(!o.is_legacy_of("abc"));
        let legacy = Owner::parse(b"  abc\n");
        assert!(legacy.is_legacy_of("abc"));
        assert!(!legacy.is("abc", "eth0"));
        assert_eq!(Owner::content("abc", "eth0"), "abc\r\neth0");
    }

    #[test]
    fn strict_parsing_reports_corrupt_content() {
        assert_eq!(Owner::parse_strict(b"abc\r\neth0").unwrap(), Owner::parse(b"abc\r\neth0"));
        assert!(Owner::parse_strict(b" abc\n").unwrap().is_legacy_of("abc"));
        for (bad, why) in [
            (&b""[..], "empty"),
            (&b"  \r\n "[..], "empty"),
            (&b"abc\r\n"[..], ""),
            (&b"\xff\xfe"[..], "UTF-8"),
            (&b"../etc\r\neth0"[..], "container id"),
            (&b"abc\r\neth0\r\nmore"[..], "interface name"),
            (&b"abc\r\n0123456789abcdefg"[..], "interface name"),
        ] {
            if why.is_empty() {
                // "abc\r\n" trims to a legacy id-only lease, as the reference reads it.
                assert!(Owner::parse_strict(bad).unwrap().is_legacy_of("abc"));
                continue;
            }
            let e = Owner::parse_strict(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(Owner::parse_strict(&vec![b'a'; MAX_LEASE as usize + 1]).unwrap_err().contains("larger"));
    }

    #[test]
    fn lease_names_are_canonical_addresses() {
        assert_eq!(lease_name(b"10.1.2.3"), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(lease_name(b"fd00::5"), Some("fd00::5".parse().unwrap()));
        assert_eq!(lease_name(b"fd00:0::5"), None);
        assert_eq!(lease_name(b"lock"), None);
        assert_eq!(lease_name(b"last_reserved_ip.0"), None);
    }
}
