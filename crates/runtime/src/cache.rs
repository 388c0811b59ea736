//! The result cache: one file per attachment, `<network>-<containerid>-<ifname>`,
//! in libcni's `cniCacheV1` format so that caches written by libcni-based
//! runtimes and by ours can be read by either. DEL and CHECK take their
//! `prevResult` from it, and GC takes the list of known attachments.
//!
//! Writes go to a temporary file in the same directory and are renamed into
//! place, so a concurrent reader sees the old file or the new one, never a
//! torn one. (No fsync: like libcni, the cache is not meant to survive a
//! power loss, only a crash of the runtime.)
//!
//! Nothing here follows a symlink planted in the cache directory: the
//! temporary file is created with `O_EXCL|O_NOFOLLOW` (mode 0600), the
//! rename replaces a link at the final name instead of writing through it,
//! and reads open with `O_NOFOLLOW` and accept only regular files.

use crate::Attachment;
use cni::{filename, CniResult, Error, NetConfList, Version};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The `kind` libcni writes and checks.
const CACHE_KIND: &str = "cniCacheV1";
/// The default cache directory (libcni's `/var/lib/cni` + `results`).
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni/results";
/// Largest cache file read.
const MAX_CACHE_FILE: u64 = 4 << 20;
/// Bytes of the final name kept in a temporary file's name (which adds
/// dots, `tmp`, the pid and a counter: `atomic_file`).
const TMP_NAME_KEEP: usize = 200;

/// Go encodes `[]byte` in JSON as base64 (and nil as `null`).
mod go_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(Vec::new()),
            Some(s) => base64::engine::general_purpose::STANDARD.decode(s).map_err(serde::de::Error::custom),
        }
    }
}

/// One cached attachment, field for field libcni's `cachedInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// Always [`CACHE_KIND`].
    pub kind: String,
    /// The container id.
    #[serde(rename = "containerId")]
    pub container_id: String,
    /// The network config list as JSON bytes (base64 in the file).
    #[serde(with = "go_bytes", default)]
    pub config: Vec<u8>,
    /// The interface name.
    #[serde(rename = "ifName")]
    pub ifname: String,
    /// The network name.
    #[serde(rename = "networkName")]
    pub network_name: String,
    /// The netns path given at ADD.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    /// `CNI_ARGS` given at ADD, as pairs.
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Vec::is_empty")]
    pub cni_args: Vec<(String, String)>,
    /// Capability arguments given at ADD (all of them, not per plugin).
    #[serde(rename = "capabilityArgs", default, skip_serializing_if = "Map::is_empty")]
    pub capability_args: Map<String, Value>,
    /// The final ADD result, in the list's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

impl CacheEntry {
    /// The entry for a successful ADD of `network` with `attachment`.
    pub fn new(network: &NetConfList, attachment: &Attachment, result: Value) -> crate::Result<CacheEntry> {
        let config = serde_json::to_vec(network).map_err(|e| Error::io(format!("encoding config for cache: {e}")))?;
        Ok(CacheEntry {
            kind: CACHE_KIND.into(),
            container_id: attachment.container_id.clone(),
            config,
            ifname: attachment.ifname.clone(),
            network_name: network.name.clone(),
            netns: attachment.netns.clone(),
            cni_args: attachment.args.clone(),
            capability_args: attachment.capability_args.clone(),
            result: Some(result),
        })
    }

    /// The attachment as it was at ADD.
    pub fn attachment(&self) -> Attachment {
        Attachment {
            container_id: self.container_id.clone(),
            netns: self.netns.clone(),
            ifname: self.ifname.clone(),
            args: self.cni_args.clone(),
            capability_args: self.capability_args.clone(),
        }
    }

    /// The config list the attachment was made with.
    pub fn config_list(&self) -> crate::Result<NetConfList> {
        NetConfList::from_bytes(&self.config, false).map_err(|e| e.context("cached config"))
    }

    /// The cached result, read in `version` (the list's version now; it
    /// differs from the cached one only if the config changed meanwhile).
    pub fn result_in(&self, version: Version) -> crate::Result<Option<CniResult>> {
        match &self.result {
            None | Some(Value::Null) => Ok(None),
            Some(v) => CniResult::parse(v, version).map(Some).map_err(|e| e.context("cached result")),
        }
    }
}

/// A directory of cache files.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

