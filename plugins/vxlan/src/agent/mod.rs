//! `vxlan agent <config>`: the overlay's control plane on etcd, one per
//! host, a long-running mode of the plugin's own binary.
//!
//! - It takes this host's subnet of `clusterCIDR` with a transaction that
//!   creates the subnet's key only if it does not exist (two hosts never
//!   hold one subnet); a restart finds its own record by its underlay
//!   address (as flannel does) and keeps the subnet, adopting the old
//!   lease when it is still alive, so nothing changes anywhere.
//! - It holds the key with a lease of `leaseTTL`, kept alive; SIGTERM or
//!   SIGINT revokes it, so the others drop this host at once; a SIGKILLed
//!   agent's key goes when the lease expires.
//! - It lists the subnets, then watches them from the list's revision;
//!   every change reaches the kernel thread ([`kernel`]) at once. A watch
//!   that fell behind compaction, or a lost connection, ends the session:
//!   reconnect with backoff (100 ms to 5 s) and list again.
//! - A lease found expired (etcd unreachable for longer than the TTL) is
//!   claimed again; if another host took the subnet meanwhile, the agent
//!   claims nothing more, says so in its state (ADD fails, naming it) and
//!   in its log.
//!
//! Only this mode runs tokio and the etcd client; ADD, DEL and CHECK read
//! the files it writes ([`crate::state`]).

pub mod entries;
pub mod kernel;

use crate::config::{self, EtcdConf};
use crate::state::{self, AgentState, Status};
use crate::{reconcile, underlay};
use ::kernel::netlink::{mac_to_string, Handle};
use entries::{Judge, Plan};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity, PutOptions, TlsOptions,
    Txn, TxnOp, WatchOptions,
};
use ipnetwork::IpNetwork;
use kernel::{Kernel, Update};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Deadline of one request to etcd.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// First and last wait between two connection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Races lost before giving up one round of acquisition.
const TRIES: usize = 10;

/// The state file and its in-memory copy, written together.
pub struct Shared {
    dir: std::path::PathBuf,
    st: Mutex<AgentState>,
}

impl Shared {
    /// Changes the state and writes it (atomically; a failure is logged).
    pub fn update(&self, f: impl FnOnce(&mut AgentState)) {
        let mut g = self.st.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g);
        g.updated =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let path = state::state_path(&self.dir);
        if let Err(e) =
            serde_json::to_vec_pretty(&*g).map_err(std::io::Error::other).and_then(|b| state::write_atomic(&path, &b))
        {
            log::error!("writing {}: {e}", path.display());
        }
    }
}

/// Why a session ended.
enum Fail {
    /// etcd did not answer, or answered with an error: retry.
    Store(String),
    /// No subnet can be had now (the cluster CIDR is full): retry later.
    NoSubnet(String),
}

type Res<T> = Result<T, Fail>;

async fn rpc<T>(f: impl Future<Output = Result<T, etcd_client::Error>>) -> Res<T> {
    match tokio::time::timeout(RPC_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Fail::Store(e.to_string())),
        Err(_) => Err(Fail::Store(format!("no answer within {} s", RPC_TIMEOUT.as_secs()))),
    }
}

/// The lease this host holds and the key it holds with it.
#[derive(Debug, Clone)]
struct Held {
    lease: i64,
    key: String,
    subnets: Vec<IpNetwork>,
}

struct Agent {
    etcd: EtcdConf,
    plan: Plan,
    vni: u32,
    me: IpAddr,
    local: HashSet<IpAddr>,
    shared: Arc<Shared>,
    kernel: Option<Kernel>,
    held: Option<Held>,
    /// The subnets last held (from the state file at start).
    previous: Vec<IpNetwork>,
    /// The lease expired and another host took the subnet.
    lost: bool,
    kvs: BTreeMap<String, entries::Record>,
    revision: i64,
    known: BTreeMap<IpAddr, Vec<IpNetwork>>,
    warned: HashSet<(String, u64)>,
    client: Option<Client>,
    backoff: Duration,
    last_error: String,
    /// The endpoint of the last connection that worked.
    endpoint: usize,
}

