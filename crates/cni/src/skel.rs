//! The plugin skeleton: read the environment and stdin, validate them,
//! dispatch to a [`Plugin`], print exactly one JSON document (or nothing
//! where the spec says so) and exit with the right status.

use crate::args::CniArgs;
use crate::config::{Attachment, NetConf};
use crate::error::{code, Error};
use crate::result::{pretty, CniResult};
use crate::version::{Version, CURRENT, SUPPORTED};
use crate::{gojson, validate};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Largest stdin a plugin accepts; a config is a few KiB.
pub const MAX_STDIN: usize = crate::limits::MAX_STDIN;

/// The six commands of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach a container.
    Add,
    /// Detach a container; idempotent.
    Del,
    /// Verify an attachment.
    Check,
    /// Report supported versions.
    Version,
    /// Report readiness (1.1).
    Status,
    /// Remove what no valid attachment owns (1.1).
    Gc,
}

impl Command {
    /// Parses `CNI_COMMAND`.
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => return None,
        })
    }

    /// The `CNI_COMMAND` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }

    /// Whether the command names one attachment (container id, ifname).
    fn is_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

/// Everything a plugin needs for one call, validated.
#[derive(Debug, Clone)]
pub struct Context {
    /// The command being run.
    pub command: Command,
    /// `CNI_CONTAINERID` (empty for GC and STATUS).
    pub container_id: String,
    /// `CNI_NETNS`; `None` when empty (DEL may send it so).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME` (empty for GC and STATUS).
    pub ifname: String,
    /// `CNI_PATH`, split.
    pub cni_path: Vec<PathBuf>,
    /// `CNI_ARGS`, parsed.
    pub args: CniArgs,
    /// The exact stdin, for delegation to IPAM.
    pub stdin: Vec<u8>,
    /// The config as JSON.
    pub raw: Value,
    /// The fields every plugin shares.
    pub conf: NetConf,
    /// The config's version.
    pub version: Version,
}

impl Context {
    /// Reads this plugin's own options from the config; a type mismatch is
    /// code 7 with serde's message, which names the field.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, Error> {
        crate::config::from_value(&self.raw, &self.conf.plugin_type)
    }

    /// The previous result in the internal form, if the config carries one.
    pub fn prev_result(&self) -> Result<Option<CniResult>, Error> {
        match &self.conf.prev_result {
            None | Some(Value::Null) => Ok(None),
            Some(v) => CniResult::parse(v, self.version).map(Some),
        }
    }

    /// The previous result, which CHECK (and chained plugins) require.
    pub fn require_prev_result(&self) -> Result<CniResult, Error> {
        self.prev_result()?.ok_or_else(|| Error::invalid_config("Required prevResult missing"))
    }

    /// The container MAC the runtime asked for, with where it came from, in
    /// the reference's precedence: `runtimeConfig.mac` > `args.cni.mac` >
    /// `CNI_ARGS MAC` (empty values count as absent). Plugins parse it.
    pub fn requested_mac(&self) -> Result<Option<(&'static str, String)>, Error> {
        let candidates = [
            ("runtimeConfig.mac", self.conf.runtime_config()?.mac),
            ("args.cni.mac", self.conf.args_cni()?.mac),
            ("CNI_ARGS MAC", self.args.get("MAC").map(str::to_string)),
        ];
        Ok(candidates.into_iter().find_map(|(src, m)| m.filter(|m| !m.is_empty()).map(|m| (src, m))))
    }

    /// GC's list of live attachments: `cni.dev/valid-attachments`, or the
    /// legacy `cni.dev/attachments`. `None` when neither key is present,
    /// which GC must read as "remove nothing".
    pub fn valid_attachments(&self) -> Result<Option<Vec<Attachment>>, Error> {
        let v = gojson::get(&self.raw, "cni.dev/valid-attachments")
            .or_else(|| gojson::get(&self.raw, "cni.dev/attachments"));
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(v) => gojson::from_value(v)
                .map(Some)
                .map_err(|e| Error::invalid_config(format!("invalid cni.dev/valid-attachments: {e}"))),
        }
    }
}

