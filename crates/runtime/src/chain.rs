//! The operations on a whole network (a list of plugins), with libcni's
//! semantics: ADD in order chaining `prevResult` and caching the final
//! result; DEL in reverse order with the cached result; CHECK against the
//! cached result; GC that first deletes stale cached attachments; STATUS.

use crate::cache::{Cache, CacheEntry, DEFAULT_CACHE_DIR};
use crate::exec::{PluginExec, ProcessExec};
use crate::{request, Attachment, GcAttachment};
use cni::error::code;
use cni::{validate, CniResult, Error, NetConfList, Version};
use invoke::parse_result;
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The default directory of network configs, as cnitool's.
const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";

/// A container runtime's view of CNI: where plugins, configs and the result
/// cache live, and how plugins are run. Cheap to clone; one value can serve
/// concurrent operations on different attachments.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Directories searched for plugin binaries, in order (`CNI_PATH`).
    pub plugin_path: Vec<PathBuf>,
    /// Directory of `.conflist`/`.conf`/`.json` files (`NETCONFPATH`).
    pub conf_dir: PathBuf,
    /// Directory of result cache files (`CNI_CACHE_DIR`).
    pub cache_dir: PathBuf,
    /// Extra variables for every plugin, set after the `CNI_*` ones (so
    /// they may override them, which tests of bad environments use).
    pub extra_env: Vec<(String, String)>,
    /// Treat output on stdout from a successful DEL, CHECK, GC or STATUS as
    /// an error. libcni ignores it; conformance tests want to catch it.
    pub strict_output: bool,
    /// How plugins are found and run.
    pub exec: Arc<dyn PluginExec>,
}

/// `plugin type="bridge" name="net" failed (add)`, libcni's wording.
fn describe(plugin: &Value, network: &str, op: &str) -> String {
    let ty = plugin.get("type").and_then(Value::as_str).unwrap_or("<missing>");
    format!("plugin type={ty:?} name={network:?} failed ({op})")
}

fn plugin_type(plugin: &Value) -> &str {
    plugin.get("type").and_then(Value::as_str).unwrap_or_default()
}

fn to_json(v: &Value) -> crate::Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::decode(format!("encoding plugin config: {e}")))
}

/// Several errors as one: the first one's code, every message.
fn join_errors(errs: Vec<Error>) -> crate::Result<()> {
    let mut it = errs.into_iter();
    let Some(first) = it.next() else { return Ok(()) };
    let rest: Vec<Error> = it.collect();
    if rest.is_empty() {
        return Err(first);
    }
    let mut msgs = vec![first.msg.clone()];
    let mut details: Vec<String> = vec![first.details.clone()];
    for e in rest {
        msgs.push(e.msg);
        details.push(e.details);
    }
    details.retain(|d| !d.is_empty());
    Err(Error::new(first.code, msgs.join("; ")).with_details(details.join("; ")))
}

impl Runtime {
    /// A runtime that runs real plugin processes.
    pub fn new(plugin_path: Vec<PathBuf>, conf_dir: impl Into<PathBuf>, cache_dir: impl Into<PathBuf>) -> Runtime {
        Runtime {
            plugin_path,
            conf_dir: conf_dir.into(),
            cache_dir: cache_dir.into(),
            extra_env: Vec::new(),
            strict_output: false,
            exec: Arc::new(ProcessExec),
        }
    }

    /// A runtime configured as cnitool is: `CNI_PATH`, `NETCONFPATH`
    /// (default `/etc/cni/net.d`) and `CNI_CACHE_DIR` (default
    /// `/var/lib/cni/results`), read through `env`.
    pub fn from_env_with(env: &dyn Fn(&str) -> Option<String>) -> Runtime {
        let var = |k: &str| env(k).filter(|v| !v.is_empty());
        let plugin_path = var("CNI_PATH")
            .map(|p| p.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect())
            .unwrap_or_default();
        Runtime::new(
            plugin_path,
            var("NETCONFPATH").unwrap_or_else(|| DEFAULT_CONF_DIR.into()),
            var("CNI_CACHE_DIR").unwrap_or_else(|| DEFAULT_CACHE_DIR.into()),
        )
    }

    /// Runs plugins through `exec` instead of real processes.
    pub fn with_exec(mut self, exec: Arc<dyn PluginExec>) -> Runtime {
        self.exec = exec;
        self
    }

