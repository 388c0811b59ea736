//! What dnsname keeps on disk, per network, in `<dataDir>/<network>/`:
//!
//! - `records/<containerID>:<ifname>.json`: one file per attachment (its
//!   name, aliases and addresses), so concurrent ADDs never rewrite one
//!   shared file; written to a temp name, then renamed (whole or
//!   absent), never through a symlink (`O_NOFOLLOW`, and the directories
//!   are checked to be directories);
//! - `server.json`: what the network's server serves (gateways, subnets,
//!   domain, upstream resolv.conf), written by the ADD that starts it;
//! - `server.pid` (flocked by the server while it runs), `server.sock`
//!   (its control socket, mode 0600), `server.log` (its stderr);
//! - `lock`: flocked by every ADD, DEL, CHECK and GC of the network, so
//!   starting and stopping the server never race with a record change.
//!
//! After the last DEL only `lock` is left.

use cni::Error;
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Largest record or server file read back.
pub const MAX_FILE: u64 = 1 << 20;
/// Suffix of record files.
const SUFFIX: &str = ".json";

/// One attachment's names and addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface in the container.
    #[serde(rename = "ifName")]
    pub ifname: String,
    /// The container's name (one DNS label).
    pub name: String,
    /// Its aliases on this network (DNS labels).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Its addresses on this network, with their prefix.
    pub ips: Vec<IpNetwork>,
}

/// What a network's server serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerConf {
    /// The network name (for messages).
    pub network: String,
    /// Names are answered bare and under this domain.
    pub domain: String,
    /// Addresses the server listens on (port 53, UDP and TCP).
    pub gateways: Vec<IpAddr>,
    /// Clients must come from one of these.
    pub subnets: Vec<IpNetwork>,
    /// Where upstream servers are read from.
    #[serde(rename = "resolvConf")]
    pub resolv_conf: PathBuf,
}

/// The files of one network.
#[derive(Debug, Clone)]
pub struct NetDir {
    /// `<dataDir>/<network>`.
    pub dir: PathBuf,
}

fn io_err(what: String, e: &std::io::Error) -> Error {
    Error::io(format!("dnsname: {what}: {e}"))
}

/// Creates `dir` (mode 0700 when new) and checks it is a real directory,
/// not a symlink planted to redirect writes.
fn real_dir(dir: &Path) -> Result<(), Error> {
    match fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) => return Err(io_err(format!("creating {}", dir.display()), &e)),
    }
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        _ => Err(Error::plugin(format!("dnsname: {} is not a directory (a symlink is never followed)", dir.display()))),
    }
}

/// Reads a small file without following a symlink.
pub fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path)?;
    let mut buf = Vec::new();
    f.take(MAX_FILE + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE {
        return Err(std::io::Error::new(ErrorKind::InvalidData, "file too large"));
    }
    Ok(buf)
}

/// Writes `body` to `path` atomically (`atomic_file`, mode 0600):
/// a temp file beside it (created new, never through a symlink), then
/// renamed over. No fsync: the files are runtime state (in `/run` by
/// default, gone at reboot with the containers), and the rename alone
/// makes a crash leave the old file or the new one, never a part.
pub fn write_atomic(path: &Path, body: &[u8]) -> Result<(), Error> {
    atomic_file::replace(path, body, &atomic_file::Options::new(0o600))
        .map_err(|e| io_err(format!("writing {}", path.display()), &e))
}

/// The file name (without directory) of an attachment's record. Ids and
/// interface names never hold `:` or `/`; a pair too long for a file name
/// is cut and completed with a hash (`cni::filename`).
pub fn record_file(container_id: &str, ifname: &str) -> Result<String, Error> {
    let safe = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', ':', '\0']);
    if !cni::validate::is_valid_id(container_id) || !safe(ifname) {
        return Err(Error::invalid_env(format!(
            "dnsname: container id {container_id:?} / ifname {ifname:?} cannot name a record file"
        )));
    }
    let stem = cni::filename::bounded(
        &format!("{container_id}:{ifname}"),
        &[container_id, ifname],
        cni::filename::NAME_MAX - SUFFIX.len(),
    );
    Ok(format!("{stem}{SUFFIX}"))
}

/// Whether `name` in the records directory is a record (not a temp file).
pub fn is_record_file(name: &str) -> bool {
    name.ends_with(SUFFIX) && !name.starts_with('.')
}

/// A held network lock; released on drop (or when the holder dies).
pub struct NetLock {
    _file: File,
}

impl NetDir {
    /// The directory of `network` under `data_dir`.
    pub fn new(data_dir: &Path, network: &str) -> Result<NetDir, Error> {
        if !cni::validate::is_valid_id(network) {
            return Err(Error::invalid_config(format!(
                "dnsname: network name {network:?} cannot name a records directory"
            )));
        }
        Ok(NetDir { dir: data_dir.join(network) })
    }

