//! cnitool and the runtime against tiny fake plugins: bash scripts in a
//! temporary CNI_PATH that record their stdin and `CNI_*` environment and
//! print a canned result. Checks the exact stdin each plugin receives.

use runtime::{Attachment, Runtime};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

struct Fixture {
    dir: tempfile::TempDir,
}

#[derive(Debug)]
struct Call {
    plugin: String,
    command: String,
    stdin: Value,
    env: HashMap<String, String>,
}

struct Run {
    stdout: String,
    stderr: String,
    code: i32,
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture { dir: tempfile::tempdir().unwrap() };
        for d in ["bin", "conf", "cache", "log", "ctl"] {
            std::fs::create_dir(f.path(d)).unwrap();
        }
        f
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// A fake plugin: records each call into log/NNN-<name>-<COMMAND>/{stdin,env};
    /// fails when ctl/fail-<name>-<COMMAND> exists (printing it on stdout, or
    /// with ctl/stderr-<name> on stderr only); prints ctl/result-<name> on ADD.
    fn plugin(&self, name: &str, result: Option<Value>) {
        let (log, ctl) = (self.path("log"), self.path("ctl"));
        let script = format!(
            r#"#!/bin/bash
n=$(ls "{log}" | wc -l)
d="{log}/$(printf %03d "$n")-{name}-$CNI_COMMAND"
mkdir -p "$d"
cat > "$d/stdin"
env | grep '^CNI_' > "$d/env"
if [ -e "{ctl}/fail-{name}-$CNI_COMMAND" ]; then
  cat "{ctl}/fail-{name}-$CNI_COMMAND"
  [ -e "{ctl}/stderr-{name}" ] && cat "{ctl}/stderr-{name}" >&2
  exit 1
fi
case "$CNI_COMMAND" in
  ADD) cat "{ctl}/result-{name}" ;;
  VERSION) echo '{{"cniVersion":"1.1.0","supportedVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]}}' ;;
esac
exit 0
"#,
            log = log.display(),
            ctl = ctl.display(),
        );
        let p = self.path("bin").join(name);
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        if let Some(r) = result {
            std::fs::write(ctl.join(format!("result-{name}")), serde_json::to_vec_pretty(&r).unwrap()).unwrap();
        }
    }

    fn fail(&self, name: &str, command: &str, stdout: &str, stderr: Option<&str>) {
        std::fs::write(self.path("ctl").join(format!("fail-{name}-{command}")), stdout).unwrap();
        if let Some(e) = stderr {
            std::fs::write(self.path("ctl").join(format!("stderr-{name}")), e).unwrap();
        }
    }

    fn conflist(&self, file: &str, v: Value) {
        std::fs::write(self.path("conf").join(file), serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    /// The calls recorded so far, oldest first; clears the log.
    fn calls(&self) -> Vec<Call> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.path("log")).unwrap().map(|e| e.unwrap().path()).collect();
        dirs.sort();
        let calls = dirs
            .iter()
            .map(|d| {
                let name = d.file_name().unwrap().to_str().unwrap().to_string();
                let mut parts = name.splitn(2, '-');
                parts.next();
                let rest = parts.next().unwrap();
                let (plugin, command) = rest.rsplit_once('-').unwrap();
                let env = std::fs::read_to_string(d.join("env"))
                    .unwrap()
                    .lines()
                    .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                    .collect();
                let stdin = std::fs::read(d.join("stdin")).unwrap();
                Call {
                    plugin: plugin.into(),
                    command: command.into(),
                    stdin: serde_json::from_slice(&stdin).unwrap(),
                    env,
                }
            })
            .collect();
        for d in dirs {
            std::fs::remove_dir_all(d).unwrap();
        }
        calls
    }

    fn cnitool(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_cnitool"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NETCONFPATH", self.path("conf"))
            .env("CNI_PATH", self.path("bin"))
            .env("CNI_CACHE_DIR", self.path("cache"))
            .envs(env.iter().copied())
            .output()
            .unwrap();
        Run {
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
            code: out.status.code().unwrap_or(-1),
        }
    }

    fn runtime(&self) -> Runtime {
        Runtime::new(vec![self.path("bin")], self.path("conf"), self.path("cache"))
    }

    fn cache_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path("cache"))
            .map(|rd| rd.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

fn bridge_result(mac: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "br0", "mac": "22:2f:e5:44:a3:f0"},
            {"name": "eth0", "mac": mac, "sandbox": "/var/run/netns/fake"}
        ],
        "ips": [{"interface": 1, "address": "10.88.0.2/24", "gateway": "10.88.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {}
    })
}

