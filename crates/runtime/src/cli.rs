//! The `cnitool` command line, as upstream's: a command, a network name and
//! a netns path, everything else from the environment. Kept apart from the
//! binary and driven through an injected environment so it can be tested
//! in-process.

use crate::{attachment::parse_cni_args, Attachment, GcAttachment, Runtime};
use cni::result::pretty;
use cni::Error;
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};

/// The usage text (`cnitool --help`).
pub const USAGE: &str = "\
cnitool: add, check, remove, gc or get status of network interfaces in a network namespace

Usage:
  cnitool [-i IFNAME] add    <net> <netns>
  cnitool [-i IFNAME] check  <net> <netns>
  cnitool [-i IFNAME] del    <net> <netns>
  cnitool gc     <net> [<netns>]
  cnitool status <net> [<netns>]

<net> is the \"name\" of a network config in NETCONFPATH; <netns> is the path of a
network namespace, e.g. /var/run/netns/x (made absolute; it also names the container).

Options:
  -i, --ifname IFNAME  interface name in the container (default: $CNI_IFNAME, else eth0)
  -h, --help           show this text
      --version        show the version and git commit of this build

Environment:
  NETCONFPATH      directory of .conflist/.conf/.json files (default /etc/cni/net.d)
  CNI_PATH         ':'-separated plugin search path
  CNI_IFNAME       interface name (default eth0)
  CNI_ARGS         'K=V;K2=V2' passed to the plugins
  CAP_ARGS         JSON object of capability arguments, e.g. '{\"portMappings\":[...]}';
                   each plugin only gets those it declares in \"capabilities\"
  CNI_CONTAINERID  container id (default: \"cnitool-\" + first 20 hex digits of
                   sha512(<netns>), as upstream cnitool derives it)
  CNI_CACHE_DIR    result cache directory (default /var/lib/cni/results)
  CNI_VALID_ATTACHMENTS
                   gc only: JSON list [{\"containerID\":\"..\",\"ifname\":\"..\"}] of the
                   attachments to keep. Without it, the cached attachments of <net>
                   whose netns path still exists are kept, and the others are deleted.
  CNI_LOG_LEVEL    log level of cnitool itself (error, warn, info, debug)

add prints the result (in the network's cniVersion) on stdout, 4-space indented and
without a trailing newline, as upstream cnitool. On failure, the CNI
error object is printed on stdout, a one-line message on stderr, and the exit
status is 1. check, del, gc and status print nothing when they succeed.
";

/// What one run produced: the binary writes it out, tests inspect it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes for stdout.
    pub stdout: String,
    /// Bytes for stderr.
    pub stderr: String,
    /// Exit status.
    pub exit: i32,
}

/// The five commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    /// Attach.
    Add,
    /// Verify.
    Check,
    /// Detach.
    Del,
    /// Garbage-collect.
    Gc,
    /// Readiness.
    Status,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The command.
    pub cmd: Cmd,
    /// The network name.
    pub network: String,
    /// The netns argument as given (absent for gc/status).
    pub netns: Option<String>,
    /// `-i/--ifname`, if given.
    pub ifname: Option<String>,
}

/// Why the command line could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// `-h`/`--help`: print usage, exit 0.
    Help,
    /// `--version`: print the build's version and commit, exit 0.
    Version,
    /// A usage error with its message: print it and the usage, exit 1.
    Usage(String),
}

/// Parses the arguments after the program name.
pub fn parse_args(args: &[String]) -> Result<Invocation, ArgsError> {
    let mut positional = Vec::new();
    let mut ifname = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Err(ArgsError::Help),
            "--version" => return Err(ArgsError::Version),
            "-i" | "--ifname" => match it.next() {
                Some(v) => ifname = Some(v.clone()),
                None => return Err(ArgsError::Usage(format!("{a} needs a value"))),
            },
            s if s.starts_with("--ifname=") => ifname = Some(s["--ifname=".len()..].to_string()),
            s if s.starts_with('-') && s.len() > 1 => return Err(ArgsError::Usage(format!("unknown option {s}"))),
            _ => positional.push(a.clone()),
        }
    }
    let Some(cmd) = positional.first() else {
        return Err(ArgsError::Usage("no command given".into()));
    };
    let cmd = match cmd.as_str() {
        "add" => Cmd::Add,
        "check" => Cmd::Check,
        "del" => Cmd::Del,
        "gc" => Cmd::Gc,
        "status" => Cmd::Status,
        "help" => return Err(ArgsError::Help),
        other => return Err(ArgsError::Usage(format!("unknown command {other:?}"))),
    };
    let needs_netns = matches!(cmd, Cmd::Add | Cmd::Check | Cmd::Del);
    let (min, max) = if needs_netns { (3, 3) } else { (2, 3) };
    if positional.len() < min {
        return Err(ArgsError::Usage(if needs_netns {
            "network name and namespace are required".into()
        } else {
            "network name is required".into()
        }));
    }
    if positional.len() > max {
        return Err(ArgsError::Usage(format!("unexpected argument {:?}", positional[max])));
    }
    Ok(Invocation { cmd, network: positional[1].clone(), netns: positional.get(2).cloned(), ifname })
}