    /// The result cache.
    pub fn cache(&self) -> Cache {
        Cache::new(&self.cache_dir)
    }

    /// Loads the network `name` from [`Runtime::conf_dir`].
    pub fn load_network(&self, name: &str) -> crate::Result<NetConfList> {
        crate::config::load_network(&self.conf_dir, name)
    }

    /// The cache entry of one attachment, if any.
    pub fn cached(&self, network: &str, attachment: &Attachment) -> crate::Result<Option<CacheEntry>> {
        self.cache().read(network, &attachment.container_id, &attachment.ifname)
    }

    fn env(&self, command: &str, att: Option<&Attachment>) -> Vec<(String, String)> {
        let path = self.plugin_path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
        let empty = Attachment::default();
        let a = att.unwrap_or(&empty);
        let mut env = vec![
            ("CNI_COMMAND".to_string(), command.to_string()),
            ("CNI_CONTAINERID".to_string(), a.container_id.clone()),
            ("CNI_NETNS".to_string(), a.netns.clone()),
            ("CNI_IFNAME".to_string(), a.ifname.clone()),
            ("CNI_ARGS".to_string(), a.cni_args()),
            ("CNI_PATH".to_string(), path),
        ];
        env.extend(self.extra_env.iter().cloned());
        env
    }

    /// Runs one plugin with `stdin`; returns its stdout.
    fn run(&self, plugin: &Value, stdin: &Value, command: &str, att: Option<&Attachment>) -> crate::Result<Vec<u8>> {
        let path = self.exec.find_plugin(plugin_type(plugin), &self.plugin_path)?;
        self.exec.exec_plugin(&path, &to_json(stdin)?, &self.env(command, att))
    }

    /// Runs one plugin for a command that prints nothing on success.
    fn run_quiet(&self, plugin: &Value, stdin: &Value, command: &str, att: Option<&Attachment>) -> crate::Result<()> {
        let out = self.run(plugin, stdin, command, att)?;
        if !out.iter().all(u8::is_ascii_whitespace) {
            let text = String::from_utf8_lossy(&out);
            if self.strict_output {
                return Err(Error::new(
                    invoke::UNTYPED_FAILURE,
                    format!("plugin printed output on a successful {command}, which must print nothing"),
                )
                .with_details(text.into_owned()));
            }
            log::debug!("{} {command}: ignoring output {text:?}", plugin_type(plugin));
        }
        Ok(())
    }

    /// ADD: runs the plugins in order, each getting the previous one's
    /// result as `prevResult` (re-serialized in the list's version), caches
    /// the final result and returns it. On failure nothing is cached and
    /// nothing is undone here: the caller runs DEL, as the spec asks of
    /// runtimes.
    pub fn add(&self, network: &NetConfList, attachment: &Attachment) -> crate::Result<CniResult> {
        attachment.validate()?;
        validate::network_name(&network.name)?;
        let version = network.selected_version()?;
        let mut prev: Option<Value> = None;
        let mut result = CniResult::default();
        for plugin in &network.plugins {
            let step = || -> crate::Result<(CniResult, Value)> {
                let stdin = request::attachment_request(
                    plugin,
                    &network.name,
                    version,
                    &attachment.capability_args,
                    prev.as_ref(),
                )?;
                let out = self.run(plugin, &stdin, "ADD", Some(attachment))?;
                let r = parse_result(&out, version)?;
                let v = r.to_value(version)?;
                Ok((r, v))
            };
            let (r, v) = step().map_err(|e| e.context(describe(plugin, &network.name, "add")))?;
            result = r;
            prev = Some(v);
        }
        let final_value = prev.unwrap_or(Value::Null);
        let entry = CacheEntry::new(network, attachment, final_value)?;
        self.cache()
            .write(&entry)
            .map_err(|e| e.context(format!("failed to set network {:?} cached result", network.name)))?;
        Ok(result)
    }

    /// The attachment to use for DEL/CHECK: the caller's, with `CNI_ARGS`
    /// and capability arguments taken from the cache when the caller gave
    /// none (so portmap still sees its mappings on DEL).
    fn with_cached_args(attachment: &Attachment, cached: Option<&CacheEntry>) -> Attachment {
        let mut att = attachment.clone();
        if let Some(c) = cached {
            if att.capability_args.is_empty() {
                att.capability_args = c.capability_args.clone();
            }
            if att.args.is_empty() {
                att.args = c.cni_args.clone();
            }
        }
        att
    }

