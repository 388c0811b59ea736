//! The daemon's leases on disk: one JSON file per attachment in the state
//! directory, replaced atomically (write, fsync, rename, by
//! `atomic_file`) at every change, so a daemon restarted at any
//! moment finds each lease as it last was and goes on renewing it (or
//! releases it on DEL).

use crate::record::Record;
use atomic_file::{Durability, Options};
use std::fs;
use std::os::unix::fs::DirBuilderExt;
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

    /// Writes `rec` atomically (`atomic_file`, mode 0600): its
    /// content is fsynced before the rename, so a daemon restarted after a
    /// crash finds the old lease or the new one, whole. The temporary file
    /// (`<hash>.tmp<pid>.<n>`) is created new and never through a symlink;
    /// a name taken there (a crash, or planted) is skipped, and
    /// [`Store::load_all`] sweeps it.
    pub fn save(&self, rec: &Record) -> std::io::Result<()> {
        let path = self.path(&rec.network, &rec.container_id, &rec.ifname);
        let bytes = serde_json::to_vec_pretty(rec).map_err(std::io::Error::other)?;
        let prefix = Self::temp_prefix(&path);
        atomic_file::replace(&path, &bytes, &Options::new(0o600).durability(Durability::Contents).temp_prefix(&prefix))
    }

    /// `<hash>.tmp`: what the temporary files of `path` start with (the
    /// sweep in [`Store::load_all`] knows them by `.tmp`).
    fn temp_prefix(path: &Path) -> String {
        format!("{}.tmp", path.file_stem().unwrap_or_default().to_string_lossy())
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