fn key_part(what: &str, s: &str) -> crate::Result<()> {
    if s.is_empty() || s.contains('/') || s.contains('\0') || s == "." || s == ".." {
        return Err(Error::invalid_env(format!("cache key: invalid {what} {s:?}")));
    }
    Ok(())
}

impl Cache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of one attachment; every part is checked so that no name
    /// can reach outside the directory. libcni's `<network>-<id>-<ifname>`
    /// when it fits in a file name; libcni itself cannot write a longer one
    /// (its ADD fails after the plugins ran), so a longer one is ours alone
    /// and is cut and completed with a hash of the three parts.
    pub fn path(&self, network: &str, container_id: &str, ifname: &str) -> crate::Result<PathBuf> {
        key_part("network name", network)?;
        key_part("container id", container_id)?;
        key_part("interface name", ifname)?;
        let plain = format!("{network}-{container_id}-{ifname}");
        Ok(self.dir.join(filename::bounded(&plain, &[network, container_id, ifname], filename::NAME_MAX)))
    }

    /// Writes `entry` atomically (`atomic_file`: temporary file +
    /// rename, not synced: a lost entry costs a DEL its cached result),
    /// mode 0600 in a 0700 directory as libcni.
    pub fn write(&self, entry: &CacheEntry) -> crate::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let path = self.path(&entry.network_name, &entry.container_id, &entry.ifname)?;
        let io = |what: &str, e: std::io::Error| Error::io(format!("{what} {}: {e}", path.display()));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| Error::io(format!("creating cache directory {}: {e}", self.dir.display())))?;
        let bytes = serde_json::to_vec(entry).map_err(|e| io("encoding", std::io::Error::other(e)))?;
        let final_name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        // Cut so that the temporary name fits in a file name too.
        let mut keep = final_name.len().min(TMP_NAME_KEEP);
        while !final_name.is_char_boundary(keep) {
            keep -= 1;
        }
        let prefix = format!(".{}.tmp.", &final_name[..keep]);
        atomic_file::replace(&path, &bytes, &atomic_file::Options::new(0o600).temp_prefix(&prefix))
            .map_err(|e| io("writing cache file", e))
    }

    /// Reads one entry; `Ok(None)` when there is no file. A file in the
    /// pre-`cniCacheV1` format (a bare result) is read as an entry holding
    /// only that result, as libcni reads it.
    pub fn read(&self, network: &str, container_id: &str, ifname: &str) -> crate::Result<Option<CacheEntry>> {
        let path = self.path(network, container_id, ifname)?;
        let bytes = match read_bounded(&path) {
            Ok(b) => b,
            Err(e) if cannot_exist(&e) => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading cache file {}: {e}", path.display()))),
        };
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::decode(format!("cache file {} is not JSON: {e}", path.display())))?;
        if v.get("kind").is_none() && v.get("cniVersion").is_some() {
            return Ok(Some(CacheEntry {
                kind: CACHE_KIND.into(),
                container_id: container_id.into(),
                config: Vec::new(),
                ifname: ifname.into(),
                network_name: network.into(),
                netns: String::new(),
                cni_args: Vec::new(),
                capability_args: Map::new(),
                result: Some(v),
            }));
        }
        let entry: CacheEntry =
            serde_json::from_value(v).map_err(|e| Error::decode(format!("cache file {}: {e}", path.display())))?;
        if entry.kind != CACHE_KIND {
            return Err(Error::decode(format!("cache file {} has wrong kind {:?}", path.display(), entry.kind)));
        }
        // A hashed name is trusted only for the attachment it holds.
        let hashed = path.file_name().is_some_and(|n| filename::is_hashed(&n.to_string_lossy()));
        if hashed && (entry.network_name != network || entry.container_id != container_id || entry.ifname != ifname) {
            return Err(Error::decode(format!("cache file {} holds another attachment", path.display())));
        }
        Ok(Some(entry))
    }

    /// Removes one entry; a missing file is not an error.
    pub fn remove(&self, network: &str, container_id: &str, ifname: &str) -> crate::Result<()> {
        let path = self.path(network, container_id, ifname)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if cannot_exist(&e) => Ok(()),
            Err(e) => Err(Error::io(format!("removing cache file {}: {e}", path.display()))),
        }
    }

    /// Every readable `cniCacheV1` entry, sorted by file name, optionally
    /// only those of one network. Unreadable files are skipped, as libcni's
    /// `GetCachedAttachments` skips them.
    pub fn list(&self, network: Option<&str>) -> crate::Result<Vec<CacheEntry>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("reading cache directory {}: {e}", self.dir.display()))),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if let Some(net) = network {
                if !name.starts_with(&format!("{net}-")) && !filename::is_hashed(&name) {
                    continue;
                }
            }
            let Ok(bytes) = read_bounded(&self.dir.join(&name)) else { continue };
            let Ok(entry) = serde_json::from_slice::<CacheEntry>(&bytes) else { continue };
            if entry.kind != CACHE_KIND || entry.ifname.is_empty() || entry.network_name.is_empty() {
                continue;
            }
            if network.is_some_and(|n| n != entry.network_name) {
                continue;
            }
            out.push(entry);
        }
        Ok(out)
    }
}