/// Makes `path` absolute against `cwd` and cleans it lexically (`.`, `..`,
/// repeated `/`), as Go's `filepath.Abs`: the container id hashes this
/// exact string, so it must match upstream's.
fn absolute_path(path: &str, cwd: &str) -> String {
    let joined = if path.starts_with('/') { path.to_string() } else { format!("{cwd}/{path}") };
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// upstream cnitool's container id: `cnitool-` + the first 10 bytes of
/// sha512(netns path) in hex.
pub fn container_id_for(netns: &str) -> String {
    let digest = Sha512::digest(netns.as_bytes());
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{hex}")
}

fn capability_args(env: &dyn Fn(&str) -> Option<String>) -> crate::Result<Map<String, Value>> {
    match env("CAP_ARGS").filter(|s| !s.is_empty()) {
        None => Ok(Map::new()),
        Some(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(Error::invalid_env("CAP_ARGS must be a JSON object")),
            Err(e) => Err(Error::invalid_env(format!("CAP_ARGS is not valid JSON: {e}"))),
        },
    }
}

fn valid_attachments(
    rt: &Runtime,
    network: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> crate::Result<Vec<GcAttachment>> {
    if let Some(s) = env("CNI_VALID_ATTACHMENTS").filter(|s| !s.is_empty()) {
        return serde_json::from_str(&s).map_err(|e| {
            Error::invalid_env(format!("CNI_VALID_ATTACHMENTS: {e}"))
                .with_details("expected a JSON list of {\"containerID\": \"..\", \"ifname\": \"..\"}")
        });
    }
    Ok(rt
        .cache()
        .list(Some(network))?
        .into_iter()
        .filter(|e| Runtime::netns_exists(&e.netns))
        .map(|e| e.attachment().key())
        .collect())
}

fn execute(inv: &Invocation, env: &dyn Fn(&str) -> Option<String>, cwd: &str) -> crate::Result<String> {
    let rt = Runtime::from_env_with(env);
    let network = rt.load_network(&inv.network)?;
    let attachment = || -> crate::Result<Attachment> {
        let netns = absolute_path(inv.netns.as_deref().unwrap_or_default(), cwd);
        let container_id = env("CNI_CONTAINERID").filter(|s| !s.is_empty()).unwrap_or_else(|| container_id_for(&netns));
        let ifname =
            inv.ifname.clone().or_else(|| env("CNI_IFNAME").filter(|s| !s.is_empty())).unwrap_or_else(|| "eth0".into());
        Ok(Attachment {
            container_id,
            netns,
            ifname,
            args: parse_cni_args(&env("CNI_ARGS").unwrap_or_default())?,
            capability_args: capability_args(env)?,
        })
    };
    match inv.cmd {
        Cmd::Add => {
            let result = rt.add(&network, &attachment()?)?;
            result.to_pretty(network.selected_version()?)
        }
        Cmd::Check => rt.check(&network, &attachment()?).map(|()| String::new()),
        Cmd::Del => rt.del(&network, &attachment()?).map(|()| String::new()),
        Cmd::Gc => {
            let valid = valid_attachments(&rt, &network.name, env)?;
            rt.gc(&network, &valid).map(|()| String::new())
        }
        Cmd::Status => rt.status(&network).map(|()| String::new()),
    }
}

/// Runs cnitool with `args` (after the program name), the environment read
/// through `env`, and `cwd` to make a relative netns path absolute.
pub fn run(args: &[String], env: &dyn Fn(&str) -> Option<String>, cwd: &str) -> Outcome {
    let inv = match parse_args(args) {
        Ok(inv) => inv,
        Err(ArgsError::Help) => return Outcome { stdout: USAGE.into(), stderr: String::new(), exit: 0 },
        Err(ArgsError::Version) => {
            let stdout = format!("cnitool version {}\n", cni::build_info::describe());
            return Outcome { stdout, stderr: String::new(), exit: 0 };
        }
        Err(ArgsError::Usage(msg)) => {
            return Outcome { stdout: String::new(), stderr: format!("cnitool: {msg}\n\n{USAGE}"), exit: 1 }
        }
    };
    match execute(&inv, env, cwd) {
        Ok(stdout) => Outcome { stdout, stderr: String::new(), exit: 0 },
        Err(e) => {
            let version = Runtime::from_env_with(env)
                .load_network(&inv.network)
                .ok()
                .and_then(|n| n.selected_version().ok())
                .map(|v| v.as_str())
                .unwrap_or(cni::version::CURRENT);
            Outcome { stdout: format!("{}\n", pretty(&e.to_json(version))), stderr: format!("cnitool: {e}\n"), exit: 1 }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn container_id_matches_upstream() {
        // printf '/var/run/netns/x' | sha512sum | cut -c1-20
        assert_eq!(container_id_for("/var/run/netns/x"), "cnitool-4acf487154af9777be71");
    }

    #[test]
    fn paths_are_made_absolute_like_go() {
        assert_eq!(absolute_path("/var/run/netns/x", "/tmp"), "/var/run/netns/x");
        assert_eq!(absolute_path("//var/./run/../run/netns//x/", "/tmp"), "/var/run/netns/x");
        assert_eq!(absolute_path("ns/x", "/tmp/a"), "/tmp/a/ns/x");
        assert_eq!(absolute_path("../../../x", "/a"), "/x");
    }

    #[test]
    fn command_lines() {
        let inv = parse_args(&args("add net /run/netns/x")).unwrap();
        assert_eq!(
            inv,
            Invocation { cmd: Cmd::Add, network: "net".into(), netns: Some("/run/netns/x".into()), ifname: None }
        );
        let inv = parse_args(&args("-i eth1 del net /run/netns/x")).unwrap();
        assert_eq!(inv.ifname.as_deref(), Some("eth1"));
        assert_eq!(parse_args(&args("check net ns --ifname=net1")).unwrap().ifname.as_deref(), Some("net1"));
        assert_eq!(parse_args(&args("gc net")).unwrap().netns, None);
        assert_eq!(parse_args(&args("status net /run/netns/x")).unwrap().cmd, Cmd::Status);
        assert_eq!(parse_args(&args("--help")), Err(ArgsError::Help));
        assert_eq!(parse_args(&args("--version")), Err(ArgsError::Version));
        assert!(matches!(parse_args(&args("add net")), Err(ArgsError::Usage(_))));
        assert!(matches!(parse_args(&args("frob net ns")), Err(ArgsError::Usage(_))));
        assert!(matches!(parse_args(&args("add net ns extra")), Err(ArgsError::Usage(_))));
        assert!(matches!(parse_args(&args("add net ns -x")), Err(ArgsError::Usage(_))));
        assert!(matches!(parse_args(&[]), Err(ArgsError::Usage(_))));
    }

    #[test]
    fn usage_and_errors_go_to_the_right_stream() {
        let env = |_: &str| None;
        let out = run(&args("--help"), &env, "/");
        assert_eq!(out.exit, 0);
        assert!(out.stdout.contains("CNI_VALID_ATTACHMENTS"));
        let out = run(&args("add"), &env, "/");
        assert_eq!(out.exit, 1);
        assert!(out.stdout.is_empty());
        assert!(out.stderr.contains("Usage:"));

        let d = tempfile::tempdir().unwrap();
        let dir = d.path().display().to_string();
        let env = move |k: &str| (k == "NETCONFPATH").then(|| dir.clone());
        let out = run(&args("add nonet /run/netns/x"), &env, "/");
        assert_eq!(out.exit, 1);
        let err: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(err["code"], 7);
        assert!(err["msg"].as_str().unwrap().contains("no net configurations found"));
        assert!(out.stderr.starts_with("cnitool: "));
    }

    #[test]
    fn capability_args_must_be_an_object() {
        assert!(capability_args(&|_| Some("[1]".into())).is_err());
        assert!(capability_args(&|_| Some("{".into())).is_err());
        assert_eq!(capability_args(&|_| Some(r#"{"mac":"x"}"#.into())).unwrap()["mac"], "x");
        assert!(capability_args(&|_| None).unwrap().is_empty());
    }
}
