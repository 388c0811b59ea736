//! The previous values ADD replaced, kept on disk until DEL puts them
//! back: `<dataDir>/<network>/<containerID>:<ifname>.json`. The three
//! names are validated (none can hold `/` or `:`), so the path never
//! leaves its directory and two attachments never share a file. A name
//! that would not fit in a file name (a long container id) is cut and
//! completed with a hash of the pair (`cni::filename`); such a file also
//! records the pair, so GC can tell whose it is. A file is written to a
//! temp name, synced, then renamed: it exists whole or not at all.

use cni::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Largest state file read back (a few hundred bytes in practice).
const MAX_FILE: u64 = 1 << 20;

/// What ADD replaced; only the fields it changed are set. Field names
/// follow the reference's backup file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// The MAC before ADD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The MTU before ADD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Promiscuous mode before ADD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promisc: Option<bool>,
    /// All-multicast mode before ADD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allmulti: Option<bool>,
    /// Transmit queue length before ADD.
    #[serde(rename = "txQLen", default, skip_serializing_if = "Option::is_none")]
    pub txqlen: Option<u32>,
    /// Sysctl values before ADD, by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    /// The container id, written so that GC can read back whose a file
    /// with a hashed name is.
    #[serde(rename = "containerID", default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The interface name, for the same reason.
    #[serde(rename = "ifName", default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
}

/// Longest state file name before `.json` (which keeps the whole name
/// within a file name's 255 bytes).
const MAX_STEM: usize = cni::filename::NAME_MAX - ".json".len();

/// The state files of one network.
pub struct Store {
    dir: PathBuf,
}

fn io_err(what: String, e: &std::io::Error) -> Error {
    Error::io(format!("tuning: {what}: {e}"))
}

/// Whether `s` can be a file name component: no separator, not `.`/`..`.
fn safe_component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', ':', '\0'])
}

impl Store {
    /// Removes the temp files of writers killed before their rename
    /// (GC's job: no lock guards this directory, so only files no write
    /// has touched for [`atomic_file::STALE_AFTER`]); a failure is logged.
    pub fn sweep_stale_temps(&self) {
        atomic_file::sweep_stale_logged(&self.dir);
    }

    /// The store of `network` under `data_dir`.
    pub fn new(data_dir: &Path, network: &str) -> Result<Store, Error> {
        if !cni::validate::is_valid_id(network) {
            return Err(Error::invalid_config(format!(
                "tuning: network name {network:?} cannot name a state directory"
            )));
        }
        Ok(Store { dir: data_dir.join(network) })
    }

    /// The file of one attachment.
    pub fn path(&self, container_id: &str, ifname: &str) -> Result<PathBuf, Error> {
        if !cni::validate::is_valid_id(container_id) || !safe_component(ifname) {
            return Err(Error::invalid_env(format!(
                "tuning: container id {container_id:?} / ifname {ifname:?} cannot name a state file"
            )));
        }
        Ok(self.dir.join(format!("{}.json", stem(container_id, ifname))))
    }

    /// Writes the attachment's file atomically (`atomic_file`: temp
    /// file, fsync, rename, fsync of the directory).
    pub fn save(&self, container_id: &str, ifname: &str, saved: &Saved) -> Result<(), Error> {
        let path = self.path(container_id, ifname)?;
        fs::create_dir_all(&self.dir).map_err(|e| io_err(format!("creating {}", self.dir.display()), &e))?;
        // A planted symlink must not redirect the write elsewhere.
        match fs::symlink_metadata(&self.dir) {
            Ok(m) if m.file_type().is_dir() => {}
            _ => {
                return Err(Error::plugin(format!("tuning: state directory {} is not a directory", self.dir.display())))
            }
        }
        let owned = Saved { container_id: Some(container_id.into()), ifname: Some(ifname.into()), ..saved.clone() };
        let body =
            serde_json::to_vec_pretty(&owned).map_err(|e| Error::plugin(format!("tuning: encoding state: {e}")))?;
        // Content synced before the rename, the directory after it: DEL
        // after a crash finds the old file or the new one, whole.
        atomic_file::replace(
            &path,
            &body,
            &atomic_file::Options::new(0o600).durability(atomic_file::Durability::OnDisk),
        )
        .map_err(|e| io_err(format!("writing {}", path.display()), &e))
    }

