//! Finding a network by name in a config directory, as libcni's
//! `LoadConfList` does: `.conflist` files first (sorted by file name), then
//! `.conf` and `.json` files, each a single plugin wrapped as a list of one.
//! A conflist also takes plugin configs from the sibling directory
//! `<dir>/<network>/*.conf` unless it sets `loadOnlyInlinedPlugins`.

use cni::{validate, Error, NetConfList};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Largest config file read; a network config is a few KiB.
const MAX_CONFIG_FILE: u64 = 1 << 20;

/// The files in `dir` whose extension is one of `exts`, sorted by path. A
/// missing directory has no files (as libcni: not an error by itself).
fn conf_files(dir: &Path, exts: &[&str]) -> crate::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading config directory {}: {e}", dir.display()))),
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        // Follow symlinks: config directories are often managed by links.
        if !path.is_file() {
            continue;
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if exts.contains(&ext) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_bounded(path: &Path) -> crate::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::io(format!("error reading {}: {e}", path.display())))?;
    let mut buf = Vec::new();
    file.take(MAX_CONFIG_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(format!("error reading {}: {e}", path.display())))?;
    if buf.len() as u64 > MAX_CONFIG_FILE {
        return Err(Error::invalid_config(format!("{} is too large", path.display()))
            .with_details(format!("a network config may be at most {MAX_CONFIG_FILE} bytes")));
    }
    Ok(buf)
}

/// Parses conflist bytes found in `dir`, adding the plugin configs of the
/// sibling directory `<dir>/<name>/*.conf` unless `loadOnlyInlinedPlugins`.
pub fn conflist_from_bytes(bytes: &[u8], dir: Option<&Path>) -> crate::Result<NetConfList> {
    let mut raw: Value =
        serde_json::from_slice(bytes).map_err(|e| Error::decode(format!("error parsing configuration list: {e}")))?;
    let Some(obj) = raw.as_object_mut() else {
        return Err(Error::decode("error parsing configuration list: not a JSON object"));
    };
    // libcni accepts "true"/"false" strings for the list's booleans.
    for key in ["disableCheck", "disableGC"] {
        if let Some(Value::String(s)) = obj.get(key) {
            let b = match s.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(Error::invalid_config(format!("invalid value {s:?} for {key}"))),
            };
            obj.insert(key.into(), Value::Bool(b));
        }
    }
    let inlined_only = match obj.get("loadOnlyInlinedPlugins") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(other) => {
            return Err(Error::invalid_config(format!("invalid value {other} for loadOnlyInlinedPlugins")));
        }
    };
    let name = cni::gojson::member(obj, "name").and_then(Value::as_str).unwrap_or_default().to_string();
    if let (Some(dir), false) = (dir, inlined_only) {
        validate::network_name(&name)?;
        let extra = conf_files(&dir.join(&name), &["conf"])?;
        if !extra.is_empty() {
            let plugins = obj.entry("plugins").or_insert_with(|| Value::Array(Vec::new()));
            let Some(list) = plugins.as_array_mut() else {
                return Err(Error::invalid_config("error parsing configuration list: \"plugins\" is not a list"));
            };
            for path in extra {
                let p: Value = serde_json::from_slice(&read_bounded(&path)?)
                    .map_err(|e| Error::decode(format!("error parsing {}: {e}", path.display())))?;
                list.push(p);
            }
        }
    }
    let bytes = serde_json::to_vec(&raw).map_err(|e| Error::decode(e.to_string()))?;
    NetConfList::from_bytes(&bytes, false)
}

/// Loads one file: a `.conflist`, or a `.conf`/`.json` single plugin config
/// wrapped as a list of one (a `.conf` that holds a `plugins` list is read
/// as a conflist, which is what its author meant).
pub fn load_file(path: &Path) -> crate::Result<NetConfList> {
    let bytes = read_bounded(path)?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    let in_dir = path.parent();
    let res = if ext == "conflist" {
        conflist_from_bytes(&bytes, in_dir)
    } else {
        let looks_like_list = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .is_some_and(|v| v.get("plugins").is_some_and(Value::is_array) && v.get("type").is_none());
        if looks_like_list {
            conflist_from_bytes(&bytes, in_dir)
        } else {
            NetConfList::from_bytes(&bytes, true)
        }
    };
    res.map_err(|e| e.context(path.display()))
}

