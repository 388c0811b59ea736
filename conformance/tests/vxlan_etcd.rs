//! vxlan on etcd: simulated hosts run `vxlan agent`, which takes each
//! host's subnet from a real etcd (Debian's `etcd-server`) and programs
//! the others as peers; the containers they attach reach each other.
//!
//! The lab is the one of `vxlan.rs`: a "lab" namespace holding the
//! underlay bridge `ul0`, and per host a namespace whose leg `ul` holds
//! `192.168.77.<n>/24`. Each etcd member runs in a namespace of its own
//! on the same underlay (`192.168.77.<250 + m>`), with its data dir in
//! the test's temp dir, and is killed by PID when the test ends; so are
//! the agents. Every test uses its own key prefix, and checks that a key
//! outside it is never touched.

use conformance::{bin_dir, run_plugin, witness, PluginRun, TestNs};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

const NET: &str = "ovle";
const TTL: u64 = 2;
const VNI: u32 = 1;

fn underlay_ip(n: usize) -> String {
    format!("192.168.77.{n}")
}

fn member_ip(m: usize) -> String {
    format!("192.168.77.{}", 250 + m)
}

/// Waits until `f` holds, up to `limit`; returns whether it did.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill(child: &mut Child, sig: i32) {
    // SAFETY: a signal to a child this test started (by its PID).
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// One etcd member in its own namespace on the underlay.
struct Member {
    ns: TestNs,
    child: Option<Child>,
    args: Vec<String>,
    log: PathBuf,
}

impl Member {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns.name, "etcd"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting etcd (Debian package etcd-server)");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c, libc::SIGKILL);
            let _ = c.wait();
        }
    }
}

/// Plugs `ns` into the underlay bridge with `ip` on its leg `ul`.
fn leg(lab: &TestNs, ns: &TestNs, name: &str, ip: &str) {
    lab.ok(&["ip", "link", "add", name, "type", "veth", "peer", "name", "ul", "netns", &ns.name]);
    lab.ok(&["ip", "link", "set", name, "master", "ul0", "up"]);
    ns.ok(&["ip", "link", "set", "lo", "up"]);
    ns.ok(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "ul"]);
    ns.ok(&["ip", "link", "set", "ul", "up"]);
}

/// The lab: underlay, hosts, etcd members, agents.
struct Lab {
    lab: TestNs,
    hosts: Vec<TestNs>,
    members: Vec<Member>,
    agents: Vec<Option<Child>>,
    dir: PathBuf,
    prefix: String,
    tls: bool,
    extra: Value,
}

impl Lab {
    /// `n` hosts and an etcd cluster of `members` (plain http).
    fn new(n: usize, members: usize) -> Lab {
        Lab::build(n, members, false, json!({}))
    }

