//! The firewall options, as the reference names them. Every backend name
//! the reference knows is accepted: `""`, `"iptables"` and `"nftables"`
//! all mean this plugin's own nftables table; `"firewalld"` needs a
//! running firewalld and is a clear error without one.

use cni::{Context, Error};
use serde::Deserialize;

/// What `backend` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `""`, `"iptables"`, `"nftables"`: our table.
    Ours,
    /// `"firewalld"`: only where firewalld runs.
    Firewalld,
}

/// `ingressPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngressPolicy {
    /// `""` / `"open"`: no restriction beyond admission.
    Open,
    /// `"same-bridge"`: new connections into the container only from its
    /// own bridge (replies and published ports still reach it).
    SameBridge,
}

/// The validated options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallConf {
    /// The backend asked for.
    pub backend: Backend,
    /// The ingress policy.
    pub ingress: IngressPolicy,
    /// `iptablesAdminChainName`: accepted for compatibility, not used (our
    /// rules live in our own table; an administrator's `drop` in any
    /// table still wins over our admission).
    pub admin_chain: String,
}

#[derive(Debug, Deserialize)]
struct Raw {
    #[serde(default)]
    backend: String,
    #[serde(rename = "ingressPolicy", default)]
    ingress_policy: String,
    #[serde(rename = "iptablesAdminChainName", default)]
    admin_chain: String,
    #[serde(rename = "firewalldZone", default)]
    #[allow(dead_code)]
    firewalld_zone: String,
}

fn bad(msg: String) -> Error {
    Error::invalid_config(format!("firewall: {msg}"))
}

/// Parses `backend`.
pub fn backend(s: &str) -> Result<Backend, Error> {
    match s {
        "" | "iptables" | "nftables" => Ok(Backend::Ours),
        "firewalld" => Ok(Backend::Firewalld),
        other => Err(bad(format!("unknown backend {other:?} (field \"backend\")"))
            .with_details("expected \"\", \"iptables\", \"nftables\" or \"firewalld\"")),
    }
}

/// Parses `ingressPolicy`.
fn ingress_policy(s: &str) -> Result<IngressPolicy, Error> {
    match s {
        "" | "open" => Ok(IngressPolicy::Open),
        "same-bridge" => Ok(IngressPolicy::SameBridge),
        other => Err(bad(format!("unknown ingress policy {other:?} (field \"ingressPolicy\")"))
            .with_details("expected \"open\" or \"same-bridge\"")),
    }
}

/// Reads and validates the options.
pub fn load(ctx: &Context) -> Result<FirewallConf, Error> {
    let raw: Raw = cni::gojson::from_value(&ctx.raw).map_err(|e| bad(format!("invalid config: {e}")))?;
    if raw.admin_chain.len() > 28 || raw.admin_chain.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(format!(
            "invalid iptablesAdminChainName {:?}: an iptables chain name has at most 28 characters and no spaces",
            raw.admin_chain
        )));
    }
    Ok(FirewallConf {
        backend: backend(&raw.backend)?,
        ingress: ingress_policy(&raw.ingress_policy)?,
        admin_chain: raw.admin_chain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_and_policies() {
        for b in ["", "iptables", "nftables"] {
            assert_eq!(backend(b).unwrap(), Backend::Ours);
        }
        assert_eq!(backend("firewalld").unwrap(), Backend::Firewalld);
        let e = backend("pf").unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("\"pf\""));
        assert_eq!(ingress_policy("").unwrap(), IngressPolicy::Open);
        assert_eq!(ingress_policy("open").unwrap(), IngressPolicy::Open);
        assert_eq!(ingress_policy("same-bridge").unwrap(), IngressPolicy::SameBridge);
        assert!(ingress_policy("closed").unwrap_err().msg.contains("ingress policy"));
    }

    /// Go's decoder matches keys in any case; so do we.
    #[test]
    fn any_recasing_of_keys_decodes_the_same() {
        let full = serde_json::json!({
            "cniVersion": "1.0.0", "name": "n", "type": "firewall", "backend": "firewalld",
            "ingressPolicy": "same-bridge", "iptablesAdminChainName": "ADMIN", "firewalldZone": "trusted"
        });
        let show = |v: &serde_json::Value| {
            let env = |k: &str| match k {
                "CNI_CONTAINERID" => Some("c1".to_string()),
                "CNI_NETNS" => Some("/run/netns/x".to_string()),
                "CNI_IFNAME" => Some("eth0".to_string()),
                _ => None,
            };
            let ctx = cni::skel::build_context(&env, &mut v.to_string().as_bytes(), cni::Command::Add).unwrap();
            format!("{:?}", load(&ctx).unwrap())
        };
        let want = show(&full);
        for seed in 0..64 {
            let folded = cni::gojson::refold_keys(&full, seed, &[]);
            assert_eq!(show(&folded), want, "{folded}");
        }
    }
}
