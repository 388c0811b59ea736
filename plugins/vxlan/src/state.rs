//! The agent's state on disk, `stateDir/<network>/`: the one thing the
//! plugin reads from the control plane, so an ADD never waits on etcd.
//!
//! - `state.json`: this host's subnets, its underlay address, the store
//!   revision applied, the agent's status and pid (see [`AgentState`]);
//! - `peers.json`: the remote hosts the agent accepted, in the format of a
//!   `peersFile`, so ADD, CHECK and the agent program them with the same
//!   code ([`crate::peers`], [`crate::overlay`]).
//!
//! Both are written whole to a temp file and renamed: a reader sees the old
//! or the new file, never half of one.

use cni::Error;
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Read;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Largest state file read.
const MAX_STATE: u64 = 64 << 10;

/// What the agent is doing, as the plugin needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// No subnet yet (etcd not reached, or the cluster CIDR is full).
    Starting,
    /// Holds its subnet (etcd may be unreachable for now: see `etcdConnected`).
    Running,
    /// Its lease expired and another host took the subnet: it claims nothing.
    Lost,
    /// Stopped cleanly: its lease was revoked, the others dropped this host.
    Stopped,
}

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentState {
    /// The network.
    pub network: String,
    /// See [`Status`].
    pub status: Status,
    /// This host's subnets (IPv4 first); kept when stopped, so that a
    /// restart asks for the same ones.
    pub subnets: Vec<IpNetwork>,
    /// This host's VTEP address.
    #[serde(rename = "underlayIP")]
    pub underlay_ip: Option<IpAddr>,
    /// This host's VTEP MAC.
    #[serde(rename = "vtepMAC")]
    pub vtep_mac: String,
    /// The key holding this host's lease.
    pub key: String,
    /// The etcd lease (hex, as etcdctl prints it), 0 when none.
    pub lease: String,
    /// The store revision whose peers are in the kernel.
    pub revision: i64,
    /// Number of remote hosts programmed.
    pub peers: usize,
    /// Whether the agent's last request to etcd succeeded.
    pub etcd_connected: bool,
    /// The agent's process id.
    pub pid: u32,
    /// The last error, or why the status is not `running`.
    pub message: String,
    /// Unix time of this write.
    pub updated: u64,
}

/// `stateDir/<network>/state.json`.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// `stateDir/<network>/peers.json`.
pub fn peers_path(dir: &Path) -> PathBuf {
    dir.join("peers.json")
}

/// Writes `bytes` to `path` through a temp file and a rename
/// (`atomic_file`, mode 0644: nothing secret in it). No fsync:
/// readers need the whole-or-old guarantee of the rename, not durability
/// (the state describes leases and kernel entries that a reboot ends
/// anyway; `/run` is a tmpfs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir)?;
    let prefix = format!(".{}.tmp.", path.file_name().and_then(|n| n.to_str()).unwrap_or("state"));
    atomic_file::replace(path, bytes, &atomic_file::Options::new(0o644).temp_prefix(&prefix))
}

/// Reads `state.json` under `dir`; `None` when there is none.
pub fn read(dir: &Path) -> Result<Option<AgentState>, Error> {
    let path = state_path(dir);
    let f = match fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading the vxlan agent's state {}: {e}", path.display()))),
    };
    let mut buf = Vec::new();
    f.take(MAX_STATE)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(format!("reading the vxlan agent's state {}: {e}", path.display())))?;
    serde_json::from_slice(&buf)
        .map(Some)
        .map_err(|e| Error::io(format!("the vxlan agent's state {} is unreadable: {e}", path.display())))
}

/// The hint every "no subnet" error carries.
fn start_hint(state_dir: &Path) -> String {
    format!(
        "start the node's control plane, `vxlan agent <this network's config>` (see cni-conf/vxlan/vxlan-agent.service); \
         it writes {}",
        state_path(state_dir).display()
    )
}