    /// The attachment's file, or `None` when there is none.
    pub fn load(&self, container_id: &str, ifname: &str) -> Result<Option<Saved>, Error> {
        let path = self.path(container_id, ifname)?;
        let f = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&path) {
            Ok(f) => f,
            // A name that cannot exist holds no state (not one of ours either).
            Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENAMETOOLONG) => {
                return Ok(None)
            }
            Err(e) => return Err(io_err(format!("reading {}", path.display()), &e)),
        };
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_FILE), &mut buf)
            .map_err(|e| io_err(format!("reading {}", path.display()), &e))?;
        let mut saved: Saved = serde_json::from_slice(&buf)
            .map_err(|e| Error::decode(format!("tuning: state file {} is corrupt: {e}", path.display())))?;
        // What is restored is the link's state; whose it is stays in the file.
        saved.container_id = None;
        saved.ifname = None;
        Ok(Some(saved))
    }

    /// Removes the attachment's file; a missing one is fine.
    pub fn remove(&self, container_id: &str, ifname: &str) -> Result<(), Error> {
        let path = self.path(container_id, ifname)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENAMETOOLONG) => Ok(()),
            Err(e) => Err(io_err(format!("removing {}", path.display()), &e)),
        }
    }

    /// Every attachment that has a file, as (container id, ifname).
    pub fn attachments(&self) -> Result<Vec<(String, String)>, Error> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(format!("listing {}", self.dir.display()), &e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".json") else { continue };
            if cni::filename::is_hashed(stem) {
                if let Some(pair) = self.owner_of(&entry.path()) {
                    out.push(pair);
                }
            } else if let Some((cid, ifname)) = stem.split_once(':') {
                if cni::validate::is_valid_id(cid) && safe_component(ifname) {
                    out.push((cid.to_string(), ifname.to_string()));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// The file name, without `.json`, of one attachment.
fn stem(container_id: &str, ifname: &str) -> String {
    cni::filename::bounded(&format!("{container_id}:{ifname}"), &[container_id, ifname], MAX_STEM)
}

impl Store {
    /// The (container id, ifname) a file with a hashed name records, when
    /// it is readable and really lives at that pair's name.
    fn owner_of(&self, path: &Path) -> Option<(String, String)> {
        let f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).ok()?;
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_FILE), &mut buf).ok()?;
        let saved: Saved = serde_json::from_slice(&buf).ok()?;
        let (cid, ifname) = (saved.container_id?, saved.ifname?);
        (self.path(&cid, &ifname).ok()?.as_path() == path).then_some((cid, ifname))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tuning-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn round_trip_and_listing() {
        let d = scratch("rt");
        let s = Store::new(&d, "net1").unwrap();
        assert_eq!(s.load("c1", "eth0").unwrap(), None);
        let saved = Saved {
            mac: Some("0a:00:00:00:00:01".into()),
            mtu: Some(1500),
            sysctl: [("net.core.somaxconn".to_string(), "4096".to_string())].into(),
            ..Default::default()
        };
        s.save("c1", "eth0", &saved).unwrap();
        s.save("c_2", "net1.100", &Saved { promisc: Some(false), ..Default::default() }).unwrap();
        assert_eq!(s.load("c1", "eth0").unwrap(), Some(saved));
        assert!(d.join("net1/c1:eth0.json").exists());
        assert_eq!(s.attachments().unwrap(), vec![("c1".into(), "eth0".into()), ("c_2".into(), "net1.100".into())]);
        s.remove("c1", "eth0").unwrap();
        s.remove("c1", "eth0").unwrap();
        assert_eq!(s.load("c1", "eth0").unwrap(), None);
        let leftovers: Vec<_> = fs::read_dir(d.join("net1")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 1, "no temp files left: {leftovers:?}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn long_container_ids_get_a_file_of_their_own() {
        let d = scratch("long");
        let s = Store::new(&d, "net1").unwrap();
        let (a, b) = ("a".repeat(1000), format!("{}b", "a".repeat(999)));
        let saved = Saved { mtu: Some(1400), ..Default::default() };
        s.save(&a, "eth0", &saved).unwrap();
        s.save(&b, "eth0", &Saved::default()).unwrap();
        s.save("c1", "eth0", &saved).unwrap();
        assert_eq!(s.load(&a, "eth0").unwrap(), Some(saved.clone()));
        assert_eq!(s.load(&b, "eth0").unwrap(), Some(Saved::default()));
        assert_eq!(
            s.attachments().unwrap(),
            vec![(a.clone(), "eth0".into()), (b.clone(), "eth0".into()), ("c1".into(), "eth0".into())]
        );
        s.remove(&a, "eth0").unwrap();
        s.remove(&a, "eth0").unwrap();
        assert_eq!(s.load(&a, "eth0").unwrap(), None);
        assert_eq!(s.attachments().unwrap().len(), 2);
        // Short ids keep their readable name.
        assert!(d.join("net1/c1:eth0.json").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn hostile_names_never_reach_a_path() {
        let d = scratch("bad");
        assert!(Store::new(&d, "../etc").is_err());
        let s = Store::new(&d, "n").unwrap();
        for (cid, ifname) in [("../x", "eth0"), ("c1", "../../x"), ("c1", "a/b"), ("c1", ".."), ("c1", "a:b")] {
            assert!(s.path(cid, ifname).is_err(), "{cid} {ifname}");
        }
    }

    #[test]
    fn corrupt_file_is_a_decode_error() {
        let d = scratch("corrupt");
        let s = Store::new(&d, "n").unwrap();
        fs::create_dir_all(d.join("n")).unwrap();
        fs::write(d.join("n/c1:eth0.json"), b"{not json").unwrap();
        assert_eq!(s.load("c1", "eth0").unwrap_err().code, 6);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn planted_symlinks_redirect_nothing() {
        let d = scratch("symlink");
        let victim = d.join("victim");
        let s = Store::new(&d, "n").unwrap();
        fs::create_dir_all(d.join("n")).unwrap();
        fs::write(&victim, b"untouched").unwrap();
        // At the state file: load refuses to follow it.
        std::os::unix::fs::symlink(&victim, d.join("n/c1:eth0.json")).unwrap();
        assert!(s.load("c1", "eth0").is_err());
        // At the temp name: the write skips the link, never follows it.
        let tmp = atomic_file::next_temp_path(&d.join("n"), ".tmp.");
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        s.save("c2", "eth0", &Saved::default()).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"untouched");
        // At the network directory: refused.
        let other = d.join("elsewhere");
        fs::create_dir_all(&other).unwrap();
        std::os::unix::fs::symlink(&other, d.join("m")).unwrap();
        let m = Store::new(&d, "m").unwrap();
        assert!(m.save("c3", "eth0", &Saved::default()).is_err());
        assert_eq!(fs::read_dir(&other).unwrap().count(), 0);
        fs::remove_dir_all(&d).unwrap();
    }
}
