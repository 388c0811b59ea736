//! What the daemon knows of one lease, as stored on disk: the record
//! store.rs writes and lease.rs keeps up to date (its own module, so the
//! store and the keeper both use it and not each other).

use crate::client::{Granted, Params};
use crate::proto::{LeaseView, Terms};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a lease is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Held; nothing to do before T1.
    Bound,
    /// Past T1: renewing with the server that granted it.
    Renewing,
    /// Past T2: asking any server.
    Rebinding,
    /// Expired or refused: the address is no longer ours.
    Lost,
}

/// Everything known of a lease, as stored on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Network name.
    pub network: String,
    /// Container id.
    pub container_id: String,
    /// Interface in the container.
    pub ifname: String,
    /// The container's namespace path, as the daemon opens it.
    pub netns: String,
    /// Option 61 as sent.
    pub client_id: Vec<u8>,
    /// Parameter request list.
    pub request: Vec<u8>,
    /// Options sent.
    pub provide: Vec<(u8, Vec<u8>)>,
    /// What was granted (or last renewed).
    #[serde(flatten)]
    pub terms: Terms,
    /// T1, T2 and expiry, in ms since the epoch; no expiry when infinite.
    pub t1_ms: u64,
    /// T2.
    pub t2_ms: u64,
    /// Expiry.
    pub expiry_ms: Option<u64>,
    /// State.
    pub state: State,
    /// Why the last attempt failed, until one succeeds.
    pub problem: Option<String>,
    /// Renewals so far (for logs and tests of the daemon's own view).
    pub renewals: u64,
}

/// Now, in ms since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Record {
    /// The record of a lease granted at `now` to the attachment `(network,
    /// container id, ifname)` whose namespace the daemon opens at `netns`,
    /// asked for with `params`: bound, its timers set by [`Record::apply`].
    pub fn granted(attachment: (&str, &str, &str), netns: &str, params: &Params, g: &Granted, now: u64) -> Record {
        let (network, container_id, ifname) = attachment;
        let mut rec = Record {
            network: network.to_string(),
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
            netns: netns.to_string(),
            client_id: params.client_id.clone(),
            request: params.request.clone(),
            provide: params.provide.clone(),
            terms: g.terms.clone(),
            t1_ms: 0,
            t2_ms: 0,
            expiry_ms: None,
            state: State::Bound,
            problem: None,
            renewals: 0,
        };
        rec.apply(g, now);
        rec
    }

    /// The client's parameters.
    pub fn params(&self) -> Params {
        Params { client_id: self.client_id.clone(), request: self.request.clone(), provide: self.provide.clone() }
    }

    /// Takes what a DHCPACK granted at `now`: address, options and timers
    /// (T1 defaults to half the lease, T2 to 7/8, RFC 2131 4.4.5).
    pub fn apply(&mut self, g: &Granted, now: u64) {
        self.terms = g.terms.clone();
        match g.lease {
            None => {
                self.t1_ms = u64::MAX;
                self.t2_ms = u64::MAX;
                self.expiry_ms = None;
            }
            Some(l) => {
                let l = u64::from(l) * 1000;
                let t2 = g.t2.map(|s| u64::from(s) * 1000).filter(|t| *t <= l).unwrap_or(l * 7 / 8);
                let t1 = g.t1.map(|s| u64::from(s) * 1000).filter(|t| *t <= t2).unwrap_or(l / 2).min(t2);
                self.t1_ms = now + t1;
                self.t2_ms = now + t2;
                self.expiry_ms = Some(now + l);
            }
        }
        self.state = State::Bound;
        self.problem = None;
    }

    /// What the plugin is told.
    pub fn view(&self) -> LeaseView {
        let state = match self.state {
            State::Bound => "bound",
            State::Renewing => "renewing",
            State::Rebinding => "rebinding",
            State::Lost => "lost",
        };
        LeaseView {
            terms: self.terms.clone(),
            state: state.into(),
            problem: self.problem.clone(),
            expires_in: self.expiry_ms.map_or(u64::MAX / 1000, |e| e.saturating_sub(now_ms()) / 1000),
        }
    }
}
