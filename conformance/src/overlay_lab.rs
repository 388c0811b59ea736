//! A lab for the overlay on etcd (`vxlan agent`), shared by its
//! conformance test (`tests/vxlan_etcd.rs`) and its benchmark
//! (`bench-etcd`): a "lab" namespace holding the underlay bridge `ul0`;
//! per host a namespace whose leg `ul` holds `192.168.77.<n>/24`; each etcd
//! member (Debian's `etcd-server`) in a namespace of its own on the same
//! underlay (`192.168.77.<250 + m>`) with its data dir in the lab's temp
//! dir. Members and agents are started as child processes and killed by
//! PID on drop (also on panic); every lab uses its own key prefix.

use crate::{bin_dir, witness, PluginRun, TestNs};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The network name every lab uses.
pub const NET: &str = "ovle";
/// The agents' lease TTL (seconds): short, so expiry is seen quickly.
pub const TTL: u64 = 2;
/// The VNI.
pub const VNI: u32 = 1;

/// Host `n`'s underlay address.
pub fn underlay_ip(n: usize) -> String {
    format!("192.168.77.{n}")
}

/// etcd member `m`'s address.
pub fn member_ip(m: usize) -> String {
    format!("192.168.77.{}", 250 + m)
}

/// Waits until `f` holds, up to `limit`; returns whether it did.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
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

/// Sends `sig` to a child by its PID.
pub fn kill(child: &mut Child, sig: i32) {
    // SAFETY: a signal to a child this test started (by its PID).
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// One etcd member in its own namespace on the underlay.
pub struct Member {
    /// Its namespace.
    pub ns: TestNs,
    /// The running process, if started.
    pub child: Option<Child>,
    /// etcd's arguments.
    pub args: Vec<String>,
    /// Its log file.
    pub log: PathBuf,
}

impl Member {
    /// Starts etcd (again: same data dir).
    pub fn start(&mut self) {
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

    /// SIGKILLs etcd and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c, libc::SIGKILL);
            let _ = c.wait();
        }
    }
}

/// Plugs `ns` into the underlay bridge with `ip` on its leg `ul`.
pub fn leg(lab: &TestNs, ns: &TestNs, name: &str, ip: &str) {
    lab.ok(&["ip", "link", "add", name, "type", "veth", "peer", "name", "ul", "netns", &ns.name]);
    lab.ok(&["ip", "link", "set", name, "master", "ul0", "up"]);
    ns.ok(&["ip", "link", "set", "lo", "up"]);
    ns.ok(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "ul"]);
    ns.ok(&["ip", "link", "set", "ul", "up"]);
}

/// The lab: underlay, hosts, etcd members, agents.
pub struct Lab {
    /// The namespace holding the underlay bridge.
    pub lab: TestNs,
    /// The hosts, host `n` at index `n - 1`.
    pub hosts: Vec<TestNs>,
    /// The etcd members.
    pub members: Vec<Member>,
    /// Each host's agent, while it runs.
    pub agents: Vec<Option<Child>>,
    /// Scratch space: data dirs, state, logs, certificates.
    pub dir: PathBuf,
    /// This lab's key prefix.
    pub prefix: String,
    /// Whether etcd speaks TLS with client certificates.
    pub tls: bool,
    /// Config keys to override (`etcd.<key>` inside `etcd`; `example`: a conflist to start from).
    pub extra: Value,
}

impl Lab {
    /// `n` hosts and an etcd cluster of `members` (plain http).
    pub fn new(n: usize, members: usize) -> Lab {
        Lab::build(n, members, false, json!({}))
    }

