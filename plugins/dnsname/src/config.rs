//! The dnsname options, read and checked before anything changes: a bad
//! `domainName`, `dataDir` or container name is a code-7 error naming the
//! field, with nothing written.
//!
//! Sources: the config's `domainName` and `dataDir` (containers/dnsname's
//! keys), `upstreamResolvConf` (ours: the resolv.conf whose nameservers
//! get the queries for other names; `/etc/resolv.conf` by default), the
//! container's name from `CNI_ARGS K8S_POD_NAME`, and its aliases on this
//! network from the `aliases` capability (`runtimeConfig.aliases`:
//! `{"<network>": ["alias", ...]}`).

use crate::names;
use cni::{Context, Error};
use serde::Deserialize;
use std::path::PathBuf;

/// The domain names are answered under when the config names none
/// (Podman's and containers/dnsname's default).
const DEFAULT_DOMAIN: &str = "dns.podman";
/// Where records live when the config names no `dataDir`
/// (containers/dnsname's default, so operators find them where they expect).
pub const DEFAULT_DATA_DIR: &str = "/run/containers/cni/dnsname";
/// The resolver file upstream servers are read from by default.
const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";
/// Most aliases one attachment may have: inputs are bounded.
const MAX_ALIASES: usize = 256;

/// The options, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConf {
    /// Names are answered bare and under this domain (canonical form).
    pub domain: String,
    /// Records of network N live in `<data_dir>/N/`.
    pub data_dir: PathBuf,
    /// The resolv.conf read for upstream servers.
    pub resolv_conf: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
struct Raw {
    #[serde(rename = "domainName", default)]
    domain_name: Option<String>,
    #[serde(rename = "dataDir", default)]
    data_dir: Option<String>,
    #[serde(rename = "upstreamResolvConf", default)]
    upstream_resolv_conf: Option<String>,
}

fn bad(msg: String) -> Error {
    Error::invalid_config(format!("dnsname: {msg}"))
}

fn absolute(field: &str, dir: &str) -> Result<PathBuf, Error> {
    let p = PathBuf::from(dir);
    if !p.is_absolute() || dir.contains('\0') {
        return Err(bad(format!("field {field:?} ({dir:?}) must be an absolute path")));
    }
    Ok(p)
}

/// The records directory from `dataDir` or the default. DEL and GC use
/// only this, so a config whose other options went bad can still clean up.
pub fn data_dir(ctx: &Context) -> Result<PathBuf, Error> {
    match cni::gojson::get(&ctx.raw, "dataDir").and_then(|v| v.as_str()) {
        None | Some("") => Ok(PathBuf::from(DEFAULT_DATA_DIR)),
        Some(d) => absolute("dataDir", d),
    }
}

/// `CNI_ARGS` keys accepted without `IgnoreUnknown`: containers/dnsname's.
pub const KNOWN_ARGS: &[&str] = &["K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID"];

/// Reads and checks the options.
pub fn load(ctx: &Context) -> Result<DnsConf, Error> {
    let raw: Raw = ctx.config()?;
    let domain = match raw.domain_name.as_deref() {
        None | Some("") => DEFAULT_DOMAIN.to_string(),
        Some(d) => {
            if let Some(why) = names::domain_problem(d) {
                return Err(bad(format!("field \"domainName\" ({d:?}) is not a valid domain name: it {why}")));
            }
            names::canonical(d)
        }
    };
    let data_dir = match raw.data_dir.as_deref() {
        None | Some("") => PathBuf::from(DEFAULT_DATA_DIR),
        Some(d) => absolute("dataDir", d)?,
    };
    let resolv_conf = match raw.upstream_resolv_conf.as_deref() {
        None | Some("") => PathBuf::from(DEFAULT_RESOLV_CONF),
        Some(p) => absolute("upstreamResolvConf", p)?,
    };
    Ok(DnsConf { domain, data_dir, resolv_conf })
}

/// The container's name from `CNI_ARGS K8S_POD_NAME`, which Podman and
/// kubelet send: one DNS label, or a code-7 error naming it.
pub fn container_name(ctx: &Context) -> Result<String, Error> {
    let Some(name) = ctx.args.get("K8S_POD_NAME") else {
        return Err(bad("CNI_ARGS has no K8S_POD_NAME: the container's name is required".into()));
    };
    if let Some(why) = names::label_problem(name) {
        return Err(bad(format!("the container name (CNI_ARGS K8S_POD_NAME={name:?}) is not a DNS label: it {why}")));
    }
    Ok(name.to_string())
}

/// This network's aliases from the `aliases` capability. An alias that is
/// not a DNS label is skipped with a warning (the container still
/// starts, and no record can leave `domainName`); aliases for other
/// networks are theirs. More than [`MAX_ALIASES`] is a code-7 error.
pub fn aliases(ctx: &Context) -> Result<Vec<String>, Error> {
    let mine = ctx.conf.runtime_config()?.aliases.remove(&ctx.conf.name).unwrap_or_default();
    if mine.len() > MAX_ALIASES {
        return Err(bad(format!(
            "runtimeConfig.aliases[{:?}] has {} aliases (at most {MAX_ALIASES})",
            ctx.conf.name,
            mine.len()
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for a in mine {
        match names::label_problem(&a) {
            Some(why) => log::warn!("dnsname: alias {a:?} skipped: it {why}"),
            None if out.iter().any(|o| o.eq_ignore_ascii_case(&a)) => {}
            None => out.push(a),
        }
    }
    Ok(out)
}