    /// DEL: runs the plugins in reverse order, each getting the cached final
    /// result as `prevResult` (for lists of version 0.4.0 and later, when a
    /// cache entry exists). Stops at the first error and keeps the cache
    /// then, so a retried DEL still has the result; removes it after all
    /// plugins succeeded. A missing cache still runs every plugin.
    pub fn del(&self, network: &NetConfList, attachment: &Attachment) -> crate::Result<()> {
        attachment.validate()?;
        validate::network_name(&network.name)?;
        let version = network.selected_version()?;
        let cache = self.cache();
        let cached = match cache.read(&network.name, &attachment.container_id, &attachment.ifname) {
            Ok(c) => c,
            Err(e) => {
                // As libcni: an unreadable cache is dropped, DEL goes on.
                log::warn!("ignoring unreadable cache entry: {e}");
                let _ = cache.remove(&network.name, &attachment.container_id, &attachment.ifname);
                None
            }
        };
        let att = Self::with_cached_args(attachment, cached.as_ref());
        let prev = match (&cached, version >= Version::V040) {
            (Some(c), true) => match c.result_in(version).and_then(|r| r.map(|r| r.to_value(version)).transpose()) {
                Ok(v) => v,
                Err(e) => {
                    log::warn!("DEL without prevResult: {e}");
                    None
                }
            },
            _ => None,
        };
        for plugin in network.plugins.iter().rev() {
            let step = || -> crate::Result<()> {
                let stdin =
                    request::attachment_request(plugin, &network.name, version, &att.capability_args, prev.as_ref())?;
                self.run_quiet(plugin, &stdin, "DEL", Some(&att))
            };
            step().map_err(|e| e.context(describe(plugin, &network.name, "delete")))?;
        }
        cache.remove(&network.name, &attachment.container_id, &attachment.ifname)
    }

    /// CHECK: refused for lists older than 0.4.0 and lists with
    /// `disableCheck`; needs a cached result, which every plugin gets as
    /// `prevResult`, in order. The first failure is returned.
    pub fn check(&self, network: &NetConfList, attachment: &Attachment) -> crate::Result<()> {
        attachment.validate()?;
        validate::network_name(&network.name)?;
        let version = network.selected_version()?;
        if version < Version::V040 {
            return Err(Error::new(
                code::INCOMPATIBLE_VERSION,
                format!("configuration version {:?} does not support the CHECK command", version.as_str()),
            )
            .with_details("CHECK needs cniVersion 0.4.0 or later"));
        }
        if network.disable_check {
            return Err(Error::invalid_config(format!(
                "network {:?} has disableCheck set: CHECK is not run",
                network.name
            )));
        }
        let cached = self
            .cached(&network.name, attachment)
            .map_err(|e| e.context(format!("failed to get network {:?} cached result", network.name)))?;
        let prev = match cached.as_ref().map(|c| c.result_in(version)).transpose()?.flatten() {
            Some(r) => r.to_value(version)?,
            None => {
                return Err(Error::new(
                    code::UNKNOWN_CONTAINER,
                    format!(
                        "no cached result for network {:?}, container {:?}, interface {:?}",
                        network.name, attachment.container_id, attachment.ifname
                    ),
                )
                .with_details("CHECK compares against the result of a previous ADD; run ADD first"))
            }
        };
        let att = Self::with_cached_args(attachment, cached.as_ref());
        for plugin in &network.plugins {
            let step = || -> crate::Result<()> {
                let stdin =
                    request::attachment_request(plugin, &network.name, version, &att.capability_args, Some(&prev))?;
                self.run_quiet(plugin, &stdin, "CHECK", Some(&att))
            };
            step().map_err(|e| e.context(describe(plugin, &network.name, "check")))?;
        }
        Ok(())
    }