    /// `n` hosts, `members` etcd members, TLS or not, config overrides `extra`.
    pub fn build(n: usize, members: usize, tls: bool, extra: Value) -> Lab {
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
        // A new P-256 key in `key` and, with `more`, a request or (-x509) a
        // self-signed certificate in `out` for `subject`.
        let new_key = |key: &str, out: &str, subject: &str, more: &[&str]| {
            let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
            let mut args = vec!["req"];
            args.extend_from_slice(more);
            args.extend_from_slice(&ec);
            args.extend_from_slice(&["-keyout", key, "-out", out, "-subj", subject]);
            ossl(&args);
        };
        new_key("ca-key.pem", "ca.pem", "/CN=cnirs-test-ca", &["-x509", "-days", "2"]);
        let sans: Vec<String> = (0..members).map(|m| format!("IP:{}", member_ip(m))).collect();
        std::fs::write(d.join("server.ext"), format!("subjectAltName={}\n", sans.join(","))).unwrap();
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, ext) in [("server", "server.ext"), ("client", "client.ext")] {
            new_key(&format!("{name}-key.pem"), &format!("{name}.csr"), &format!("/CN={name}"), &[]);
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

    /// The client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
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

    /// `etcdctl` on a live member; fails the caller when it fails; its stdout.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        let m = self.members.iter().position(|m| m.child.is_some()).unwrap_or(0);
        let out = self.etcdctl_on(m, args);
        assert!(out.status.success(), "etcdctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The keys under `prefix` with their lease (hex) and value.
    pub fn keys(&self, prefix: &str) -> Vec<(String, String, String)> {
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

    /// Where the agents keep their subnet leases.
    pub fn subnets_prefix(&self) -> String {
        format!("{}/{NET}/subnets/", self.prefix)
    }

    /// Host `n`'s namespace.
    pub fn host(&self, n: usize) -> &TestNs {
        &self.hosts[n - 1]
    }

    /// The config of host `n`.
    pub fn conf(&self, n: usize) -> Value {
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
                // `{n}` in a string value is the host's number.
                None => c[k] = v.as_str().map_or_else(|| v.clone(), |s| s.replace("{n}", &n.to_string()).into()),
            }
        }
        c
    }

    /// Host `n`'s agent state directory (`state.json`, `peers.json`).
    pub fn state_dir(&self, n: usize) -> PathBuf {
        self.dir.join(format!("state-root-h{n}")).join(NET)
    }

    /// Host `n`'s agent state (`state.json`), `null` when absent.
    pub fn state(&self, n: usize) -> Value {
        let p = self.state_dir(n).join("state.json");
        std::fs::read(&p).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null)
    }

    /// Host `n`'s config, written to a file.
    fn conf_file(&self, n: usize) -> PathBuf {
        let f = self.dir.join(format!("h{n}.conf"));
        std::fs::write(&f, self.conf(n).to_string()).unwrap();
        f
    }

    /// Starts the agent of host `n`.
    pub fn start_agent(&mut self, n: usize) {
        let c = self.conf(n);
        self.start_agent_with(n, &c);
    }

