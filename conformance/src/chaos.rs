//! The chaos test: random sequences of ADD, CHECK, DEL and GC over two
//! networks (bridge + host-local + portmap, and macvlan + host-local), run
//! through the runtime library as a container runtime runs them, several
//! operations at once, with SIGKILL injected into plugin processes at
//! random moments. A killed ADD or DEL is followed up as a runtime does
//! (DEL until it succeeds). After every step the invariants are checked:
//!
//! - no address is held by two containers, and each running container has
//!   exactly the addresses of its ADD result in its namespace;
//! - CHECK passes for every running container;
//! - nothing of a container that is not running remains: no lease, no host
//!   veth, no nftables element naming it or its address, no route to its
//!   address, no cache entry; and at the end, after DEL of everything and
//!   a GC with an empty valid list, nothing at all.
//!
//! Everything runs in a "host" namespace made for the run and in container
//! namespaces made per slot, all removed at the end. The sequence of
//! operations, kill points and delays is a function of the seed, which is
//! printed; the moment a kill lands depends on scheduling, so a replay runs
//! the same program against the same kill schedule.

use crate::fixture::Host;
use crate::netns::TestNs;
use runtime::{Attachment, GcAttachment, NetConfList, PluginExec, Runtime};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Steps; each is one to `parallel` operations at once, or one GC.
    pub steps: usize,
    /// The seed of every random choice.
    pub seed: u64,
    /// Container slots (each holds at most one running container).
    pub slots: usize,
    /// Most operations run at once in one step.
    pub parallel: usize,
    /// Percentage of operations that get a SIGKILL scheduled.
    pub kill_percent: u64,
    /// Longest delay before a scheduled kill.
    pub max_kill_delay: Duration,
    /// Whether the bridge network chains portmap.
    pub portmap: bool,
    /// Whether the macvlan network takes part.
    pub macvlan: bool,
    /// Print one line per step.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            steps: 100,
            seed: 1,
            slots: 6,
            parallel: 3,
            kill_percent: 30,
            max_kill_delay: Duration::from_millis(12),
            portmap: true,
            macvlan: true,
            verbose: false,
        }
    }
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Steps run.
    pub steps: usize,
    /// Operations run, by kind (follow-up DELs included).
    pub ops: BTreeMap<&'static str, usize>,
    /// Kills scheduled.
    pub kills_scheduled: usize,
    /// Plugin processes that died of a scheduled SIGKILL.
    pub kills_landed: usize,
    /// Invariant checks passed.
    pub checks: usize,
    /// Wall time.
    pub elapsed: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ops: Vec<String> = self.ops.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(
            f,
            "{} steps in {:.1}s: {}; {} kills scheduled, {} landed; invariants checked {} times",
            self.steps,
            self.elapsed.as_secs_f64(),
            ops.join(" "),
            self.kills_scheduled,
            self.kills_landed,
            self.checks
        )
    }
}