fn two_plugin_net(version: &str) -> Value {
    json!({
        "cniVersion": version,
        "name": "pmnet",
        "plugins": [
            {"type": "bridgey", "bridge": "br0", "ipam": {"type": "host-local"}},
            {"type": "portmappy", "capabilities": {"portMappings": true, "mac": false}, "snat": true}
        ]
    })
}

const NETNS: &str = "/var/run/netns/fake";
const CAP_ARGS: &str = r#"{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"mac":"c2:11:22:33:44:55","bandwidth":{"ingressRate":1}}"#;

fn cid() -> String {
    runtime::cli::container_id_for(NETNS)
}

fn setup_chain(version: &str) -> Fixture {
    let f = Fixture::new();
    f.plugin("bridgey", Some(bridge_result("16:91:f0:54:53:5e")));
    // The second plugin changes the MAC: the final result is its result.
    f.plugin("portmappy", Some(bridge_result("aa:aa:aa:aa:aa:aa")));
    f.conflist("10-pm.conflist", two_plugin_net(version));
    f
}

#[test]
fn add_injects_name_version_runtime_config_and_chains_prev_result() {
    let f = setup_chain("1.0.0");
    let run = f.cnitool(&["add", "pmnet", NETNS], &[("CAP_ARGS", CAP_ARGS), ("CNI_ARGS", "IgnoreUnknown=1;K=V")]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // stdout: the final result, pretty-printed in the list's version.
    let final_result: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(final_result, bridge_result("aa:aa:aa:aa:aa:aa"));
    assert!(run.stdout.starts_with("{\n    \"cniVersion\": \"1.0.0\""));

    let calls = f.calls();
    assert_eq!(calls.len(), 2);
    let (first, second) = (&calls[0], &calls[1]);
    assert_eq!((first.plugin.as_str(), first.command.as_str()), ("bridgey", "ADD"));
    assert_eq!(
        first.stdin,
        json!({"type": "bridgey", "bridge": "br0", "ipam": {"type": "host-local"}, "cniVersion": "1.0.0", "name": "pmnet"})
    );
    assert_eq!(second.plugin, "portmappy");
    assert_eq!(
        second.stdin,
        json!({
            "type": "portmappy",
            "capabilities": {"portMappings": true, "mac": false},
            "snat": true,
            "cniVersion": "1.0.0",
            "name": "pmnet",
            "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
            "prevResult": bridge_result("16:91:f0:54:53:5e")
        })
    );
    for c in &calls {
        assert_eq!(c.env["CNI_COMMAND"], "ADD");
        assert_eq!(c.env["CNI_CONTAINERID"], cid());
        assert_eq!(c.env["CNI_NETNS"], NETNS);
        assert_eq!(c.env["CNI_IFNAME"], "eth0");
        assert_eq!(c.env["CNI_ARGS"], "IgnoreUnknown=1;K=V");
        assert_eq!(c.env["CNI_PATH"], f.path("bin").display().to_string());
    }

    // The cache holds the final result and the attachment.
    let file = format!("pmnet-{}-eth0", cid());
    assert_eq!(f.cache_files(), std::slice::from_ref(&file));
    let cached: Value = serde_json::from_slice(&std::fs::read(f.path("cache").join(file)).unwrap()).unwrap();
    assert_eq!(cached["kind"], "cniCacheV1");
    assert_eq!(cached["result"], final_result);
    assert_eq!(cached["netns"], NETNS);
    assert_eq!(cached["cniArgs"], json!([["IgnoreUnknown", "1"], ["K", "V"]]));
    assert_eq!(cached["capabilityArgs"]["mac"], "c2:11:22:33:44:55");
}

#[test]
fn del_runs_in_reverse_with_the_cached_result_then_without() {
    let f = setup_chain("1.0.0");
    assert_eq!(f.cnitool(&["add", "pmnet", NETNS], &[("CAP_ARGS", CAP_ARGS)]).code, 0);
    f.calls();

    // No CAP_ARGS on DEL: portmap still gets its mappings from the cache.
    let run = f.cnitool(&["del", "pmnet", NETNS], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    let calls = f.calls();
    let order: Vec<(&str, &str)> = calls.iter().map(|c| (c.plugin.as_str(), c.command.as_str())).collect();
    assert_eq!(order, [("portmappy", "DEL"), ("bridgey", "DEL")]);
    for c in &calls {
        assert_eq!(c.stdin["prevResult"], bridge_result("aa:aa:aa:aa:aa:aa"));
        assert_eq!(c.env["CNI_CONTAINERID"], cid());
    }
    assert_eq!(
        calls[0].stdin["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
    );
    assert!(calls[1].stdin.get("runtimeConfig").is_none());
    assert!(f.cache_files().is_empty());

    // DEL again: no cache, every plugin still runs, without prevResult.
    let run = f.cnitool(&["del", "pmnet", NETNS], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let calls = f.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.stdin.get("prevResult").is_none()));
}

#[test]
fn failed_del_keeps_the_cache_for_a_retry() {
    let f = setup_chain("1.0.0");
    assert_eq!(f.cnitool(&["add", "pmnet", NETNS], &[]).code, 0);
    f.fail("bridgey", "DEL", r#"{"cniVersion":"1.0.0","code":11,"msg":"try again"}"#, None);
    let run = f.cnitool(&["del", "pmnet", NETNS], &[]);
    assert_eq!(run.code, 1);
    let err: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(err["code"], 11);
    assert_eq!(err["msg"], "plugin type=\"bridgey\" name=\"pmnet\" failed (delete): try again");
    assert_eq!(f.cache_files().len(), 1);
}

#[test]
fn del_below_040_sends_no_prev_result() {
    let f = setup_chain("0.3.1");
    std::fs::write(
        f.path("ctl/result-bridgey"),
        json!({"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.1.0.2/24"}]}).to_string(),
    )
    .unwrap();
    std::fs::copy(f.path("ctl/result-bridgey"), f.path("ctl/result-portmappy")).unwrap();
    let run = f.cnitool(&["add", "pmnet", NETNS], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let calls = f.calls();
    assert_eq!(calls[1].stdin["prevResult"]["ips"][0]["version"], "4");
    assert_eq!(f.cnitool(&["del", "pmnet", NETNS], &[]).code, 0);
    assert!(f.calls().iter().all(|c| c.stdin.get("prevResult").is_none()));
    // CHECK does not exist before 0.4.0.
    let run = f.cnitool(&["check", "pmnet", NETNS], &[]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("does not support the CHECK command"));
    assert!(f.calls().is_empty());
}

#[test]
fn check_needs_and_uses_the_cached_result() {
    let f = setup_chain("1.0.0");
    let run = f.cnitool(&["check", "pmnet", NETNS], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(serde_json::from_str::<Value>(&run.stdout).unwrap()["code"], 3);

    assert_eq!(f.cnitool(&["add", "pmnet", NETNS], &[]).code, 0);
    f.calls();
    let run = f.cnitool(&["check", "pmnet", NETNS], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let calls = f.calls();
    assert_eq!(calls.iter().map(|c| c.plugin.as_str()).collect::<Vec<_>>(), ["bridgey", "portmappy"]);
    assert!(calls.iter().all(|c| c.command == "CHECK" && c.stdin["prevResult"] == bridge_result("aa:aa:aa:aa:aa:aa")));

    let mut net = two_plugin_net("1.0.0");
    net["disableCheck"] = json!(true);
    f.conflist("10-pm.conflist", net);
    assert_eq!(f.cnitool(&["check", "pmnet", NETNS], &[]).code, 1);
    assert!(f.calls().is_empty());
}

#[test]
fn plugin_errors_reach_the_caller() {
    let f = setup_chain("1.0.0");
    f.fail("portmappy", "ADD", r#"{"code": 7, "msg": "bad snat", "details": "snat must be a bool"}"#, None);
    let run = f.cnitool(&["add", "pmnet", NETNS], &[]);
    assert_eq!(run.code, 1);
    let err: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(err["code"], 7);
    assert_eq!(err["cniVersion"], "1.0.0");
    assert_eq!(err["msg"], "plugin type=\"portmappy\" name=\"pmnet\" failed (add): bad snat");
    assert_eq!(err["details"], "snat must be a bool");
    assert!(run.stderr.contains("bad snat"));
    assert!(f.cache_files().is_empty());

    // Empty stdout: the message comes from stderr.
    f.fail("bridgey", "ADD", "", Some("cannot open /dev/nothing\n"));
    let run = f.cnitool(&["add", "pmnet", NETNS], &[]);
    let err: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(err["code"], 999);
    assert!(err["msg"].as_str().unwrap().ends_with("netplugin failed: \"cannot open /dev/nothing\": exit status 1"));

    // A plugin type that is not installed.
    f.conflist("10-pm.conflist", json!({"cniVersion": "1.0.0", "name": "pmnet", "plugins": [{"type": "nosuch"}]}));
    let run = f.cnitool(&["add", "pmnet", NETNS], &[]);
    assert!(run.stdout.contains("failed to find plugin \\\"nosuch\\\""), "{}", run.stdout);
}

#[test]
fn container_id_and_ifname_overrides() {
    let f = setup_chain("1.0.0");
    let run = f.cnitool(&["-i", "net1", "add", "pmnet", NETNS], &[("CNI_CONTAINERID", "mycontainer")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let calls = f.calls();
    assert_eq!(calls[0].env["CNI_CONTAINERID"], "mycontainer");
    assert_eq!(calls[0].env["CNI_IFNAME"], "net1");
    assert_eq!(f.cache_files(), ["pmnet-mycontainer-net1"]);
    let run = f.cnitool(&["add", "pmnet", NETNS], &[("CNI_IFNAME", "net2")]);
    assert_eq!(run.code, 0);
    assert_eq!(f.calls()[0].env["CNI_IFNAME"], "net2");
    // A bad container id never reaches a plugin or a path.
    let run = f.cnitool(&["add", "pmnet", NETNS], &[("CNI_CONTAINERID", "../../etc")]);
    assert_eq!(run.code, 1);
    assert!(f.calls().is_empty());
}

#[test]
fn gc_deletes_stale_attachments_and_sends_the_valid_list() {
    let f = setup_chain("1.1.0");
    // A "live" netns is any existing path; the other one does not exist.
    let live = f.path("live-ns");
    std::fs::write(&live, "").unwrap();
    let live = live.display().to_string();
    let gone = f.path("gone-ns").display().to_string();
    assert_eq!(f.cnitool(&["add", "pmnet", &live], &[]).code, 0);
    assert_eq!(f.cnitool(&["add", "pmnet", &gone], &[("CAP_ARGS", CAP_ARGS)]).code, 0);
    f.calls();

    let run = f.cnitool(&["gc", "pmnet"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let calls = f.calls();
    let order: Vec<(&str, &str)> = calls.iter().map(|c| (c.plugin.as_str(), c.command.as_str())).collect();
    assert_eq!(order, [("portmappy", "DEL"), ("bridgey", "DEL"), ("bridgey", "GC"), ("portmappy", "GC")]);
    let gone_id = runtime::cli::container_id_for(&gone);
    assert_eq!(calls[0].env["CNI_CONTAINERID"], gone_id);
    assert_eq!(calls[0].env["CNI_NETNS"], gone);
    assert_eq!(calls[0].stdin["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
    assert_eq!(calls[0].stdin["prevResult"]["interfaces"][1]["mac"], "aa:aa:aa:aa:aa:aa");
    let valid = json!([{"containerID": runtime::cli::container_id_for(&live), "ifname": "eth0"}]);
    for gc in &calls[2..] {
        assert_eq!(gc.stdin["cni.dev/valid-attachments"], valid);
        assert_eq!(gc.stdin["cni.dev/attachments"], valid);
        assert_eq!(gc.stdin["cniVersion"], "1.1.0");
        assert_eq!(gc.stdin["name"], "pmnet");
        assert!(gc.stdin.get("prevResult").is_none() && gc.stdin.get("runtimeConfig").is_none());
        assert_eq!(gc.env["CNI_CONTAINERID"], "");
        assert_eq!(gc.env["CNI_IFNAME"], "");
    }
    assert_eq!(f.cache_files(), [format!("pmnet-{}-eth0", runtime::cli::container_id_for(&live))]);

    // An explicit list: nothing is valid, so the live one goes too.
    let run = f.cnitool(&["gc", "pmnet", "/ignored"], &[("CNI_VALID_ATTACHMENTS", "[]")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let calls = f.calls();
    assert_eq!(calls.len(), 4);
    assert_eq!(calls[2].stdin["cni.dev/valid-attachments"], json!([]));
    assert!(f.cache_files().is_empty());
}

#[test]
fn status_asks_every_plugin_and_returns_the_first_error() {
    let f = setup_chain("1.1.0");
    let run = f.cnitool(&["status", "pmnet"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let calls = f.calls();
    assert_eq!(calls.iter().map(|c| c.command.as_str()).collect::<Vec<_>>(), ["STATUS", "STATUS"]);
    assert_eq!(
        calls[0].stdin,
        json!({"type": "bridgey", "bridge": "br0", "ipam": {"type": "host-local"}, "cniVersion": "1.1.0", "name": "pmnet"})
    );

    f.fail("bridgey", "STATUS", r#"{"code": 50, "msg": "pool exhausted"}"#, None);
    let run = f.cnitool(&["status", "pmnet"], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(serde_json::from_str::<Value>(&run.stdout).unwrap()["code"], 50);
    assert_eq!(f.calls().len(), 1);
}

#[test]
fn cni_versions_selects_the_highest_known() {
    let f = setup_chain("0.4.0");
    let mut net = two_plugin_net("0.4.0");
    net["cniVersions"] = json!(["1.0.0", "1.1.0", "3.0.0"]);
    f.conflist("10-pm.conflist", net);
    let run = f.cnitool(&["add", "pmnet", NETNS], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(f.calls().iter().all(|c| c.stdin["cniVersion"] == "1.1.0"));
    assert_eq!(serde_json::from_str::<Value>(&run.stdout).unwrap()["cniVersion"], "1.1.0");
}

#[test]
fn single_conf_file_runs_as_a_list_of_one() {
    let f = Fixture::new();
    f.plugin("bridgey", Some(bridge_result("16:91:f0:54:53:5e")));
    std::fs::write(
        f.path("conf/10-one.conf"),
        r#"{"cniVersion":"0.4.0","name":"one","type":"bridgey","capabilities":{"mac":true}}"#,
    )
    .unwrap();
    let run = f.cnitool(&["add", "one", NETNS], &[("CAP_ARGS", CAP_ARGS)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let calls = f.calls();
    assert_eq!(calls[0].stdin["runtimeConfig"], json!({"mac": "c2:11:22:33:44:55"}));
    // The 1.0.0 result was re-serialized at the list's 0.4.0.
    let out: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(out["cniVersion"], "0.4.0");
    assert_eq!(out["ips"][0]["version"], "4");
}

#[test]
fn library_api_without_the_binary() {
    let f = setup_chain("1.0.0");
    let rt = f.runtime();
    let net = rt.load_network("pmnet").unwrap();
    let caps = rt.validate_network(&net).unwrap();
    assert_eq!(caps, ["portMappings"]);
    f.calls();
    let att = Attachment::new("lib1", "/run/netns/lib1", "eth0");
    let r = rt.add(&net, &att).unwrap();
    assert_eq!(r.interfaces[1].mac, "aa:aa:aa:aa:aa:aa");
    assert!(rt.cached("pmnet", &att).unwrap().is_some());
    rt.check(&net, &att).unwrap();
    rt.del(&net, &att).unwrap();
    let order: Vec<String> = f.calls().iter().map(|c| format!("{}:{}", c.plugin, c.command)).collect();
    assert_eq!(
        order,
        ["bridgey:ADD", "portmappy:ADD", "bridgey:CHECK", "portmappy:CHECK", "portmappy:DEL", "bridgey:DEL"]
    );
    assert!(rt.cached("pmnet", &att).unwrap().is_none());
}

#[test]
fn strict_output_catches_chatty_del() {
    let f = setup_chain("1.0.0");
    // A plugin that prints a result on DEL too.
    let p = f.path("bin/chatty");
    std::fs::write(&p, "#!/bin/sh\ncat >/dev/null\necho '{\"cniVersion\":\"1.0.0\"}'\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    f.conflist("20-chatty.conflist", json!({"cniVersion": "1.0.0", "name": "chatty", "plugins": [{"type": "chatty"}]}));
    let mut rt = f.runtime();
    let net = rt.load_network("chatty").unwrap();
    let att = Attachment::new("c", "", "eth0");
    rt.del(&net, &att).unwrap();
    rt.strict_output = true;
    assert!(rt.del(&net, &att).unwrap_err().msg.contains("must print nothing"));
}