/// What a plugin implements; `skel` does the protocol around it.
pub trait Plugin {
    /// The binary's name, for the "about" text.
    fn name(&self) -> &'static str;
    /// Attach; return what was configured.
    fn add(&self, ctx: &Context) -> Result<CniResult, Error>;
    /// Detach; must succeed when there is nothing left to remove.
    fn del(&self, ctx: &Context) -> Result<(), Error>;
    /// Verify the attachment described by prevResult.
    fn check(&self, ctx: &Context) -> Result<(), Error>;
    /// Remove everything no valid attachment owns.
    fn gc(&self, _ctx: &Context) -> Result<(), Error> {
        Ok(())
    }
    /// Whether ADD can be served now.
    fn status(&self, _ctx: &Context) -> Result<(), Error> {
        Ok(())
    }
}

/// The usual plugin: one function per command, each in the module of its
/// command, so that no `impl Plugin` block only forwards. [`nothing`] is
/// the GC or STATUS of a plugin that has none of its own.
#[derive(Clone, Copy)]
pub struct Commands {
    /// The binary's name.
    pub name: &'static str,
    /// ADD.
    pub add: fn(&Context) -> Result<CniResult, Error>,
    /// DEL.
    pub del: fn(&Context) -> Result<(), Error>,
    /// CHECK.
    pub check: fn(&Context) -> Result<(), Error>,
    /// GC.
    pub gc: fn(&Context) -> Result<(), Error>,
    /// STATUS.
    pub status: fn(&Context) -> Result<(), Error>,
}

/// A command with nothing to do (GC or STATUS of a plugin without state).
pub fn nothing(_: &Context) -> Result<(), Error> {
    Ok(())
}

impl Plugin for Commands {
    fn name(&self) -> &'static str {
        self.name
    }
    fn add(&self, ctx: &Context) -> Result<CniResult, Error> {
        (self.add)(ctx)
    }
    fn del(&self, ctx: &Context) -> Result<(), Error> {
        (self.del)(ctx)
    }
    fn check(&self, ctx: &Context) -> Result<(), Error> {
        (self.check)(ctx)
    }
    fn gc(&self, ctx: &Context) -> Result<(), Error> {
        (self.gc)(ctx)
    }
    fn status(&self, ctx: &Context) -> Result<(), Error> {
        (self.status)(ctx)
    }
}

/// What one invocation produced; `run` writes it out, tests inspect it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes for stdout.
    pub stdout: String,
    /// Bytes for stderr.
    pub stderr: String,
    /// Process exit status.
    pub exit: i32,
}

/// The VERSION document: compact JSON and a newline, as the reference.
fn version_info() -> String {
    let v = serde_json::json!({"cniVersion": CURRENT, "supportedVersions": SUPPORTED});
    format!("{v}\n")
}

/// The "about" text printed when `CNI_COMMAND` is missing.
pub fn about(name: &str) -> String {
    format!(
        "CNI {name} plugin version {}\nCNI protocol versions supported: {}\n",
        crate::build_info::describe(),
        SUPPORTED.join(", ")
    )
}

fn fail(err: &Error, version: &str) -> Outcome {
    Outcome { stdout: pretty(&err.to_json(version)), stderr: String::new(), exit: 1 }
}