/// xorshift64*: small, seedable, good enough to pick operations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator; the same seed gives the same sequence.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// True with `percent` % probability.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A seed from the clock, for runs that do not name one.
pub fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (t.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// When to kill: the `nth` plugin process this operation starts, `after`
/// it started.
#[derive(Debug, Clone, Copy)]
struct KillPlan {
    nth: usize,
    after: Duration,
}

/// Runs plugins inside the host namespace (entered between fork and exec),
/// killing one at the planned moment.
#[derive(Debug)]
struct ChaosExec {
    netns: Arc<std::fs::File>,
    plan: Option<KillPlan>,
    started: AtomicUsize,
    landed: AtomicBool,
}

impl ChaosExec {
    fn new(netns: Arc<std::fs::File>, plan: Option<KillPlan>) -> ChaosExec {
        ChaosExec { netns, plan, started: AtomicUsize::new(0), landed: AtomicBool::new(false) }
    }
}

/// Blocks until `pid` has exited, without reaping it (so the pid cannot be
/// reused while the killer may still signal it).
fn wait_exited(pid: libc::pid_t) {
    loop {
        // SAFETY: waitid writes only into the zeroed siginfo we own.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT)
        };
        if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

impl PluginExec for ChaosExec {
    fn find_plugin(&self, name: &str, dirs: &[PathBuf]) -> runtime::Result<PathBuf> {
        runtime::invoke::find_in_path(name, dirs)
    }

    fn exec_plugin(&self, plugin: &Path, stdin: &[u8], env: &[(String, String)]) -> runtime::Result<Vec<u8>> {
        let nth = self.started.fetch_add(1, Ordering::SeqCst);
        let kill_after = self.plan.filter(|p| p.nth == nth).map(|p| p.after);
        let fd = self.netns.as_raw_fd();
        let mut cmd = Command::new(plugin);
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: setns(2) is async-signal-safe; `fd` stays open in the
        // parent for the whole call.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| runtime::Error::io(format!("exec {}: {e}", plugin.display())))?;
        let pid = child.id() as libc::pid_t;
        let mut cin = child.stdin.take().expect("piped");
        let mut cout = child.stdout.take().expect("piped");
        let mut cerr = child.stderr.take().expect("piped");
        let done = (Mutex::new(false), Condvar::new());
        let (stdout, stderr) = std::thread::scope(|s| {
            s.spawn(move || {
                let _ = cin.write_all(stdin);
            });
            let err = s.spawn(move || {
                let mut b = Vec::new();
                let _ = cerr.read_to_end(&mut b);
                b
            });
            if let Some(after) = kill_after {
                let done = &done;
                s.spawn(move || {
                    let guard = done.0.lock().unwrap_or_else(|p| p.into_inner());
                    let (guard, _) =
                        done.1.wait_timeout_while(guard, after, |d| !*d).unwrap_or_else(|p| p.into_inner());
                    if !*guard {
                        // SAFETY: kill(2) of our child, not yet reaped (see below).
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                });
            }
            let mut out = Vec::new();
            let _ = cout.read_to_end(&mut out);
            wait_exited(pid);
            *done.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
            done.1.notify_all();
            (out, err.join().unwrap_or_default())
        });
        let status = child.wait().map_err(|e| runtime::Error::io(format!("wait {}: {e}", plugin.display())))?;
        if status.signal() == Some(libc::SIGKILL) {
            self.landed.store(true, Ordering::SeqCst);
            return Err(runtime::Error::new(
                runtime::invoke::UNTYPED_FAILURE,
                format!("{} killed by the chaos test", plugin.display()),
            ));
        }
        if !status.success() {
            let exit = status.code().map(|c| format!("exit status {c}")).unwrap_or_else(|| format!("{status}"));
            return Err(runtime::invoke::plugin_error(&exit, &stdout, &stderr));
        }
        Ok(stdout)
    }
}

/// A runtime whose plugins run inside the network namespace at `netns`
/// (entered between fork and exec), as a runtime running in that
/// namespace would run them.
pub fn runtime_in(netns: &str, plugin_path: Vec<PathBuf>, conf_dir: &Path, cache_dir: &Path) -> Runtime {
    let ns = Arc::new(std::fs::File::open(netns).expect("opening the namespace"));
    Runtime::new(plugin_path, conf_dir, cache_dir).with_exec(Arc::new(ChaosExec::new(ns, None)))
}

/// The networks of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Net {
    Bridge,
    Macvlan,
}

impl Net {
    fn name(self) -> &'static str {
        match self {
            Net::Bridge => "chaosbr",
            Net::Macvlan => "chaosmv",
        }
    }
    /// The address pools of the network (container addresses come from
    /// these, gateways excluded).
    fn pools(self) -> [(&'static str, &'static str); 2] {
        match self {
            Net::Bridge => [("10.201.0.0/27", "10.201.0.1"), ("fd00:c9:1::/120", "fd00:c9:1::1")],
            Net::Macvlan => [("10.202.0.0/27", "10.202.0.1"), ("fd00:c9:2::/120", "fd00:c9:2::1")],
        }
    }
}

/// A running container.
#[derive(Debug, Clone)]
struct Live {
    net: Net,
    cid: String,
    netns: String,
    ips: BTreeSet<IpAddr>,
}

/// One container slot.
#[derive(Debug, Default)]
struct Slot {
    ns: Option<TestNs>,
    live: Option<Live>,
    generation: u32,
}

/// The kinds of operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add(Net),
    Check,
    Del,
    /// DEL after the container's namespace is already gone.
    DelGone,
}