    /// Starts the agent of host `n` with config `c`.
    pub fn start_agent_with(&mut self, n: usize, c: &Value) {
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

    /// Where host `n`'s agent logs.
    fn agent_log(&self, n: usize) -> PathBuf {
        self.dir.join(format!("agent-h{n}.log"))
    }

    /// Host `n`'s agent log so far.
    pub fn log_of(&self, n: usize) -> String {
        std::fs::read_to_string(self.agent_log(n)).unwrap_or_default()
    }

    /// Sends `sig` to host `n`'s agent and waits for it to end.
    pub fn stop_agent(&mut self, n: usize, sig: i32) -> Option<i32> {
        let mut c = self.agents[n - 1].take()?;
        kill(&mut c, sig);
        c.wait().ok().and_then(|s| s.code())
    }

    /// Waits until host `n`'s agent holds a subnet; returns it.
    pub fn wait_running(&self, n: usize) -> String {
        let ok = wait_for(Duration::from_secs(20), || self.state(n)["status"] == "running");
        assert!(ok, "agent of host {n} not running: {}\n{}", self.state(n), self.log_of(n));
        self.state(n)["subnets"][0].as_str().unwrap().to_string()
    }

    /// The underlay addresses of the peers programmed on host `n` (FDB).
    pub fn fdb_peers(&self, n: usize) -> BTreeSet<String> {
        let out = self.host(n).exec(&["bridge", "-j", "fdb", "show", "dev", &format!("vxlan.{VNI}")]);
        let s = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(if s.trim().is_empty() { "[]" } else { &s }).unwrap_or(json!([]));
        v.as_array().unwrap().iter().filter_map(|e| e["dst"].as_str().map(String::from)).collect()
    }

    /// The routes through the VTEP on host `n`: (dst, gateway).
    pub fn vtep_routes(&self, n: usize) -> BTreeSet<String> {
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

    /// Runs the plugin on host `n` for container `cid` (`eth0` in `ctr`).
    pub fn run(&self, n: usize, cmd: &str, ctr: &str, cid: &str, conf: &Value) -> PluginRun {
        crate::fixture::run_attachment(self.host(n), "vxlan", (cmd, ctr, cid, "eth0"), &conf.to_string(), &[])
    }

    /// `vxlan status` on host `n`: exit code and JSON.
    pub fn status(&self, n: usize) -> (i32, Value) {
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
pub struct Ctr {
    /// Its namespace.
    pub ns: TestNs,
    /// Its container id.
    pub cid: String,
    /// ADD's result.
    pub add: Value,
}

impl Ctr {
    /// Its IPv4 address.
    pub fn ip(&self) -> String {
        self.add["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_string()
    }
}

/// ADD of a new container on host `n` (fails the caller when ADD fails).
pub fn attach(lab: &Lab, n: usize) -> Ctr {
    let id = NEXT.fetch_add(1, Ordering::SeqCst);
    let ns = TestNs::new(&format!("vxec{n}"));
    let cid = format!("vxe-{}-{id}", std::process::id());
    let r = lab.run(n, "ADD", &ns.path(), &cid, &lab.conf(n));
    assert_eq!(r.code, 0, "ADD on host {n}: {r:?}\n{}", lab.log_of(n));
    let add = r.json();
    Ctr { ns, cid, add }
}

/// `ping`, with up to three tries (the first packet may wait on ARP).
pub fn reaches(from: &TestNs, addr: &str) -> bool {
    (0..3).any(|_| from.ping(addr))
}

/// `conf` with `prevResult`.
pub fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

/// Waits until host `n` has exactly the peers `want` (underlay addresses).
pub fn wait_peers(lab: &Lab, n: usize, want: &[usize], limit: Duration) -> bool {
    let want: BTreeSet<String> = want.iter().map(|&i| underlay_ip(i)).collect();
    wait_for(limit, || lab.fdb_peers(n) == want)
}

/// Hosts `1..=all` but `n`.
pub fn others(n: usize, all: usize) -> Vec<usize> {
    (1..=all).filter(|&i| i != n).collect()
}

impl Lab {
    /// Whether host `n`'s agent process still runs.
    pub fn agent_alive(&mut self, n: usize) -> bool {
        self.agents[n - 1].as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// `etcdctl put key` with the value from a file (for large values).
    pub fn put_file(&self, key: &str, value: &[u8]) {
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

    /// Starts host `n`'s agent, waits for its subnet, attaches a container.
    pub fn up(&mut self, n: usize) -> (String, Ctr) {
        self.start_agent(n);
        let s = self.wait_running(n);
        let c = attach(self, n);
        (s, c)
    }
}

/// Moves the calling thread into the named network namespace.
pub fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns");
    // SAFETY: setns on a descriptor we own; only this thread moves.
    assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {ns}");
}

/// Base64 (standard alphabet, padded), as etcd's JSON gateway wants keys and values.
pub fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// etcd's JSON gateway over one kept-alive HTTP/1.1 connection.
pub struct Gateway {
    r: BufReader<TcpStream>,
    w: TcpStream,
    host: String,
}

impl Gateway {
    /// Connects from inside namespace `ns` to `host` (`ip:port`).
    pub fn connect(ns: &str, host: &str) -> Gateway {
        let (ns, h) = (ns.to_string(), host.to_string());
        let s = std::thread::spawn(move || {
            enter(&ns);
            TcpStream::connect(&h).expect("connecting to etcd")
        })
        .join()
        .unwrap();
        s.set_nodelay(true).unwrap();
        Gateway { r: BufReader::new(s.try_clone().unwrap()), w: s, host: host.to_string() }
    }

    /// POSTs `body` to `path`; the JSON answer.
    pub fn post(&mut self, path: &str, body: &Value) -> Value {
        let b = body.to_string();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            self.host,
            b.len()
        );
        self.w.write_all(req.as_bytes()).unwrap();
        let (mut len, mut chunked, mut line) = (0usize, false, String::new());
        loop {
            line.clear();
            self.r.read_line(&mut line).unwrap();
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if l.starts_with("transfer-encoding:") && l.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.r.read_line(&mut line).unwrap();
                let n = usize::from_str_radix(line.trim(), 16).unwrap();
                let mut c = vec![0; n + 2];
                self.r.read_exact(&mut c).unwrap();
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&c[..n]);
            }
        } else {
            body.resize(len, 0);
            self.r.read_exact(&mut body).unwrap();
        }
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    }

    /// Puts `key` = `value`.
    pub fn put(&mut self, key: &str, value: &str) {
        self.post("/v3/kv/put", &json!({"key": b64(key.as_bytes()), "value": b64(value.as_bytes())}));
    }

    /// Deletes `key`.
    pub fn delete(&mut self, key: &str) {
        self.post("/v3/kv/deleterange", &json!({"key": b64(key.as_bytes())}));
    }
}