    /// GC: does nothing for a list with `disableGC`. Otherwise first runs a
    /// DEL for every cached attachment of this network that is not in
    /// `valid` (with its cached netns, `CNI_ARGS` and capability arguments),
    /// then, for lists of version 1.1.0 and later, sends GC to every plugin
    /// with `cni.dev/valid-attachments` (and the legacy
    /// `cni.dev/attachments`) set to `valid`. Keeps going past failures and
    /// reports them all.
    pub fn gc(&self, network: &NetConfList, valid: &[GcAttachment]) -> crate::Result<()> {
        validate::network_name(&network.name)?;
        if network.disable_gc {
            log::info!("network {:?} has disableGC set: GC is not run", network.name);
            return Ok(());
        }
        let version = network.selected_version()?;
        atomic_file::sweep_stale_logged(self.cache().dir());
        let keep: HashSet<&GcAttachment> = valid.iter().collect();
        let mut errs = Vec::new();
        for entry in self.cache().list(Some(&network.name))? {
            let att = entry.attachment();
            if keep.contains(&att.key()) {
                continue;
            }
            if let Err(e) = self.del(network, &att) {
                errs.push(e.context(format!("failed to delete stale attachment {} {}", att.container_id, att.ifname)));
            }
        }
        if version >= Version::V110 {
            for plugin in &network.plugins {
                let step = || -> crate::Result<()> {
                    let stdin = request::gc_request(plugin, &network.name, version, valid)?;
                    self.run_quiet(plugin, &stdin, "GC", None)
                };
                if let Err(e) = step() {
                    errs.push(e.context(format!("failed to GC plugin {}", plugin_type(plugin))));
                }
            }
        }
        join_errors(errs)
    }

    /// STATUS: for lists of version 1.1.0 and later, asks every plugin in
    /// order; the first error is returned with its code (50/51 tell the
    /// runtime what to do). Older lists have no STATUS and succeed, as in
    /// libcni.
    pub fn status(&self, network: &NetConfList) -> crate::Result<()> {
        validate::network_name(&network.name)?;
        let version = network.selected_version()?;
        if version < Version::V110 {
            log::info!("network {:?} is version {version}: STATUS needs 1.1.0, nothing to ask", network.name);
            return Ok(());
        }
        for plugin in &network.plugins {
            let stdin = request::status_request(plugin, &network.name, version)?;
            self.run_quiet(plugin, &stdin, "STATUS", None)
                .map_err(|e| e.context(describe(plugin, &network.name, "status")))?;
        }
        Ok(())
    }

    /// The versions a plugin reports with the VERSION command.
    fn plugin_versions(&self, plugin_type: &str) -> crate::Result<Vec<String>> {
        let path = self.exec.find_plugin(plugin_type, &self.plugin_path)?;
        let env = vec![
            ("CNI_COMMAND".to_string(), "VERSION".to_string()),
            // Plugins built against old skels want these set.
            ("CNI_NETNS".to_string(), "dummy".to_string()),
            ("CNI_IFNAME".to_string(), "dummy".to_string()),
            ("CNI_PATH".to_string(), "dummy".to_string()),
        ];
        let stdin = format!("{{\"cniVersion\":{:?}}}", cni::version::CURRENT);
        let out = self.exec.exec_plugin(&path, stdin.as_bytes(), &env)?;
        let v: Value = serde_json::from_slice(&out)
            .map_err(|e| Error::decode(format!("plugin {plugin_type:?}: bad VERSION output: {e}")))?;
        let list = v.get("supportedVersions").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(list.into_iter().filter_map(|s| s.as_str().map(String::from)).collect())
    }

    /// libcni's `ValidateNetworkList`: every plugin exists and supports the
    /// list's version. Returns the capabilities the list declares.
    pub fn validate_network(&self, network: &NetConfList) -> crate::Result<Vec<String>> {
        let version = network.selected_version()?;
        let mut caps = std::collections::BTreeSet::new();
        let mut errs = Vec::new();
        for plugin in &network.plugins {
            let ty = plugin_type(plugin);
            match self.plugin_versions(ty) {
                Ok(vs) if vs.iter().any(|v| v == version.as_str()) => {}
                Ok(vs) => errs.push(
                    Error::new(
                        code::INCOMPATIBLE_VERSION,
                        format!("plugin {ty} does not support config version {:?}", version.as_str()),
                    )
                    .with_details(format!("it supports {vs:?}")),
                ),
                Err(e) => errs.push(e),
            }
            caps.extend(NetConfList::declared_capabilities(plugin).into_iter().filter(|(_, on)| *on).map(|(c, _)| c));
        }
        join_errors(errs)?;
        Ok(caps.into_iter().collect())
    }

