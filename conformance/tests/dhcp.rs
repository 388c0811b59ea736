//! dhcp: addresses from a real DHCP server. Each test builds a LAN: a
//! "lan" namespace where Debian's dnsmasq (started by the test, killed by
//! PID) serves `10.66.0.0/24` on `lan0` with a router, a name server, a
//! 2-minute lease (dnsmasq's minimum) and T1/T2 of 15/25 s; a "host"
//! namespace holding `up0`, the other end of the veth, as macvlan master;
//! our `dhcp daemon` (socket and lease store in the test's temp dir, killed
//! by PID). Containers are macvlan + dhcp attachments made through
//! cnitool with `cni-conf/35-macvlan-dhcp.conflist`, as a runtime makes
//! them. What is asserted is what a user sees:
//! the result, the address in the container, a ping to the router, and
//! dnsmasq's own lease file.

use conformance::dhcp_lan::{wait_for, Lan, CLASSLESS_MAC, DNS, NET, ROUTER};
use conformance::fixture::Host;
use conformance::{bin, bin_dir, run_plugin, TestNs};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// The single IPv4 address of the result, as `a.b.c.d`.
fn leased(result: &Value) -> String {
    let ips = result["ips"].as_array().expect("ips");
    assert_eq!(ips.len(), 1, "{result}");
    ips[0]["address"].as_str().unwrap().split('/').next().unwrap().to_string()
}

/// The IPv4 addresses on `eth0` in `ctr` (`ip -j addr`).
fn addrs(ctr: &TestNs) -> Vec<String> {
    let v = conformance::witness::ip(ctr, &["-4", "addr", "show", "dev", "eth0"]);
    v[0]["addr_info"]
        .as_array()
        .map(|a| a.iter().map(|i| format!("{}/{}", i["local"].as_str().unwrap(), i["prefixlen"])).collect())
        .unwrap_or_default()
}

