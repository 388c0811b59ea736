//! Finding the host device a config names: by name, by MAC, or through
//! sysfs (`<kernelpath>/net/*`, `/sys/bus/pci/devices/<pciBusID>/net/*`,
//! or the `virtio*/net` below a virtio PCI device), as the reference does.
//! When the config names it more than one way, every way must lead to the
//! same link: two different devices is a config error, not a guess.

use crate::config::Selector;
use cni::error::code;
use cni::Error;
use kernel::netlink::{mac_to_string, Handle, Link};
use std::path::{Path, PathBuf};

/// Where sysfs is mounted (`/`, or a scratch tree in unit tests).
pub struct Sysfs {
    /// The directory holding `sys/`.
    pub root: PathBuf,
}

impl Sysfs {
    /// The real one.
    pub fn real() -> Sysfs {
        Sysfs { root: PathBuf::from("/") }
    }

    fn at(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    /// The interface names in a sysfs `net` directory, sorted.
    fn names_in(&self, dir: &Path) -> Option<Vec<String>> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).ok()?.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        Some(v)
    }

    /// The net devices of a kernel device directory.
    fn by_kernelpath(&self, kernelpath: &str) -> Result<Vec<String>, Error> {
        let dir = self.at(kernelpath).join("net");
        self.names_in(&dir).filter(|v| !v.is_empty()).ok_or_else(|| {
            not_found(format!("\"kernelpath\": failed to find network devices at {:?}", format!("{kernelpath}/net")))
        })
    }

    /// The net devices of a PCI function (its `net`, or a virtio child's).
    fn by_pci(&self, field: &str, pci: &str) -> Result<Vec<String>, Error> {
        let dev = self.at("/sys/bus/pci/devices").join(pci);
        let mut dirs = vec![dev.join("net")];
        if let Ok(rd) = std::fs::read_dir(&dev) {
            let mut virtio: Vec<PathBuf> = rd
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("virtio"))
                .map(|e| e.path().join("net"))
                .collect();
            virtio.sort();
            dirs.extend(virtio);
        }
        dirs.iter()
            .find_map(|d| self.names_in(d).filter(|v| !v.is_empty()))
            .ok_or_else(|| not_found(format!("{field:?}: no net directory under PCI device {pci}")))
    }
}

fn not_found(msg: String) -> Error {
    Error::new(code::PLUGIN, format!("host-device: {msg}"))
}

/// The one host link the selector names (code 100 when it is not here,
/// code 7 when the options name different links or a MAC is ambiguous).
pub fn resolve(host: &Handle, sel: &Selector, sysfs: &Sysfs) -> Result<Link, Error> {
    let mut found: Vec<(&str, Link)> = Vec::new();
    let links = host.links()?;
    let named = |field: &str, name: &str| -> Result<Link, Error> {
        links.iter().find(|l| l.name == name).cloned().ok_or_else(|| {
            not_found(format!("{field:?}: failed to find host device {name:?} in this network namespace"))
        })
    };
    if let Some(d) = &sel.device {
        found.push(("device", named("device", d)?));
    }
    if let Some(mac) = &sel.hwaddr {
        let hits: Vec<&Link> = links.iter().filter(|l| l.mac.as_ref() == Some(mac)).collect();
        match hits.as_slice() {
            [] => {
                return Err(not_found(format!("\"hwaddr\": no host device has MAC {}", mac_to_string(mac))));
            }
            [one] => found.push(("hwaddr", (*one).clone())),
            many => {
                let names: Vec<&str> = many.iter().map(|l| l.name.as_str()).collect();
                return Err(Error::invalid_config(format!(
                    "host-device: \"hwaddr\" {} is held by {} devices ({}): name one with \"device\"",
                    mac_to_string(mac),
                    names.len(),
                    names.join(", ")
                )));
            }
        }
    }
    if let Some(k) = &sel.kernelpath {
        let names = sysfs.by_kernelpath(k)?;
        // The first entry that really is an interface here.
        let l = names.iter().find_map(|n| links.iter().find(|l| &l.name == n)).ok_or_else(|| {
            not_found(format!("\"kernelpath\": none of {names:?} under {k:?} is a device in this network namespace"))
        })?;
        found.push(("kernelpath", l.clone()));
    }
    if let Some(p) = &sel.pci {
        let names = sysfs.by_pci("pciBusID", p)?;
        found.push(("pciBusID", named("pciBusID", &names[0])?));
    }
    let (first_field, first) = found.remove(0);
    if let Some((field, other)) = found.iter().find(|(_, l)| l.index != first.index) {
        return Err(Error::invalid_config(format!(
            "host-device: {first_field:?} names {:?} but {field:?} names {:?}: give one",
            first.name, other.name
        )));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(tag: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("hostdev-sysfs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    #[test]
    fn sysfs_lookups() {
        let root = tree("a");
        let mk = |p: &str| std::fs::create_dir_all(root.join(p)).unwrap();
        mk("sys/devices/pci0000:00/0000:00:19.0/net/ens9");
        mk("sys/devices/pci0000:00/0000:00:19.0/net/ens8");
        mk("sys/bus/pci/devices/0000:00:19.0/net/ens8");
        mk("sys/bus/pci/devices/0000:00:05.0/virtio1/net/eth7");
        mk("sys/bus/pci/devices/0000:00:06.0");
        let s = Sysfs { root: root.clone() };
        assert_eq!(s.by_kernelpath("/sys/devices/pci0000:00/0000:00:19.0").unwrap(), ["ens8", "ens9"]);
        assert_eq!(s.by_pci("pciBusID", "0000:00:19.0").unwrap(), ["ens8"]);
        assert_eq!(s.by_pci("pciBusID", "0000:00:05.0").unwrap(), ["eth7"]);
        let e = s.by_pci("pciBusID", "0000:00:06.0").unwrap_err();
        assert!(e.msg.contains("\"pciBusID\"") && e.msg.contains("0000:00:06.0"), "{}", e.msg);
        assert!(s.by_kernelpath("/sys/devices/none").unwrap_err().msg.contains("\"kernelpath\""));
        let _ = std::fs::remove_dir_all(&root);
    }
}