/// Finds the network `name` in `dir`: the first `.conflist` (by file name)
/// whose `name` matches, else the first `.conf`/`.json`. Files that do not
/// parse are skipped with a warning (libcni would fail on them) and named in
/// the not-found error, so one broken file does not take down every network.
pub fn load_network(dir: &Path, name: &str) -> crate::Result<NetConfList> {
    let lists = conf_files(dir, &["conflist"])?;
    let singles = conf_files(dir, &["conf", "json"])?;
    if lists.is_empty() && singles.is_empty() {
        return Err(Error::invalid_config(format!("no net configurations found in {}", dir.display())));
    }
    let mut broken = Vec::new();
    for path in lists.iter().chain(singles.iter()) {
        match load_file(path) {
            Ok(list) if list.name == name => return Ok(list),
            Ok(_) => {}
            Err(e) => {
                log::warn!("skipping {}: {e}", path.display());
                broken.push(format!("{e}"));
            }
        }
    }
    let mut err = Error::invalid_config(format!("no net configuration with name {name:?} in {}", dir.display()));
    if !broken.is_empty() {
        err = err.with_details(format!("files that could not be read: {}", broken.join("; ")));
    }
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(dir: &Path, file: &str, body: &str) {
        if let Some(parent) = dir.join(file).parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(dir.join(file), body).unwrap();
    }

    #[test]
    fn conflist_preferred_over_conf() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "00-a.conf", r#"{"cniVersion":"0.4.0","name":"net","type":"single"}"#);
        write(d.path(), "99-b.conflist", r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"listed"}]}"#);
        let l = load_network(d.path(), "net").unwrap();
        assert_eq!(l.plugins[0]["type"], "listed");
        assert_eq!(l.cni_version, "1.0.0");
    }

    #[test]
    fn first_by_file_name_wins() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "20.conflist", r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"second"}]}"#);
        write(d.path(), "10.conflist", r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"first"}]}"#);
        assert_eq!(load_network(d.path(), "net").unwrap().plugins[0]["type"], "first");
    }

    #[test]
    fn single_conf_and_json_are_wrapped() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.conf", r#"{"cniVersion":"0.3.1","name":"one","type":"bridge","bridge":"br9"}"#);
        write(d.path(), "b.json", r#"{"cniVersion":"1.0.0","name":"two","type":"loopback"}"#);
        write(d.path(), "c.txt", r#"{"cniVersion":"1.0.0","name":"three","type":"loopback"}"#);
        let one = load_network(d.path(), "one").unwrap();
        assert_eq!(one.plugins.len(), 1);
        assert_eq!(one.plugins[0]["bridge"], "br9");
        assert_eq!(one.cni_version, "0.3.1");
        assert_eq!(load_network(d.path(), "two").unwrap().plugins[0]["type"], "loopback");
        let e = load_network(d.path(), "three").unwrap_err();
        assert!(e.msg.contains("no net configuration with name \"three\""), "{e}");
    }

    #[test]
    fn missing_dir_and_broken_files() {
        let d = tempfile::tempdir().unwrap();
        let e = load_network(&d.path().join("nope"), "x").unwrap_err();
        assert!(e.msg.contains("no net configurations found"), "{e}");
        write(d.path(), "a.conflist", "{not json");
        write(d.path(), "b.conflist", r#"{"cniVersion":"1.0.0","name":"ok","plugins":[{"type":"x"}]}"#);
        assert!(load_network(d.path(), "ok").is_ok());
        let e = load_network(d.path(), "other").unwrap_err();
        assert!(e.details.contains("a.conflist"), "{e}");
    }

    #[test]
    fn sibling_directory_plugins() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "n.conflist", r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"a"}]}"#);
        write(d.path(), "n/20-c.conf", r#"{"type":"c"}"#);
        write(d.path(), "n/10-b.conf", r#"{"type":"b"}"#);
        let l = load_network(d.path(), "n").unwrap();
        let types: Vec<&str> = l.plugins.iter().map(|p| p["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["a", "b", "c"]);

        write(
            d.path(),
            "n.conflist",
            r#"{"cniVersion":"1.0.0","name":"n","loadOnlyInlinedPlugins":true,"plugins":[{"type":"a"}]}"#,
        );
        assert_eq!(load_network(d.path(), "n").unwrap().plugins.len(), 1);

        // No inline plugins at all: the directory supplies them.
        write(d.path(), "n.conflist", r#"{"cniVersion":"1.0.0","name":"n"}"#);
        assert_eq!(load_network(d.path(), "n").unwrap().plugins.len(), 2);
    }

    #[test]
    fn string_booleans_as_libcni() {
        let l = conflist_from_bytes(
            br#"{"cniVersion":"1.1.0","name":"s","disableCheck":"True","disableGC":"false","plugins":[{"type":"a"}]}"#,
            None,
        )
        .unwrap();
        assert!(l.disable_check && !l.disable_gc);
        assert!(conflist_from_bytes(br#"{"name":"s","disableGC":"maybe","plugins":[{"type":"a"}]}"#, None).is_err());
    }

    #[test]
    fn conf_holding_a_list_is_a_list() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "x.conf", r#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"a"},{"type":"b"}]}"#);
        assert_eq!(load_network(d.path(), "x").unwrap().plugins.len(), 2);
    }

    #[test]
    fn selection_uses_cni_versions() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "v.conflist",
            r#"{"cniVersion":"0.4.0","cniVersions":["1.0.0","1.1.0","2.0.0"],"name":"v","plugins":[{"type":"a"}]}"#,
        );
        let l = load_network(d.path(), "v").unwrap();
        assert_eq!(l.selected_version().unwrap(), cni::Version::V110);
    }

    #[test]
    fn invalid_plugin_type_is_refused() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "v.conflist", r#"{"cniVersion":"1.0.0","name":"v","plugins":[{"type":"../../bin/sh"}]}"#);
        let e = load_network(d.path(), "v").unwrap_err();
        assert!(e.details.contains("invalid plugin name"), "{e:?}");
    }
}
