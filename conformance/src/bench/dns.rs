//! `make bench`'s dnsname part (`bench-dns`): what the `dnsname` step adds
//! to a container's ADD and DEL, how fast its server starts and how much
//! memory it holds, and how many queries per second it answers on one core
//! against dnsmasq (Debian's `dnsmasq-base`) loaded with the same names in
//! the same run, both measured by `dnsperf` from a client namespace.
//!
//! Setup: a "host" namespace whose veth reaches a "client" namespace on
//! the network's subnet (10.80.0.0/16); our server listens on 10.80.0.1,
//! dnsmasq on 10.80.0.3; both are pinned to CPU 0 and dnsperf to CPU 1.
//! The plugin is exec'd from a thread that entered the host namespace
//! (no `ip netns exec` in the timings). Records live under `/run`, as by
//! default. Everything is removed at the end; a failure or a leftover
//! (record, server, listening socket) fails the run.

use crate::netns::TestNs;
use serde_json::{json, Value};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run measured (milliseconds unless named otherwise).
#[derive(Debug, Default, Clone)]
pub struct DnsBench {
    /// Containers (names) on the network.
    pub n: usize,
    /// p50 of the plugin's exec with nothing to do (`VERSION`): the floor.
    pub exec_floor_ms: f64,
    /// The first ADD, which starts the server.
    pub first_add_ms: f64,
    /// p50 of ADDs 2..=100.
    pub add_p50_first_100_ms: f64,
    /// p50 of the last 100 ADDs.
    pub add_p50_last_100_ms: f64,
    /// p50 of (ADD − the VERSION exec just before it), ADDs 2..=n: what
    /// the dnsname step itself costs.
    pub add_over_floor_p50_ms: f64,
    /// p50 of every DEL but the last.
    pub del_p50_ms: f64,
    /// The last DEL, which waits for the server to exit.
    pub last_del_ms: f64,
    /// p50 of `dnsname serve` from spawn to ready, with one record.
    pub serve_start_p50_ms: f64,
    /// Peak RSS of the server with `n` names, in KiB.
    pub server_hwm_kib: u64,
    /// Queries per second answered: ours.
    pub qps_ours: f64,
    /// Queries per second answered: dnsmasq.
    pub qps_dnsmasq: f64,
}

fn p50(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `f` on a thread that entered namespace `ns`: processes it spawns
/// start there.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("namespace file");
        // SAFETY: setns of this thread only, on a valid fd.
        assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {path}");
        f()
    })
    .join()
    .expect("bench thread")
}

fn ip(i: usize) -> String {
    format!("10.80.{}.{}", i / 250, i % 250 + 2)
}

fn conf(data: &Path, i: usize) -> String {
    json!({
        "cniVersion": "1.0.0", "name": "benchdns", "type": "dnsname",
        "dataDir": data.display().to_string(),
        "upstreamResolvConf": data.join("resolv.conf").display().to_string(),
        "prevResult": {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
            "ips": [{"interface": 0, "address": format!("{}/16", ip(i)), "gateway": "10.80.0.1"}]
        }
    })
    .to_string()
}

