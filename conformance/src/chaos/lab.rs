//! The chaos run's world: a host namespace with a macvlan master, four
//! networks (two sharing one Linux bridge and subnet, macvlan, ptp), container slots,
//! and what each operation does to them, as a runtime does it.

use super::exec::{ChaosExec, KillPlan};
use super::generator::{Op, Rng};
use super::net::Net;
use super::{Options, Report};
use crate::fixture::Host;
use crate::netns::TestNs;
use runtime::{Attachment, GcAttachment, NetConfList, Runtime};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running container.
#[derive(Debug, Clone)]
pub(super) struct Live {
    pub(super) net: Net,
    pub(super) cid: String,
    pub(super) netns: String,
    pub(super) ips: BTreeSet<IpAddr>,
}

/// One container slot.
#[derive(Debug, Default)]
pub(super) struct Slot {
    pub(super) ns: Option<TestNs>,
    pub(super) live: Option<Live>,
    pub(super) generation: u32,
}

/// The run's world.
pub(super) struct Lab {
    pub(super) opts: Options,
    pub(super) host: Host,
    pub(super) netns: Arc<std::fs::File>,
    pub(super) runtime: Runtime,
    pub(super) lists: BTreeMap<Net, NetConfList>,
    pub(super) slots: Vec<Mutex<Slot>>,
    pub(super) report: Mutex<Report>,
    pub(super) log: Mutex<Vec<String>>,
}

