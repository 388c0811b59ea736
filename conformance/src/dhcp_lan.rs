//! A LAN with a real DHCP server, for the dhcp plugin's tests and
//! benchmark: a "lan" namespace where Debian's dnsmasq (started here,
//! killed by PID) serves `10.66.0.0/24` on `lan0` with a router, a name
//! server, a 2-minute lease (dnsmasq's minimum) and T1/T2 of 15/25 s
//! (and classless routes to one MAC, [`CLASSLESS_MAC`]), and
//! a "host" namespace holding `up0`, the other end of the veth, as the
//! macvlan master, where the plugins and `dhcp daemon` run (socket and
//! lease store in the host's temp dir). Everything is removed on drop.

use crate::fixture::Host;
use crate::TestNs;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The network name of the conflist.
pub const NET: &str = "dhcpnet";
/// The LAN's router (dnsmasq's own address).
pub const ROUTER: &str = "10.66.0.1";
/// The name server dnsmasq announces.
pub const DNS: &str = "10.66.0.53";

/// The MAC to which dnsmasq also sends option 121: `192.168.50.0/24` via
/// `10.66.0.9` and a default route via the router.
pub const CLASSLESS_MAC: &str = "02:66:00:00:01:21";

/// One line of dnsmasq's lease file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLease {
    /// Expiry (seconds since the epoch).
    pub expiry: u64,
    /// Address.
    pub ip: String,
    /// Host name the client sent.
    pub hostname: String,
    /// Client id in hex.
    pub client_id: String,
}

/// The LAN, its server and our daemon.
pub struct Lan {
    /// Where plugins and daemons run.
    pub host: Host,
    /// Where dnsmasq runs.
    pub lan: TestNs,
    /// The `dhcp` binary the daemon runs.
    pub dhcp: PathBuf,
    dnsmasq_args: Vec<String>,
    dnsmasq: Option<Child>,
    daemon: Option<Child>,
}

impl Lan {
    /// The LAN with dnsmasq running and, when `daemon`, our daemon
    /// (`dhcp` is its binary), with the example conflist in `net.d`.
    pub fn new(dhcp: &Path, daemon: bool) -> Lan {
        Lan::with_server_args(dhcp, daemon, &[])
    }

    /// [`Lan::new`] with more dnsmasq arguments (e.g. `--no-ping`).
    pub fn with_server_args(dhcp: &Path, daemon: bool, extra: &[&str]) -> Lan {
        let host = Host::new("dhch");
        let lan = TestNs::new("dhcl");
        host.ns.ok(&["ip", "link", "add", "up0", "type", "veth", "peer", "name", "lan0", "netns", &lan.name]);
        host.ns.ok(&["ip", "link", "set", "up0", "up"]);
        lan.ok(&["ip", "link", "set", "lo", "up"]);
        lan.ok(&["ip", "link", "set", "lan0", "up"]);
        lan.ok(&["ip", "addr", "add", &format!("{ROUTER}/24"), "dev", "lan0"]);
        std::fs::create_dir_all(host.dir.join("net.d")).unwrap();
        // The shipped example, pointed at this LAN's master and daemon.
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cni-conf/35-macvlan-dhcp.conflist");
        let mut conf: Value = serde_json::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
        conf["name"] = json!(NET);
        conf["plugins"][0]["master"] = json!("up0");
        conf["plugins"][0]["ipam"]["daemonSocketPath"] = json!(host.dir.join("dhcp.sock"));
        std::fs::write(host.dir.join("net.d/10-dhcpnet.conflist"), conf.to_string()).unwrap();
        let mut l = Lan {
            host,
            lan,
            dhcp: dhcp.to_path_buf(),
            dnsmasq_args: extra.iter().map(|a| a.to_string()).collect(),
            dnsmasq: None,
            daemon: None,
        };
        l.start_dnsmasq();
        if daemon {
            l.start_daemon();
        }
        l
    }

