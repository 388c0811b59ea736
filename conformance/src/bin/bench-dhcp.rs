//! `make bench-dhcp`: the dhcp IPAM plugin's ADD and DEL, ours beside the
//! reference's (`/usr/lib/cni/dhcp`, Debian 1.1.1) in the same run, against
//! the same dnsmasq in a LAN namespace; each daemon on its own socket.
//! Every round makes a container with a macvlan `eth0` (not timed), times
//! the plugin's ADD as an interface plugin execs it, puts the address on
//! `eth0` as that plugin would, and times DEL; the two implementations
//! alternate. ADD is bound by the DHCP exchange (dnsmasq answers each
//! DISCOVER after its own checks), so the ratio says little; the figure
//! that matters is the one after it: whether DEL gave the lease back.
//!
//! Usage: `bench-dhcp [--n N] [--no-ping] [--reference PATH]`.

use conformance::dhcp_lan::{Lan, NET};
use conformance::{bin_dir_of_exe, TestNs};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Execs `plugin` with `cmd` in the host namespace; returns (ms, stdout).
fn exec(lan: &Lan, plugin: &Path, cmd: &str, ctr: &TestNs, socket: &str) -> (f64, String) {
    let conf = json!({"cniVersion": "1.0.0", "name": NET, "type": "macvlan",
        "ipam": {"type": "dhcp", "daemonSocketPath": socket}});
    let start = Instant::now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lan.host.ns.name])
        .arg(plugin)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", &ctr.name)
        .env("CNI_NETNS", ctr.path())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning the plugin");
    let _ = child.stdin.take().unwrap().write_all(conf.to_string().as_bytes());
    let out = child.wait_with_output().unwrap();
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{} {cmd}: {stdout}{}", plugin.display(), String::from_utf8_lossy(&out.stderr));
    (ms, stdout)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[derive(Default)]
struct Series {
    add: Vec<f64>,
    del: Vec<f64>,
    addrs: Vec<String>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut n = 20usize;
    let mut reference = PathBuf::from("/usr/lib/cni/dhcp");
    let mut server_args: Vec<&str> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--n" => n = args.next().and_then(|v| v.parse().ok()).expect("--n N"),
            "--no-ping" => server_args.push("--no-ping"),
            "--reference" => reference = PathBuf::from(args.next().expect("--reference PATH")),
            _ => {
                eprintln!("usage: bench-dhcp [--n N] [--no-ping] [--reference PATH]");
                std::process::exit(2);
            }
        }
    }
    assert!(n > 0 && n <= 100, "--n must be 1-100 (the LAN's range holds 240 leases)");
    assert!(reference.exists(), "{} missing: apt-get install containernetworking-plugins", reference.display());
    let ours = bin_dir_of_exe().join("dhcp");
    let lan = Lan::with_server_args(&ours, true, &server_args);
    let ref_sock = lan.path("reference.sock").display().to_string();
    let log = std::fs::File::create(lan.path("reference.log")).unwrap();
    let mut ref_daemon = Command::new("ip")
        .args(["netns", "exec", &lan.host.ns.name])
        .arg(&reference)
        .args(["daemon", "-socketpath", &ref_sock])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("reference daemon");
    conformance::dhcp_lan::wait_for("the reference daemon", Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&ref_sock).is_ok()
    });
    let impls = [("ours", ours.clone(), lan.socket()), ("reference", reference.clone(), ref_sock.clone())];
    let mut series: Vec<Series> = vec![Series::default(), Series::default()];
    for i in 0..n {
        for k in 0..2 {
            let j = (i + k) % 2;
            let (_, plugin, sock) = &impls[j];
            let ctr = TestNs::new("dhbn");
            lan.host.ns.ok(&[
                "ip", "link", "add", "link", "up0", "name", "eth0", "netns", &ctr.name, "type", "macvlan", "mode",
                "bridge",
            ]);
            let (add_ms, out) = exec(&lan, plugin, "ADD", &ctr, sock);
            let r: Value = serde_json::from_str(&out).expect("ADD result");
            let addr = r["ips"][0]["address"].as_str().expect("an address").to_string();
            ctr.ok(&["ip", "addr", "add", &addr, "dev", "eth0"]);
            let (del_ms, _) = exec(&lan, plugin, "DEL", &ctr, sock);
            let s = &mut series[j];
            s.add.push(add_ms);
            s.del.push(del_ms);
            s.addrs.push(addr.split('/').next().unwrap().to_string());
        }
    }
    // Let releases land, then see which leases the server still holds.
    std::thread::sleep(Duration::from_secs(1));
    let held: Vec<String> = lan.server_leases().into_iter().map(|l| l.ip).collect();
    let server =
        if server_args.is_empty() { "dnsmasq".to_string() } else { format!("dnsmasq {}", server_args.join(" ")) };
    println!("dhcp IPAM against {server} in a namespace, n = {n} per implementation");
    println!(
        "{:<10} {:>12} {:>12} {:>12} {:>12} {:>22}",
        "", "ADD p50 ms", "ADD p90 ms", "DEL p50 ms", "DEL p90 ms", "leases released by DEL"
    );
    for (j, (name, _, _)) in impls.iter().enumerate() {
        let s = &mut series[j];
        let released = s.addrs.iter().filter(|a| !held.contains(a)).count();
        println!(
            "{:<10} {:>12.1} {:>12.1} {:>12.1} {:>12.1} {:>22}",
            name,
            pct(&mut s.add, 0.5),
            pct(&mut s.add, 0.9),
            pct(&mut s.del, 0.5),
            pct(&mut s.del, 0.9),
            format!("{released}/{n}")
        );
    }
    let _ = ref_daemon.kill();
    let _ = ref_daemon.wait();
}