    /// `records/`.
    pub fn records(&self) -> PathBuf {
        self.dir.join("records")
    }
    /// `server.json`.
    pub fn server_conf(&self) -> PathBuf {
        self.dir.join("server.json")
    }
    /// `server.pid`.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("server.pid")
    }
    /// `server.sock`.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("server.sock")
    }
    /// `server.log`.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Takes the network lock (creating the directory), blocking.
    pub fn lock(&self) -> Result<NetLock, Error> {
        real_dir(&self.dir)?;
        let path = self.dir.join("lock");
        let file = kernel::flock::open(&path).map_err(|e| io_err(format!("opening {}", path.display()), &e))?;
        kernel::flock::lock(&file).map_err(|e| io_err(format!("locking {}", path.display()), &e))?;
        Ok(NetLock { _file: file })
    }

    /// Writes an attachment's record atomically.
    pub fn save(&self, rec: &Record) -> Result<String, Error> {
        let file = record_file(&rec.container_id, &rec.ifname)?;
        real_dir(&self.records())?;
        let body = serde_json::to_vec(rec).map_err(|e| Error::plugin(format!("dnsname: encoding record: {e}")))?;
        write_atomic(&self.records().join(&file), &body)?;
        Ok(file)
    }

    /// Removes an attachment's record; absent is fine. Returns its file name.
    pub fn remove(&self, container_id: &str, ifname: &str) -> Result<String, Error> {
        let file = record_file(container_id, ifname)?;
        match fs::remove_file(self.records().join(&file)) {
            Ok(()) => Ok(file),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(file),
            Err(e) => Err(io_err(format!("removing record {file}"), &e)),
        }
    }

    /// Reads one record file; `None` when absent or unreadable (logged).
    pub fn load_file(&self, file: &str) -> Option<Record> {
        let path = self.records().join(file);
        match read_small(&path) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(r) => Some(r),
                Err(e) => {
                    log::warn!("dnsname: {} is not a record: {e}", path.display());
                    None
                }
            },
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => {
                log::warn!("dnsname: reading {}: {e}", path.display());
                None
            }
        }
    }

    /// The record file names present.
    pub fn record_files(&self) -> Result<Vec<String>, Error> {
        let rd = match fs::read_dir(self.records()) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(format!("listing {}", self.records().display()), &e)),
        };
        Ok(rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| is_record_file(n)).collect())
    }

    /// Every record present, with its file name.
    pub fn all(&self) -> Result<Vec<(String, Record)>, Error> {
        Ok(self.record_files()?.into_iter().filter_map(|f| self.load_file(&f).map(|r| (f, r))).collect())
    }

    /// Writes `server.json`.
    pub fn save_server_conf(&self, conf: &ServerConf) -> Result<(), Error> {
        real_dir(&self.dir)?;
        let body = serde_json::to_vec_pretty(conf)
            .map_err(|e| Error::plugin(format!("dnsname: encoding server.json: {e}")))?;
        write_atomic(&self.server_conf(), &body)
    }

    /// Reads `server.json`.
    pub fn load_server_conf(&self) -> Result<ServerConf, Error> {
        let path = self.server_conf();
        let b = read_small(&path).map_err(|e| io_err(format!("reading {}", path.display()), &e))?;
        serde_json::from_slice(&b).map_err(|e| Error::decode(format!("dnsname: {}: {e}", path.display())))
    }

    /// Removes everything but `lock` once no record is left (the caller
    /// holds the lock and the server is gone). Returns whether it did.
    pub fn clean_if_empty(&self) -> Result<bool, Error> {
        if !self.record_files()?.is_empty() {
            return Ok(false);
        }
        let _ = fs::remove_dir_all(self.records());
        for p in [self.server_conf(), self.pid_file(), self.socket(), self.log_file()] {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("removing {}", p.display()), &e)),
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dnsname-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn rec(cid: &str) -> Record {
        Record {
            container_id: cid.into(),
            ifname: "eth0".into(),
            name: "web".into(),
            aliases: vec!["w".into()],
            ips: vec!["10.1.0.2/24".parse().unwrap()],
        }
    }

    #[test]
    fn records_round_trip_and_clean_up() {
        let d = tmp("rt");
        let n = NetDir::new(&d, "net1").unwrap();
        let _l = n.lock().unwrap();
        let f = n.save(&rec("c1")).unwrap();
        assert_eq!(f, "c1:eth0.json");
        assert_eq!(n.load_file("c1:eth0.json"), Some(rec("c1")));
        assert_eq!(n.all().unwrap(), vec![(f.clone(), rec("c1"))]);
        assert!(!n.clean_if_empty().unwrap());
        n.remove("c1", "eth0").unwrap();
        n.remove("c1", "eth0").unwrap();
        assert!(n.clean_if_empty().unwrap());
        let left: Vec<_> = fs::read_dir(&n.dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("lock")]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_symlinked_records_dir_is_refused() {
        let d = tmp("sym");
        let n = NetDir::new(&d, "net1").unwrap();
        fs::create_dir_all(&n.dir).unwrap();
        let elsewhere = d.join("elsewhere");
        fs::create_dir_all(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, n.records()).unwrap();
        assert!(n.save(&rec("c1")).is_err());
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_symlinked_record_is_replaced_not_followed() {
        let d = tmp("symfile");
        let n = NetDir::new(&d, "net1").unwrap();
        fs::create_dir_all(n.records()).unwrap();
        let target = d.join("target");
        fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, n.records().join("c1:eth0.json")).unwrap();
        assert!(n.load_file("c1:eth0.json").is_none());
        n.save(&rec("c1")).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert_eq!(n.load_file("c1:eth0.json"), Some(rec("c1")));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bad_ids_name_no_file() {
        assert!(record_file("../x", "eth0").is_err());
        assert!(record_file("c1", "a/b").is_err());
        assert!(record_file("c1", "a:b").is_err());
        let long = "a".repeat(400);
        assert!(record_file(&long, "eth0").unwrap().len() <= 255);
    }
}
