//! One lease and the thread that keeps it: bound until T1, then renewing
//! (unicast to the server) until T2, then rebinding (broadcast) until the
//! lease expires, when it is lost. Each failed attempt is retried after
//! half the time left in its phase (RFC 2131 4.4.5), at least 2 s and at
//! most the daemon's `-resendmax`. Every
//! change is written to the store before anything else sees it.

use crate::client::{Answer, Params};
use crate::record::{now_ms, Record, State};
use crate::store::Store;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one renewal or rebinding attempt waits for an answer.
const ATTEMPT: Duration = Duration::from_secs(5);

/// The shortest wait between two failed attempts.
const RETRY_MIN_MS: u64 = 2_000;

/// What renews a lease: [`client::renew`], or a fake in unit tests.
type Renew = fn(&std::path::Path, &str, &Params, Ipv4Addr, Option<Ipv4Addr>, Instant) -> Result<Answer, String>;

/// How a lease is kept: the store, the namespace prefix, the longest wait
/// between failed attempts, and the renewal exchange.
#[derive(Clone)]
pub struct Keeper {
    /// Where every change is written.
    pub store: Store,
    /// Prefix of the namespace path (`-hostprefix`).
    pub host_prefix: String,
    /// `-resendmax`.
    pub retry_max: Duration,
    /// The exchange.
    pub renew: Renew,
}

struct Inner {
    rec: Record,
    stopping: bool,
}

/// A lease being kept.
pub struct Lease {
    inner: Mutex<Inner>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Lease {
    /// Starts keeping `rec` (already stored), with `host_prefix` before
    /// the namespace path.
    pub fn start(rec: Record, keeper: Keeper) -> Arc<Lease> {
        let lease = Arc::new(Lease {
            inner: Mutex::new(Inner { rec, stopping: false }),
            wake: Condvar::new(),
            thread: Mutex::new(None),
        });
        let this = Arc::clone(&lease);
        let handle = std::thread::Builder::new()
            .name("lease".into())
            .spawn(move || this.keep(&keeper))
            .expect("spawning a lease thread");
        *lease.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        lease
    }

    /// A copy of the record.
    pub fn record(&self) -> Record {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).rec.clone()
    }

    /// Stops the keeper and waits for it; the lease is then neither
    /// renewed nor released (the caller releases it).
    pub fn stop(&self) -> Record {
        {
            let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            g.stopping = true;
            self.wake.notify_all();
        }
        if let Some(h) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
        self.record()
    }

