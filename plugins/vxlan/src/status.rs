//! `vxlan status <config>`: what the node's agent holds and applied, as
//! JSON on stdout: this host's subnet, the peers programmed, the store
//! revision, whether the agent runs and reaches etcd. Exit 0 when the
//! agent runs and holds its subnet, 1 otherwise (usable as a health check).

use crate::{config, reconcile, state};
use cni::version::CURRENT;
use cni::Error;
use serde_json::{json, Value};

fn status(path: &str) -> Result<(Value, bool), Error> {
    let raw = reconcile::load(path)?;
    let etcd = config::etcd_options(&raw)?
        .ok_or_else(|| config::bad("etcd", "missing: `vxlan status` reports the agent of an etcd network"))?;
    let Some(st) = state::read(&etcd.state_dir)? else {
        let v = json!({"network": etcd.network, "status": "not-started",
                       "message": format!("no agent state in {}", etcd.state_dir.display())});
        return Ok((v, false));
    };
    let peers: Value = std::fs::read(state::peers_path(&etcd.state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!([]));
    let alive = state::agent_alive(st.pid);
    let healthy = alive && st.status == state::Status::Running && st.etcd_connected;
    let mut v = serde_json::to_value(&st).map_err(|e| Error::io(e.to_string()))?;
    v["agentRunning"] = alive.into();
    v["healthy"] = healthy.into();
    v["peerList"] = peers;
    Ok((v, healthy))
}

/// Runs the mode with the arguments after `status`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    cni::skel::init_logging();
    let [path] = args else {
        eprintln!("usage: vxlan status <network config file | ->");
        return 2;
    };
    match status(path) {
        Ok((v, healthy)) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            if healthy {
                0
            } else {
                1
            }
        }
        Err(e) => {
            println!("{}", cni::result::pretty(&e.to_json(CURRENT)));
            1
        }
    }
}
