//! What the host device looked like before ADD (name, MTU, up/down, alias),
//! kept in the device's own `IFLA_IFALIAS`: the alias travels with the link
//! into the container and back, and also when the kernel returns a physical
//! device to the host because its namespace was destroyed. So DEL finds it
//! with no state file and without the container, and the record goes away
//! with the device. The record is tagged with a hash of the attachment
//! (network, container id, ifname), so DEL restores only its own device.
//!
//! Format: `cni-hd:<16 hex>:<name>:<mtu>:<u|d>:<original alias>`; a name
//! cannot hold `:`. The original alias is cut to fit the kernel's 255 bytes.

use kernel::netlink::Link;
use netcore::naming::fnv1a64;

const PREFIX: &str = "cni-hd:";
const ALIAS_MAX: usize = 255;

/// The device's state before ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// The attachment's tag.
    pub tag: String,
    /// Its name in the host.
    pub name: String,
    /// Its MTU.
    pub mtu: u32,
    /// Whether it was administratively up.
    pub up: bool,
    /// Its own alias (empty for none).
    pub alias: String,
}

/// The tag of one attachment.
pub fn tag(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{:016x}", fnv1a64(&[network, container_id, ifname]))
}

/// The name a device gets when its original name was taken meanwhile.
pub fn fallback_name(tag: &str) -> String {
    format!("hd{}", &tag[..12])
}

impl Saved {
    /// The record of `link` for the attachment tagged `tag`.
    pub fn of(link: &Link, tag: &str) -> Saved {
        Saved {
            tag: tag.to_string(),
            name: link.name.clone(),
            mtu: link.mtu,
            up: link.up,
            alias: link.alias.clone().unwrap_or_default(),
        }
    }

    /// The alias that carries the record.
    pub fn encode(&self) -> String {
        let mut s = format!("{PREFIX}{}:{}:{}:{}:", self.tag, self.name, self.mtu, if self.up { 'u' } else { 'd' });
        let mut cut = self.alias.len().min(ALIAS_MAX.saturating_sub(s.len()));
        while !self.alias.is_char_boundary(cut) {
            cut -= 1;
        }
        s.push_str(&self.alias[..cut]);
        s
    }

    /// Reads a record back from an alias; `None` when it is not one.
    pub fn decode(alias: &str) -> Option<Saved> {
        let rest = alias.strip_prefix(PREFIX)?;
        let mut it = rest.splitn(5, ':');
        let tag = it.next()?.to_string();
        let name = it.next()?.to_string();
        let mtu = it.next()?.parse().ok()?;
        let up = match it.next()? {
            "u" => true,
            "d" => false,
            _ => return None,
        };
        let alias = it.next()?.to_string();
        (tag.len() == 16 && !name.is_empty()).then_some(Saved { tag, name, mtu, up, alias })
    }

    /// Whether the alias is a record of the attachment tagged `tag`.
    pub fn is_of(alias: &str, tag: &str) -> bool {
        alias.strip_prefix(PREFIX).and_then(|r| r.strip_prefix(tag)).is_some_and(|r| r.starts_with(':'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = tag("net", "ctr", "eth1");
        let s = Saved { tag: t.clone(), name: "ens5".into(), mtu: 9000, up: true, alias: "uplink: a:b".into() };
        let a = s.encode();
        assert_eq!(Saved::decode(&a), Some(s.clone()));
        assert!(Saved::is_of(&a, &t));
        assert!(!Saved::is_of(&a, &tag("net", "ctr", "eth2")));
        assert_eq!(Saved::decode("ens5"), None);
        let long = Saved { alias: "x".repeat(400), ..s };
        assert_eq!(long.encode().len(), 255);
        assert_eq!(fallback_name(&t).len(), 14);
    }
}