    /// A file in the host's temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.host.dir.join(name)
    }

    /// Our daemon's socket.
    pub fn socket(&self) -> String {
        self.path("dhcp.sock").display().to_string()
    }

    /// Starts dnsmasq in the LAN namespace and waits until it serves.
    pub fn start_dnsmasq(&mut self) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.lan.name, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0"])
            .args(["--user=root", "--interface=lan0", "--bind-interfaces", "--dhcp-authoritative", "--log-dhcp"])
            .arg("--dhcp-range=10.66.0.10,10.66.0.250,255.255.255.0,2m")
            .arg(format!("--dhcp-option=option:router,{ROUTER}"))
            .arg(format!("--dhcp-option=option:dns-server,{DNS}"))
            .args(["--dhcp-option=option:T1,15", "--dhcp-option=option:T2,25"])
            // Clients with this MAC also get classless routes (option 121).
            .arg(format!("--dhcp-host={CLASSLESS_MAC},set:cls"))
            .arg("--dhcp-option=tag:cls,option:classless-static-route,192.168.50.0/24,10.66.0.9,0.0.0.0/0,10.66.0.1")
            .arg(format!("--dhcp-leasefile={}", self.path("dnsmasq.leases").display()))
            .arg(format!("--log-facility={}", self.path("dnsmasq.log").display()))
            .args(&self.dnsmasq_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (Debian dnsmasq-base; make test installs it)");
        self.dnsmasq = Some(child);
        // Ready when it has written its log's first line.
        wait_for("dnsmasq to start", Duration::from_secs(10), || {
            std::fs::read_to_string(self.path("dnsmasq.log")).is_ok_and(|l| l.contains("DHCP, IP range"))
        });
    }

    /// Kills dnsmasq by PID: the server is gone.
    pub fn stop_dnsmasq(&mut self) {
        if let Some(mut c) = self.dnsmasq.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts our daemon in the host namespace and waits for its socket.
    pub fn start_daemon(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.path("daemon.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.host.ns.name])
            .arg(&self.dhcp)
            .args(["daemon", "-socketpath", &self.socket(), "-timeout", "20s", "-resendmax", "4s"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dhcp daemon");
        self.daemon = Some(child);
        let sock = self.socket();
        wait_for("the daemon's socket", Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
    }

    /// Kills the daemon by PID, as a crash would (nothing released).
    pub fn kill_daemon(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `cnitool <cmd> dhcpnet <ctr>` in the host namespace, for container id `id`.
    pub fn cnitool(&self, cmd: &str, ctr: &str, id: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.host.ns.name])
            .arg(crate::bin_dir().join("cnitool"))
            .args([cmd, NET, ctr])
            .env("NETCONFPATH", self.path("net.d"))
            .env("CNI_PATH", crate::bin_dir())
            .env("CNI_CACHE_DIR", self.path("cache"))
            .env("CNI_CONTAINERID", id)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_ARGS", format!("IgnoreUnknown=1;K8S_POD_NAME={id}"))
            .output()
            .unwrap()
    }

    /// [`Lan::cnitool`] that must succeed; its result, if any.
    pub fn ok(&self, cmd: &str, ctr: &TestNs) -> Value {
        let out = self.cnitool(cmd, &ctr.path(), &ctr.name);
        assert!(out.status.success(), "cnitool {cmd} {}: {out:?}\ndaemon log:\n{}", ctr.name, self.daemon_log());
        if out.stdout.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&out.stdout).unwrap()
        }
    }

    /// Our daemon's log.
    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    /// dnsmasq's lease file (`<expiry> <mac> <ip> <name> <client id>`).
    pub fn server_leases(&self) -> Vec<ServerLease> {
        std::fs::read_to_string(self.path("dnsmasq.leases"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 5).then(|| ServerLease {
                    expiry: f[0].parse().unwrap_or(0),
                    ip: f[2].into(),
                    hostname: f[3].into(),
                    client_id: f[4].into(),
                })
            })
            .collect()
    }

    /// The server's lease of `ip`.
    pub fn server_lease_of(&self, ip: &str) -> Option<ServerLease> {
        self.server_leases().into_iter().find(|l| l.ip == ip)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.kill_daemon();
        self.stop_dnsmasq();
    }
}

/// Polls `f` every 100 ms until it holds; fails after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