/// This host's subnets for an ADD/CHECK: the agent must hold them (it may
/// have lost etcd for now: the data path does not need it). Takes the
/// network and its `stateDir` rather than the config, so that config.rs
/// uses this module and not the other way round.
pub fn subnets_for_plugin(network: &str, state_dir: &Path) -> Result<Vec<IpNetwork>, Error> {
    let Some(st) = read(state_dir)? else {
        return Err(Error::try_again(format!(
            "vxlan: network {:?} has no subnet on this host yet: the vxlan agent has not run",
            network
        ))
        .with_details(start_hint(state_dir)));
    };
    let msg = |what: &str| format!("vxlan: network {:?}: the vxlan agent (pid {}) {what}", network, st.pid);
    match st.status {
        Status::Running if !st.subnets.is_empty() => Ok(st.subnets),
        Status::Running | Status::Starting => {
            Err(Error::try_again(msg(&format!("has no subnet yet: {}", st.message)))
                .with_details(start_hint(state_dir)))
        }
        Status::Lost => Err(Error::plugin(msg(&format!(
            "lost this host's subnet {}: {}",
            st.subnets.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            st.message
        )))
        .with_details(
            "another host holds the subnet now; this host claims nothing; move its containers and restart the agent",
        )),
        Status::Stopped => {
            Err(Error::plugin(msg("is stopped: its lease was revoked and the other hosts dropped this one"))
                .with_details(start_hint(state_dir)))
        }
    }
}

/// Whether the process `pid` is a running `vxlan` (the agent).
pub fn agent_alive(pid: u32) -> bool {
    pid != 0
        && fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_once(" (").is_some_and(|(_, r)| r.starts_with("vxlan)")) && !s.contains(") Z "))
}

/// CHECK's view of the control plane: the agent holds its lease and runs.
pub fn verify(network: &str, state_dir: &Path) -> Result<(), Error> {
    subnets_for_plugin(network, state_dir)?;
    let st = read(state_dir)?
        .ok_or_else(|| Error::invalid_config("vxlan: field \"etcd\": the agent's state disappeared"))?;
    if !agent_alive(st.pid) {
        return Err(Error::plugin(format!(
            "vxlan: network {:?}: the vxlan agent (pid {}) is not running; its lease will expire and the other hosts \
             will drop this one",
            network, st.pid
        ))
        .with_details(start_hint(state_dir)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(dir: &Path) -> crate::config::EtcdConf {
        let raw = serde_json::json!({
            "name": "ov", "type": "vxlan", "clusterCIDR": "10.244.0.0/16",
            "etcd": {"endpoints": ["http://127.0.0.1:2379"]}, "stateDir": dir,
        });
        crate::config::etcd_options(&raw).unwrap().unwrap()
    }

    fn state(status: Status) -> AgentState {
        AgentState {
            network: "ov".into(),
            status,
            subnets: vec!["10.244.3.0/24".parse().unwrap()],
            underlay_ip: Some("192.168.1.1".parse().unwrap()),
            vtep_mac: String::new(),
            key: String::new(),
            lease: "0".into(),
            revision: 1,
            peers: 0,
            etcd_connected: true,
            pid: std::process::id(),
            message: "why".into(),
            updated: 0,
        }
    }

    #[test]
    fn the_plugin_gets_the_subnet_only_from_a_running_agent() {
        let dir = std::env::temp_dir().join(format!("vx-state-test-{}", std::process::id()));
        let e = conf(&dir);
        let err = subnets_for_plugin(&e.network, &e.state_dir).unwrap_err();
        assert_eq!(err.code, 11);
        assert!(err.msg.contains("vxlan agent") && err.details.contains("vxlan agent"), "{err:?}");
        for (status, ok) in
            [(Status::Running, true), (Status::Starting, false), (Status::Lost, false), (Status::Stopped, false)]
        {
            let st = state(status);
            write_atomic(&state_path(&e.state_dir), &serde_json::to_vec(&st).unwrap()).unwrap();
            assert_eq!(read(&e.state_dir).unwrap().unwrap(), st);
            let r = subnets_for_plugin(&e.network, &e.state_dir);
            assert_eq!(r.is_ok(), ok, "{status:?}: {r:?}");
            if let Err(err) = r {
                assert!(err.msg.contains("vxlan agent"), "{err:?}");
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