/// The hex client id dnsmasq records for our client (type 0 + text).
fn client_id_hex(ctr: &TestNs) -> String {
    let id = format!("{}/{NET}/eth0", ctr.name);
    std::iter::once(0u8).chain(id.bytes()).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[test]
fn two_containers_get_distinct_leases_with_router_and_dns_and_del_releases() {
    let lan = Lan::new(&bin("dhcp"), true);
    let (c1, c2) = (TestNs::new("dhc1"), TestNs::new("dhc2"));
    let r1 = lan.ok("add", &c1);
    let r2 = lan.ok("add", &c2);
    let (a1, a2) = (leased(&r1), leased(&r2));
    assert_ne!(a1, a2);
    for (r, c, a) in [(&r1, &c1, &a1), (&r2, &c2, &a2)] {
        assert!(a.starts_with("10.66.0."), "{r}");
        assert_eq!(r["ips"][0]["address"], format!("{a}/24"), "{r}");
        assert_eq!(r["ips"][0]["gateway"], ROUTER, "{r}");
        assert!(r["routes"].as_array().unwrap().iter().any(|rt| rt["dst"] == "0.0.0.0/0" && rt["gw"] == ROUTER), "{r}");
        assert_eq!(addrs(c), vec![format!("{a}/24")]);
        assert!(c.ping(ROUTER), "{} cannot reach the router", c.name);
        // The server holds the lease under our client id.
        let sl = lan.server_lease_of(a).unwrap_or_else(|| panic!("{a} not in {:?}", lan.server_leases()));
        assert_eq!(sl.client_id, client_id_hex(c));
        // The example provides the pod's name as option 12.
        assert_eq!(sl.hostname, c.name);
    }
    lan.ok("check", &c1);

    // macvlan reports the config's `dns`, not IPAM's (as the reference
    // does): the name servers are in the dhcp plugin's own result, which
    // it gives to an interface plugin such as macvlan.
    let c3 = TestNs::new("dhc3");
    lan.host.ns.ok(&[
        "ip", "link", "add", "link", "up0", "name", "eth0", "netns", &c3.name, "type", "macvlan", "mode", "bridge",
    ]);
    let r3 = ipam(&lan.host, "ADD", &c3.path(), json!({"type": "dhcp", "daemonSocketPath": lan.socket()})).ok().json();
    assert_eq!(r3["dns"]["nameservers"], json!([DNS]), "{r3}");
    assert_eq!(r3["ips"][0]["gateway"], ROUTER, "{r3}");
    assert_eq!(r3["routes"], json!([{"dst": "0.0.0.0/0", "gw": ROUTER}]), "{r3}");
    let a3 = leased(&r3);
    assert!(lan.server_lease_of(&a3).is_some());
    // A repeated ADD returns the held lease.
    let again =
        ipam(&lan.host, "ADD", &c3.path(), json!({"type": "dhcp", "daemonSocketPath": lan.socket()})).ok().json();
    assert_eq!(again, r3);
    // What the interface plugin does with the result; DEL comes while the
    // container still holds the address, and the release leaves from it.
    c3.ok(&["ip", "addr", "add", &format!("{a3}/24"), "dev", "eth0"]);
    ipam(&lan.host, "DEL", &c3.path(), json!({"type": "dhcp", "daemonSocketPath": lan.socket()})).ok();
    wait_for("the release of the third lease", Duration::from_secs(5), || lan.server_lease_of(&a3).is_none());

    // Option 121 wins over the router (RFC 3442): its routes alone, and no
    // gateway.
    let c4 = TestNs::new("dhc4");
    lan.host.ns.ok(&[
        "ip",
        "link",
        "add",
        "link",
        "up0",
        "name",
        "eth0",
        "address",
        CLASSLESS_MAC,
        "netns",
        &c4.name,
        "type",
        "macvlan",
        "mode",
        "bridge",
    ]);
    let conf4 = json!({"type": "dhcp", "daemonSocketPath": lan.socket()});
    let r4 = ipam(&lan.host, "ADD", &c4.path(), conf4.clone()).ok().json();
    assert_eq!(
        r4["routes"],
        json!([{"dst": "192.168.50.0/24", "gw": "10.66.0.9"}, {"dst": "0.0.0.0/0", "gw": ROUTER}]),
        "{r4}"
    );
    assert!(r4["ips"][0].get("gateway").is_none(), "{r4}");
    let a4 = leased(&r4);
    c4.ok(&["ip", "addr", "add", &format!("{a4}/24"), "dev", "eth0"]);
    ipam(&lan.host, "DEL", &c4.path(), conf4).ok();
    wait_for("the release of the fourth lease", Duration::from_secs(5), || lan.server_lease_of(&a4).is_none());

    lan.ok("del", &c1);
    wait_for("the release to reach dnsmasq", Duration::from_secs(5), || lan.server_lease_of(&a1).is_none());
    assert!(lan.server_lease_of(&a2).is_some(), "the other container's lease went too");
    lan.ok("del", &c1);

    // The container gone: DEL still succeeds.
    let gone = c2.path();
    drop(c2);
    let out = lan.cnitool("del", &gone, gone.rsplit('/').next().unwrap());
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn renewal_keeps_the_address_and_a_restarted_daemon_keeps_renewing() {
    let mut lan = Lan::new(&bin("dhcp"), true);
    let c = TestNs::new("dhcr");
    let a = leased(&lan.ok("add", &c));
    let first = lan.server_lease_of(&a).expect("lease on the server").expiry;
    // A CHECK of an attachment the daemon does not hold fails.
    let stranger = TestNs::new("dhcs");
    let e =
        ipam(&lan.host, "CHECK", &stranger.path(), json!({"type": "dhcp", "daemonSocketPath": lan.socket()})).err(100);
    assert!(e["msg"].as_str().unwrap().contains("holds no lease"), "{e}");

    // T1 is 15 s: the daemon renews, the server moves the expiry.
    wait_for("a renewal", Duration::from_secs(40), || lan.server_lease_of(&a).is_some_and(|l| l.expiry > first));
    assert_eq!(addrs(&c), vec![format!("{a}/24")]);
    lan.ok("check", &c);

    // Another container, gone while the daemon is down (no DEL): the
    // restarted daemon forgets its lease instead of renewing it forever.
    let gone = TestNs::new("dhcx");
    let gone_addr = leased(&lan.ok("add", &gone));

    // A crash of the daemon: the restarted one knows the lease and renews it.
    lan.kill_daemon();
    drop(gone);
    lan.start_daemon();
    assert!(lan.daemon_log().contains(&format!("forgetting {gone_addr}")), "{}", lan.daemon_log());
    lan.ok("check", &c);
    // `dhcp status` shows the lease the restarted daemon took back.
    let out = lan.host.ns.ok(&[bin("dhcp").to_str().unwrap(), "status", "-socketpath", &lan.socket()]);
    let st: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["leases"].as_array().map(Vec::len), Some(1), "{st}");
    assert_eq!(st["leases"][0]["container_id"], c.name.as_str(), "{st}");
    assert_eq!(st["leases"][0]["lease"]["address"], a.as_str(), "{st}");
    assert!(st["leases"][0]["renewals"].as_u64() >= Some(1), "{st}");
    let second = lan.server_lease_of(&a).expect("lease on the server").expiry;
    wait_for("a renewal by the restarted daemon", Duration::from_secs(40), || {
        lan.server_lease_of(&a).is_some_and(|l| l.expiry > second)
    });
    lan.ok("check", &c);
    lan.ok("del", &c);
    wait_for("the release", Duration::from_secs(5), || lan.server_lease_of(&a).is_none());
}

/// CHECK's error, once it fails with a message containing `want`
/// (polled every second up to `limit`).
fn check_fails_with(lan: &Lan, c: &TestNs, want: &str, limit: Duration) -> Value {
    let end = Instant::now() + limit;
    loop {
        let out = lan.cnitool("check", &c.path(), &c.name);
        if !out.status.success() {
            let err: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
            if err["msg"].as_str().unwrap_or_default().contains(want) {
                return err;
            }
        }
        assert!(Instant::now() < end, "CHECK never failed with {want:?}; last: {out:?}\n{}", lan.daemon_log());
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn server_gone_renewal_fails_check_reports_it_and_rebinding_recovers() {
    let mut lan = Lan::new(&bin("dhcp"), true);
    let c = TestNs::new("dhcg");
    let a = leased(&lan.ok("add", &c));
    lan.ok("check", &c);
    lan.stop_dnsmasq();
    // T1 (15 s): the unicast renewal gets no answer.
    let err = check_fails_with(&lan, &c, "renewing", Duration::from_secs(40));
    assert!(err["msg"].as_str().unwrap().contains(&a), "{err}");
    // T2 (25 s): the broadcast rebinding gets none either.
    let err = check_fails_with(&lan, &c, "rebinding", Duration::from_secs(30));
    assert!(err["msg"].as_str().unwrap().contains(&a), "{err}");

    // The server is back (its lease file kept): the next rebinding
    // attempt succeeds, with the same address.
    lan.start_dnsmasq();
    let end = Instant::now() + Duration::from_secs(30);
    while !lan.cnitool("check", &c.path(), &c.name).status.success() {
        assert!(Instant::now() < end, "the lease was not rebound:\n{}", lan.daemon_log());
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(addrs(&c), vec![format!("{a}/24")]);
    assert!(lan.daemon_log().contains("renewed"), "{}", lan.daemon_log());

    // Server gone again: nobody answers the release; DEL still succeeds.
    lan.stop_dnsmasq();
    lan.ok("del", &c);
}

#[test]
fn twenty_parallel_adds_get_distinct_leases() {
    let lan = Lan::new(&bin("dhcp"), true);
    let ctrs: Vec<TestNs> = (0..20).map(|_| TestNs::new("dhcp")).collect();
    let results: Vec<Value> = std::thread::scope(|s| {
        let hs: Vec<_> = ctrs.iter().map(|c| s.spawn(|| lan.ok("add", c))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let addrs: BTreeSet<String> = results.iter().map(leased).collect();
    assert_eq!(addrs.len(), 20, "{addrs:?}");
    let on_server: BTreeSet<String> = lan.server_leases().into_iter().map(|l| l.ip).collect();
    assert_eq!(on_server, addrs);

    // GC with half of them valid releases the other half.
    let valid: Vec<Value> = ctrs[..10].iter().map(|c| json!({"containerID": c.name, "ifname": "eth0"})).collect();
    let gc = json!({"cniVersion": "1.1.0", "name": NET, "type": "macvlan",
        "ipam": {"type": "dhcp", "daemonSocketPath": lan.socket()}, "cni.dev/valid-attachments": valid});
    let path = bin_dir().display().to_string();
    run_plugin(Some(&lan.host.ns.name), "dhcp", &[("CNI_COMMAND", "GC"), ("CNI_PATH", &path)], &gc.to_string()).ok();
    let kept: BTreeSet<String> = results[..10].iter().map(leased).collect();
    wait_for("GC's releases", Duration::from_secs(10), || {
        lan.server_leases().into_iter().map(|l| l.ip).collect::<BTreeSet<_>>() == kept
    });

    std::thread::scope(|s| {
        for c in &ctrs {
            s.spawn(|| lan.ok("del", c));
        }
    });
    wait_for("every release", Duration::from_secs(10), || lan.server_leases().is_empty());
}

/// The dhcp plugin alone, as an interface plugin execs it.
fn ipam(host: &Host, cmd: &str, ctr: &str, ipam: Value) -> conformance::PluginRun {
    let mut conf = json!({"cniVersion": "1.1.0", "name": NET, "type": "macvlan", "ipam": ipam});
    if cmd == "CHECK" {
        conf["prevResult"] = json!({"cniVersion": "1.1.0", "ips": [{"address": "10.66.0.10/24"}]});
    }
    let path = bin_dir().display().to_string();
    run_plugin(
        Some(&host.ns.name),
        "dhcp",
        &[
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", ctr.rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or("none")),
            ("CNI_NETNS", ctr),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", &path),
        ],
        &conf.to_string(),
    )
}

#[test]
fn no_daemon_is_an_error_naming_the_socket_and_bad_options_are_code_7() {
    let host = Host::new("dhce");
    let c = TestNs::new("dhce");
    let sock = host.dir.join("nobody.sock").display().to_string();
    for cmd in ["ADD", "DEL", "CHECK"] {
        let e = ipam(&host, cmd, &c.path(), json!({"type": "dhcp", "daemonSocketPath": sock})).err(11);
        assert!(e["msg"].as_str().unwrap().contains(&sock), "{cmd}: {e}");
        assert!(e["msg"].as_str().unwrap().contains("not running"), "{cmd}: {e}");
    }
    let e = ipam(&host, "STATUS", "", json!({"type": "dhcp", "daemonSocketPath": sock})).err(50);
    assert!(e["msg"].as_str().unwrap().contains(&sock), "{e}");

    for (ipam_conf, field) in [
        (
            json!({"type": "dhcp", "daemonSocketPath": sock, "request": [{"option": "no-such-option"}]}),
            "ipam.request[0].option",
        ),
        (
            json!({"type": "dhcp", "daemonSocketPath": sock, "provide": [{"option": "host-name", "value": "x".repeat(300)}]}),
            "ipam.provide[0]",
        ),
        (
            json!({"type": "dhcp", "daemonSocketPath": sock, "provide": [{"option": 53, "value": "1"}]}),
            "ipam.provide[0].option",
        ),
        (json!({"type": "dhcp", "daemonSocketPath": 5}), "daemonSocketPath"),
    ] {
        let e = ipam(&host, "ADD", &c.path(), ipam_conf).err(7);
        assert!(e["msg"].as_str().unwrap().contains(field), "{field}: {e}");
    }
    // Nothing was done in the container.
    assert!(!Path::new(&sock).exists());
    assert_eq!(conformance::witness::ip(&c, &["-4", "addr"]).as_array().unwrap().len(), 0);
}

#[test]
fn daemon_socket_is_private_single_and_removed_on_sigterm_and_socket_activation_works() {
    use std::os::unix::fs::PermissionsExt;
    let host = Host::new("dhcd");
    let sock = host.dir.join("d.sock").display().to_string();
    let pidfile = host.dir.join("d.pid").display().to_string();
    let status = |sock: &str| {
        let conf = json!({"cniVersion": "1.1.0", "name": NET, "type": "macvlan",
            "ipam": {"type": "dhcp", "daemonSocketPath": sock}});
        let path = bin_dir().display().to_string();
        run_plugin(Some(&host.ns.name), "dhcp", &[("CNI_COMMAND", "STATUS"), ("CNI_PATH", &path)], &conf.to_string())
    };
    let daemon = |extra: &[&str]| {
        std::process::Command::new("ip")
            .args(["netns", "exec", &host.ns.name])
            .arg(bin("dhcp"))
            .args(["daemon", "-socketpath", &sock])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = daemon(&["-pidfile", &pidfile]);
    wait_for("the socket", Duration::from_secs(10), || status(&sock).code == 0);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), first.id().to_string());

    // A second daemon on the same socket refuses to start.
    let second = daemon(&[]).wait_with_output().unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("another dhcp daemon"), "{second:?}");
    assert_eq!(status(&sock).code, 0, "the first one still serves");

    // A namespace that is not one, or one without the interface: a clear
    // error at once, no DHCP attempted.
    let add = |netns: &str| {
        let conf = json!({"cniVersion": "1.1.0", "name": NET, "type": "macvlan",
            "ipam": {"type": "dhcp", "daemonSocketPath": sock}});
        let path = bin_dir().display().to_string();
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", path.as_str()),
        ];
        run_plugin(Some(&host.ns.name), "dhcp", &env, &conf.to_string())
    };
    let not_ns = host.dir.join("not-a-netns");
    std::fs::write(&not_ns, "").unwrap();
    let e = add(not_ns.to_str().unwrap()).err(100);
    assert!(e["msg"].as_str().unwrap().contains("not-a-netns"), "{e}");
    let empty = TestNs::new("dhce");
    let e = add(&empty.path()).err(100);
    assert!(e["msg"].as_str().unwrap().contains("no interface eth0"), "{e}");

    // SIGTERM: a clean stop that removes the socket and the PID file.
    // SAFETY: kill(2) of the child we started, by its PID.
    assert_eq!(unsafe { libc::kill(first.id() as i32, libc::SIGTERM) }, 0);
    assert!(first.wait().unwrap().success());
    assert!(!Path::new(&sock).exists() && !Path::new(&pidfile).exists());
    status(&sock).err(50);

    // systemd socket activation: the listening socket arrives as fd 3.
    let act = host.dir.join("act.sock");
    let listener = std::os::unix::net::UnixListener::bind(&act).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
    let act = act.display().to_string();
    let mut cmd = std::process::Command::new("ip");
    // -socketpath only names the state directory here (kept in the temp dir).
    cmd.args([
        "netns",
        "exec",
        &host.ns.name,
        "sh",
        "-c",
        "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" daemon -socketpath \"$1\"",
    ])
    .arg(bin("dhcp"))
    .arg(&act)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut activated = cmd.spawn().unwrap();
    drop(listener);
    wait_for("the activated daemon", Duration::from_secs(10), || status(&act).code == 0);
    let _ = activated.kill();
    let _ = activated.wait();
}