    fn build(n: usize, members: usize, tls: bool, extra: Value) -> Lab {
        let lab = TestNs::new("vxelab");
        lab.ok(&["ip", "link", "add", "ul0", "type", "bridge"]);
        lab.ok(&["ip", "link", "set", "ul0", "up"]);
        let id = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("vxe-test-{}-{id}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut hosts = Vec::new();
        for i in 1..=n {
            let h = TestNs::new(&format!("vxeh{i}"));
            leg(&lab, &h, &format!("h{i}"), &underlay_ip(i));
            hosts.push(h);
        }
        let mut lab_ = Lab {
            lab,
            hosts,
            members: Vec::new(),
            agents: (0..n).map(|_| None).collect(),
            dir: dir.clone(),
            prefix: format!("/cnirs-test-{}-{id}", std::process::id()),
            tls,
            extra,
        };
        if tls {
            lab_.make_certs(members);
        }
        let scheme = if tls { "https" } else { "http" };
        let cluster: Vec<String> = (0..members).map(|m| format!("m{m}=http://{}:2380", member_ip(m))).collect();
        for m in 0..members {
            let ns = TestNs::new(&format!("vxee{m}"));
            leg(&lab_.lab, &ns, &format!("e{m}"), &member_ip(m));
            let ip = member_ip(m);
            let mut args: Vec<String> = [
                "--name",
                &format!("m{m}"),
                "--data-dir",
                dir.join(format!("etcd-m{m}")).to_str().unwrap(),
                "--listen-client-urls",
                &format!("{scheme}://{ip}:2379"),
                "--advertise-client-urls",
                &format!("{scheme}://{ip}:2379"),
                "--listen-peer-urls",
                &format!("http://{ip}:2380"),
                "--initial-advertise-peer-urls",
                &format!("http://{ip}:2380"),
                "--initial-cluster",
                &cluster.join(","),
                "--initial-cluster-token",
                &lab_.prefix,
                "--initial-cluster-state",
                "new",
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if tls {
                for (flag, f) in
                    [("--cert-file", "server.pem"), ("--key-file", "server-key.pem"), ("--trusted-ca-file", "ca.pem")]
                {
                    args.push(flag.into());
                    args.push(dir.join(f).display().to_string());
                }
                args.push("--client-cert-auth".into());
            }
            let mut member = Member { ns, child: None, args, log: dir.join(format!("etcd-m{m}.log")) };
            member.start();
            lab_.members.push(member);
        }
        assert!(
            wait_for(Duration::from_secs(30), || lab_.etcdctl_on(0, &["endpoint", "health"]).status.success()),
            "etcd did not come up: {}",
            std::fs::read_to_string(dir.join("etcd-m0.log")).unwrap_or_default()
        );
        lab_
    }

    /// A CA, a server certificate for every member's address and a client
    /// certificate, made with openssl now.
    fn make_certs(&self, members: usize) {
        let d = &self.dir;
        let ossl = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(d).output().expect("openssl");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        ossl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=cnirs-test-ca",
        ]);
        let sans: Vec<String> = (0..members).map(|m| format!("IP:{}", member_ip(m))).collect();
        std::fs::write(d.join("server.ext"), format!("subjectAltName={}\n", sans.join(","))).unwrap();
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, ext) in [("server", "server.ext"), ("client", "client.ext")] {
            ossl(&[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}-key.pem"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ]);
            ossl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                ext,
            ]);
        }
    }

    fn endpoints(&self) -> Vec<String> {
        let scheme = if self.tls { "https" } else { "http" };
        (0..self.members.len().max(1)).map(|m| format!("{scheme}://{}:2379", member_ip(m))).collect()
    }

    /// `etcdctl` in member `m`'s namespace, against every live member.
    fn etcdctl_on(&self, m: usize, args: &[&str]) -> std::process::Output {
        let eps = self.endpoints().join(",");
        let mut argv = vec![
            "etcdctl".to_string(),
            format!("--endpoints={eps}"),
            "--dial-timeout=2s".into(),
            "--command-timeout=3s".into(),
        ];
        if self.tls {
            for (flag, f) in [("--cacert", "ca.pem"), ("--cert", "client.pem"), ("--key", "client-key.pem")] {
                argv.push(format!("{flag}={}", self.dir.join(f).display()));
            }
        }
        argv.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        let ns = if m < self.members.len() { &self.members[m].ns } else { &self.hosts[0] };
        ns.exec(&refs)
    }

    fn etcdctl(&self, args: &[&str]) -> String {
        let m = self.members.iter().position(|m| m.child.is_some()).unwrap_or(0);
        let out = self.etcdctl_on(m, args);
        assert!(out.status.success(), "etcdctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The keys under `prefix` with their lease (hex) and value.
    fn keys(&self, prefix: &str) -> Vec<(String, String, String)> {
        let v: Value = serde_json::from_str(&self.etcdctl(&["get", "--prefix", prefix, "-w", "json"])).unwrap();
        let b64 = |s: &str| {
            let out = Command::new("base64").arg("-d").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
            use std::io::Write;
            out.stdin.as_ref().unwrap().write_all(s.as_bytes()).unwrap();
            String::from_utf8_lossy(&out.wait_with_output().unwrap().stdout).into_owned()
        };
        v["kvs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|kv| {
                        (
                            b64(kv["key"].as_str().unwrap()),
                            format!("{:x}", kv["lease"].as_i64().unwrap_or(0)),
                            b64(kv["value"].as_str().unwrap_or("")),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn subnets_prefix(&self) -> String {
        format!("{}/{NET}/subnets/", self.prefix)
    }

    fn host(&self, n: usize) -> &TestNs {
        &self.hosts[n - 1]
    }

    /// The config of host `n`.
    fn conf(&self, n: usize) -> Value {
        let mut etcd = json!({"endpoints": self.endpoints(), "prefix": self.prefix, "leaseTTL": TTL});
        if self.tls {
            etcd["caFile"] = self.dir.join("ca.pem").display().to_string().into();
            etcd["certFile"] = self.dir.join("client.pem").display().to_string().into();
            etcd["keyFile"] = self.dir.join("client-key.pem").display().to_string().into();
        }
        if let Some(ex) = self.extra.get("example") {
            // The example conflist's vxlan entry, pointed at this lab.
            let mut c = ex["plugins"][0].clone();
            c["name"] = NET.into();
            c["cniVersion"] = ex["cniVersion"].clone();
            for k in ["endpoints", "caFile", "certFile", "keyFile", "prefix"] {
                c["etcd"][k] = etcd[k].clone();
            }
            c["etcd"]["leaseTTL"] = TTL.into();
            c["underlayInterface"] = "ul".into();
            c["stateDir"] = self.dir.join(format!("state-root-h{n}")).display().to_string().into();
            c["ipam"]["dataDir"] = self.dir.join(format!("ipam-h{n}")).display().to_string().into();
            return c;
        }
        let mut c = json!({
            "cniVersion": "1.0.0",
            "name": NET,
            "type": "vxlan",
            "vni": VNI,
            "underlayInterface": "ul",
            "clusterCIDR": "10.244.0.0/16",
            "subnetLen": 24,
            "stateDir": self.dir,
            "etcd": etcd,
            "ipam": {"type": "host-local", "dataDir": self.dir.join(format!("ipam-h{n}"))},
        });
        c["stateDir"] = self.dir.join(format!("state-root-h{n}")).display().to_string().into();
        for (k, v) in self.extra.as_object().unwrap() {
            match k.strip_prefix("etcd.") {
                Some(ek) => c["etcd"][ek] = v.clone(),
                None => c[k] = v.clone(),
            }
        }
        c
    }

    fn state(&self, n: usize) -> Value {
        let p = self.dir.join(format!("state-root-h{n}")).join(NET).join("state.json");
        std::fs::read(&p).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null)
    }

    fn conf_file(&self, n: usize) -> PathBuf {
        let f = self.dir.join(format!("h{n}.conf"));
        std::fs::write(&f, self.conf(n).to_string()).unwrap();
        f
    }

    /// Starts the agent of host `n`.
    fn start_agent(&mut self, n: usize) {
        let c = self.conf(n);
        self.start_agent_with(n, &c);
    }

    /// Starts the agent of host `n` with config `c`.
    fn start_agent_with(&mut self, n: usize, c: &Value) {
        let f = self.dir.join(format!("h{n}-agent.conf"));
        std::fs::write(&f, c.to_string()).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.agent_log(n)).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.hosts[n - 1].name])
            .arg(bin_dir().join("vxlan"))
            .args(["agent", f.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agents[n - 1] = Some(child);
    }

    fn agent_log(&self, n: usize) -> PathBuf {
        self.dir.join(format!("agent-h{n}.log"))
    }

    fn log_of(&self, n: usize) -> String {
        std::fs::read_to_string(self.agent_log(n)).unwrap_or_default()
    }

    /// Sends `sig` to host `n`'s agent and waits for it to end.
    fn stop_agent(&mut self, n: usize, sig: i32) -> Option<i32> {
        let mut c = self.agents[n - 1].take()?;
        kill(&mut c, sig);
        c.wait().ok().and_then(|s| s.code())
    }

    /// Waits until host `n`'s agent holds a subnet; returns it.
    fn wait_running(&self, n: usize) -> String {
        let ok = wait_for(Duration::from_secs(20), || self.state(n)["status"] == "running");
        assert!(ok, "agent of host {n} not running: {}\n{}", self.state(n), self.log_of(n));
        self.state(n)["subnets"][0].as_str().unwrap().to_string()
    }

    /// The underlay addresses of the peers programmed on host `n` (FDB).
    fn fdb_peers(&self, n: usize) -> BTreeSet<String> {
        let out = self.host(n).exec(&["bridge", "-j", "fdb", "show", "dev", &format!("vxlan.{VNI}")]);
        let s = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(if s.trim().is_empty() { "[]" } else { &s }).unwrap_or(json!([]));
        v.as_array().unwrap().iter().filter_map(|e| e["dst"].as_str().map(String::from)).collect()
    }

    /// The routes through the VTEP on host `n`: (dst, gateway).
    fn vtep_routes(&self, n: usize) -> BTreeSet<String> {
        let dev = format!("vxlan.{VNI}");
        let Some(_) = witness::link(self.host(n), &dev) else { return BTreeSet::new() };
        witness::ip(self.host(n), &["-4", "route", "show", "dev", &dev])
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["gateway"].is_string())
            .map(|r| format!("{} via {}", r["dst"].as_str().unwrap(), r["gateway"].as_str().unwrap()))
            .collect()
    }

    fn run(&self, n: usize, cmd: &str, ctr: &str, cid: &str, conf: &Value) -> PluginRun {
        let path = bin_dir().display().to_string();
        let env = [
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", cid),
            ("CNI_NETNS", ctr),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", path.as_str()),
        ];
        run_plugin(Some(&self.host(n).name), "vxlan", &env, &conf.to_string())
    }

    fn status(&self, n: usize) -> (i32, Value) {
        let f = self.conf_file(n);
        let out = self.host(n).exec(&[bin_dir().join("vxlan").to_str().unwrap(), "status", f.to_str().unwrap()]);
        (out.status.code().unwrap_or(-1), serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in 1..=self.agents.len() {
            self.stop_agent(n, libc::SIGKILL);
        }
        for m in &mut self.members {
            m.kill();
        }
        if std::thread::panicking() || std::env::var_os("VXE_SHOW_LOGS").is_some() {
            for n in 1..=self.agents.len() {
                eprintln!("--- agent of host {n} ---\n{}", self.log_of(n));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = &self.lab;
    }
}

/// A container attached on one host.
struct Ctr {
    ns: TestNs,
    cid: String,
    add: Value,
}

impl Ctr {
    fn ip(&self) -> String {
        self.add["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_string()
    }
}

fn attach(lab: &Lab, n: usize) -> Ctr {
    let id = NEXT.fetch_add(1, Ordering::SeqCst);
    let ns = TestNs::new(&format!("vxec{n}"));
    let cid = format!("vxe-{}-{id}", std::process::id());
    let r = lab.run(n, "ADD", &ns.path(), &cid, &lab.conf(n));
    assert_eq!(r.code, 0, "ADD on host {n}: {r:?}\n{}", lab.log_of(n));
    let add = r.json();
    Ctr { ns, cid, add }
}

fn reaches(from: &TestNs, addr: &str) -> bool {
    (0..3).any(|_| from.ping(addr))
}

fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

/// Waits until host `n` has exactly the peers `want` (underlay addresses).
fn wait_peers(lab: &Lab, n: usize, want: &[usize], limit: Duration) -> bool {
    let want: BTreeSet<String> = want.iter().map(|&i| underlay_ip(i)).collect();
    wait_for(limit, || lab.fdb_peers(n) == want)
}

fn others(n: usize, all: usize) -> Vec<usize> {
    (1..=all).filter(|&i| i != n).collect()
}

#[test]
fn hosts_join_reach_each_other_and_leave_no_key() {
    const N: usize = 16;
    let mut lab = Lab::new(N, 1);
    let foreign = format!("{}-other/keep", lab.prefix);
    lab.etcdctl(&["put", &foreign, "untouched"]);
    for n in 1..=N {
        lab.start_agent(n);
    }
    let subnets: Vec<String> = (1..=N).map(|n| lab.wait_running(n)).collect();
    let distinct: BTreeSet<&String> = subnets.iter().collect();
    assert_eq!(distinct.len(), N, "pairwise distinct subnets: {subnets:?}");
    for n in 1..=N {
        assert!(wait_peers(&lab, n, &others(n, N), Duration::from_secs(10)), "host {n}: {:?}", lab.fdb_peers(n));
        assert_eq!(lab.vtep_routes(n).len(), N - 1, "host {n}: {:?}", lab.vtep_routes(n));
    }
    let keys = lab.keys(&lab.subnets_prefix());
    assert_eq!(keys.len(), N, "{keys:?}");
    let leases: BTreeSet<&String> = keys.iter().map(|(_, l, _)| l).filter(|l| *l != "0").collect();
    assert_eq!(leases.len(), N, "one live lease per host: {keys:?}");
    let ctrs: Vec<Ctr> = (1..=N).map(|n| attach(&lab, n)).collect();
    for (i, c) in ctrs.iter().enumerate() {
        let net: ipnetwork_like::Net = subnets[i].parse().unwrap();
        assert!(net.contains(&c.ip()), "host {}'s container {} is in its subnet {}", i + 1, c.ip(), subnets[i]);
    }
    for (i, a) in ctrs.iter().enumerate() {
        for (j, b) in ctrs.iter().enumerate() {
            if i != j {
                assert!(reaches(&a.ns, &b.ip()), "host {} -> host {}", i + 1, j + 1);
            }
        }
    }
    // CHECK passes with the agent running.
    let c = &ctrs[0];
    let r = lab.run(1, "CHECK", &c.ns.path(), &c.cid, &with_prev(&lab.conf(1), &c.add));
    assert_eq!(r.code, 0, "{r:?}");
    let (code, st) = lab.status(1);
    assert_eq!(code, 0, "{st}");
    assert_eq!(st["peers"], N - 1);
    assert_eq!(st["healthy"], true);

    // One host stops: the others drop it at once (its lease is revoked).
    assert_eq!(lab.stop_agent(N, libc::SIGTERM), Some(0), "{}", lab.log_of(N));
    for n in 1..N {
        assert!(wait_peers(&lab, n, &others(n, N - 1), Duration::from_secs(2)), "host {n} dropped host {N}");
    }
    assert!(lab.log_of(1).contains(&format!("leave: host {}", underlay_ip(N))), "{}", lab.log_of(1));
    // ADD on the stopped host fails and names the agent.
    let ns = TestNs::new("vxecx");
    let r = lab.run(N, "ADD", &ns.path(), "vxe-stopped", &lab.conf(N));
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("vxlan agent") && r.stdout.contains("stopped"), "{r:?}");
    // DEL works with the agent gone.
    let c = &ctrs[N - 1];
    let r = lab.run(N, "DEL", &c.ns.path(), &c.cid, &with_prev(&lab.conf(N), &c.add));
    assert_eq!(r.code, 0, "{r:?}");

    for n in 1..N {
        assert_eq!(lab.stop_agent(n, libc::SIGTERM), Some(0), "{}", lab.log_of(n));
    }
    assert_eq!(lab.keys(&lab.subnets_prefix()), vec![], "no key of the agents is left");
    let f = lab.keys(&foreign);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].2, "untouched");
}

/// A tiny IPv4 CIDR check, so the test needs no extra crate.
mod ipnetwork_like {
    pub struct Net(u32, u32);
    impl std::str::FromStr for Net {
        type Err = ();
        fn from_str(s: &str) -> Result<Net, ()> {
            let (ip, len) = s.split_once('/').ok_or(())?;
            let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| ())?;
            let len: u32 = len.parse().map_err(|_| ())?;
            Ok(Net(u32::from(ip), if len == 0 { 0 } else { u32::MAX << (32 - len) }))
        }
    }
    impl Net {
        pub fn contains(&self, ip: &str) -> bool {
            ip.parse::<std::net::Ipv4Addr>().is_ok_and(|a| u32::from(a) & self.1 == self.0)
        }
    }
}

#[test]
fn killed_agent_is_dropped_after_its_ttl_and_a_quick_restart_changes_nothing() {
    let mut lab = Lab::new(3, 1);
    for n in 1..=3 {
        lab.start_agent(n);
    }
    for n in 1..=3 {
        lab.wait_running(n);
    }
    for n in 1..=3 {
        assert!(wait_peers(&lab, n, &others(n, 3), Duration::from_secs(10)));
    }
    let ctrs: Vec<Ctr> = (1..=3).map(|n| attach(&lab, n)).collect();

    // Restarted before its lease expired: same subnet, same lease, no entry changes anywhere.
    let before: Vec<_> = (1..=3).map(|n| (lab.fdb_peers(n), lab.vtep_routes(n))).collect();
    let st2 = lab.state(2);
    lab.stop_agent(2, libc::SIGKILL);
    lab.start_agent(2);
    assert!(wait_for(Duration::from_secs(10), || {
        let s = lab.state(2);
        s["status"] == "running" && s["pid"] != st2["pid"]
    }));
    let st2b = lab.state(2);
    assert_eq!(st2b["subnets"], st2["subnets"], "same subnet back");
    assert_eq!(st2b["lease"], st2["lease"], "the live lease was adopted");
    let end = Instant::now() + Duration::from_secs(TTL + 1);
    while Instant::now() < end {
        for n in 1..=3 {
            assert_eq!((lab.fdb_peers(n), lab.vtep_routes(n)), before[n - 1], "host {n}'s entries changed");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(reaches(&ctrs[1].ns, &ctrs[0].ip()), "host 2's container still works");

    // SIGKILLed: the others drop it within TTL + 2 s.
    lab.stop_agent(3, libc::SIGKILL);
    let t0 = Instant::now();
    for n in 1..=2 {
        assert!(
            wait_peers(
                &lab,
                n,
                &others(n, 2),
                Duration::from_secs(TTL + 2) - t0.elapsed().min(Duration::from_secs(TTL + 2))
            ),
            "host {n} still has host 3 after {:?}: {:?}",
            t0.elapsed(),
            lab.fdb_peers(n)
        );
    }
    assert!(!lab.vtep_routes(1).iter().any(|r| r.starts_with(lab.state(3)["subnets"][0].as_str().unwrap())));
    // CHECK on host 3 says its agent is gone.
    let c = &ctrs[2];
    let r = lab.run(3, "CHECK", &c.ns.path(), &c.cid, &with_prev(&lab.conf(3), &c.add));
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("not running"), "{r:?}");
}

impl Lab {
    /// Whether host `n`'s agent process still runs.
    fn agent_alive(&mut self, n: usize) -> bool {
        self.agents[n - 1].as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// `etcdctl put key` with the value from a file (for large values).
    fn put_file(&self, key: &str, value: &[u8]) {
        let f = self.dir.join("value.bin");
        std::fs::write(&f, value).unwrap();
        let m = self.members.iter().position(|m| m.child.is_some()).unwrap_or(0);
        let cmd = format!(
            "etcdctl --endpoints={} --command-timeout=5s put '{key}' < '{}'",
            self.endpoints().join(","),
            f.display()
        );
        self.members[m].ns.ok(&["sh", "-c", &cmd]);
    }

    fn up(&mut self, n: usize) -> (String, Ctr) {
        self.start_agent(n);
        let s = self.wait_running(n);
        let c = attach(self, n);
        (s, c)
    }
}

#[test]
fn hostile_records_are_skipped_and_never_routed() {
    let mut lab = Lab::new(2, 1);
    let (s1, c1) = lab.up(1);
    let (_, c2) = lab.up(2);
    assert!(wait_peers(&lab, 1, &[2], Duration::from_secs(10)) && wait_peers(&lab, 2, &[1], Duration::from_secs(10)));
    let sp = lab.subnets_prefix();
    lab.etcdctl(&["put", &format!("{sp}10.244.250.0-24"), "not json"]);
    lab.etcdctl(&["put", &format!("{sp}10.245.1.0-24"), r#"{"underlayIP":"192.168.77.9","subnet":["10.245.1.0/24"]}"#]);
    lab.etcdctl(&["put", &format!("{sp}10.244.251.0-24"), r#"{"underlayIP":"192.168.77.9","subnet":["0.0.0.0/0"]}"#]);
    let own = format!(r#"{{"underlayIP":"192.168.77.9","subnet":["{s1}"]}}"#);
    lab.etcdctl(&["put", &format!("{sp}10.244.252.0-24"), &own]);
    // An impersonation of host 1 (its underlay address, another subnet).
    lab.etcdctl(&["put", &format!("{sp}10.244.0.0-24"), r#"{"underlayIP":"192.168.77.1","subnet":["10.244.0.0/24"]}"#]);
    lab.etcdctl(&["put", &format!("{sp}junk"), "{}"]);
    lab.put_file(&format!("{sp}10.244.254.0-24"), &vec![b'x'; 1 << 20]);
    // The last record is a good one: once it is applied, every bad one was read.
    lab.etcdctl(&[
        "put",
        &format!("{sp}10.244.253.0-24"),
        r#"{"underlayIP":"192.168.77.9","subnet":["10.244.253.0/24"]}"#,
    ]);
    let want: BTreeSet<String> = [underlay_ip(2), "192.168.77.9".to_string()].into();
    assert!(wait_for(Duration::from_secs(5), || lab.fdb_peers(1) == want), "{:?}\n{}", lab.fdb_peers(1), lab.log_of(1));
    for n in 1..=2 {
        assert!(lab.agent_alive(n), "agent {n} survived: {}", lab.log_of(n));
        for r in lab.vtep_routes(n) {
            assert!(r.starts_with("10.244.") && r.contains("/24 via 10.244."), "host {n}: {r}");
            assert!(
                !r.starts_with("10.244.250.") && !r.starts_with("10.244.251.") && !r.starts_with("10.244.254."),
                "{r}"
            );
        }
    }
    assert_eq!(lab.vtep_routes(1).len(), 2, "host 2 and the good record: {:?}", lab.vtep_routes(1));
    let log = lab.log_of(1);
    for k in ["10.244.250.0-24", "10.245.1.0-24", "10.244.251.0-24", "10.244.252.0-24", "junk", "10.244.254.0-24"] {
        assert!(log.contains(&format!("skipping {sp}{k}")), "{k} not skipped with a warning:\n{log}");
    }
    assert!(log.contains(&format!("skipping {sp}10.244.0.0-24")), "the impersonation of host 1 is skipped\n{log}");
    // Host 2 believes host 1's own (older) record, not the impersonation.
    assert!(lab.fdb_peers(2).contains(&underlay_ip(1)));
    assert!(!lab.vtep_routes(2).iter().any(|r| r.starts_with("10.244.0.0/24")), "{:?}", lab.vtep_routes(2));
    assert!(reaches(&c1.ns, &c2.ip()) && reaches(&c2.ns, &c1.ip()));
}

#[test]
fn an_exhausted_cluster_cidr_is_named_with_its_host_count() {
    let mut lab = Lab::build(3, 1, false, json!({"clusterCIDR": "10.244.0.0/23"}));
    lab.start_agent(1);
    lab.start_agent(2);
    lab.wait_running(1);
    lab.wait_running(2);
    lab.start_agent(3);
    assert!(wait_for(Duration::from_secs(10), || lab.state(3)["message"]
        .as_str()
        .is_some_and(|m| m.contains("exhausted"))));
    let msg = lab.state(3)["message"].as_str().unwrap().to_string();
    assert!(msg.contains("10.244.0.0/23") && msg.contains("2 hosts"), "{msg}");
    assert_eq!(lab.state(3)["status"], "starting");
    assert!(lab.log_of(3).contains("exhausted"), "{}", lab.log_of(3));
    let ns = TestNs::new("vxecx");
    let r = lab.run(3, "ADD", &ns.path(), "vxe-full", &lab.conf(3));
    assert_eq!(r.code, 1, "{r:?}");
    let e: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(e["code"], 11, "try again later: {e}");
    assert!(e["msg"].as_str().unwrap().contains("10.244.0.0/23"), "{e}");
    // One host leaves: the waiting one gets its subnet.
    lab.stop_agent(1, libc::SIGTERM);
    lab.wait_running(3);
    assert!(wait_peers(&lab, 2, &[3], Duration::from_secs(5)));
}

#[test]
fn etcd_down_keeps_the_data_path_and_agents_resync_when_it_returns() {
    let mut lab = Lab::new(3, 1);
    let (s1, c1) = lab.up(1);
    let (s2, c2) = lab.up(2);
    assert!(wait_peers(&lab, 1, &[2], Duration::from_secs(10)));
    lab.members[0].kill();
    assert!(wait_for(Duration::from_secs(10), || lab.state(1)["etcdConnected"] == false), "{}", lab.state(1));
    assert_eq!(lab.state(1)["status"], "running");
    assert!(reaches(&c1.ns, &c2.ip()), "the data path does not need etcd");
    // ADD and DEL on a host with a subnet keep working.
    let c1b = attach(&lab, 1);
    assert!(reaches(&c1b.ns, &c2.ip()));
    let r = lab.run(1, "DEL", &c1b.ns.path(), &c1b.cid, &with_prev(&lab.conf(1), &c1b.add));
    assert_eq!(r.code, 0, "{r:?}");
    // A host joins meanwhile: it waits for etcd.
    lab.start_agent(3);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(lab.state(3)["status"], "starting");
    lab.members[0].start();
    let s3 = lab.wait_running(3);
    for n in 1..=3 {
        assert!(wait_peers(&lab, n, &others(n, 3), Duration::from_secs(10)), "host {n}: {:?}", lab.fdb_peers(n));
    }
    assert!(wait_for(Duration::from_secs(10), || lab.state(1)["etcdConnected"] == true));
    assert_eq!(lab.state(1)["subnets"][0], s1.as_str(), "kept its subnet");
    assert_eq!(lab.state(2)["subnets"][0], s2.as_str());
    assert_ne!(s3, s1);
    let c3 = attach(&lab, 3);
    assert!(reaches(&c1.ns, &c3.ip()) && reaches(&c3.ns, &c2.ip()));
    assert!(lab.log_of(1).contains("etcd reachable again"), "{}", lab.log_of(1));
}

#[test]
fn one_member_of_three_killed_goes_unnoticed() {
    let mut lab = Lab::new(3, 3);
    let (_, c1) = lab.up(1);
    let (_, c2) = lab.up(2);
    lab.members[0].kill();
    let (_, c3) = lab.up(3);
    for n in 1..=3 {
        assert!(wait_peers(&lab, n, &others(n, 3), Duration::from_secs(10)), "host {n}: {:?}", lab.fdb_peers(n));
        assert_eq!(lab.state(n)["status"], "running");
    }
    assert!(reaches(&c1.ns, &c3.ip()) && reaches(&c2.ns, &c3.ip()));
    // Leases are still kept alive through the remaining members.
    std::thread::sleep(Duration::from_secs(TTL + 1));
    assert_eq!(lab.keys(&lab.subnets_prefix()).len(), 3);
    for n in 1..=3 {
        assert_eq!(lab.fdb_peers(n).len(), 2);
    }
}

#[test]
fn a_lease_lost_to_another_host_is_given_up_loudly() {
    let mut lab = Lab::new(2, 1);
    let (s1, c1) = lab.up(1);
    lab.up(2);
    let key = format!("{}{}", lab.subnets_prefix(), s1.replace('/', "-"));
    // Host 1 loses etcd (its packets to the store are dropped) past its TTL.
    let block =
        "table inet vxeblock {\n chain o {\n  type filter hook output priority 0;\n  tcp dport 2379 drop\n }\n}\n";
    let f = lab.dir.join("block.nft");
    std::fs::write(&f, block).unwrap();
    lab.host(1).ok(&["nft", "-f", f.to_str().unwrap()]);
    assert!(
        wait_for(Duration::from_secs(TTL + 5), || lab.keys(&key).is_empty()),
        "host 1's key expired with its lease"
    );
    // Another host takes the subnet meanwhile.
    let other = format!(r#"{{"underlayIP":"192.168.77.99","subnet":["{s1}"]}}"#);
    lab.etcdctl(&["put", &key, &other]);
    lab.host(1).ok(&["nft", "delete", "table", "inet", "vxeblock"]);
    assert!(
        wait_for(Duration::from_secs(20), || lab.state(1)["status"] == "lost"),
        "{}\n{}",
        lab.state(1),
        lab.log_of(1)
    );
    assert!(lab.log_of(1).contains("LOST subnet"), "{}", lab.log_of(1));
    std::thread::sleep(Duration::from_secs(1));
    let k = lab.keys(&key);
    assert_eq!(k.len(), 1);
    assert!(k[0].2.contains("192.168.77.99"), "the agent did not take it back: {k:?}");
    assert_eq!(lab.keys(&lab.subnets_prefix()).len(), 2, "host 1 claims nothing else");
    let ns = TestNs::new("vxecx");
    let r = lab.run(1, "ADD", &ns.path(), "vxe-lost", &lab.conf(1));
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("lost") && r.stdout.contains("vxlan agent"), "{r:?}");
    let r = lab.run(1, "CHECK", &c1.ns.path(), &c1.cid, &with_prev(&lab.conf(1), &c1.add));
    assert_ne!(r.code, 0, "CHECK reports it: {r:?}");
    let (code, st) = lab.status(1);
    assert_eq!((code, st["status"].as_str()), (1, Some("lost")), "{st}");
}

#[test]
fn tls_with_client_certificates_from_the_etcd_conflist_example() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("cni-conf/vxlan");
    let example: Value = serde_json::from_str(&std::fs::read_to_string(repo.join("etcd.conflist")).unwrap()).unwrap();
    assert!(example["plugins"][0]["etcd"]["certFile"].is_string());
    let mut lab = Lab::build(2, 1, true, json!({ "example": example }));
    let (_, c1) = lab.up(1);
    let (_, c2) = lab.up(2);
    assert!(wait_peers(&lab, 1, &[2], Duration::from_secs(10)));
    assert!(reaches(&c1.ns, &c2.ip()));
    assert_eq!(lab.keys(&lab.subnets_prefix()).len(), 2);
    // Without a client certificate the server refuses the agent: it
    // says so and claims nothing.
    assert_eq!(lab.stop_agent(2, libc::SIGTERM), Some(0));
    assert!(wait_peers(&lab, 1, &[], Duration::from_secs(3)));
    let mut bad = lab.conf(2);
    bad["etcd"].as_object_mut().unwrap().remove("certFile");
    bad["etcd"].as_object_mut().unwrap().remove("keyFile");
    lab.start_agent_with(2, &bad);
    assert!(wait_for(Duration::from_secs(10), || lab.state(2)["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("etcd: "))));
    assert_eq!(lab.state(2)["status"], "starting", "no subnet without the store: {}", lab.state(2));
    assert_eq!(lab.keys(&lab.subnets_prefix()).len(), 1);
}

#[test]
fn the_periodic_reconcile_repairs_entries_deleted_by_hand_and_sigint_revokes() {
    let mut lab = Lab::build(2, 1, false, json!({"etcd.reconcileInterval": 1}));
    let (_, c1) = lab.up(1);
    let (s2, c2) = lab.up(2);
    assert!(wait_peers(&lab, 1, &[2], Duration::from_secs(10)));
    let before = lab.vtep_routes(1);
    assert_eq!(before.len(), 1);
    lab.host(1).ok(&["ip", "route", "del", &s2, "dev", &format!("vxlan.{VNI}")]);
    lab.host(1).ok(&[
        "bridge",
        "fdb",
        "del",
        "02:76:c0:a8:4d:02",
        "dev",
        &format!("vxlan.{VNI}"),
        "dst",
        &underlay_ip(2),
    ]);
    assert!(lab.vtep_routes(1).is_empty());
    assert!(wait_for(Duration::from_secs(3), || lab.vtep_routes(1) == before && lab.fdb_peers(1).len() == 1));
    assert!(lab.log_of(1).contains("repaired"), "{}", lab.log_of(1));
    assert!(reaches(&c1.ns, &c2.ip()));
    // SIGINT, like SIGTERM, revokes the lease: host 1 drops host 2 at once.
    assert_eq!(lab.stop_agent(2, libc::SIGINT), Some(0));
    assert!(wait_peers(&lab, 1, &[], Duration::from_secs(1)), "{:?}", lab.fdb_peers(1));
    assert!(lab.log_of(2).contains("SIGINT: revoked lease"), "{}", lab.log_of(2));
}