/// Execs the plugin once; the time it took, or its output on failure.
fn exec(bin: &Path, cmd: &str, netns: &str, i: usize, stdin: &str) -> Result<f64, String> {
    use std::io::Write;
    let t = Instant::now();
    let mut child = Command::new(bin)
        .env_clear()
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", format!("ctr{i}"))
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/nonexistent")
        .env("CNI_ARGS", format!("K8S_POD_NAME=c{i}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let _ = child.stdin.take().expect("piped").write_all(stdin.as_bytes());
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let d = ms(t.elapsed());
    if !out.status.success() {
        return Err(format!(
            "{cmd} {i}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(d)
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `dnsperf` from the client namespace against `server` for `secs`:
/// queries per second, or why not.
fn dnsperf(client: &str, server: &str, queries: &Path, secs: u32) -> Result<f64, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", client, "taskset", "-c", "1", "dnsperf", "-s", server])
        .arg("-d")
        .arg(queries)
        .args(["-l", &secs.to_string(), "-c", "4", "-q", "200", "-t", "2"])
        .output()
        .map_err(|e| format!("running dnsperf: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lost = text.lines().find(|l| l.trim_start().starts_with("Queries lost:")).unwrap_or("").to_string();
    text.lines()
        .find(|l| l.trim_start().starts_with("Queries per second:"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
        .inspect(|q| eprintln!("  dnsperf {server}: {q:.0} q/s ({})", lost.trim()))
        .ok_or_else(|| format!("dnsperf against {server}: {text}{}", String::from_utf8_lossy(&out.stderr)))
}

fn pin(pid: u32, cpu: &str) {
    let _ = Command::new("taskset").args(["-p", "-c", cpu, &pid.to_string()]).stdout(Stdio::null()).status();
}

/// Measures with `n` containers, `secs` seconds of dnsperf per server.
pub fn run(bin: &Path, n: usize, secs: u32) -> Result<DnsBench, String> {
    let n = n.clamp(1, 60_000);
    let host = TestNs::new("dnsbench-h");
    let client = TestNs::new("dnsbench-c");
    let ctr = TestNs::new("dnsbench-x");
    let data = PathBuf::from(format!("/run/cnirs-dnsbench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    std::fs::write(data.join("resolv.conf"), "").map_err(|e| e.to_string())?;
    let result = measure(bin, n, secs, &host, &client, &ctr, &data);
    let _ = std::fs::remove_dir_all(&data);
    result
}

fn measure(
    bin: &Path,
    n: usize,
    secs: u32,
    host: &TestNs,
    client: &TestNs,
    ctr: &TestNs,
    data: &Path,
) -> Result<DnsBench, String> {
    for argv in [
        vec!["ip", "link", "set", "lo", "up"],
        vec!["ip", "link", "add", "hb0", "type", "veth", "peer", "name", "cb0", "netns", &client.name],
        vec!["ip", "addr", "add", "10.80.0.1/16", "dev", "hb0"],
        vec!["ip", "addr", "add", "10.80.0.3/16", "dev", "hb0"],
        vec!["ip", "link", "set", "hb0", "up"],
    ] {
        host.ok(&argv);
    }
    client.ok(&["ip", "addr", "add", "10.80.255.254/16", "dev", "cb0"]);
    client.ok(&["ip", "link", "set", "cb0", "up"]);
    let mut r = DnsBench { n, ..Default::default() };

    // The plugin's own cost: ADD of n containers, then the server's size.
    let (b, d, netns) = (bin.to_path_buf(), data.to_path_buf(), ctr.path());
    // Each ADD is paired with an exec of the same binary doing nothing
    // (VERSION) right before it, so a loaded machine shifts both alike.
    let (floor, adds) = in_ns(&host.name, move || -> Result<(Vec<f64>, Vec<f64>), String> {
        let (mut floor, mut adds) = (Vec::new(), Vec::new());
        for i in 0..n {
            floor.push(exec(&b, "VERSION", "", 0, "{}")?);
            adds.push(exec(&b, "ADD", &netns, i, &conf(&d, i))?);
        }
        Ok((floor, adds))
    })?;
    r.exec_floor_ms = p50(&floor);
    let diffs: Vec<f64> = adds.iter().zip(&floor).map(|(a, f)| a - f).collect();
    r.add_over_floor_p50_ms = p50(&diffs[1..]);
    r.first_add_ms = adds[0];
    r.add_p50_first_100_ms = p50(&adds[1..adds.len().min(101)]);
    r.add_p50_last_100_ms = p50(&adds[adds.len().saturating_sub(100)..]);
    let netdir = data.join("benchdns");
    let pid: u32 = std::fs::read_to_string(netdir.join("server.pid"))
        .map_err(|e| e.to_string())?
        .trim()
        .parse()
        .map_err(|_| "server.pid".to_string())?;

    // Queries per second, ours then dnsmasq, same names, same core.
    let queries = data.join("queries");
    let hosts = data.join("hosts");
    let qtext: String = (0..n).map(|i| format!("c{i}.dns.podman A\n")).collect();
    let htext: String = (0..n).map(|i| format!("{} c{i} c{i}.dns.podman\n", ip(i))).collect();
    std::fs::write(&queries, qtext).map_err(|e| e.to_string())?;
    std::fs::write(&hosts, htext).map_err(|e| e.to_string())?;
    pin(pid, "0");
    r.qps_ours = dnsperf(&client.name, "10.80.0.1", &queries, secs)?;
    r.server_hwm_kib = status_kib(pid, "VmHWM:");
    let (h2, pidfile) = (hosts.clone(), data.join("dnsmasq.pid"));
    let mut dnsmasq = in_ns(&host.name, move || {
        Command::new("taskset")
            .args(["-c", "0", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts"])
            .arg(format!("--addn-hosts={}", h2.display()))
            .args(["--listen-address=10.80.0.3", "--bind-interfaces", "--port=53", "--user=root", "--cache-size=10000"])
            .arg(format!("--pid-file={}", pidfile.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    })
    .map_err(|e| format!("starting dnsmasq: {e}"))?;
    // dnsmasq is ready when it answers.
    let end = Instant::now() + Duration::from_secs(5);
    while crate::dns::query(&client.name, "10.80.0.3", "c0.dns.podman", crate::dns::Type::A).is_none() {
        if Instant::now() > end {
            let _ = dnsmasq.kill();
            return Err("dnsmasq did not answer".into());
        }
    }
    let qps = dnsperf(&client.name, "10.80.0.3", &queries, secs);
    let _ = dnsmasq.kill();
    let _ = dnsmasq.wait();
    r.qps_dnsmasq = qps?;

    // DEL of every container; the last one stops the server.
    let (b, d, netns) = (bin.to_path_buf(), data.to_path_buf(), ctr.path());
    let dels = in_ns(&host.name, move || {
        (0..n).map(|i| exec(&b, "DEL", &netns, i, &conf(&d, i))).collect::<Result<Vec<_>, _>>()
    })?;
    r.del_p50_ms = p50(&dels[..dels.len() - 1]);
    r.last_del_ms = dels[dels.len() - 1];

    // Server start alone: spawn to ready with one record, as the first ADD.
    let (b, d) = (bin.to_path_buf(), data.to_path_buf());
    let starts = in_ns(&host.name, move || (0..10).map(|k| serve_once(&b, &d, k)).collect::<Result<Vec<_>, _>>())?;
    r.serve_start_p50_ms = p50(&starts);

    let left: Vec<String> = std::fs::read_dir(&netdir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|f| f != "lock").collect())
        .unwrap_or_default();
    let listening = host.ok(&["ss", "-H", "-lnu", "sport = :53"]);
    if !left.is_empty() || !listening.is_empty() {
        return Err(format!("left behind: files {left:?}, sockets {listening:?}"));
    }
    Ok(r)
}

/// Spawns `dnsname serve` for a network of one record and times it from
/// the spawn to its "ready" on the pipe (what the first ADD waits for).
fn serve_once(bin: &Path, data: &Path, k: usize) -> Result<f64, String> {
    use std::io::Read;
    let dir = data.join("startnet");
    std::fs::create_dir_all(dir.join("records")).map_err(|e| e.to_string())?;
    let conf: Value = json!({
        "network": "startnet", "domain": "dns.podman", "gateways": ["10.80.0.1"],
        "subnets": ["10.80.0.0/16"], "resolvConf": data.join("resolv.conf").display().to_string()
    });
    std::fs::write(dir.join("server.json"), conf.to_string()).map_err(|e| e.to_string())?;
    let rec = json!({"containerID": format!("s{k}"), "ifName": "eth0", "name": "s", "ips": ["10.80.0.9/16"]});
    std::fs::write(dir.join("records").join(format!("s{k}:eth0.json")), rec.to_string()).map_err(|e| e.to_string())?;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two new fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err("pipe".into());
    }
    // SAFETY: both fds are new and ours.
    let (mut rd, wr) = unsafe {
        use std::os::fd::FromRawFd;
        (std::fs::File::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    };
    let wfd = wr.as_raw_fd();
    let t = Instant::now();
    let mut cmd = Command::new(bin);
    cmd.args(["serve", &dir.display().to_string()]).env("DNSNAME_READY_FD", wfd.to_string()).stderr(Stdio::null());
    // SAFETY: only fcntl between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::fcntl(wfd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    drop(wr);
    let mut buf = [0u8; 64];
    let got = rd.read(&mut buf).unwrap_or(0);
    let d = ms(t.elapsed());
    // SAFETY: SIGTERM to the server this function started, by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if &buf[..got] != b"ready\n" {
        return Err(format!("serve said {:?}", String::from_utf8_lossy(&buf[..got])));
    }
    Ok(d)
}

impl DnsBench {
    /// The figures as JSON (`bench-out/dnsname.json`).
    pub fn to_json(&self) -> Value {
        json!({
            "n": self.n,
            "exec_floor_ms": self.exec_floor_ms,
            "first_add_ms": self.first_add_ms,
            "add_p50_first_100_ms": self.add_p50_first_100_ms,
            "add_p50_last_100_ms": self.add_p50_last_100_ms,
            "add_over_floor_p50_ms": self.add_over_floor_p50_ms,
            "del_p50_ms": self.del_p50_ms,
            "last_del_ms": self.last_del_ms,
            "serve_start_p50_ms": self.serve_start_p50_ms,
            "server_hwm_kib": self.server_hwm_kib,
            "qps_ours": self.qps_ours,
            "qps_dnsmasq": self.qps_dnsmasq,
        })
    }
}

/// The table printed by `bench-dns`.
pub fn text(r: &DnsBench) -> String {
    format!(
        "dnsname (n = {n}; exec floor {floor:.2} ms p50, the plugin's VERSION)\n\
         \x20 ADD: first (starts the server) {first:.2} ms; p50 of ADDs 2-100 {a1:.2} ms, of the last 100 {a2:.2} ms; \
         the step over the exec just before it: {over:.2} ms (p50)\n\
         \x20 DEL: p50 {del:.2} ms; last (server exits) {last:.2} ms\n\
         \x20 server: spawn to ready {start:.2} ms (p50); peak RSS with {n} names {rss} KiB\n\
         \x20 queries/s on one core (dnsperf, {n} names): ours {qo:.0}, dnsmasq {qd:.0} ({ratio:.2}x)\n",
        n = r.n,
        floor = r.exec_floor_ms,
        first = r.first_add_ms,
        a1 = r.add_p50_first_100_ms,
        a2 = r.add_p50_last_100_ms,
        over = r.add_over_floor_p50_ms,
        del = r.del_p50_ms,
        last = r.last_del_ms,
        start = r.serve_start_p50_ms,
        rss = r.server_hwm_kib,
        qo = r.qps_ours,
        qd = r.qps_dnsmasq,
        ratio = r.qps_ours / r.qps_dnsmasq,
    )
}
