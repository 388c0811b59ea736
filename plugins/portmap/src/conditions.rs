//! `conditionsV4` / `conditionsV6`: extra matches a mapping must meet.
//!
//! The reference passes these strings to `nft` (or to `iptables` when the
//! first one starts with `-` or `!`). We do not run `nft` and do not parse
//! its whole language, so a documented subset is accepted, written in nft
//! syntax (the strings are joined with spaces, so `["ip", "saddr",
//! "10.0.0.0/8"]` and `["ip saddr 10.0.0.0/8"]` are the same):
//!
//! - `ip saddr|daddr [==|!=] <address>[/<prefix>]` (conditionsV4)
//! - `ip6 saddr|daddr [==|!=] <address>[/<prefix>]` (conditionsV6)
//! - `[meta] iifname|oifname [==|!=] <name>` (an exact name, no wildcard)
//!
//! Anything else is a code-7 error naming the field and the condition,
//! never a silently dropped match.

use cni::Error;
use ipnetwork::IpNetwork;
use kernel::nft::{CmpOp, Field, IpFamily, Rule, Value};
use std::fmt;

/// One parsed match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `ip saddr 10.0.0.0/8`, `ip6 daddr != fd00::/8`.
    Addr {
        /// The packet field.
        field: Field,
        /// `==` or `!=`.
        op: CmpOp,
        /// The prefix.
        net: IpNetwork,
    },
    /// `iifname "eth0"`, `oifname != "lo"`.
    Ifname {
        /// `Iifname` or `Oifname`.
        field: Field,
        /// `==` or `!=`.
        op: CmpOp,
        /// The exact name.
        name: String,
    },
}

impl Condition {
    /// Adds the match to a rule.
    pub fn apply(&self, rule: Rule) -> Rule {
        match self {
            Condition::Addr { field, op, net } => rule.prefix(*field, *net, *op),
            Condition::Ifname { field, op, name } => rule.cmp(*field, *op, Value::Ifname(name.clone())),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = |op: &CmpOp| if *op == CmpOp::Neq { "!= " } else { "" };
        match self {
            Condition::Addr { field, op: o, net } => {
                let sel = match field {
                    Field::Ip4Saddr => "ip saddr",
                    Field::Ip4Daddr => "ip daddr",
                    Field::Ip6Saddr => "ip6 saddr",
                    _ => "ip6 daddr",
                };
                write!(f, "{sel} {}{net}", op(o))
            }
            Condition::Ifname { field, op: o, name } => {
                let sel = if *field == Field::Iifname { "iifname" } else { "oifname" };
                write!(f, "{sel} {}\"{name}\"", op(o))
            }
        }
    }
}

const SUBSET: &str = "supported: ip/ip6 saddr|daddr [!=] <address[/prefix]>, iifname|oifname [!=] <name>";

/// Parses one of the two lists for `family`; `field` names it in errors.
pub fn parse(field: &str, family: IpFamily, list: &[String]) -> Result<Vec<Condition>, Error> {
    let text = list.join(" ");
    let tokens: Vec<&str> = text.split_whitespace().collect();
    if let Some(first) = tokens.first() {
        if first.starts_with('-') || first.starts_with('!') {
            return Err(Error::invalid_config(format!(
                "{field}: {text:?} is iptables syntax; this portmap uses nftables only, write it in nft syntax \
                 (e.g. \"ip saddr 10.0.0.0/8\")"
            )));
        }
    }
    let bad = |what: &str| Error::invalid_config(format!("{field}: cannot use condition {text:?}: {what} ({SUBSET})"));
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let mut sel = tokens[i];
        i += 1;
        if sel == "meta" {
            sel = tokens.get(i).copied().ok_or_else(|| bad("\"meta\" without a key"))?;
            if sel != "iifname" && sel != "oifname" {
                return Err(bad(&format!("unsupported meta key {sel:?}")));
            }
            i += 1;
        }
        let field = match (sel, tokens.get(i).copied()) {
            ("ip" | "ip6", Some(dir @ ("saddr" | "daddr"))) => {
                let want = if sel == "ip" { IpFamily::V4 } else { IpFamily::V6 };
                if want != family {
                    return Err(bad(&format!("\"{sel}\" matches the other IP version")));
                }
                i += 1;
                if dir == "saddr" {
                    Field::saddr(family)
                } else {
                    Field::daddr(family)
                }
            }
            ("iifname", _) => Field::Iifname,
            ("oifname", _) => Field::Oifname,
            _ => return Err(bad(&format!("unsupported match starting at {sel:?}"))),
        };
        let op = match tokens.get(i).copied() {
            Some("!=") => {
                i += 1;
                CmpOp::Neq
            }
            Some("==") => {
                i += 1;
                CmpOp::Eq
            }
            _ => CmpOp::Eq,
        };
        let value = tokens.get(i).copied().ok_or_else(|| bad("a match without a value"))?;
        i += 1;
        out.push(match field {
            Field::Iifname | Field::Oifname => {
                let name = value.trim_matches('"');
                if name.is_empty() || name.contains('*') || Value::Ifname(name.to_string()).encode().is_err() {
                    return Err(bad(&format!("{value:?} is not an exact interface name")));
                }
                Condition::Ifname { field, op, name: name.to_string() }
            }
            _ => {
                let net: IpNetwork =
                    value.parse().map_err(|_| bad(&format!("{value:?} is not an address or prefix")))?;
                if IpFamily::of(&net.ip()) != family {
                    return Err(bad(&format!("{value:?} is of the other IP version")));
                }
                let net = IpNetwork::new(net.network(), net.prefix()).unwrap_or(net);
                if net.prefix() == 0 && op == CmpOp::Neq {
                    return Err(bad(&format!("\"!= {value}\" never matches")));
                }
                Condition::Addr { field, op, net }
            }
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(family: IpFamily, list: &[&str]) -> Result<Vec<Condition>, Error> {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        parse("conditionsV4", family, &list)
    }

    #[test]
    fn subset_parses_in_both_spellings() {
        let a = p(IpFamily::V4, &["ip", "saddr", "10.1.2.3/8", "iifname", "!=", "\"eth1\""]).unwrap();
        let b = p(IpFamily::V4, &["ip saddr 10.0.0.0/8 meta iifname != eth1"]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].to_string(), "ip saddr 10.0.0.0/8");
        assert_eq!(a[1].to_string(), "iifname != \"eth1\"");
        let v6 = p(IpFamily::V6, &["ip6 daddr == fd00::1", "oifname cni0"]).unwrap();
        assert_eq!(v6[0].to_string(), "ip6 daddr fd00::1/128");
        assert!(p(IpFamily::V4, &[]).unwrap().is_empty());
    }

    #[test]
    fn everything_else_is_refused_by_name() {
        for bad in [
            &["-s", "10.0.0.0/8"][..],
            &["! -d 10.0.0.1"],
            &["tcp dport 80"],
            &["ip6 saddr fd00::/8"],
            &["ip saddr"],
            &["ip saddr fd00::1"],
            &["iifname eth*"],
            &["ip saddr != 0.0.0.0/0"],
            &["meta mark 1"],
        ] {
            let e = p(IpFamily::V4, bad).unwrap_err();
            assert_eq!(e.code, 7);
            assert!(e.msg.starts_with("conditionsV4: "), "{}", e.msg);
        }
    }
}