    /// Whether the netns of a cached attachment still exists: cnitool's
    /// test for a valid attachment when no list is given.
    pub fn netns_exists(netns: &str) -> bool {
        !netns.is_empty() && Path::new(netns).exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    /// One recorded plugin call.
    #[derive(Debug, Clone)]
    struct Call {
        plugin: String,
        command: String,
        stdin: Value,
        env: Vec<(String, String)>,
    }

    /// Answers from a table instead of running processes.
    #[derive(Debug, Default)]
    struct FakeExec {
        calls: Mutex<Vec<Call>>,
        /// plugin -> ADD result.
        results: Vec<(String, Value)>,
        /// (plugin, command) that fail with code 11.
        fail: Vec<(String, String)>,
    }

    impl PluginExec for FakeExec {
        fn find_plugin(&self, name: &str, _dirs: &[PathBuf]) -> crate::Result<PathBuf> {
            Ok(PathBuf::from(name))
        }
        fn exec_plugin(&self, plugin: &Path, stdin: &[u8], env: &[(String, String)]) -> crate::Result<Vec<u8>> {
            let plugin = plugin.display().to_string();
            let command = env.iter().find(|(k, _)| k == "CNI_COMMAND").unwrap().1.clone();
            self.calls.lock().unwrap().push(Call {
                plugin: plugin.clone(),
                command: command.clone(),
                stdin: serde_json::from_slice(stdin).unwrap(),
                env: env.to_vec(),
            });
            if self.fail.iter().any(|(p, c)| *p == plugin && *c == command) {
                return Err(Error::try_again("busy"));
            }
            if command == "ADD" {
                let r = self.results.iter().find(|(p, _)| *p == plugin).map(|(_, r)| r.clone()).unwrap();
                return Ok(serde_json::to_vec(&r).unwrap());
            }
            Ok(Vec::new())
        }
    }

    fn result(ip: &str) -> Value {
        json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
               "ips": [{"interface": 0, "address": ip}], "dns": {}})
    }

    fn setup(fail: Vec<(&str, &str)>) -> (tempfile::TempDir, Runtime, Arc<FakeExec>, NetConfList) {
        let d = tempfile::tempdir().unwrap();
        let exec = Arc::new(FakeExec {
            results: vec![("a".into(), result("10.0.0.2/24")), ("b".into(), result("10.0.0.3/24"))],
            fail: fail.into_iter().map(|(p, c)| (p.to_string(), c.to_string())).collect(),
            ..Default::default()
        });
        let rt = Runtime::new(vec!["/x".into()], d.path(), d.path().join("cache")).with_exec(exec.clone());
        let net = NetConfList::from_bytes(
            br#"{"cniVersion":"1.1.0","name":"n","plugins":[{"type":"a"},{"type":"b","capabilities":{"portMappings":true}}]}"#,
            false,
        )
        .unwrap();
        (d, rt, exec, net)
    }

    fn calls(exec: &FakeExec) -> Vec<Call> {
        std::mem::take(&mut *exec.calls.lock().unwrap())
    }

    #[test]
    fn add_chains_and_del_runs_in_reverse_with_cached_result() {
        let (_d, rt, exec, net) = setup(vec![]);
        let att = Attachment::new("c1", "/run/netns/x", "eth0")
            .with_capability("portMappings", json!([{"hostPort": 1, "containerPort": 2}]));
        let r = rt.add(&net, &att).unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.0.0.3/24");
        let c = calls(&exec);
        assert_eq!(c.iter().map(|c| c.plugin.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(c[0].stdin.get("prevResult").is_none());
        assert!(c[0].stdin.get("runtimeConfig").is_none());
        assert_eq!(c[1].stdin["prevResult"]["ips"][0]["address"], "10.0.0.2/24");
        assert_eq!(c[1].stdin["prevResult"]["cniVersion"], "1.1.0");
        assert_eq!(c[1].stdin["runtimeConfig"]["portMappings"][0]["hostPort"], 1);

        // DEL without capability args: the cached ones are used.
        rt.del(&net, &Attachment::new("c1", "/run/netns/x", "eth0")).unwrap();
        let c = calls(&exec);
        assert_eq!(c.iter().map(|c| c.plugin.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        for call in &c {
            assert_eq!(call.command, "DEL");
            assert_eq!(call.stdin["prevResult"]["ips"][0]["address"], "10.0.0.3/24");
        }
        assert_eq!(c[0].stdin["runtimeConfig"]["portMappings"][0]["hostPort"], 1);
        assert!(rt.cached("n", &att).unwrap().is_none());

        // DEL again: no cache, no prevResult, every plugin still runs.
        rt.del(&net, &att).unwrap();
        let c = calls(&exec);
        assert_eq!(c.len(), 2);
        assert!(c.iter().all(|c| c.stdin.get("prevResult").is_none()));
    }

    #[test]
    fn failed_del_keeps_the_cache() {
        let (_d, rt, exec, net) = setup(vec![("a", "DEL")]);
        let att = Attachment::new("c1", "/run/netns/x", "eth0");
        rt.add(&net, &att).unwrap();
        let e = rt.del(&net, &att).unwrap_err();
        assert_eq!(e.code, 11);
        assert!(e.msg.starts_with("plugin type=\"a\" name=\"n\" failed (delete): busy"), "{e}");
        assert!(rt.cached("n", &att).unwrap().is_some());
        let c = calls(&exec);
        assert_eq!(
            c.iter().map(|c| (c.plugin.as_str(), c.command.as_str())).collect::<Vec<_>>().last(),
            Some(&("a", "DEL"))
        );
    }

    #[test]
    fn failed_add_stops_and_caches_nothing() {
        let (_d, rt, exec, net) = setup(vec![("a", "ADD")]);
        let att = Attachment::new("c1", "/run/netns/x", "eth0");
        let e = rt.add(&net, &att).unwrap_err();
        assert!(e.msg.contains("failed (add)"));
        assert_eq!(calls(&exec).len(), 1);
        assert!(rt.cached("n", &att).unwrap().is_none());
    }

    #[test]
    fn check_rules() {
        let (_d, rt, exec, mut net) = setup(vec![]);
        let att = Attachment::new("c1", "/run/netns/x", "eth0");
        assert_eq!(rt.check(&net, &att).unwrap_err().code, code::UNKNOWN_CONTAINER);
        rt.add(&net, &att).unwrap();
        calls(&exec);
        rt.check(&net, &att).unwrap();
        let c = calls(&exec);
        assert_eq!(c.iter().map(|c| c.plugin.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(c.iter().all(|c| c.stdin["prevResult"]["ips"][0]["address"] == "10.0.0.3/24"));
        net.disable_check = true;
        assert!(rt.check(&net, &att).unwrap_err().msg.contains("disableCheck"));
        net.disable_check = false;
        net.cni_version = "0.3.1".into();
        assert_eq!(rt.check(&net, &att).unwrap_err().code, code::INCOMPATIBLE_VERSION);
        assert!(calls(&exec).is_empty());
    }

    #[test]
    fn gc_deletes_stale_then_sends_valid_list() {
        let (d, rt, exec, net) = setup(vec![]);
        let keep = Attachment::new("keep", "/run/netns/k", "eth0");
        let stale = Attachment::new("stale", "/run/netns/s", "eth0").with_arg("IgnoreUnknown", "1");
        rt.add(&net, &keep).unwrap();
        rt.add(&net, &stale).unwrap();
        calls(&exec);
        // Temp files of killed cache writes: an old one is swept, a fresh one stays.
        let cache = d.path().join("cache");
        let old = cache.join(".n-stale-eth0.tmp.4242.0");
        std::fs::write(&old, "half").unwrap();
        let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        std::fs::File::options().write(true).open(&old).unwrap().set_modified(two_hours_ago).unwrap();
        let fresh = cache.join(".n-keep-eth0.tmp.4243.0");
        std::fs::write(&fresh, "being written").unwrap();
        rt.gc(&net, &[keep.key()]).unwrap();
        assert!(!old.exists() && fresh.exists());
        let c = calls(&exec);
        let seq: Vec<(&str, &str)> = c.iter().map(|c| (c.plugin.as_str(), c.command.as_str())).collect();
        assert_eq!(seq, [("b", "DEL"), ("a", "DEL"), ("a", "GC"), ("b", "GC")]);
        let env = |call: &Call, k: &str| call.env.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(env(&c[0], "CNI_CONTAINERID"), "stale");
        assert_eq!(env(&c[0], "CNI_NETNS"), "/run/netns/s");
        assert_eq!(env(&c[0], "CNI_ARGS"), "IgnoreUnknown=1");
        assert_eq!(env(&c[2], "CNI_CONTAINERID"), "");
        let list = json!([{"containerID": "keep", "ifname": "eth0"}]);
        assert_eq!(c[2].stdin["cni.dev/valid-attachments"], list);
        assert_eq!(c[2].stdin["cni.dev/attachments"], list);
        assert!(c[2].stdin.get("prevResult").is_none());
        assert!(rt.cached("n", &stale).unwrap().is_none());
        assert!(rt.cached("n", &keep).unwrap().is_some());
    }

    #[test]
    fn gc_disabled_or_old_version() {
        let (_d, rt, exec, mut net) = setup(vec![]);
        net.disable_gc = true;
        rt.gc(&net, &[]).unwrap();
        assert!(calls(&exec).is_empty());
        net.disable_gc = false;
        net.cni_version = "1.0.0".into();
        rt.add(&net, &Attachment::new("old", "", "eth0")).unwrap();
        calls(&exec);
        rt.gc(&net, &[]).unwrap();
        let seq: Vec<String> = calls(&exec).iter().map(|c| c.command.clone()).collect();
        assert_eq!(seq, ["DEL", "DEL"]);
    }

    #[test]
    fn gc_reports_every_failure() {
        let (_d, rt, _exec, net) = setup(vec![("a", "GC"), ("b", "GC")]);
        let e = rt.gc(&net, &[]).unwrap_err();
        assert!(e.msg.contains("failed to GC plugin a") && e.msg.contains("failed to GC plugin b"), "{e}");
    }

    #[test]
    fn status_first_error_wins_and_old_versions_pass() {
        let (_d, rt, exec, mut net) = setup(vec![("a", "STATUS")]);
        let e = rt.status(&net).unwrap_err();
        assert_eq!(e.code, 11);
        assert_eq!(calls(&exec).len(), 1);
        net.cni_version = "1.0.0".into();
        rt.status(&net).unwrap();
        assert!(calls(&exec).is_empty());
    }

    #[test]
    fn bad_attachment_is_refused_before_any_plugin() {
        let (_d, rt, exec, net) = setup(vec![]);
        assert_eq!(rt.add(&net, &Attachment::new("a/b", "", "eth0")).unwrap_err().code, 4);
        assert!(rt.del(&net, &Attachment::new("c", "", "../x")).is_err());
        assert!(calls(&exec).is_empty());
    }

    #[test]
    fn concurrent_attachments_share_one_runtime() {
        let (_d, rt, exec, net) = setup(vec![]);
        std::thread::scope(|s| {
            for i in 0..8 {
                let (rt, net) = (&rt, &net);
                s.spawn(move || rt.add(net, &Attachment::new(format!("c{i}"), "", "eth0")).unwrap());
            }
        });
        assert_eq!(calls(&exec).len(), 16);
        assert_eq!(rt.cache().list(Some("n")).unwrap().len(), 8);
        rt.gc(&net, &[]).unwrap();
        assert!(rt.cache().list(Some("n")).unwrap().is_empty());
    }

    #[test]
    fn env_carries_the_attachment() {
        let (_d, mut rt, exec, net) = setup(vec![]);
        rt.extra_env.push(("CNI_LOG_LEVEL".into(), "debug".into()));
        rt.add(&net, &Attachment::new("c1", "/run/netns/x", "eth1").with_arg("K", "V")).unwrap();
        let c = calls(&exec);
        let env: std::collections::HashMap<_, _> = c[0].env.iter().cloned().collect();
        assert_eq!(env["CNI_COMMAND"], "ADD");
        assert_eq!(env["CNI_CONTAINERID"], "c1");
        assert_eq!(env["CNI_NETNS"], "/run/netns/x");
        assert_eq!(env["CNI_IFNAME"], "eth1");
        assert_eq!(env["CNI_ARGS"], "K=V");
        assert_eq!(env["CNI_PATH"], "/x");
        assert_eq!(env["CNI_LOG_LEVEL"], "debug");
    }
}
