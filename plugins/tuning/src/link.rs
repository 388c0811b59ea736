//! The changes themselves, inside the container's namespace only: read
//! what is there now, apply each option in order, and undo what was
//! applied when a later one fails, so a failed ADD leaves the interface
//! and the sysctls as it found them.

use crate::config::TuningConf;
use crate::state::Saved;
use cni::Error;
use kernel::netlink::{mac_to_string, parse_mac, Family, Handle, Link, Mac};
use kernel::netns::Netns;
use kernel::sysctl;

/// The container interface, with handles bound to its namespace.
pub struct Target<'a> {
    /// The container namespace (sysctls are opened inside it).
    pub ns: &'a Netns,
    /// A netlink handle bound to that namespace.
    pub handle: &'a Handle,
    /// The interface's index there.
    pub index: u32,
    /// Its name (`CNI_IFNAME`).
    pub ifname: &'a str,
}

/// One change, in the order ADD applies them (the reference's order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write a sysctl.
    Sysctl(String, String),
    /// Set the MAC.
    Mac(Mac),
    /// Set promiscuous mode.
    Promisc(bool),
    /// Set the MTU.
    Mtu(u32),
    /// Set all-multicast mode.
    Allmulti(bool),
    /// Set the transmit queue length.
    TxQLen(u32),
}

fn err(e: kernel::Error) -> Error {
    Error::from(e).context("tuning")
}

/// The current values of everything `conf` is about to change.
pub fn snapshot(t: &Target, link: &Link, conf: &TuningConf) -> Result<Saved, Error> {
    let mut saved = Saved::default();
    for key in conf.sysctl.keys() {
        let v = sysctl::get_in(t.ns, key).map_err(|e| {
            let hint = if e.is_not_found() { " (no such sysctl in the container's namespace)" } else { "" };
            Error::invalid_config(format!("tuning: cannot read sysctl {key:?}{hint}: {}", e.cause))
        })?;
        saved.sysctl.insert(key.clone(), v);
    }
    if conf.mac.is_some() {
        saved.mac = Some(link.mac_string());
    }
    if conf.mtu.is_some() {
        saved.mtu = Some(link.mtu);
    }
    if conf.promisc {
        saved.promisc = Some(link.promisc);
    }
    if conf.allmulti.is_some() {
        saved.allmulti = Some(link.allmulti);
    }
    if conf.txqlen.is_some() {
        saved.txqlen = Some(link.txqlen);
    }
    Ok(saved)
}

/// What ADD does, in order.
pub fn steps(conf: &TuningConf) -> Vec<Step> {
    let mut out: Vec<Step> = conf.sysctl.iter().map(|(k, v)| Step::Sysctl(k.clone(), v.clone())).collect();
    out.extend(conf.mac.map(Step::Mac));
    if conf.promisc {
        out.push(Step::Promisc(true));
    }
    out.extend(conf.mtu.map(Step::Mtu));
    out.extend(conf.allmulti.map(Step::Allmulti));
    out.extend(conf.txqlen.map(Step::TxQLen));
    out
}

/// What puts back the values in `saved`; the MTU goes first, so a smaller
/// MTU is never refused over a link setting that depends on it.
fn restore_steps(saved: &Saved) -> Vec<Step> {
    let mut out = Vec::new();
    out.extend(saved.mtu.map(Step::Mtu));
    out.extend(saved.mac.as_deref().and_then(parse_mac).map(Step::Mac));
    out.extend(saved.promisc.map(Step::Promisc));
    out.extend(saved.allmulti.map(Step::Allmulti));
    out.extend(saved.txqlen.map(Step::TxQLen));
    out.extend(saved.sysctl.iter().map(|(k, v)| Step::Sysctl(k.clone(), v.clone())));
    out
}

/// The step that undoes `step`, from the saved values.
fn undo(step: &Step, saved: &Saved) -> Option<Step> {
    match step {
        Step::Sysctl(k, _) => saved.sysctl.get(k).map(|v| Step::Sysctl(k.clone(), v.clone())),
        Step::Mac(_) => saved.mac.as_deref().and_then(parse_mac).map(Step::Mac),
        Step::Promisc(_) => saved.promisc.map(Step::Promisc),
        Step::Mtu(_) => saved.mtu.map(Step::Mtu),
        Step::Allmulti(_) => saved.allmulti.map(Step::Allmulti),
        Step::TxQLen(_) => saved.txqlen.map(Step::TxQLen),
    }
}

/// Applies one step.
pub fn apply(t: &Target, step: &Step) -> Result<(), Error> {
    let h = t.handle;
    match step {
        Step::Sysctl(k, v) => sysctl::set_in(t.ns, k, v).map_err(|e| {
            Error::plugin(format!("tuning: setting sysctl {k:?} to {v:?} in the container failed: {}", e.cause))
        }),
        Step::Mac(mac) => with_announcement(t, || h.set_mac(t.index, *mac)).map_err(err),
        Step::Promisc(on) => h.set_promisc(t.index, *on).map_err(err),
        Step::Mtu(mtu) => h.set_mtu(t.index, *mtu).map_err(|e| {
            let c = match e.kind {
                kernel::Kind::Invalid => cni::error::code::INVALID_CONFIG,
                _ => Error::from(e.clone()).code,
            };
            Error::new(c, format!("tuning: MTU {mtu} refused for {:?}: {}", t.ifname, e.cause))
                .with_details("the interface's driver accepts a narrower range than 68-65535")
        }),
        Step::Allmulti(on) => h.set_allmulti(t.index, *on).map_err(err),
        Step::TxQLen(n) => h.set_txqlen(t.index, *n).map_err(err),
    }
}

