//! The conformance harness: throwaway network namespaces that clean up on
//! drop, independent witnesses of kernel state (`ip -j`, `nft -j`), and
//! helpers that exec the built plugin binaries the way a runtime does.

pub mod bench;
pub mod bins;
pub mod chaos;
pub mod containerd;
pub mod demo;
pub mod dhcp_lan;
pub mod dns;
pub mod fixture;
pub mod netns;
pub mod overlay_lab;
pub mod release;
pub mod scenes;
pub mod tcp;
pub mod topology;
pub mod witness;

pub use bins::{bin, bin_dir, bin_dir_of_exe, run_plugin, PluginRun};
pub use netns::TestNs;

/// Every plugin binary the suite ships; each must answer VERSION.
pub const PLUGINS: &[&str] = &[
    "loopback",
    "host-local",
    "bridge",
    "portmap",
    "macvlan",
    "vxlan",
    "firewall",
    "tuning",
    "static",
    "ptp",
    "host-device",
    "dhcp",
    "bandwidth",
    "dnsname",
];