/// Whether `path` is the calling process's own network namespace.
fn is_own_netns(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), std::fs::metadata("/proc/self/ns/net")) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Reads the environment (through `env`) and `stdin`, validates, builds
/// the context. Errors carry the version to label them with.
pub fn build_context(
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    command: Command,
) -> Result<Context, (Error, String)> {
    let current = CURRENT.to_string();
    let var = |k: &str| env(k).filter(|v| !v.is_empty());

    if command.is_attachment() {
        let mut missing = Vec::new();
        if var("CNI_CONTAINERID").is_none() {
            missing.push("CNI_CONTAINERID");
        }
        if command != Command::Del && var("CNI_NETNS").is_none() {
            missing.push("CNI_NETNS");
        }
        if var("CNI_IFNAME").is_none() {
            missing.push("CNI_IFNAME");
        }
        if !missing.is_empty() {
            return Err((
                Error::invalid_env(format!("required env variables [{}] missing", missing.join(" "))),
                current,
            ));
        }
    }

    let mut buf = Vec::new();
    stdin
        .take(MAX_STDIN as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| (Error::io(format!("error reading from stdin: {e}")), current.clone()))?;
    if buf.len() > MAX_STDIN {
        return Err((
            Error::decode("stdin is too large")
                .with_details(format!("a network config may be at most {MAX_STDIN} bytes")),
            current,
        ));
    }
    let raw: Value = serde_json::from_slice(&buf)
        .map_err(|e| (Error::decode(format!("error unmarshall network config: {e}")), current.clone()))?;
    if !raw.is_object() {
        return Err((Error::decode("error unmarshall network config: not a JSON object"), current));
    }
    let version_str = match gojson::get(&raw, "cniVersion") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err((Error::decode("field \"cniVersion\" must be a string"), current)),
    };
    let version = Version::from_config(version_str).map_err(|e| (e, current.clone()))?;
    let label = version.as_str().to_string();
    let with_label = |e: Error| (e, label.clone());

    let conf: NetConf = gojson::from_value(&raw)
        .map_err(|e| with_label(Error::decode(format!("error unmarshall network config: {e}"))))?;
    validate::network_name(&conf.name).map_err(with_label)?;
    validate::plugin_type("type", &conf.plugin_type).map_err(with_label)?;
    conf.ipam_type().map_err(with_label)?;

    let needs = match command {
        Command::Check => Some(Version::V040),
        Command::Gc | Command::Status => Some(Version::V110),
        _ => None,
    };
    if let Some(min) = needs {
        if version < min {
            return Err(with_label(
                Error::new(code::INCOMPATIBLE_VERSION, format!("config version does not allow {}", command.as_str()))
                    .with_details(format!("{} needs cniVersion {min} or later, config is {version}", command.as_str())),
            ));
        }
    }

    let (container_id, ifname, netns) = if command.is_attachment() {
        let id = var("CNI_CONTAINERID").unwrap_or_default();
        match command {
            Command::Add => validate::new_container_id(&id),
            _ => validate::container_id(&id),
        }
        .map_err(with_label)?;
        let ifname = var("CNI_IFNAME").unwrap_or_default();
        validate::interface_name(&ifname).map_err(with_label)?;
        let netns = var("CNI_NETNS").map(PathBuf::from);
        if let Some(ns) = &netns {
            let override_ok = matches!(var("CNI_NETNS_OVERRIDE").as_deref(), Some("1") | Some("true"));
            if matches!(command, Command::Add | Command::Del) && !override_ok && is_own_netns(ns) {
                return Err(with_label(
                    Error::new(code::INVALID_NETNS, "netns is the plugin's own network namespace")
                        .with_details(format!("CNI_NETNS={} (set CNI_NETNS_OVERRIDE=1 if intended)", ns.display())),
                ));
            }
        }
        (id, ifname, netns)
    } else {
        (String::new(), String::new(), None)
    };

    let args = CniArgs::parse(&var("CNI_ARGS").unwrap_or_default()).map_err(with_label)?;
    let cni_path = var("CNI_PATH")
        .map(|p| p.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect())
        .unwrap_or_default();

    Ok(Context { command, container_id, netns, ifname, cni_path, args, stdin: buf, raw, conf, version })
}