impl Lab {
    /// Makes the host namespace, the networks and a private copy of the
    /// plugins.
    pub(super) fn new(opts: Options) -> Lab {
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
            json!({"type": "host-local", "dataDir": host.ipam_dir(), "ranges": net.ranges(),
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
        let shared = vec![json!({
            "type": "bridge", "bridge": "chaosbr0", "isGateway": true, "ipMasq": true, "ipam": ipam(Net::Shared)
        })];
        let mut nets = vec![(Net::Bridge, bridge_plugins), (Net::Shared, shared)];
        if opts.macvlan {
            nets.push((
                Net::Macvlan,
                vec![json!({"type": "macvlan", "master": "chaosm0", "mode": "bridge",
                                                 "ipam": ipam(Net::Macvlan)})],
            ));
        }
        if opts.ptp {
            nets.push((Net::Ptp, vec![json!({"type": "ptp", "ipMasq": true, "ipam": ipam(Net::Ptp)})]));
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
        for name in ["bridge", "host-local", "portmap", "macvlan", "ptp"] {
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

    pub(super) fn note(&self, line: String) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.push(line);
        let excess = log.len().saturating_sub(40);
        log.drain(..excess);
    }

    pub(super) fn count(&self, what: &'static str) {
        *self.report.lock().unwrap_or_else(|p| p.into_inner()).ops.entry(what).or_default() += 1;
    }

    /// A runtime whose plugins run in the host namespace, with `plan`.
    pub(super) fn runtime_with(&self, plan: Option<KillPlan>) -> (Runtime, Arc<ChaosExec>) {
        let exec = Arc::new(ChaosExec::new(self.netns.clone(), plan));
        (self.runtime.clone().with_exec(exec.clone()), exec)
    }

    pub(super) fn plan(&self, rng: &mut Rng, net: Option<Net>) -> Option<KillPlan> {
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

    pub(super) fn landed(&self, exec: &ChaosExec) -> bool {
        let landed = exec.landed.load(Ordering::SeqCst);
        if landed {
            self.report.lock().unwrap_or_else(|p| p.into_inner()).kills_landed += 1;
        }
        landed
    }

    pub(super) fn attachment(live_cid: &str, netns: &str, slot: usize) -> Attachment {
        Attachment::new(live_cid, netns, "eth0").with_capability(
            "portMappings",
            json!([{"hostPort": 30000 + slot, "containerPort": 80, "protocol": "tcp"}]),
        )
    }

    /// DEL until it succeeds, as a runtime retries it; the first tries may
    /// be killed too.
    pub(super) fn del_until_done(&self, rng: &mut Rng, net: Net, att: &Attachment) -> Result<(), String> {
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
    pub(super) fn op(&self, i: usize, op: Op, seed: u64) -> Result<(), String> {
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
            Op::AddRacingDel(net) => self.add_racing_del(&mut slot, i, net, &mut rng),
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

    /// ADD of a new container on slot `i` by a runtime that dies 0–4 ms
    /// later (the plugin then running goes on, no further one starts), and
    /// the DEL of the same attachment that the restarted runtime sends at
    /// once. Whatever the interleaving, the attachment must then be whole
    /// (the DEL ran first and the ADD's plugin finished after it) or gone:
    /// the addresses in the container are exactly those its store leases
    /// to it, never one without the other. A whole one is what the
    /// runtime's next GC removes; the lab removes it the same way at once.
    fn add_racing_del(&self, slot: &mut Slot, i: usize, net: Net, rng: &mut Rng) -> Result<(), String> {
        slot.generation += 1;
        if slot.ns.is_none() {
            slot.ns = Some(TestNs::new("chaos-c"));
        }
        let ns = slot.ns.as_ref().expect("made above");
        let (ns_name, ns_path) = (ns.name.clone(), ns.path());
        let cid = format!("s{i}g{}", slot.generation);
        let att = Self::attachment(&cid, &ns_path, i);
        let delay = Duration::from_micros(rng.below(4000));
        let (dying, dying_exec) = self.runtime_with(None);
        let (restarted, _) = self.runtime_with(None);
        self.count("add-racing-del");
        let list = &self.lists[&net];
        let (added, deleted) = std::thread::scope(|s| {
            let add = s.spawn(|| dying.add(list, &att));
            std::thread::sleep(delay);
            dying_exec.stop();
            let deleted = restarted.del(list, &att);
            (add.join().unwrap_or_else(|_| Err(runtime::Error::io("ADD panicked"))), deleted)
        });
        if let Err(e) = deleted {
            return Err(format!("DEL racing ADD of {cid} on {} failed: {e}", net.name()));
        }
        let outcome = match added {
            Ok(_) => "exited 0".to_string(),
            Err(e) => format!("cut short: {}", e.msg),
        };
        let leased = leased_to(&self.host.ipam_dir().join(net.name()), &cid);
        let held = eth0_addresses(&ns_name)?;
        self.note(format!("  ADD {cid} {outcome}; after the DEL: leased {leased:?}, in the container {held:?}"));
        if leased != held {
            return Err(format!(
                "after a DEL racing its ADD, {cid} holds {held:?} in its namespace while the store leases it {leased:?}"
            ));
        }
        if !leased.is_empty() {
            // The ADD's plugin finished after the DEL: the runtime's GC
            // (it knows nothing of this attachment) removes it.
            self.del_until_done(rng, net, &att)?;
        }
        Ok(())
    }

    /// GC of one network with the running containers as the valid list.
    pub(super) fn gc(&self, net: Net, rng: &mut Rng) -> Result<(), String> {
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

    pub(super) fn lives(&self) -> Vec<(usize, Live)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.lock().unwrap_or_else(|p| p.into_inner()).live.clone().map(|l| (i, l)))
            .collect()
    }

    pub(super) fn nets(&self) -> Vec<Net> {
        self.lists.keys().copied().collect()
    }

    /// DEL of every running container, then GC of every network with an
    /// empty valid list.
    pub(super) fn del_all(&self, rng: &mut Rng) -> Result<(), String> {
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

    pub(super) fn fail(&self, step: usize, what: String) -> String {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
        format!(
            "chaos failed at step {step} (seed {seed}; replay: make chaos SEED={seed} STEPS={steps}):\n  {what}\nlast operations:\n{log}",
            seed = self.opts.seed,
            steps = self.opts.steps
        )
    }
}

/// The global addresses on `eth0` in the namespace called `ns`.
pub(super) fn eth0_addresses(ns: &str) -> Result<BTreeSet<IpAddr>, String> {
    let out = Command::new("ip")
        .args(["-n", ns, "-j", "addr", "show", "dev", "eth0", "scope", "global"])
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
    Ok(have)
}

/// The addresses `network`'s store leases to container `cid`.
pub(super) fn leased_to(store: &std::path::Path, cid: &str) -> BTreeSet<IpAddr> {
    std::fs::read_dir(store)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|c| c.lines().next() == Some(cid)))
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<IpAddr>().ok()))
        .collect()
}