/// The run's world.
struct Lab {
    opts: Options,
    host: Host,
    netns: Arc<std::fs::File>,
    runtime: Runtime,
    lists: BTreeMap<Net, NetConfList>,
    slots: Vec<Mutex<Slot>>,
    report: Mutex<Report>,
    log: Mutex<Vec<String>>,
}

/// Whether `ip` is an address host-local may give a container from `pool`:
/// inside it, and not its network or (IPv4) broadcast address.
fn ip_in(pool: &str, ip: IpAddr) -> bool {
    let (net, len) = pool.split_once('/').expect("pool literal");
    let (Ok(net), Ok(len)) = (net.parse::<IpAddr>(), len.parse::<u32>()) else { return false };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let (n, a) = (u32::from(n) & mask, u32::from(a));
            n == a & mask && a != n && a != n | !mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            let (n, a) = (u128::from(n) & mask, u128::from(a));
            n == a & mask && a != n
        }
        _ => false,
    }
}

/// Every string leaf of a JSON document.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

impl Lab {
    fn new(opts: Options) -> Lab {
        let host = Host::new("chaos");
        // The macvlan master: one end of a veth pair inside the host
        // namespace (never a real interface of the machine).
        host.ns.ok(&["ip", "link", "add", "chaosm0", "type", "veth", "peer", "name", "chaosm1"]);
        host.ns.ok(&["ip", "link", "set", "chaosm0", "up"]);
        host.ns.ok(&["ip", "link", "set", "chaosm1", "up"]);
        let netns = Arc::new(std::fs::File::open(host.ns.path()).expect("host namespace"));
        let conf_dir = host.dir.join("net.d");
        std::fs::create_dir_all(&conf_dir).expect("conf dir");
        let ipam = |net: Net| {
            let [(v4, gw4), (v6, gw6)] = net.pools();
            json!({"type": "host-local", "dataDir": host.ipam_dir(),
                   "ranges": [[{"subnet": v4, "gateway": gw4}], [{"subnet": v6, "gateway": gw6}]],
                   "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]})
        };
        let mut bridge_plugins = vec![json!({
            "type": "bridge", "bridge": "chaosbr0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
            "ipam": ipam(Net::Bridge)
        })];
        if opts.portmap {
            bridge_plugins.push(json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}));
        }
        let mut lists = BTreeMap::new();
        let mut nets = vec![(Net::Bridge, bridge_plugins)];
        if opts.macvlan {
            nets.push((
                Net::Macvlan,
                vec![json!({"type": "macvlan", "master": "chaosm0", "mode": "bridge",
                                                 "ipam": ipam(Net::Macvlan)})],
            ));
        }
        for (net, plugins) in nets {
            let list = json!({"cniVersion": "1.1.0", "name": net.name(), "plugins": plugins});
            let path = conf_dir.join(format!("{}.conflist", net.name()));
            std::fs::write(&path, serde_json::to_vec_pretty(&list).expect("json")).expect("conflist");
            lists.insert(net, runtime::config::load_file(&path).expect("our conflist loads"));
        }
        // A private copy of the binaries: a rebuild during a long run must
        // not swap a plugin under it.
        let bin_dir = host.dir.join("bin");
        std::fs::create_dir_all(&bin_dir).expect("bin dir");
        for name in ["bridge", "host-local", "portmap", "macvlan"] {
            std::fs::copy(crate::bins::bin(name), bin_dir.join(name)).expect("copying a plugin binary");
        }
        let runtime = Runtime::new(vec![bin_dir], &conf_dir, host.dir.join("cache"));
        let slots = (0..opts.slots).map(|_| Mutex::new(Slot::default())).collect();
        Lab {
            opts,
            host,
            netns,
            runtime,
            lists,
            slots,
            report: Mutex::new(Report::default()),
            log: Mutex::new(Vec::new()),
        }
    }