/// Runs one invocation against injected I/O: the whole protocol, testable
/// without a process.
pub fn execute<P: Plugin>(plugin: &P, env: &dyn Fn(&str) -> Option<String>, stdin: &mut dyn Read) -> Outcome {
    let Some(cmd) = env("CNI_COMMAND") else {
        return Outcome { stdout: String::new(), stderr: about(plugin.name()), exit: 0 };
    };
    let Some(command) = Command::parse(&cmd) else {
        return fail(&Error::invalid_env(format!("unknown CNI_COMMAND: {cmd}")), CURRENT);
    };
    if command == Command::Version {
        return Outcome { stdout: version_info(), stderr: String::new(), exit: 0 };
    }
    let ctx = match phases::time("parse", String::new, || build_context(env, stdin, command)) {
        Ok(ctx) => ctx,
        Err((e, v)) => return fail(&e, &v),
    };
    let label = ctx.version.as_str();
    let done = |r: Result<(), Error>| match r {
        Ok(()) => Outcome { stdout: String::new(), stderr: String::new(), exit: 0 },
        Err(e) => fail(&e, label),
    };
    match command {
        Command::Add => match plugin.add(&ctx).and_then(|r| r.to_pretty(ctx.version)) {
            Ok(s) => Outcome { stdout: s, stderr: String::new(), exit: 0 },
            Err(e) => fail(&e, label),
        },
        Command::Del => done(plugin.del(&ctx)),
        Command::Check => done(plugin.check(&ctx)),
        Command::Gc => done(plugin.gc(&ctx)),
        Command::Status => done(plugin.status(&ctx)),
        Command::Version => unreachable!("handled above"),
    }
}