/// Changes the MAC with `arp_notify`/`ndisc_notify` on for the moment, so
/// the kernel announces the new address (gratuitous ARP, unsolicited NA)
/// and neighbours do not keep sending to the old one. Best effort, as the
/// reference's gratuitous ARP.
fn with_announcement(t: &Target, change: impl FnOnce() -> kernel::Result<()>) -> kernel::Result<()> {
    let keys =
        [sysctl::conf_key(Family::V4, t.ifname, "arp_notify"), sysctl::conf_key(Family::V6, t.ifname, "ndisc_notify")];
    let mut turned_on = Vec::new();
    for key in &keys {
        if matches!(sysctl::get_in(t.ns, key).as_deref(), Ok("0")) && sysctl::set_in(t.ns, key, "1").is_ok() {
            turned_on.push(key);
        }
    }
    let r = change();
    for key in turned_on {
        let _ = sysctl::set_in(t.ns, key, "0");
    }
    r
}

/// Applies `steps` in order; when one fails, undoes the ones applied
/// (newest first, from `saved`) and returns that failure.
pub fn apply_all(t: &Target, steps: &[Step], saved: &Saved) -> Result<(), Error> {
    for (i, step) in steps.iter().enumerate() {
        if let Err(e) = apply(t, step) {
            for done in steps[..i].iter().rev() {
                if let Some(back) = undo(done, saved) {
                    if let Err(u) = apply(t, &back) {
                        log::warn!("tuning: rolling back {done:?} failed: {u}");
                    }
                }
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Puts every saved value back; returns what could not be restored.
pub fn restore(t: &Target, saved: &Saved) -> Vec<Error> {
    restore_steps(saved).iter().filter_map(|s| apply(t, s).err()).collect()
}

/// How the link differs from `conf` (CHECK); empty when it matches.
pub fn drift(t: &Target, link: &Link, conf: &TuningConf) -> Vec<String> {
    let mut out = Vec::new();
    for (k, want) in &conf.sysctl {
        match sysctl::get_in(t.ns, k) {
            Ok(have) if have.trim() == want.trim() => {}
            Ok(have) => out.push(format!("sysctl {k} is {have:?}, configured {want:?}")),
            Err(e) => out.push(format!("sysctl {k} cannot be read: {}", e.cause)),
        }
    }
    if let Some(mac) = conf.mac {
        if link.mac != Some(mac) {
            out.push(format!("{} has MAC {}, configured {}", t.ifname, link.mac_string(), mac_to_string(&mac)));
        }
    }
    if let Some(mtu) = conf.mtu {
        if link.mtu != mtu {
            out.push(format!("{} has MTU {}, configured {mtu}", t.ifname, link.mtu));
        }
    }
    if conf.promisc && !link.promisc {
        out.push(format!("{} is not in promiscuous mode, configured promisc", t.ifname));
    }
    if let Some(on) = conf.allmulti {
        if link.allmulti != on {
            out.push(format!("{} has allmulti {}, configured {on}", t.ifname, link.allmulti));
        }
    }
    if let Some(n) = conf.txqlen {
        if link.txqlen != n {
            out.push(format!("{} has txqueuelen {}, configured {n}", t.ifname, link.txqlen));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_undo() {
        let conf = TuningConf {
            sysctl: [("net.core.somaxconn".to_string(), "1024".to_string())].into(),
            mac: Some([2, 0, 0, 0, 0, 9]),
            mtu: Some(1400),
            promisc: true,
            allmulti: Some(true),
            txqlen: Some(10),
            ..Default::default()
        };
        let s = steps(&conf);
        assert!(matches!(s[0], Step::Sysctl(..)));
        assert_eq!(s[1], Step::Mac([2, 0, 0, 0, 0, 9]));
        assert_eq!(s[2], Step::Promisc(true));
        assert_eq!(s[3], Step::Mtu(1400));
        assert_eq!(s.len(), 6);
        let saved = Saved {
            mac: Some("02:00:00:00:00:01".into()),
            mtu: Some(1500),
            promisc: Some(false),
            allmulti: Some(false),
            txqlen: Some(1000),
            sysctl: [("net.core.somaxconn".to_string(), "4096".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(undo(&s[1], &saved), Some(Step::Mac([2, 0, 0, 0, 0, 1])));
        assert_eq!(undo(&s[0], &saved), Some(Step::Sysctl("net.core.somaxconn".into(), "4096".into())));
        let r = restore_steps(&saved);
        assert_eq!(r[0], Step::Mtu(1500));
        assert_eq!(r.len(), 6);
    }
}