    fn note(&self, line: String) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.push(line);
        let excess = log.len().saturating_sub(40);
        log.drain(..excess);
    }

    fn count(&self, what: &'static str) {
        *self.report.lock().unwrap_or_else(|p| p.into_inner()).ops.entry(what).or_default() += 1;
    }

    /// A runtime whose plugins run in the host namespace, with `plan`.
    fn runtime_with(&self, plan: Option<KillPlan>) -> (Runtime, Arc<ChaosExec>) {
        let exec = Arc::new(ChaosExec::new(self.netns.clone(), plan));
        (self.runtime.clone().with_exec(exec.clone()), exec)
    }

    fn plan(&self, rng: &mut Rng, net: Option<Net>) -> Option<KillPlan> {
        if !rng.chance(self.opts.kill_percent) {
            return None;
        }
        let processes = match net {
            Some(Net::Bridge) if self.opts.portmap => 2,
            _ => 1,
        };
        let max = self.opts.max_kill_delay.as_micros().max(1) as u64;
        let plan = KillPlan { nth: rng.below(processes) as usize, after: Duration::from_micros(rng.below(max)) };
        self.report.lock().unwrap_or_else(|p| p.into_inner()).kills_scheduled += 1;
        Some(plan)
    }

    fn landed(&self, exec: &ChaosExec) -> bool {
        let landed = exec.landed.load(Ordering::SeqCst);
        if landed {
            self.report.lock().unwrap_or_else(|p| p.into_inner()).kills_landed += 1;
        }
        landed
    }

    fn attachment(live_cid: &str, netns: &str, slot: usize) -> Attachment {
        Attachment::new(live_cid, netns, "eth0").with_capability(
            "portMappings",
            json!([{"hostPort": 30000 + slot, "containerPort": 80, "protocol": "tcp"}]),
        )
    }

    /// DEL until it succeeds, as a runtime retries it; the first tries may
    /// be killed too.
    fn del_until_done(&self, rng: &mut Rng, net: Net, att: &Attachment) -> Result<(), String> {
        for attempt in 0.. {
            let plan = if attempt < 3 { self.plan(rng, Some(net)) } else { None };
            let (rt, exec) = self.runtime_with(plan);
            self.count("del");
            match rt.del(&self.lists[&net], att) {
                Ok(()) => return Ok(()),
                Err(_) if self.landed(&exec) => continue,
                Err(e) => return Err(format!("DEL {} on {} failed: {e}", att.container_id, net.name())),
            }
        }
        unreachable!("the loop returns")
    }

    /// Runs one operation on slot `i`.
    fn op(&self, i: usize, op: Op, seed: u64) -> Result<(), String> {
        let mut rng = Rng::new(seed);
        let mut slot = self.slots[i].lock().unwrap_or_else(|p| p.into_inner());
        match op {
            Op::Add(net) => {
                slot.generation += 1;
                if slot.ns.is_none() {
                    slot.ns = Some(TestNs::new("chaos-c"));
                }
                let ns = slot.ns.as_ref().expect("made above");
                let cid = format!("s{i}g{}", slot.generation);
                let att = Self::attachment(&cid, &ns.path(), i);
                let plan = self.plan(&mut rng, Some(net));
                let (rt, exec) = self.runtime_with(plan);
                self.count("add");
                match rt.add(&self.lists[&net], &att) {
                    Ok(result) => {
                        let ips = result.ips.iter().map(|c| c.address.ip()).collect();
                        slot.live = Some(Live { net, cid, netns: ns.path(), ips });
                        Ok(())
                    }
                    Err(e) => {
                        if !self.landed(&exec) {
                            return Err(format!("ADD {cid} on {} failed without a kill: {e}", net.name()));
                        }
                        self.note(format!("  ADD {cid} killed: {}", e.msg));
                        self.del_until_done(&mut rng, net, &att)
                    }
                }
            }
            Op::Check => {
                let Some(live) = slot.live.clone() else { return Ok(()) };
                let (rt, exec) = self.runtime_with(self.plan(&mut rng, Some(live.net)));
                self.count("check");
                match rt.check(&self.lists[&live.net], &Self::attachment(&live.cid, &live.netns, i)) {
                    Ok(()) => Ok(()),
                    Err(_) if self.landed(&exec) => Ok(()),
                    Err(e) => Err(format!("CHECK {} failed: {e}", live.cid)),
                }
            }
            Op::Del | Op::DelGone => {
                let Some(live) = slot.live.take() else { return Ok(()) };
                if op == Op::DelGone {
                    slot.ns = None;
                }
                let att = Self::attachment(&live.cid, &live.netns, i);
                self.del_until_done(&mut rng, live.net, &att)?;
                if rng.chance(30) {
                    slot.ns = None;
                }
                Ok(())
            }
        }
    }

    /// GC of one network with the running containers as the valid list.
    fn gc(&self, net: Net, rng: &mut Rng) -> Result<(), String> {
        let valid: Vec<GcAttachment> = self
            .lives()
            .into_iter()
            .filter(|(_, l)| l.net == net)
            .map(|(_, l)| GcAttachment { container_id: l.cid, ifname: "eth0".into() })
            .collect();
        for attempt in 0.. {
            let plan = if attempt < 2 { self.plan(rng, None) } else { None };
            let (rt, exec) = self.runtime_with(plan);
            self.count("gc");
            match rt.gc(&self.lists[&net], &valid) {
                Ok(()) => return Ok(()),
                Err(_) if self.landed(&exec) => continue,
                Err(e) => return Err(format!("GC of {} failed: {e}", net.name())),
            }
        }
        unreachable!("the loop returns")
    }

    fn lives(&self) -> Vec<(usize, Live)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.lock().unwrap_or_else(|p| p.into_inner()).live.clone().map(|l| (i, l)))
            .collect()
    }

    fn nets(&self) -> Vec<Net> {
        self.lists.keys().copied().collect()
    }

    /// Every invariant, on the state after a step.
    fn verify(&self) -> Result<(), String> {
        let lives = self.lives();
        let mut problems = Vec::new();

        // 1. Addresses in the kernel: exactly the result's, never shared.
        let mut owner_of: BTreeMap<IpAddr, String> = BTreeMap::new();
        for (i, live) in &lives {
            let slot = self.slots[*i].lock().unwrap_or_else(|p| p.into_inner());
            let Some(ns) = slot.ns.as_ref() else {
                problems.push(format!("{} is running without a namespace", live.cid));
                continue;
            };
            let out = Command::new("ip")
                .args(["-n", &ns.name, "-j", "addr", "show", "dev", "eth0", "scope", "global"])
                .output()
                .map_err(|e| format!("ip addr: {e}"))?;
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let mut have = BTreeSet::new();
            for l in v.as_array().into_iter().flatten() {
                for a in l["addr_info"].as_array().into_iter().flatten() {
                    if let Some(ip) = a["local"].as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                        have.insert(ip);
                    }
                }
            }
            if have != live.ips {
                problems.push(format!("{} has {have:?} in its namespace, its result says {:?}", live.cid, live.ips));
            }
            for ip in have {
                if let Some(other) = owner_of.insert(ip, live.cid.clone()) {
                    problems.push(format!("{ip} is held by both {other} and {}", live.cid));
                }
            }
        }

        // 2. CHECK of every running container, two at a time.
        let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for chunk in lives.chunks(lives.len().div_ceil(2).max(1)) {
                let failures = &failures;
                s.spawn(move || {
                    let (rt, _) = self.runtime_with(None);
                    for (i, live) in chunk {
                        let att = Self::attachment(&live.cid, &live.netns, *i);
                        if let Err(e) = rt.check(&self.lists[&live.net], &att) {
                            failures
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(format!("CHECK of running {} failed: {e}", live.cid));
                        }
                    }
                });
            }
        });
        problems.extend(failures.into_inner().unwrap_or_else(|p| p.into_inner()));

        // 3. Leases: exactly the running containers' addresses.
        for net in self.nets() {
            let mut want: BTreeMap<String, String> = BTreeMap::new();
            for (_, l) in lives.iter().filter(|(_, l)| l.net == net) {
                for ip in &l.ips {
                    want.insert(ip.to_string(), format!("{}\r\neth0", l.cid));
                }
            }
            let store = self.host.ipam_dir().join(net.name());
            let mut have = BTreeMap::new();
            for e in std::fs::read_dir(&store).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.parse::<IpAddr>().is_ok() {
                    let content = std::fs::read_to_string(e.path()).unwrap_or_else(|e| format!("<{e}>"));
                    have.insert(name, content);
                }
            }
            if have != want {
                problems.push(format!("leases of {}: {have:?}, expected {want:?}", net.name()));
            }
        }

        // 4. Host veths: exactly the running bridge containers'.
        let want: BTreeSet<String> = lives
            .iter()
            .filter(|(_, l)| l.net == Net::Bridge)
            .map(|(_, l)| netcore::naming::host_veth_name(Net::Bridge.name(), &l.cid, "eth0"))
            .collect();
        let have: BTreeSet<String> =
            self.host.veths().into_iter().filter(|n| n != "chaosm0" && n != "chaosm1").collect();
        if have != want {
            problems.push(format!("host veths {have:?}, expected {want:?}"));
        }

        // 5. nftables and 6. routes: no trace of a container not running.
        let live_keys: BTreeSet<String> =
            lives.iter().map(|(_, l)| netcore::owner::OwnerKey::new(l.net.name(), &l.cid, "eth0").key()).collect();
        let live_ips: BTreeSet<IpAddr> = lives.iter().flat_map(|(_, l)| l.ips.iter().copied()).collect();
        let stale_ip = |ip: IpAddr| {
            self.nets().iter().any(|n| n.pools().iter().any(|(pool, gw)| ip_in(pool, ip) && gw.parse() != Ok(ip)))
                && !live_ips.contains(&ip)
        };
        let mut leaves = Vec::new();
        strings(&Value::Array(crate::witness::nft_ruleset(&self.host.ns)), &mut leaves);
        for s in &leaves {
            let dead_key = self.nets().iter().any(|n| s.starts_with(&format!("{}/", n.name())))
                && s.matches('/').count() == 2
                && !live_keys.contains(s);
            if dead_key {
                problems.push(format!("nftables still names {s:?}"));
            }
            if s.parse::<IpAddr>().is_ok_and(stale_ip) {
                problems.push(format!("nftables still holds {s}"));
            }
        }
        for family in ["-4", "-6"] {
            let routes = crate::witness::ip(&self.host.ns, &[family, "route", "show", "table", "all"]);
            for r in routes.as_array().into_iter().flatten() {
                let dst = r["dst"].as_str().unwrap_or_default();
                let addr = dst.split('/').next().unwrap_or_default();
                let host_route = !dst.contains('/') || dst.ends_with("/32") || dst.ends_with("/128");
                if host_route && addr.parse::<IpAddr>().is_ok_and(stale_ip) {
                    problems.push(format!("route to {dst} remains: {r}"));
                }
            }
        }

        // 7. The runtime's cache: exactly the running containers.
        let mut have: BTreeSet<String> = BTreeSet::new();
        for e in std::fs::read_dir(self.host.dir.join("cache")).into_iter().flatten().flatten() {
            have.insert(e.file_name().to_string_lossy().into_owned());
        }
        let want: BTreeSet<String> = lives.iter().map(|(_, l)| format!("{}-{}-eth0", l.net.name(), l.cid)).collect();
        if have != want {
            problems.push(format!("cache entries {have:?}, expected {want:?}"));
        }

        self.report.lock().unwrap_or_else(|p| p.into_inner()).checks += 1;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n  "))
        }
    }

    /// DEL of every running container, then GC of every network with an
    /// empty valid list.
    fn del_all(&self, rng: &mut Rng) -> Result<(), String> {
        for (i, slot) in self.slots.iter().enumerate() {
            let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(live) = slot.live.take() {
                self.del_until_done(rng, live.net, &Self::attachment(&live.cid, &live.netns, i))?;
            }
            slot.ns = None;
        }
        for net in self.nets() {
            self.gc(net, rng)?;
        }
        Ok(())
    }

    fn fail(&self, step: usize, what: String) -> String {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
        format!(
            "chaos failed at step {step} (seed {seed}; replay: make chaos SEED={seed} STEPS={steps}):\n  {what}\nlast operations:\n{log}",
            seed = self.opts.seed,
            steps = self.opts.steps
        )
    }
}