/// Sets up logging to stderr, level from `CNI_LOG_LEVEL` or `RUST_LOG`.
pub fn init_logging() {
    let level = std::env::var("CNI_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| "warn".into());
    let _ = env_logger::Builder::new().parse_filters(&level).target(env_logger::Target::Stderr).try_init();
}

/// The `main` of every plugin: runs the invocation against the real
/// process and exits. A panic still ends in an error JSON.
pub fn run<P: Plugin>(plugin: P) -> ! {
    phases::mark("main");
    init_logging();
    std::panic::set_hook(Box::new(|info| log::error!("panic: {info}")));
    let env = |k: &str| std::env::var(k).ok();
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| execute(&plugin, &env, &mut std::io::stdin().lock())))
            .unwrap_or_else(|p| {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                fail(&Error::new(code::INTERNAL, format!("internal error: {what}")), CURRENT)
            });
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(outcome.stdout.as_bytes());
    let _ = out.flush();
    let _ = std::io::stderr().write_all(outcome.stderr.as_bytes());
    phases::mark("exit");
    std::process::exit(outcome.exit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{Interface, IpConfig};
    use std::collections::HashMap;

    struct Fake;
    impl Plugin for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn add(&self, ctx: &Context) -> Result<CniResult, Error> {
            ctx.args.check_known(&["IP"])?;
            if ctx.conf.name == "boom" {
                panic!("boom");
            }
            Ok(CniResult {
                interfaces: vec![Interface { name: ctx.ifname.clone(), sandbox: "/x".into(), ..Default::default() }],
                ips: vec![IpConfig { interface: Some(0), address: "10.0.0.2/24".parse().unwrap(), gateway: None }],
                ..Default::default()
            })
        }
        fn del(&self, _: &Context) -> Result<(), Error> {
            Ok(())
        }
        fn check(&self, ctx: &Context) -> Result<(), Error> {
            ctx.require_prev_result().map(|_| ())
        }
    }

    fn run_with(vars: &[(&str, &str)], stdin: &str) -> Outcome {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let env = move |k: &str| map.get(k).cloned();
        execute(&Fake, &env, &mut stdin.as_bytes())
    }

    const ADD: [(&str, &str); 4] =
        [("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c1"), ("CNI_NETNS", "/nonexistent/ns"), ("CNI_IFNAME", "eth0")];
    const CONF: &str = r#"{"cniVersion":"1.0.0","name":"net","type":"fake"}"#;

    fn err(o: &Outcome) -> Value {
        assert_eq!(o.exit, 1, "expected failure, got {o:?}");
        serde_json::from_str(&o.stdout).unwrap()
    }

    #[test]
    fn add_prints_result_in_config_version() {
        let o = run_with(&ADD, CONF);
        assert_eq!(o.exit, 0, "{o:?}");
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["ips"][0]["address"], "10.0.0.2/24");
        let o = run_with(&ADD, r#"{"cniVersion":"0.2.0","name":"net","type":"fake"}"#);
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["ip4"]["ip"], "10.0.0.2/24");
        let o = run_with(&ADD, r#"{"name":"net","type":"fake"}"#);
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["cniVersion"], "0.1.0");
    }

    #[test]
    fn version_lists_all_seven_and_ignores_stdin() {
        for stdin in ["", "not json", r#"{"cniVersion":"9.9.9"}"#] {
            let o = run_with(&[("CNI_COMMAND", "VERSION"), ("CNI_CONTAINERID", "/x/y")], stdin);
            assert_eq!(o.exit, 0);
            assert!(o.stdout.ends_with('\n'));
            let v: Value = serde_json::from_str(&o.stdout).unwrap();
            assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 7);
        }
    }

    #[test]
    fn no_command_prints_about() {
        let o = run_with(&[], "");
        assert_eq!(o.exit, 0);
        assert!(o.stdout.is_empty());
        assert!(o.stderr.starts_with("CNI fake plugin version"));
        assert!(o.stderr.contains("1.1.0"));
    }

    #[test]
    fn unknown_command() {
        let v = err(&run_with(&[("CNI_COMMAND", "FOO")], CONF));
        assert_eq!(v["code"], 4);
        assert_eq!(v["msg"], "unknown CNI_COMMAND: FOO");
    }

    #[test]
    fn missing_env() {
        let v = err(&run_with(&[("CNI_COMMAND", "ADD")], CONF));
        assert_eq!(v["code"], 4);
        assert_eq!(v["msg"], "required env variables [CNI_CONTAINERID CNI_NETNS CNI_IFNAME] missing");
        let v = err(&run_with(
            &[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", ""), ("CNI_NETNS", "/x"), ("CNI_IFNAME", "e")],
            CONF,
        ));
        assert_eq!(v["msg"], "required env variables [CNI_CONTAINERID] missing");
        let v = err(&run_with(&[("CNI_COMMAND", "CHECK"), ("CNI_CONTAINERID", "c"), ("CNI_IFNAME", "e")], CONF));
        assert!(v["msg"].as_str().unwrap().contains("CNI_NETNS"));
    }

    #[test]
    fn del_without_netns_is_fine() {
        let o = run_with(
            &[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c"), ("CNI_IFNAME", "eth0"), ("CNI_NETNS", "")],
            CONF,
        );
        assert_eq!(o, Outcome { stdout: String::new(), stderr: String::new(), exit: 0 });
    }

    #[test]
    fn bad_names() {
        let mut vars = ADD.to_vec();
        vars[3] = ("CNI_IFNAME", "0123456789abcdef");
        assert!(err(&run_with(&vars, CONF))["msg"].as_str().unwrap().contains("too long"));
        for bad in ["a/b", "a:b", "a b", ".."] {
            vars[3] = ("CNI_IFNAME", bad);
            assert_eq!(err(&run_with(&vars, CONF))["code"], 4, "{bad}");
        }
        let mut vars = ADD.to_vec();
        vars[1] = ("CNI_CONTAINERID", "../etc");
        let v = err(&run_with(&vars, CONF));
        assert_eq!(v["code"], 4);
        assert_eq!(v["msg"], "invalid characters in containerID");
        let v = err(&run_with(&ADD, r#"{"cniVersion":"1.0.0","name":"../x","type":"fake"}"#));
        assert_eq!(v["code"], 7);
        assert!(v["msg"].as_str().unwrap().contains("name"));
    }

    #[test]
    fn bad_stdin() {
        let v = err(&run_with(&ADD, "not json"));
        assert_eq!(v["code"], 6);
        assert!(v["msg"].as_str().unwrap().starts_with("error unmarshall network config"));
        let big = format!(r#"{{"name":"n","type":"fake","pad":"{}"}}"#, "x".repeat(MAX_STDIN));
        let v = err(&run_with(&ADD, &big));
        assert!(v["msg"].as_str().unwrap().contains("too large"));
        let v = err(&run_with(&ADD, r#"{"cniVersion":"1.0.0","type":"fake"}"#));
        assert_eq!((v["code"].as_u64(), v["msg"].as_str()), (Some(7), Some("missing network name")));
        let v = err(&run_with(&ADD, r#"{"cniVersion":"1.0.0","name":"n"}"#));
        assert_eq!(v["code"], 7);
        assert!(v["msg"].as_str().unwrap().contains("type"));
        let v = err(&run_with(&ADD, r#"{"cniVersion":"1.0.0","name":"n","type":"a/b"}"#));
        assert_eq!(v["code"], 7);
        let v = err(&run_with(&ADD, r#"{"cniVersion":"1.0.0","name":"n","type":"x","ipam":{"type":"../host-local"}}"#));
        assert!(v["msg"].as_str().unwrap().contains("ipam.type"));
        let v = err(&run_with(&ADD, r#"{"cniVersion":"9.9.9","name":"n","type":"x"}"#));
        assert_eq!(v["code"], 1);
        let v = err(&run_with(&ADD, r#"{"cniVersion":1,"name":"n","type":"x"}"#));
        assert_eq!(v["code"], 6);
        let v = err(&run_with(&ADD, "[1]"));
        assert_eq!(v["code"], 6);
    }

    #[test]
    fn cni_args() {
        let mut vars = ADD.to_vec();
        vars.push(("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web1;IP=10.89.77.50"));
        assert_eq!(run_with(&vars, CONF).exit, 0);
        vars.pop();
        vars.push(("CNI_ARGS", "K8S_POD_NAME=web1"));
        assert!(err(&run_with(&vars, CONF))["msg"].as_str().unwrap().contains("unknown args"));
        vars.pop();
        vars.push(("CNI_ARGS", "FOO"));
        assert!(err(&run_with(&vars, CONF))["msg"].as_str().unwrap().contains("invalid pair"));
    }

    #[test]
    fn version_gates() {
        let check = [("CNI_COMMAND", "CHECK"), ("CNI_CONTAINERID", "c"), ("CNI_NETNS", "/x"), ("CNI_IFNAME", "e")];
        let v = err(&run_with(&check, r#"{"cniVersion":"0.3.1","name":"n","type":"x"}"#));
        assert_eq!((v["code"].as_u64(), v["msg"].as_str()), (Some(1), Some("config version does not allow CHECK")));
        let v = err(&run_with(&check, CONF));
        assert_eq!(v["msg"], "Required prevResult missing");
        let v = err(&run_with(&[("CNI_COMMAND", "GC")], CONF));
        assert_eq!(v["msg"], "config version does not allow GC");
        let o = run_with(&[("CNI_COMMAND", "STATUS")], r#"{"cniVersion":"1.1.0","name":"n","type":"x"}"#);
        assert_eq!(o.exit, 0);
        assert!(o.stdout.is_empty());
    }

    #[test]
    fn own_netns_is_refused_on_add() {
        let mut vars = ADD.to_vec();
        vars[2] = ("CNI_NETNS", "/proc/self/ns/net");
        let v = err(&run_with(&vars, CONF));
        assert_eq!(v["code"], 8);
        vars.push(("CNI_NETNS_OVERRIDE", "1"));
        assert_eq!(run_with(&vars, CONF).exit, 0);
    }

    #[test]
    fn valid_attachments_both_keys() {
        let env = |k: &str| {
            if k == "CNI_COMMAND" {
                Some("GC".to_string())
            } else {
                None
            }
        };
        let conf = r#"{"cniVersion":"1.1.0","name":"n","type":"x","cni.dev/attachments":[{"containerID":"a","ifname":"eth0"}]}"#;
        let ctx = build_context(&env, &mut conf.as_bytes(), Command::Gc).unwrap();
        assert_eq!(ctx.valid_attachments().unwrap().unwrap()[0].container_id, "a");
        let conf = r#"{"cniVersion":"1.1.0","name":"n","type":"x"}"#;
        let ctx = build_context(&env, &mut conf.as_bytes(), Command::Gc).unwrap();
        assert!(ctx.valid_attachments().unwrap().is_none());
    }
}
