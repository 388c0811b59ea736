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

use crate::fsutil;
use cni::Error;
use std::cell::Cell;
use std::fs::{self, File};
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The lock file's name (the reference's go-filemutex file).
pub const LOCK_FILE: &str = "lock";
/// Prefix of the per-range-set round-robin markers.
pub const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// Mode of lease and marker files, as the reference writes them.
pub const FILE_MODE: u32 = 0o644;
/// Largest lease file read; a real one is under 300 bytes.
const MAX_LEASE: u64 = 4096;

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

impl Owner {
    /// Parses lease content (whitespace around it is ignored, as the
    /// reference trims it).
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
        let lock = lock(&dir.join(LOCK_FILE))?;
        let index_dir = dir.join(crate::index::INDEX_DIR);
        Ok(Some(Store { dir, index_dir, dirty: Cell::new(false), consistent: Cell::new(false), _lock: lock }))
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lease file of `ip` (named by the address text, as the reference).
    pub fn lease_path(&self, ip: IpAddr) -> PathBuf {
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

    /// The holder of `ip`, or `None` when it is free.
    pub fn read_lease(&self, ip: IpAddr) -> Result<Option<Owner>, Error> {
        fsutil::read_small(&self.lease_path(ip), MAX_LEASE)
            .map(|c| c.map(|c| Owner::parse(&c)))
            .map_err(|e| io_error(format!("reading lease {ip}"), e))
    }

    /// Reserves `ip` for the attachment; `false` when it was already taken.
    pub fn create_lease(&self, ip: IpAddr, container_id: &str, ifname: &str) -> Result<bool, Error> {
        self.dirty.set(true);
        self.ensure_index_dir()?;
        let content = Owner::content(container_id, ifname);
        fsutil::create_new(&self.index_dir, &self.lease_path(ip), content.as_bytes(), FILE_MODE)
            .map_err(|e| io_error(format!("reserving {ip} in {}", self.dir.display()), e))
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

    /// Records the round-robin position of range set `set`.
    pub fn set_last_reserved(&self, set: usize, ip: IpAddr) -> Result<(), Error> {
        use std::io::Write;
        self.dirty.set(true);
        let path = self.last_reserved_path(set);
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&path)
            .and_then(|mut f| f.write_all(ip.to_string().as_bytes()))
            .map_err(|e| io_error(format!("writing {}", path.display()), e))
    }

    /// Every lease in the store, read from disk (the reference's walk; used
    /// only to rebuild the index, by GC, and for ids too long to index).
    pub fn leases(&self) -> Result<Vec<(IpAddr, Owner)>, Error> {
        let fail = |e| io_error(format!("listing {}", self.dir.display()), e);
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(fail)? {
            let entry = entry.map_err(fail)?;
            let Some(ip) = lease_name(entry.file_name().as_bytes()) else { continue };
            if !entry.file_type().map_err(fail)?.is_file() {
                continue;
            }
            if let Some(owner) = self.read_lease(ip)? {
                out.push((ip, owner));
            }
        }
        Ok(out)
    }

    /// Creates the index directory if needed.
    pub(crate) fn ensure_index_dir(&self) -> Result<(), Error> {
        match fs::DirBuilder::new().mode(0o755).create(&self.index_dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                Err(io_error(format!("creating {}", self.index_dir.display()), e))
            }
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

/// Opens (creating, mode 0750 as the reference) and flocks the lock file.
fn lock(path: &Path) -> Result<File, Error> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::invalid_config(format!("path {} contains a NUL byte", path.display())))?;
    // SAFETY: `c` is a valid NUL-terminated path; the fd is owned by `File`.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CREAT | libc::O_CLOEXEC, 0o750 as libc::c_uint) };
    if fd < 0 {
        return Err(io_error(format!("opening lock {}", path.display()), io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let file = unsafe { File::from_raw_fd(fd) };
    loop {
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(file);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(io_error(format!("locking {}", path.display()), e));
        }
    }
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
    fn lease_names_are_canonical_addresses() {
        assert_eq!(lease_name(b"10.1.2.3"), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(lease_name(b"fd00::5"), Some("fd00::5".parse().unwrap()));
        assert_eq!(lease_name(b"fd00:0::5"), None);
        assert_eq!(lease_name(b"lock"), None);
        assert_eq!(lease_name(b"last_reserved_ip.0"), None);
    }
}