/// Runs the chaos test; `Err` describes the first broken invariant with the
/// seed and the operations that led to it.
pub fn run(opts: &Options) -> Result<Report, String> {
    let start = Instant::now();
    let lab = Lab::new(opts.clone());
    let mut rng = Rng::new(opts.seed);
    let nets = lab.nets();
    for step in 1..=opts.steps {
        let mut line = format!("step {step}:");
        let roll = rng.below(100);
        let outcome = if roll < 5 {
            let net = nets[rng.below(nets.len() as u64) as usize];
            let _ = write!(line, " GC {}", net.name());
            lab.note(line.clone());
            lab.gc(net, &mut rng)
        } else if roll < 7 {
            line += " DEL all + GC";
            lab.note(line.clone());
            lab.del_all(&mut rng)
        } else {
            let n = 1 + rng.below(opts.parallel as u64) as usize;
            let mut free: Vec<usize> = (0..opts.slots).collect();
            let mut batch = Vec::new();
            for _ in 0..n.min(free.len()) {
                let i = free.swap_remove(rng.below(free.len() as u64) as usize);
                let live = lab.slots[i].lock().unwrap_or_else(|p| p.into_inner()).live.is_some();
                let op = if live {
                    match rng.below(10) {
                        0..=4 => Op::Check,
                        5..=7 => Op::Del,
                        _ => Op::DelGone,
                    }
                } else {
                    Op::Add(nets[rng.below(nets.len() as u64) as usize])
                };
                let _ = write!(line, " {op:?}@{i}");
                batch.push((i, op, rng.next_u64()));
            }
            lab.note(line.clone());
            let lab = &lab;
            let results: Vec<Result<(), String>> = std::thread::scope(|s| {
                let handles: Vec<_> = batch.iter().map(|&(i, op, seed)| s.spawn(move || lab.op(i, op, seed))).collect();
                handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("operation panicked".into()))).collect()
            });
            results.into_iter().collect()
        };
        if opts.verbose {
            eprintln!("{line}");
        }
        outcome.and_then(|()| lab.verify()).map_err(|e| lab.fail(step, e))?;
    }
    lab.note("final: DEL all + GC".into());
    lab.del_all(&mut rng).and_then(|()| lab.verify()).map_err(|e| lab.fail(opts.steps + 1, e))?;
    let mut report = lab.report.lock().unwrap_or_else(|p| p.into_inner()).clone();
    report.steps = opts.steps;
    report.elapsed = start.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_and_rng() {
        assert!(ip_in("10.201.0.0/27", "10.201.0.30".parse().unwrap()));
        assert!(!ip_in("10.201.0.0/27", "10.201.0.31".parse().unwrap()), "broadcast");
        assert!(!ip_in("10.201.0.0/27", "10.201.0.0".parse().unwrap()), "network");
        assert!(!ip_in("10.201.0.0/27", "10.201.0.32".parse().unwrap()));
        assert!(ip_in("fd00:c9:1::/120", "fd00:c9:1::ff".parse().unwrap()));
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert_eq!(
            (0..10).map(|_| a.next_u64()).collect::<Vec<_>>(),
            (0..10).map(|_| b.next_u64()).collect::<Vec<_>>()
        );
    }
}
