//! The daemon's leases on disk: one JSON file per attachment in the state
//! directory, replaced atomically (write, fsync, rename) at every change,
//! so a daemon restarted at any moment finds each lease as it last was
//! and goes on renewing it (or releases it on DEL).

use crate::record::Record;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A directory of lease files.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating, mode 0700) the directory.
    pub fn open(dir: &Path) -> std::io::Result<Store> {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        Ok(Store { dir: dir.to_path_buf() })
    }

    /// The file of an attachment: a hash, so no id or name reaches a path.
    fn path(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        let h = netcore::naming::fnv1a64(&[network, container_id, ifname]);
        self.dir.join(format!("{h:016x}.json"))
    }

    /// Writes `rec` atomically. The temporary file is created new and never
    /// through a symlink: a name left at it (a crash, or planted) is
    /// unlinked first, so nothing outside the directory is written.
    pub fn save(&self, rec: &Record) -> std::io::Result<()> {
        let path = self.path(&rec.network, &rec.container_id, &rec.ifname);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(rec).map_err(std::io::Error::other)?;
        let create = || {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)
        };
        let mut f = match create() {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                fs::remove_file(&tmp)?;
                create()?
            }
            r => r?,
        };
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    }

    /// Removes the file of an attachment; absent is fine.
    pub fn remove(&self, network: &str, container_id: &str, ifname: &str) -> std::io::Result<()> {
        match fs::remove_file(self.path(network, container_id, ifname)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every readable lease; unreadable files are logged and left alone,
    /// leftover temporary files removed.
    pub fn load_all(&self) -> Vec<Record> {
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(&self.dir) else { return out };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(".tmp") {
                let _ = fs::remove_file(&p);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            match fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(r) => out.push(r),
                Err(e) => log::warn!("ignoring lease file {}: {e}", p.display()),
            }
        }
        out
    }
}
