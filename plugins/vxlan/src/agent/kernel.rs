//! The agent's kernel side: one thread that owns every netlink call, so
//! the etcd side (async) never blocks on the kernel and the kernel code
//! stays the plugin's own (synchronous) code.
//!
//! The etcd side hands over the latest peer set; a burst of changes is
//! coalesced into one apply. Each apply writes the peers file the plugin
//! reads, then runs [`crate::reconcile::apply`] — the same comparison and
//! repair as `vxlan reconcile` — under the host lock the plugin's ADD
//! takes. With nothing new for `reconcileInterval`, the last set is
//! applied again, which repairs entries someone deleted by hand.

use super::Shared;
use crate::config::EtcdConf;
use crate::peers::Peer;
use crate::state::Status;
use crate::{config, reconcile, state};
use ipnetwork::IpNetwork;
use serde_json::Value;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// One peer set to apply.
#[derive(Debug, Clone)]
pub struct Update {
    /// This host's subnets.
    pub subnets: Vec<IpNetwork>,
    /// The remote hosts (already checked).
    pub peers: Vec<Peer>,
    /// The store revision they come from.
    pub revision: i64,
}

#[derive(Default)]
struct Slot {
    next: Option<Update>,
    stop: bool,
}

/// The handle of the kernel thread.
pub struct Kernel {
    slot: Arc<(Mutex<Slot>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Kernel {
    /// Starts the thread for the network of `raw`.
    pub fn spawn(raw: Value, etcd: EtcdConf, shared: Arc<Shared>) -> Kernel {
        let slot: Arc<(Mutex<Slot>, Condvar)> = Arc::default();
        let s = slot.clone();
        let thread = std::thread::Builder::new()
            .name("kernel".into())
            .spawn(move || run(&raw, &etcd, &shared, &s))
            .expect("spawning the kernel thread");
        Kernel { slot, thread: Some(thread) }
    }

    /// Hands over the latest set (replacing one not yet applied).
    pub fn update(&self, u: Update) {
        let (m, cv) = &*self.slot;
        m.lock().unwrap_or_else(|e| e.into_inner()).next = Some(u);
        cv.notify_one();
    }

    /// Stops the thread after the apply in progress.
    pub fn stop(mut self) {
        let (m, cv) = &*self.slot;
        m.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        cv.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(raw: &Value, etcd: &EtcdConf, shared: &Shared, slot: &(Mutex<Slot>, Condvar)) {
    let every = Duration::from_secs(etcd.reconcile_interval);
    let mut last: Option<Update> = None;
    // Whether `last` is in the kernel (else the next apply compares all).
    let mut ok = false;
    loop {
        let (m, cv) = slot;
        let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
        if g.next.is_none() && !g.stop {
            g = cv.wait_timeout(g, every).unwrap_or_else(|e| e.into_inner()).0;
        }
        if g.stop {
            return;
        }
        let fresh = g.next.take();
        drop(g);
        let periodic = fresh.is_none();
        let Some(u) = fresh.or_else(|| last.clone()) else { continue };
        // A change after a successful apply of the same subnets writes only
        // the difference; the first apply and the periodic one compare
        // everything with the kernel.
        let before = last.as_ref().filter(|l| ok && !periodic && l.subnets == u.subnets).map(|l| l.peers.as_slice());
        ok = apply(raw, etcd, shared, &u, periodic, before);
        last = Some(u);
    }
}

/// Applies `u` (only its difference from `before`, when given); whether it worked.
fn apply(raw: &Value, etcd: &EtcdConf, shared: &Shared, u: &Update, periodic: bool, before: Option<&[Peer]>) -> bool {
    let path = state::peers_path(&etcd.state_dir);
    let res = state::write_atomic(&path, &super::entries::peers_file(&u.peers))
        .map_err(|e| cni::Error::io(format!("writing {}: {e}", path.display())))
        .and_then(|()| config::with_subnets(raw, etcd.clone(), &u.subnets))
        .and_then(|conf| match before {
            Some(b) => reconcile::apply_diff(&conf, b, &u.peers),
            None => reconcile::apply(&conf),
        });
    match res {
        Ok(summary) => {
            let (added, removed) = (summary["added"].as_u64().unwrap_or(0), summary["removed"].as_u64().unwrap_or(0));
            if periodic && added + removed > 0 {
                log::warn!("reconcile: repaired the kernel's entries ({added} written, {removed} removed)");
            } else if added + removed > 0 {
                log::debug!("revision {}: {added} entries written, {removed} removed", u.revision);
            }
            shared.update(|s| {
                s.revision = u.revision;
                s.peers = u.peers.len();
                if s.message.starts_with("kernel: ") {
                    s.message.clear();
                }
                if s.status == Status::Starting && s.subnets == u.subnets && s.lease != "0" {
                    s.status = Status::Running;
                    s.message.clear();
                }
            });
            true
        }
        Err(e) => {
            log::error!("applying revision {} to the kernel: {}", u.revision, e.msg);
            shared.update(|s| s.message = format!("kernel: {}", e.msg));
            false
        }
    }
}