    /// The keeper's loop.
    fn keep(&self, k: &Keeper) {
        let (store, host_prefix) = (&k.store, k.host_prefix.as_str());
        let retry_max = (k.retry_max.as_millis() as u64).max(RETRY_MIN_MS);
        let mut next_try: u64 = 0;
        loop {
            // Wait for the next event of the current state.
            let (rec, due) = {
                let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if g.stopping {
                        return;
                    }
                    let now = now_ms();
                    let r = &g.rec;
                    let due = match r.state {
                        State::Lost => None,
                        State::Bound => Some(r.t1_ms),
                        State::Renewing | State::Rebinding => Some(next_try.min(r.expiry_ms.unwrap_or(u64::MAX))),
                    };
                    match due {
                        Some(d) if d <= now => break,
                        Some(d) => {
                            let wait = Duration::from_millis((d - now).min(3_600_000));
                            g = self.wake.wait_timeout(g, wait).unwrap_or_else(|p| p.into_inner()).0;
                        }
                        None => g = self.wake.wait(g).unwrap_or_else(|p| p.into_inner()),
                    }
                }
                (g.rec.clone(), now_ms())
            };
            let who = format!("{}/{}/{}", rec.network, rec.container_id, rec.ifname);
            if rec.expiry_ms.is_some_and(|e| e <= due) {
                log::warn!(
                    "{who}: lease of {} expired, not renewed: {}",
                    rec.terms.address,
                    rec.problem.as_deref().unwrap_or("-")
                );
                self.update(store, |r| {
                    r.state = State::Lost;
                    r.problem = Some(format!("lease expired: {}", r.problem.as_deref().unwrap_or("not renewed")));
                });
                continue;
            }
            let rebinding = due >= rec.t2_ms;
            let server = (!rebinding).then_some(rec.terms.server);
            let netns = PathBuf::from(format!("{host_prefix}{}", rec.netns));
            let deadline = Instant::now() + ATTEMPT;
            let verb = if rebinding { "rebinding" } else { "renewing" };
            log::info!("{who}: {verb} {}", rec.terms.address);
            let outcome = (k.renew)(&netns, &rec.ifname, &rec.params(), rec.terms.address, server, deadline);
            let now = now_ms();
            match outcome {
                Ok(Answer::Ack(g)) if g.terms.address == rec.terms.address => {
                    log::info!("{who}: {} renewed by {} for {:?} s", g.terms.address, g.terms.server, g.lease);
                    self.update(store, |r| {
                        r.apply(&g, now);
                        r.renewals += 1;
                    });
                }
                Ok(Answer::Ack(g)) => {
                    log::warn!(
                        "{who}: server answered {verb} of {} with {}: lease lost",
                        rec.terms.address,
                        g.terms.address
                    );
                    self.update(store, |r| {
                        r.state = State::Lost;
                        r.problem = Some(format!("server {} offered {} instead", g.terms.server, g.terms.address));
                    });
                }
                Ok(Answer::Nak) => {
                    log::warn!("{who}: server refused {verb} of {}: lease lost", rec.terms.address);
                    self.update(store, |r| {
                        r.state = State::Lost;
                        r.problem = Some("the server refused the renewal (DHCPNAK)".into());
                    });
                }
                Err(e) => {
                    let end = if rebinding { rec.expiry_ms.unwrap_or(u64::MAX) } else { rec.t2_ms };
                    let wait = (end.saturating_sub(now) / 2).clamp(RETRY_MIN_MS, retry_max);
                    next_try = now + wait;
                    log::warn!("{who}: {verb} {} failed: {e}; next try in {} s", rec.terms.address, wait / 1000);
                    self.update(store, |r| {
                        r.state = if rebinding { State::Rebinding } else { State::Renewing };
                        r.problem = Some(format!("{verb} failed: {e}"));
                    });
                }
            }
        }
    }

    /// Changes the record and stores it, under the lock (a stop waits).
    fn update(&self, store: &Store, f: impl FnOnce(&mut Record)) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g.rec);
        if let Err(e) = store.save(&g.rec) {
            log::error!("storing lease of {}: {e}", g.rec.terms.address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Granted;
    use crate::proto::Terms;

    fn granted(lease: Option<u32>, t1: Option<u32>, t2: Option<u32>) -> Granted {
        let terms = Terms {
            address: Ipv4Addr::new(10, 0, 0, 5),
            prefix: 24,
            server: Ipv4Addr::new(10, 0, 0, 1),
            gateway: None,
            routes: Vec::new(),
            dns: Vec::new(),
            domain: String::new(),
        };
        Granted { terms, lease, t1, t2 }
    }

    fn record() -> Record {
        let params = Params { client_id: vec![0], request: vec![1, 3], provide: Vec::new() };
        let mut g = granted(None, None, None);
        g.terms.address = Ipv4Addr::UNSPECIFIED;
        let mut r = Record::granted(("n", "c", "eth0"), "/run/netns/x", &params, &g, 0);
        (r.state, r.problem) = (State::Lost, Some("old".into()));
        r
    }

    #[test]
    fn store_never_writes_through_a_link_at_its_temporary_name() {
        let dir = std::env::temp_dir().join(format!("dhcp-store-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let victim = std::env::temp_dir().join(format!("dhcp-store-victim-{}", std::process::id()));
        std::fs::write(&victim, b"precious").unwrap();
        let mut rec = record();
        store.save(&rec).unwrap();
        // Plant a link at the temporary name the next save tries first.
        let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let tmp = atomic_file::next_temp_path(&dir, &format!("{stem}.tmp"));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        rec.renewals = 7;
        store.save(&rec).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "the link's target is untouched");
        let stored = store.load_all();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].renewals, 7);
        assert!(!tmp.exists() && std::fs::symlink_metadata(&tmp).is_err(), "no temporary name is left");
        let _ = std::fs::remove_file(&victim);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_record_on_disk_keeps_the_granted_terms_as_top_level_fields() {
        let r = record();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["address"], "0.0.0.0");
        assert_eq!(v["prefix"], 24);
        assert_eq!(v["server"], "10.0.0.1");
        assert!(v.get("terms").is_none(), "{v}");
        let back: Record = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn timers_default_to_half_and_seven_eighths() {
        let mut r = record();
        r.apply(&granted(Some(120), None, None), 1_000);
        assert_eq!((r.t1_ms, r.t2_ms, r.expiry_ms), (61_000, 106_000, Some(121_000)));
        assert_eq!((r.state, r.problem.as_deref()), (State::Bound, None));
    }

    #[test]
    fn server_timers_are_used_when_ordered() {
        let mut r = record();
        r.apply(&granted(Some(120), Some(15), Some(25)), 0);
        assert_eq!((r.t1_ms, r.t2_ms), (15_000, 25_000));
        // T2 beyond the lease and T1 beyond T2 fall back to the defaults.
        r.apply(&granted(Some(120), Some(110), Some(200)), 0);
        assert_eq!((r.t1_ms, r.t2_ms), (60_000, 105_000));
    }

    #[test]
    fn infinite_lease_is_never_renewed() {
        let mut r = record();
        r.apply(&granted(None, None, None), 0);
        assert_eq!((r.t1_ms, r.expiry_ms), (u64::MAX, None));
    }

    /// Calls of the fake renewals: (address, unicast?).
    static CALLS: Mutex<Vec<(Ipv4Addr, bool)>> = Mutex::new(Vec::new());

    /// A fake exchange that records the call and never gets an answer.
    const NOBODY_ANSWERS: Renew = |_, _, _, a, server, _| {
        CALLS.lock().unwrap().push((a, server.is_some()));
        Err("no answer".into())
    };

    /// A fake exchange that records the call and renews for 120 s.
    const SERVER_ACKS: Renew = |_, _, _, a, server, _| {
        CALLS.lock().unwrap().push((a, server.is_some()));
        let mut g = granted(Some(120), None, None);
        g.terms.address = a;
        Ok(Answer::Ack(g))
    };

    fn wait_until(what: &str, l: &Lease, f: impl Fn(&Record) -> bool) -> Record {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let r = l.record();
            if f(&r) {
                return r;
            }
            assert!(Instant::now() < end, "never {what}: {r:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn keeper(dir: &std::path::Path, renew: Renew) -> Keeper {
        Keeper {
            store: Store::open(dir).unwrap(),
            host_prefix: String::new(),
            retry_max: Duration::from_secs(2),
            renew,
        }
    }

    #[test]
    fn unanswered_lease_goes_renewing_rebinding_lost_and_is_stored() {
        let dir = std::env::temp_dir().join(format!("dhcp-lease-test-{}-a", std::process::id()));
        let mut r = record();
        r.terms.address = Ipv4Addr::new(10, 9, 9, 9);
        let now = now_ms();
        (r.state, r.problem) = (State::Bound, None);
        (r.t1_ms, r.t2_ms, r.expiry_ms) = (now + 100, now + 2_200, Some(now + 4_500));
        let k = keeper(&dir, NOBODY_ANSWERS);
        let l = Lease::start(r.clone(), k.clone());
        let renewing = wait_until("renewing", &l, |r| r.state == State::Renewing);
        assert!(renewing.problem.as_deref().unwrap().contains("renewing failed: no answer"), "{renewing:?}");
        let rebinding = wait_until("rebinding", &l, |r| r.state == State::Rebinding);
        assert!(rebinding.problem.as_deref().unwrap().contains("rebinding failed"), "{rebinding:?}");
        let lost = wait_until("lost", &l, |r| r.state == State::Lost);
        assert!(lost.problem.as_deref().unwrap().starts_with("lease expired"), "{lost:?}");
        // Unicast before T2, broadcast after.
        let calls: Vec<bool> =
            CALLS.lock().unwrap().iter().filter(|(a, _)| *a == r.terms.address).map(|(_, u)| *u).collect();
        assert_eq!(calls.first(), Some(&true));
        assert_eq!(calls.last(), Some(&false));
        // What a restarted daemon would read.
        let stored = k.store.load_all();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].state, State::Lost);
        l.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn answered_renewal_moves_the_timers_and_stop_ends_the_keeper() {
        let dir = std::env::temp_dir().join(format!("dhcp-lease-test-{}-b", std::process::id()));
        let mut r = record();
        r.terms.address = Ipv4Addr::new(10, 9, 9, 8);
        let now = now_ms();
        (r.state, r.problem) = (State::Bound, None);
        (r.t1_ms, r.t2_ms, r.expiry_ms) = (now + 50, now + 1_000, Some(now + 2_000));
        let l = Lease::start(r.clone(), keeper(&dir, SERVER_ACKS));
        let renewed = wait_until("renewed", &l, |r| r.renewals == 1);
        assert_eq!(renewed.state, State::Bound);
        assert!(renewed.t1_ms >= now + 60_000, "{renewed:?}");
        let stopped = l.stop();
        assert_eq!(stopped.renewals, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn record_round_trips_through_json() {
        let mut r = record();
        r.apply(&granted(Some(120), None, None), 5);
        let back: Record = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