/// Runs the mode with the arguments after `agent`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let _ = env_logger::Builder::new().parse_filters(&level).target(env_logger::Target::Stderr).try_init();
    let [path] = args else {
        eprintln!("usage: vxlan agent <network config file (conflist or conf)>");
        return 2;
    };
    let agent = match Agent::new(path) {
        Ok(a) => a,
        Err(e) => {
            log::error!("{}{}", e.msg, if e.details.is_empty() { String::new() } else { format!(" ({})", e.details) });
            return 1;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("starting the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(agent.run())
}

impl Agent {
    fn new(path: &str) -> Result<Agent, cni::Error> {
        let raw = reconcile::load(path)?;
        let etcd = config::etcd_options(&raw)?
            .ok_or_else(|| config::bad("etcd", "missing: `vxlan agent` runs networks whose subnets live in etcd"))?;
        let cluster = config::parse_nets("clusterCIDR", cni::gojson::get(&raw, "clusterCIDR").unwrap_or(&Value::Null))?;
        let plan = Plan::new(&cluster, etcd.subnet_len)
            .ok_or_else(|| config::bad("subnetLen", "does not fit the IPv4 cluster CIDR"))?;
        // The whole config, checked once with a stand-in subnet.
        let base = config::with_subnets(&raw, etcd.clone(), &plan.slot(0).unwrap_or_default())?;
        let host = Handle::new()?;
        let ul = underlay::resolve(&host, &base)?;
        let local: HashSet<IpAddr> = host.all_addresses(None)?.iter().map(|a| a.net.ip()).collect();
        drop(host);
        // A predecessor killed between a temp file and its rename left it.
        atomic_file::sweep_stale_logged(&etcd.state_dir);
        let previous = match state::read(&etcd.state_dir) {
            Ok(Some(st)) if st.underlay_ip == Some(ul.ip) && plan.is_slot(&st.subnets) => st.subnets,
            _ => Vec::new(),
        };
        let st = AgentState {
            network: etcd.network.clone(),
            status: Status::Starting,
            subnets: previous.clone(),
            underlay_ip: Some(ul.ip),
            vtep_mac: mac_to_string(&crate::overlay::vtep_mac(ul.ip)),
            key: String::new(),
            lease: "0".into(),
            revision: 0,
            peers: 0,
            etcd_connected: false,
            pid: std::process::id(),
            message: "connecting to etcd".into(),
            updated: 0,
        };
        let shared = Arc::new(Shared { dir: etcd.state_dir.clone(), st: Mutex::new(st) });
        shared.update(|_| {});
        let kernel = Kernel::spawn(raw, etcd.clone(), shared.clone());
        log::info!(
            "agent for network {:?}: underlay {} on {:?}, store {} under {}, cluster {} in /{} subnets",
            etcd.network,
            ul.ip,
            ul.link.name,
            etcd.endpoints.join(","),
            etcd.network_prefix(),
            plan.cluster(),
            plan.len()
        );
        Ok(Agent {
            vni: base.vni,
            etcd,
            plan,
            me: ul.ip,
            local,
            shared,
            kernel: Some(kernel),
            held: None,
            previous,
            lost: false,
            kvs: BTreeMap::new(),
            revision: 0,
            known: BTreeMap::new(),
            warned: HashSet::new(),
            client: None,
            backoff: BACKOFF_MIN,
            last_error: String::new(),
            endpoint: 0,
        })
    }

    async fn run(mut self) -> i32 {
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
        else {
            log::error!("can't install signal handlers");
            return 1;
        };
        loop {
            let r = tokio::select! {
                r = self.session() => r,
                _ = term.recv() => return self.shutdown("SIGTERM").await,
                _ = int.recv() => return self.shutdown("SIGINT").await,
                _ = hup.recv() => {
                    log::info!("SIGHUP: reading the store again");
                    Ok(())
                }
            };
            let wait = match r {
                Ok(()) => BACKOFF_MIN,
                Err(Fail::Store(e)) => {
                    let e = format!("etcd: {e}");
                    if e != self.last_error {
                        log::error!("{e}; retrying (backoff up to {} s)", BACKOFF_MAX.as_secs());
                    }
                    self.shared.update(|s| {
                        s.etcd_connected = false;
                        s.message = e.clone();
                    });
                    self.last_error = e;
                    self.backoff
                }
                Err(Fail::NoSubnet(e)) => {
                    if e != self.last_error {
                        log::error!("{e}");
                    }
                    self.shared.update(|s| {
                        s.status = Status::Starting;
                        s.message = e.clone();
                    });
                    self.last_error = e;
                    BACKOFF_MAX
                }
            };
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = term.recv() => return self.shutdown("SIGTERM").await,
                _ = int.recv() => return self.shutdown("SIGINT").await,
            }
        }
    }

    /// A client on one member: the endpoints are tried in turn from the
    /// last one that worked, each probed with a linearizable read (which
    /// needs the member to be in the quorum), so a dead or isolated member
    /// costs one connection attempt, not every request sent to it.
    async fn connect(&mut self) -> Res<Client> {
        let mut o = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(3))
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        if let Some(ca) = &self.etcd.ca_file {
            let read = |p: &std::path::Path| {
                std::fs::read(p).map_err(|e| Fail::Store(format!("reading {}: {e}", p.display())))
            };
            let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read(ca)?));
            if let (Some(c), Some(k)) = (&self.etcd.cert_file, &self.etcd.key_file) {
                tls = tls.identity(Identity::from_pem(read(c)?, read(k)?));
            }
            o = o.with_tls(tls);
        }
        let eps: Vec<String> = self
            .etcd
            .endpoints
            .iter()
            .map(|e| if e.contains("://") { e.clone() } else { format!("http://{e}") })
            .collect();
        let mut errors = Vec::new();
        for k in 0..eps.len() {
            let i = (self.endpoint + k) % eps.len();
            let probe = async {
                let mut c = rpc(Client::connect([eps[i].as_str()], Some(o.clone()))).await?;
                let opts = GetOptions::new().with_keys_only().with_limit(1);
                rpc(c.get(self.etcd.network_prefix(), Some(opts))).await?;
                Ok::<Client, Fail>(c)
            };
            match probe.await {
                Ok(c) => {
                    if i != self.endpoint {
                        log::info!("etcd: using {}", eps[i]);
                    }
                    self.endpoint = i;
                    return Ok(c);
                }
                Err(Fail::Store(e) | Fail::NoSubnet(e)) => errors.push(format!("{}: {e}", eps[i])),
            }
        }
        Err(Fail::Store(errors.join("; ")))
    }

    fn key_of(&self, subnets: &[IpNetwork]) -> String {
        format!("{}{}", self.etcd.subnets_prefix(), entries::key_name(&subnets[0]))
    }

    /// One connection: acquire if needed, list, then follow the watch and
    /// keep the lease alive until something breaks.
    async fn session(&mut self) -> Res<()> {
        let mut c = self.connect().await?;
        self.client = Some(c.clone());
        if self.held.is_none() && !self.lost {
            self.acquire(&mut c).await?;
        }
        let (mut keeper, mut kstream) = match &self.held {
            Some(h) => {
                let (mut k, mut s) = rpc(c.lease_keep_alive(h.lease)).await?;
                rpc(k.keep_alive()).await?;
                match rpc(s.message()).await? {
                    Some(r) if r.ttl() > 0 => {}
                    _ => return self.lease_expired(&mut c).await,
                }
                (Some(k), Some(s))
            }
            None => (None, None),
        };
        let resp = rpc(c.get(self.etcd.subnets_prefix(), Some(GetOptions::new().with_prefix()))).await?;
        self.revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        self.kvs = resp.kvs().iter().map(|kv| (lossy(kv.key()), record(kv))).collect();
        let mut w = rpc(c.watch(
            self.etcd.subnets_prefix(),
            Some(WatchOptions::new().with_prefix().with_start_revision(self.revision + 1)),
        ))
        .await?;
        self.shared.update(|s| {
            s.etcd_connected = true;
            if s.message.starts_with("etcd: ") || s.message == "connecting to etcd" {
                s.message.clear();
            }
        });
        if !self.last_error.is_empty() {
            log::info!("etcd reachable again; store at revision {}", self.revision);
            self.last_error.clear();
        }
        self.backoff = BACKOFF_MIN;
        self.publish();
        let every = Duration::from_millis((self.etcd.lease_ttl as u64 * 1000 / 3).max(300));
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick(), if keeper.is_some() => {
                    rpc(async { keeper.as_mut().expect("keeper").keep_alive().await }).await?;
                }
                m = async { kstream.as_mut().expect("keepalive stream").message().await }, if kstream.is_some() => {
                    match m {
                        Ok(Some(r)) if r.ttl() > 0 => {}
                        Ok(Some(_)) => return self.lease_expired(&mut c).await,
                        Ok(None) => return Err(Fail::Store("the lease keepalive stream closed".into())),
                        Err(e) => return Err(Fail::Store(format!("lease keepalive: {e}"))),
                    }
                }
                m = w.message() => {
                    let r = match m {
                        Ok(Some(r)) => r,
                        Ok(None) => return Err(Fail::Store("the watch closed".into())),
                        Err(e) => return Err(Fail::Store(format!("watch: {e}"))),
                    };
                    if r.compact_revision() > 0 || r.canceled() {
                        log::warn!(
                            "watch from revision {} fell behind compaction (compacted to {}): listing again",
                            self.revision + 1,
                            r.compact_revision()
                        );
                        return Ok(());
                    }
                    let mut own = None;
                    for ev in r.events() {
                        let Some(kv) = ev.kv() else { continue };
                        let key = lossy(kv.key());
                        let is_mine = self.held.as_ref().is_some_and(|h| h.key == key);
                        match ev.event_type() {
                            EventType::Put => {
                                if is_mine && (kv.lease() != self.held.as_ref().map_or(0, |h| h.lease)) {
                                    own = Some(Some(entries::underlay_of(kv.value())));
                                }
                                self.kvs.insert(key, record(kv));
                            }
                            EventType::Delete => {
                                if is_mine {
                                    own = Some(None);
                                }
                                self.kvs.remove(&key);
                            }
                        }
                    }
                    if let Some(h) = r.header() {
                        self.revision = self.revision.max(h.revision());
                    }
                    match own {
                        Some(None) => self.own_key_deleted(&mut c).await?,
                        Some(Some(by)) => {
                            let by = by.map_or("an unknown holder".to_string(), |ip| ip.to_string());
                            self.give_up(&format!("this host's key was overwritten by {by}")).await;
                        }
                        None => {}
                    }
                    self.publish();
                }
            }
        }
    }

    async fn grant(&self, c: &mut Client) -> Res<i64> {
        Ok(rpc(c.lease_grant(self.etcd.lease_ttl, None)).await?.id())
    }

    /// Takes this host's subnet: its own record (by underlay address), else
    /// the subnet it held last, else a free one from a random point.
    async fn acquire(&mut self, c: &mut Client) -> Res<()> {
        let value = |a: &Agent, s: &[IpNetwork]| entries::value(a.me, s, a.vni);
        for _ in 0..TRIES {
            let resp = rpc(c.get(self.etcd.subnets_prefix(), Some(GetOptions::new().with_prefix()))).await?;
            let mut taken = HashSet::new();
            let mut mine = None;
            for kv in resp.kvs() {
                let key = lossy(kv.key());
                let Some(net) = entries::subnet_of_key(&self.etcd, &key) else { continue };
                taken.insert(net);
                if entries::underlay_of(kv.value()) == Some(self.me)
                    && self.plan.index_of(&net).is_some()
                    && mine.is_none()
                {
                    mine = Some((key, net, kv.lease(), kv.mod_revision()));
                }
            }
            if let Some((key, net, lease, rev)) = mine {
                let subnets = self.plan.slot(self.plan.index_of(&net).unwrap_or(0)).unwrap_or_default();
                if lease != 0 && rpc(c.lease_time_to_live(lease, None)).await?.ttl() > 0 {
                    self.hold(Held { lease, key, subnets }, "took back (its lease is still alive)");
                    return Ok(());
                }
                let lease = self.grant(c).await?;
                let txn = Txn::new().when([Compare::mod_revision(key.clone(), CompareOp::Equal, rev)]).and_then([
                    TxnOp::put(key.clone(), value(self, &subnets), Some(PutOptions::new().with_lease(lease))),
                ]);
                if rpc(c.txn(txn)).await?.succeeded() {
                    self.hold(Held { lease, key, subnets }, "took back (a new lease)");
                    return Ok(());
                }
                let _ = rpc(c.lease_revoke(lease)).await;
                continue;
            }
            let mut cands = Vec::new();
            if self.plan.is_slot(&self.previous) && !taken.contains(&self.previous[0]) {
                cands.push(self.previous.clone());
            }
            let seed = netcore::naming::fnv1a64(&[
                &self.me.to_string(),
                &std::process::id().to_string(),
                &format!("{:?}", std::time::SystemTime::now()),
            ]);
            cands.extend(self.plan.free(&taken, seed % self.plan.capacity(), 4));
            if cands.is_empty() {
                return Err(Fail::NoSubnet(format!(
                    "clusterCIDR {} is exhausted: it holds {} subnets of /{} and {} hosts hold them all; \
                     this host gets no subnet until one leaves (or use a larger clusterCIDR or subnetLen)",
                    self.plan.cluster(),
                    self.plan.capacity(),
                    self.plan.len(),
                    taken.len()
                )));
            }
            let lease = self.grant(c).await?;
            for s in cands {
                let key = self.key_of(&s);
                let txn = Txn::new().when([Compare::version(key.clone(), CompareOp::Equal, 0)]).and_then([TxnOp::put(
                    key.clone(),
                    value(self, &s),
                    Some(PutOptions::new().with_lease(lease)),
                )]);
                if rpc(c.txn(txn)).await?.succeeded() {
                    let how =
                        if s == self.previous { "took back the subnet it held before" } else { "took a free subnet" };
                    self.hold(Held { lease, key, subnets: s }, how);
                    return Ok(());
                }
            }
            let _ = rpc(c.lease_revoke(lease)).await;
        }
        Err(Fail::Store(format!("lost {TRIES} races for a subnet in a row")))
    }

    fn hold(&mut self, h: Held, how: &str) {
        log::info!(
            "holding subnet {} as {} (lease {:x}, TTL {} s): {how}",
            config::show(&h.subnets),
            h.key,
            h.lease,
            self.etcd.lease_ttl
        );
        if self.previous != h.subnets {
            // Verdicts depend on this host's subnet.
            self.kvs.values_mut().for_each(|r| r.judged = None);
        }
        self.previous = h.subnets.clone();
        self.lost = false;
        let h2 = h.clone();
        // `running` (what ADD waits for) comes from the kernel thread once
        // this subnet's host side and peers are in place.
        self.shared.update(|s| {
            if s.subnets != h2.subnets || s.status != Status::Running {
                s.status = Status::Starting;
                s.message = "programming the kernel".into();
            }
            s.subnets = h2.subnets;
            s.key = h2.key;
            s.lease = format!("{:x}", h2.lease);
        });
        self.held = Some(h);
    }

    /// The lease is gone: claim the same subnet again, or give it up.
    async fn lease_expired(&mut self, c: &mut Client) -> Res<()> {
        let Some(h) = self.held.take() else { return Ok(()) };
        log::warn!(
            "lease {:x} expired (etcd was out of reach for longer than {} s); claiming {} again",
            h.lease,
            self.etcd.lease_ttl,
            h.key
        );
        self.reclaim(c, h, None).await
    }

    /// Someone deleted this host's key while its lease lives: put it back.
    async fn own_key_deleted(&mut self, c: &mut Client) -> Res<()> {
        let Some(h) = self.held.take() else { return Ok(()) };
        log::warn!("this host's key {} was deleted; putting it back", h.key);
        let lease = h.lease;
        self.reclaim(c, h, Some(lease)).await
    }

    async fn reclaim(&mut self, c: &mut Client, h: Held, lease: Option<i64>) -> Res<()> {
        let lease = match lease {
            Some(l) => l,
            None => self.grant(c).await?,
        };
        let txn = Txn::new().when([Compare::version(h.key.clone(), CompareOp::Equal, 0)]).and_then([TxnOp::put(
            h.key.clone(),
            entries::value(self.me, &h.subnets, self.vni),
            Some(PutOptions::new().with_lease(lease)),
        )]);
        if rpc(c.txn(txn)).await?.succeeded() {
            self.hold(Held { lease, ..h }, "claimed again");
            return Ok(());
        }
        let _ = rpc(c.lease_revoke(lease)).await;
        let now = rpc(c.get(h.key.clone(), None)).await?;
        let by = now.kvs().first().and_then(|kv| entries::underlay_of(kv.value()));
        self.held = None;
        self.give_up(&format!(
            "{} was taken by {} while this host's lease had expired",
            h.key,
            by.map_or("another host".to_string(), |ip| ip.to_string())
        ))
        .await;
        Ok(())
    }

    /// Stops claiming the subnet, loudly.
    async fn give_up(&mut self, why: &str) {
        let subnets = self.previous.clone();
        log::error!(
            "LOST subnet {}: {why}; this host claims nothing now and new containers can't be added here; \
             move this host's containers, then restart the agent",
            config::show(&subnets)
        );
        self.held = None;
        self.lost = true;
        let why = why.to_string();
        self.shared.update(|s| {
            s.status = Status::Lost;
            s.lease = "0".into();
            s.message = why;
        });
    }

    /// The peers of the records, to the kernel thread; a log line per host
    /// that joined or left, and per record skipped.
    fn publish(&mut self) {
        let mine: Vec<IpNetwork> =
            self.held.as_ref().map(|h| h.subnets.clone()).unwrap_or_else(|| self.previous.clone());
        let judge = Judge { etcd: &self.etcd, plan: &self.plan, me: self.me, local: &self.local, mine: &mine };
        let (mut peers, bad) = judge.peers(&mut self.kvs);
        // Records of this host itself (its own key) are not peers.
        peers.retain(|p| p.underlay != self.me);
        for (k, why) in bad {
            let v =
                self.kvs.get(&k).map(|r| netcore::naming::fnv1a64(&[&String::from_utf8_lossy(&r.value)])).unwrap_or(0);
            let mine_key = self.held.as_ref().is_some_and(|h| h.key == k);
            if !mine_key && self.warned.insert((k.clone(), v)) {
                log::warn!("skipping {k}: {why}");
            }
        }
        let now: BTreeMap<IpAddr, Vec<IpNetwork>> = peers.iter().map(|p| (p.underlay, p.subnets.clone())).collect();
        for (ip, s) in &now {
            if self.known.get(ip) != Some(s) {
                log::info!("join: host {ip} with subnet {}", config::show(s));
            }
        }
        for (ip, s) in &self.known {
            if !now.contains_key(ip) {
                log::info!("leave: host {ip} (subnet {})", config::show(s));
            }
        }
        self.known = now;
        if mine.is_empty() {
            return;
        }
        if let Some(k) = &self.kernel {
            k.update(Update { subnets: mine, peers, revision: self.revision });
        }
    }

    async fn shutdown(mut self, why: &str) -> i32 {
        let mut code = 0;
        if let (Some(c), Some(h)) = (self.client.as_mut(), self.held.take()) {
            match rpc(c.lease_revoke(h.lease)).await {
                Ok(_) => log::info!("{why}: revoked lease {:x}; {} left the overlay", h.lease, h.key),
                Err(Fail::Store(e) | Fail::NoSubnet(e)) => {
                    log::error!("{why}: revoking lease {:x}: {e}; it expires in {} s", h.lease, self.etcd.lease_ttl);
                    code = 1;
                }
            }
        } else {
            log::info!("{why}: stopping (no lease held)");
        }
        if let Some(k) = self.kernel.take() {
            k.stop();
        }
        self.shared.update(|s| {
            s.status = Status::Stopped;
            s.lease = "0".into();
            s.message = format!("stopped by {why}");
        });
        code
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A record as kept in memory: a huge value is cut just past the limit (it
/// is refused anyway, and 1 MB of junk per key need not stay resident).
fn record(kv: &etcd_client::KeyValue) -> entries::Record {
    let v = kv.value();
    entries::Record::new(kv.create_revision(), v[..v.len().min(entries::MAX_VALUE + 1)].to_vec())
}