/// Whether `e` says the file is not there, or could never be (a name too
/// long, written by nobody): DEL must go on in both cases.
fn cannot_exist(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENAMETOOLONG)
}

/// Reads at most [`MAX_CACHE_FILE`] bytes of a regular file, never through
/// a symlink (`ELOOP`/`InvalidData` for a link or another file type).
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a regular file"));
    }
    let mut buf = Vec::new();
    f.take(MAX_CACHE_FILE).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> NetConfList {
        NetConfList::from_bytes(br#"{"cniVersion":"1.0.0","name":"net1","plugins":[{"type":"bridge"}]}"#, false)
            .unwrap()
    }

    fn att() -> Attachment {
        Attachment::new("c1", "/run/netns/x", "eth0")
            .with_arg("IgnoreUnknown", "1")
            .with_capability("portMappings", json!([{"hostPort": 80, "containerPort": 80}]))
    }

    #[test]
    fn write_read_round_trip_in_libcni_format() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path().join("results"));
        let result = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}], "dns": {}});
        let entry = CacheEntry::new(&list(), &att(), result.clone()).unwrap();
        cache.write(&entry).unwrap();

        let file = d.path().join("results/net1-c1-eth0");
        let raw: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(raw["kind"], "cniCacheV1");
        assert_eq!(raw["containerId"], "c1");
        assert_eq!(raw["ifName"], "eth0");
        assert_eq!(raw["networkName"], "net1");
        assert_eq!(raw["netns"], "/run/netns/x");
        assert_eq!(raw["cniArgs"], json!([["IgnoreUnknown", "1"]]));
        assert_eq!(raw["capabilityArgs"]["portMappings"][0]["hostPort"], 80);
        assert_eq!(raw["result"], result);
        use base64::Engine;
        let config = base64::engine::general_purpose::STANDARD.decode(raw["config"].as_str().unwrap()).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&config).unwrap()["name"], "net1");

        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

        let back = cache.read("net1", "c1", "eth0").unwrap().unwrap();
        assert_eq!(back, entry);
        assert_eq!(back.attachment(), att());
        assert_eq!(back.config_list().unwrap().name, "net1");
        assert_eq!(back.result_in(Version::V100).unwrap().unwrap().ips.len(), 1);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(cache.dir()).unwrap().count(), 1);
    }

    #[test]
    fn long_container_ids_are_cached_under_a_hashed_name() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        let (a, b) = ("a".repeat(1000), format!("{}b", "a".repeat(249)));
        for id in [&a, &b] {
            let entry = CacheEntry::new(&list(), &Attachment::new(id.as_str(), "", "eth0"), json!({})).unwrap();
            cache.write(&entry).unwrap();
            assert_eq!(cache.read("net1", id, "eth0").unwrap().unwrap(), entry);
        }
        cache.write(&CacheEntry::new(&list(), &Attachment::new("c1", "", "eth0"), json!({})).unwrap()).unwrap();
        let ids: Vec<String> = cache.list(Some("net1")).unwrap().into_iter().map(|e| e.container_id).collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert!(cache.list(Some("net10")).unwrap().is_empty());
        // Every name fits; the short id keeps libcni's name.
        for e in std::fs::read_dir(d.path()).unwrap().flatten() {
            assert!(e.file_name().len() <= 255);
        }
        assert!(d.path().join("net1-c1-eth0").exists());
        cache.remove("net1", &a, "eth0").unwrap();
        cache.remove("net1", &a, "eth0").unwrap();
        assert!(cache.read("net1", &a, "eth0").unwrap().is_none());
        assert!(cache.read("net1", &b, "eth0").unwrap().is_some());
    }

    #[test]
    fn missing_removed_and_bad_entries() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        assert!(cache.read("net1", "c1", "eth0").unwrap().is_none());
        cache.remove("net1", "c1", "eth0").unwrap();
        std::fs::write(d.path().join("net1-c2-eth0"), "{garbage").unwrap();
        assert_eq!(cache.read("net1", "c2", "eth0").unwrap_err().code, 6);
        std::fs::write(
            d.path().join("net1-c3-eth0"),
            r#"{"kind":"other","containerId":"c3","ifName":"eth0","networkName":"net1"}"#,
        )
        .unwrap();
        assert!(cache.read("net1", "c3", "eth0").is_err());
        assert!(cache.path("net1", "../c", "eth0").is_err());
        assert!(cache.path("net1", "c", "").is_err());
    }

    #[test]
    fn planted_symlinks_are_never_followed() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path().join("results"));
        std::fs::create_dir_all(cache.dir()).unwrap();
        let victim = d.path().join("victim");
        let entry = CacheEntry::new(&list(), &att(), json!({"cniVersion": "1.0.0"})).unwrap();
        // A victim that reads as a valid entry: a followed link would be trusted.
        std::fs::write(&victim, serde_json::to_vec(&entry).unwrap()).unwrap();
        let before = std::fs::read(&victim).unwrap();
        symlink(&victim, cache.dir().join("net1-c1-eth0")).unwrap();
        let e = cache.read("net1", "c1", "eth0").unwrap_err();
        assert_eq!(e.code, 5, "{e}");
        assert!(cache.list(None).unwrap().is_empty(), "a link is not listed");
        // Writing replaces the link; the victim is untouched.
        cache.write(&entry).unwrap();
        assert!(std::fs::symlink_metadata(cache.dir().join("net1-c1-eth0")).unwrap().is_file());
        assert_eq!(std::fs::read(&victim).unwrap(), before);
        // Links planted at the next temporary names are skipped, not followed.
        symlink(&victim, atomic_file::next_temp_path(cache.dir(), ".net1-c1-eth0.tmp.")).unwrap();
        cache.write(&entry).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), before);
        // Removing a planted link removes the link only.
        std::fs::remove_file(cache.dir().join("net1-c1-eth0")).unwrap();
        symlink(&victim, cache.dir().join("net1-c1-eth0")).unwrap();
        cache.remove("net1", "c1", "eth0").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), before);
    }

    #[test]
    fn a_truncated_or_corrupt_entry_is_reported_not_trusted() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        let entry = CacheEntry::new(&list(), &att(), json!({"cniVersion": "1.0.0"})).unwrap();
        let bytes = serde_json::to_vec(&entry).unwrap();
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(d.path().join("net1-c1-eth0"), &bytes[..cut]).unwrap();
            assert_eq!(cache.read("net1", "c1", "eth0").unwrap_err().code, 6, "cut at {cut}");
            assert!(cache.list(None).unwrap().is_empty());
        }
    }

    #[test]
    fn legacy_bare_result_is_read() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        std::fs::write(
            d.path().join("net1-c1-eth0"),
            r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.1.2/24"}]}"#,
        )
        .unwrap();
        let e = cache.read("net1", "c1", "eth0").unwrap().unwrap();
        assert_eq!(e.result_in(Version::V040).unwrap().unwrap().ips.len(), 1);
    }

    #[test]
    fn list_filters_by_network() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        let l = list();
        for id in ["b", "a"] {
            cache.write(&CacheEntry::new(&l, &Attachment::new(id, "", "eth0"), json!({})).unwrap()).unwrap();
        }
        let mut other = list();
        other.name = "net10".into();
        cache.write(&CacheEntry::new(&other, &Attachment::new("z", "", "eth0"), json!({})).unwrap()).unwrap();
        std::fs::write(d.path().join("net1-junk-eth0"), "junk").unwrap();
        let ids: Vec<String> = cache.list(Some("net1")).unwrap().into_iter().map(|e| e.container_id).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(cache.list(None).unwrap().len(), 3);
        assert!(Cache::new(d.path().join("none")).list(None).unwrap().is_empty());
    }
}
