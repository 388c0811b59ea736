//! The attachment index: finds the leases of (container id, ifname)
//! without reading every lease file, so DEL, CHECK and a repeated ADD cost
//! the same with ten leases or ten thousand.
//!
//! Layout, inside the store directory (the reference plugin walks into it,
//! but nothing in it reads as a lease, so it neither matches nor deletes
//! anything there):
//!
//! ```text
//! .host-local-index/<containerID>:<ifname>   symlink to "v2=<ip>,<ip>"
//! .host-local-index/<containerID>:           the same for legacy id-only leases
//! .host-local-index/seal                     fingerprint of the store when the
//!                                            index was last known complete
//! ```
//!
//! An entry is a symlink whose text is the address list: short link texts
//! live in the inode (no data block on ext4, one `readlink` to read), and a
//! walker that follows it (the reference's DEL does) finds no such file and
//! skips it.
//!
//! Invariant, whenever the seal matches: every lease file held by an
//! attachment appears in that attachment's index entry. An entry may
//! list more (an address the reference released and gave to someone else,
//! an ADD killed before its lease was created), so every hit is verified
//! against the lease file itself. ADD writes the index entry *before* it
//! creates the lease, so a SIGKILL never leaves a lease the index misses.
//!
//! A writer that does not keep the index (the reference plugin, an admin)
//! changes the store directory's mtime/ctime or a `last_reserved_ip.N`
//! file; the seal records both, so the next call sees the mismatch and
//! rebuilds the index from a full walk once, then is flat again. When
//! sealing, the directories' mtime is set 1 ns back, so that even a change
//! within the same clock tick as ours moves it.

use crate::fsutil;
use crate::fsutil::FILE_MODE;
use crate::store::{io_error, Lease, Owner, Store};
use cni::{validate, Error};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The seal file's name inside the index directory.
const SEAL: &str = "seal";
/// First line of the seal; the format version of the whole index.
const HEADER: &str = "host-local index v2";
/// Start of an index entry's link text (then the addresses, comma-separated).
const ENTRY_PREFIX: &str = "v2=";
/// Largest seal file read.
const MAX_INDEX: u64 = 64 * 1024;

/// The index entry name of an attachment (`ifname` `None`: legacy leases),
/// or `None` when the pair cannot be a file name, in which case lookups
/// walk the store as the reference does. `:` separates the two because
/// neither a container id nor an interface name may contain it.
fn index_name(container_id: &str, ifname: Option<&str>) -> Option<String> {
    if !validate::is_valid_id(container_id) {
        return None;
    }
    if let Some(i) = ifname {
        if validate::interface_name_problem(i).is_some() {
            return None;
        }
    }
    let name = format!("{container_id}:{}", ifname.unwrap_or(""));
    (name.len() <= 255).then_some(name)
}

/// Parses an index entry's link text: the listed addresses.
fn parse_index(target: &[u8]) -> Vec<IpAddr> {
    let text = String::from_utf8_lossy(target);
    let Some(list) = text.strip_prefix(ENTRY_PREFIX) else { return Vec::new() };
    list.split(',').filter_map(|s| s.parse().ok()).collect()
}

/// What a [`Store::rebuild`] met on the way.
#[derive(Debug, Default)]
pub struct Rebuilt {
    /// Leases `keep` rejected that could not be removed.
    pub errors: Vec<Error>,
    /// Corrupt leases, kept and reported.
    pub corrupt: Vec<Error>,
}

impl Store {
    /// Makes the index trustworthy for this call: when the seal does not
    /// match the store (another writer, an interrupted call, first use),
    /// rebuilds it from a full walk.
    pub fn ensure_index(&self) -> Result<(), Error> {
        // An unreadable seal (a planted link, garbage) just fails to match.
        let seal = fsutil::read_small(&self.index_dir.join(SEAL), MAX_INDEX).unwrap_or_else(|e| {
            log::warn!("reading the index seal: {e}");
            None
        });
        let now = self.fingerprint().map_err(|e| io_error(format!("inspecting {}", self.dir.display()), e))?;
        if seal.as_deref() == Some(now.as_bytes()) {
            self.consistent.set(true);
            return Ok(());
        }
        log::info!(
            "index of {} is not sealed (first use, another writer, or an interrupted call): rebuilding",
            self.dir.display()
        );
        self.rebuild(&|_| true).and_then(|r| match r.errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        })
    }

    /// What the seal records: the identity and change times of the store and
    /// index directories, and the round-robin markers (which the reference
    /// rewrites on every reservation, even within one clock tick).
    fn fingerprint(&self) -> io::Result<String> {
        let st = fs::symlink_metadata(&self.dir)?;
        let mut out = format!(
            "{HEADER} seal\nstore {} {} {}.{} {}.{}\n",
            st.dev(),
            st.ino(),
            st.mtime(),
            st.mtime_nsec(),
            st.ctime(),
            st.ctime_nsec()
        );
        match fs::symlink_metadata(&self.index_dir) {
            Ok(ix) => {
                out += &format!(
                    "index {} {}.{} {}.{}\n",
                    ix.ino(),
                    ix.mtime(),
                    ix.mtime_nsec(),
                    ix.ctime(),
                    ix.ctime_nsec()
                )
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => out += "index none\n",
            Err(e) => return Err(e),
        }
        // The markers that exist (0, 1, ... up to the first missing one): a
        // new one shows in the directory times, a rewrite shows here. Not
        // tied to the config, whose set count may vary per call (ipRanges).
        for set in 0..64 {
            match self.last_reserved_raw(set) {
                Ok(Some(raw)) => out += &format!("last {set} {:?}\n", String::from_utf8_lossy(&raw)),
                Ok(None) => break,
                // A planted link or other non-file: its own (never matching) line.
                Err(e) if fsutil::is_not_regular(&e) => out += &format!("last {set} not a file\n"),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Records that the index is complete for the store as it is now. The
    /// seal is rewritten in place so that writing it does not itself change
    /// the index directory; a torn seal just fails to match.
    fn write_seal(&self) -> io::Result<()> {
        let f = fsutil::open_own(&self.index_dir.join(SEAL), FILE_MODE)?;
        // File times come from a coarse clock: a foreign change within the
        // tick of our last one would leave the mtime as it is. Backdating
        // it by 1 ns makes every later change visible.
        for dir in [&self.index_dir, &self.dir] {
            if let Err(e) = fsutil::backdate_mtime(dir) {
                log::debug!("backdating {}: {e}", dir.display());
            }
        }
        fsutil::rewrite_in_place(&f, self.fingerprint()?.as_bytes())
    }

    /// Rebuilds the index from the lease files, removing on the way every
    /// lease `keep` rejects (GC). Returns the removal errors (the lease then
    /// stays, and stays indexed) and the corrupt leases (kept, never
    /// indexed); other failures stop the rebuild.
    pub fn rebuild(&self, keep: &dyn Fn(&Owner) -> bool) -> Result<Rebuilt, Error> {
        self.consistent.set(false);
        self.dirty.set(true);
        self.ensure_index_dir()?;
        let mut errors = Vec::new();
        let mut corrupt = Vec::new();
        let mut want: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        let listed = self.listed_owners()?;
        for (ip, lease) in self.leases()? {
            let owner = match lease {
                Lease::Held(o) => o,
                // Emptied (a crash, or a truncation): the index still says
                // whose it is, so it is that attachment's, kept while it is
                // valid. An entry `keep` accepts wins over a stale one.
                Lease::Empty if listed.contains_key(&ip) => {
                    let owners = &listed[&ip];
                    owners.iter().find(|o| keep(o)).unwrap_or(&owners[0]).clone()
                }
                // Attributable to nobody (a reference plugin killed between
                // creating and writing it): kept by the index rebuild, and
                // released by a GC (whose `keep` accepts no empty id).
                Lease::Empty => Owner { container_id: String::new(), ifname: None },
                Lease::Corrupt(why) => {
                    let e = self.corrupt_error(ip, &why);
                    log::warn!("{e}");
                    corrupt.push(e);
                    continue;
                }
            };
            if !keep(&owner) {
                match self.remove_lease(ip) {
                    Ok(()) => {
                        log::info!("released {ip} held by {owner:?}");
                        continue;
                    }
                    Err(e) => errors.push(e),
                }
            }
            if let Some(name) = index_name(&owner.container_id, owner.ifname.as_deref()) {
                want.entry(name).or_default().push(ip);
            }
        }
        let fail = |e| io_error(format!("listing {}", self.index_dir.display()), e);
        for entry in fs::read_dir(&self.index_dir).map_err(fail)? {
            let entry = entry.map_err(fail)?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if name == SEAL {
                continue;
            }
            let path = entry.path();
            if name.starts_with(fsutil::TEMP_PREFIX) {
                // We hold the lock: no call is using it; a killed one left it.
                fsutil::remove(&path).map_err(|e| io_error(format!("removing {}", path.display()), e))?;
                continue;
            }
            if !name.contains(':') {
                continue;
            }
            match want.remove(&name) {
                Some(mut ips) => {
                    ips.sort();
                    let mut have = self.read_index(&path)?;
                    have.sort();
                    if have != ips {
                        self.write_index(&name, &ips)?;
                    }
                }
                None => fsutil::remove(&path).map_err(|e| io_error(format!("removing {}", path.display()), e))?,
            }
        }
        for (name, mut ips) in want {
            ips.sort();
            self.write_index(&name, &ips)?;
        }
        self.consistent.set(true);
        Ok(Rebuilt { errors, corrupt })
    }

    /// Who each address is listed for in the index as it is on disk
    /// (before a rebuild rewrites it): the owners of emptied leases.
    fn listed_owners(&self) -> Result<BTreeMap<IpAddr, Vec<Owner>>, Error> {
        let mut out: BTreeMap<IpAddr, Vec<Owner>> = BTreeMap::new();
        let entries = match fs::read_dir(&self.index_dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_error(format!("listing {}", self.index_dir.display()), e)),
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else { continue };
            let Some((cid, ifname)) = name.split_once(':') else { continue };
            if index_name(cid, (!ifname.is_empty()).then_some(ifname)).as_deref() != Some(name.as_str()) {
                continue;
            }
            let owner =
                Owner { container_id: cid.to_string(), ifname: (!ifname.is_empty()).then(|| ifname.to_string()) };
            for ip in self.read_index(&entry.path())? {
                out.entry(ip).or_default().push(owner.clone());
            }
        }
        Ok(out)
    }

    fn read_index(&self, path: &Path) -> Result<Vec<IpAddr>, Error> {
        // Entries are symlinks we wrote: read, never followed.
        match fs::read_link(path) {
            Ok(target) => Ok(parse_index(target.as_os_str().as_bytes())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            // Not a symlink: not an entry we wrote; the rebuild replaces it.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(Vec::new()),
            Err(e) => Err(io_error(format!("reading {}", path.display()), e)),
        }
    }

    fn write_index(&self, name: &str, ips: &[IpAddr]) -> Result<(), Error> {
        self.dirty.set(true);
        let path = self.index_dir.join(name);
        if ips.is_empty() {
            return fsutil::remove(&path).map_err(|e| io_error(format!("removing {}", path.display()), e));
        }
        let list: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
        let target = format!("{ENTRY_PREFIX}{}", list.join(","));
        atomic_file::replace_symlink(&path, &target, &fsutil::index_options(&self.index_dir))
            .map_err(|e| io_error(format!("writing {}", path.display()), e))
    }

    /// Addresses that may be held by the attachment (`ifname` `None`:
    /// legacy leases of the container): the index entry, or a walk when the
    /// pair is not indexable. Callers verify each against its lease file.
    pub fn candidates(&self, container_id: &str, ifname: Option<&str>) -> Result<Vec<IpAddr>, Error> {
        debug_assert!(self.consistent.get(), "ensure_index first");
        match index_name(container_id, ifname) {
            Some(name) => self.read_index(&self.index_dir.join(name)),
            None => Ok(self
                .leases()?
                .into_iter()
                .filter(|(_, l)| {
                    matches!(l, Lease::Held(o) if o.container_id == container_id && o.ifname.as_deref() == ifname)
                })
                .map(|(ip, _)| ip)
                .collect()),
        }
    }

    /// The addresses the attachment holds, verified against the leases. An
    /// emptied lease its index entry lists is its own too (see
    /// [`Lease::Empty`]), after the well-formed ones.
    pub fn held(&self, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>, Error> {
        let mut out = Vec::new();
        let mut emptied = Vec::new();
        for ip in self.candidates(container_id, Some(ifname))? {
            match self.lease(ip)? {
                Some(Lease::Held(o)) if o.is(container_id, ifname) && !out.contains(&ip) => out.push(ip),
                Some(Lease::Empty) => emptied.push(ip),
                Some(Lease::Corrupt(why)) => log::warn!("{}", self.corrupt_error(ip, &why)),
                _ => {}
            }
        }
        for ip in emptied {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
        Ok(out)
    }

    /// Records that the attachment may hold `ips` (before creating leases,
    /// and to trim the entry afterwards); an empty list removes the entry.
    pub fn record(&self, container_id: &str, ifname: &str, ips: &[IpAddr]) -> Result<(), Error> {
        match index_name(container_id, Some(ifname)) {
            Some(name) => {
                let mut ips = ips.to_vec();
                ips.sort();
                ips.dedup();
                self.write_index(&name, &ips)
            }
            None => Ok(()),
        }
    }

    /// Drops the index entry of an attachment whose leases are released.
    pub fn forget(&self, container_id: &str, ifname: Option<&str>) -> Result<(), Error> {
        match index_name(container_id, ifname) {
            Some(name) => self.write_index(&name, &[]),
            None => Ok(()),
        }
    }
}

impl Drop for Store {
    /// Renews the seal after a call that changed the store, before the lock
    /// is released; a call that failed to keep the index complete leaves the
    /// seal stale, so the next one rebuilds.
    fn drop(&mut self) {
        if self.dirty.get() && self.consistent.get() {
            if let Err(e) = self.write_seal() {
                log::warn!("sealing the index of {}: {e}", self.dir.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{lease_name, Open, INDEX_DIR};
    use std::path::PathBuf;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hl-index-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn names() {
        assert_eq!(index_name("abc", Some("eth0")).as_deref(), Some("abc:eth0"));
        assert_eq!(index_name("abc", None).as_deref(), Some("abc:"));
        assert_eq!(index_name("a/b", Some("eth0")), None);
        assert_eq!(index_name("abc", Some("a/b")), None);
        assert_eq!(index_name(&"x".repeat(300), Some("eth0")), None);
        // One colon never parses as an address, so the reference ignores it.
        assert_eq!(lease_name(b"fd00:eth0"), None);
    }

    #[test]
    fn index_follows_leases_and_detects_foreign_writes() {
        let d = tempdir("follow");
        let s = Store::open(&d, "net", Open::Create).unwrap().unwrap();
        s.ensure_index().unwrap();
        assert!(s.held("c1", "eth0").unwrap().is_empty());
        s.record("c1", "eth0", &[ip("10.0.0.2")]).unwrap();
        assert!(s.create_lease(ip("10.0.0.2"), "c1", "eth0").unwrap());
        assert!(!s.create_lease(ip("10.0.0.2"), "c2", "eth0").unwrap());
        assert_eq!(s.held("c1", "eth0").unwrap(), vec![ip("10.0.0.2")]);
        drop(s);

        // Sealed: the next call trusts the index without a walk.
        let s = Store::open(&d, "net", Open::Existing).unwrap().unwrap();
        let sealed = fs::read(s.index_dir.join(SEAL)).unwrap();
        s.ensure_index().unwrap();
        assert!(!s.dirty.get());
        drop(s);

        // A foreign writer (the reference) adds a lease behind our back.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(d.join("net/10.0.0.3"), "c3\r\neth0").unwrap();
        fs::write(d.join("net/last_reserved_ip.0"), "10.0.0.3").unwrap();
        let s = Store::open(&d, "net", Open::Existing).unwrap().unwrap();
        s.ensure_index().unwrap();
        assert!(s.dirty.get(), "rebuilt");
        assert_eq!(s.held("c3", "eth0").unwrap(), vec![ip("10.0.0.3")]);
        drop(s);
        assert_ne!(fs::read(d.join("net").join(INDEX_DIR).join(SEAL)).unwrap(), sealed);

        // Legacy leases are indexed under the id alone; GC removes by owner.
        fs::write(d.join("net/10.0.0.4"), "old").unwrap();
        let s = Store::open(&d, "net", Open::Existing).unwrap().unwrap();
        s.ensure_index().unwrap();
        assert_eq!(s.candidates("old", None).unwrap(), vec![ip("10.0.0.4")]);
        let r = s.rebuild(&|o| o.container_id != "c3").unwrap();
        assert!(r.errors.is_empty() && r.corrupt.is_empty());
        assert!(!d.join("net/10.0.0.3").exists());
        assert!(s.candidates("c3", Some("eth0")).unwrap().is_empty());
        drop(s);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_foreign_lease_right_after_ours_is_seen() {
        let d = tempdir("tick");
        for round in 0..50 {
            let s = Store::open(&d, "net", Open::Create).unwrap().unwrap();
            s.ensure_index().unwrap();
            let mine = ip(&format!("10.1.0.{}", round + 1));
            s.record("c", "eth0", &[mine]).unwrap();
            assert!(s.create_lease(mine, "c", "eth0").unwrap());
            drop(s);
            // No sleep, no last_reserved_ip change: only the directory changes,
            // most likely within the same clock tick as our seal.
            let theirs = ip(&format!("10.2.0.{}", round + 1));
            fs::write(d.join("net").join(theirs.to_string()), format!("r{round}\r\neth0")).unwrap();
            let s = Store::open(&d, "net", Open::Existing).unwrap().unwrap();
            s.ensure_index().unwrap();
            assert_eq!(s.held(&format!("r{round}"), "eth0").unwrap(), vec![theirs], "round {round}");
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn stale_entries_are_verified_away() {
        let d = tempdir("stale");
        let s = Store::open(&d, "net", Open::Create).unwrap().unwrap();
        s.ensure_index().unwrap();
        // An ADD killed after writing its intent but before the lease.
        s.record("c1", "eth0", &[ip("10.0.0.2"), ip("10.0.0.3")]).unwrap();
        s.record("c2", "eth0", &[ip("10.0.0.3")]).unwrap();
        assert!(s.create_lease(ip("10.0.0.3"), "c2", "eth0").unwrap());
        assert!(s.held("c1", "eth0").unwrap().is_empty());
        drop(s);
        fs::remove_dir_all(&d).unwrap();
    }
}
