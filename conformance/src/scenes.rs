//! The demo's scenes, one per network model people know from Docker.

use crate::demo::Demo;
use crate::topology::Topology;
use crate::witness;

/// One scene: a name for `SCENE=`, a heading, and what it does.
pub struct Scene {
    /// Name for `make demo SCENE=<name>`.
    pub name: &'static str,
    /// Heading.
    pub title: &'static str,
    /// One sentence on what the scene shows.
    pub about: &'static str,
    /// Runs the scene, recording its proofs.
    pub run: fn(&mut Demo),
}

/// Every scene, in the order the demo runs them.
pub const SCENES: &[Scene] = &[
    Scene {
        name: "none",
        title: "none: a container with only lo (loopback plugin)",
        about: "docker run --network none: the container gets lo and nothing else.",
        run: none,
    },
    Scene {
        name: "bridge",
        title: "bridge: two containers on a bridge with a gateway and masquerade",
        about: "docker's default network: cni-conf/10-bridge.conflist (bridge + host-local), dual-stack.",
        run: bridge,
    },
    Scene {
        name: "portmap",
        title: "port mapping: -p 8888:80",
        about: "docker run -p 8888:80: cni-conf/10-bridge.conflist chains portmap; CAP_ARGS carries the mapping.",
        run: portmap,
    },
    Scene {
        name: "isolation",
        title: "isolation: two bridge networks that cannot reach each other",
        about: "docker network create twice, then docker network connect: isolation: true on both networks.",
        run: isolation,
    },
    Scene {
        name: "underlay",
        title: "underlay: two containers on macvlan, on the host's L2 segment",
        about:
            "docker network create -d macvlan: cni-conf/30-macvlan.conflist, master = the host's default-route link.",
        run: underlay,
    },
    Scene {
        name: "overlay",
        title: "overlay: three hosts, containers connected through vxlan",
        about: "docker swarm's overlay model: cni-conf/vxlan/ (one subnet per host of 10.244.0.0/16, UDP 4789).",
        run: overlay,
    },
    Scene {
        name: "dns",
        title: "names: containers on one network reach each other by name (dnsname)",
        about: "docker network create + docker run --name web: cni-conf/60-dnsname.conflist chains dnsname; \
                a container on the default network (docker0's model) cannot resolve them.",
        run: dns,
    },
    Scene {
        name: "overlay-etcd",
        title: "overlay on etcd: hosts join by starting their agent, leave by stopping it",
        about:
            "docker's \"cluster of hosts sharing a key-value store\": cni-conf/vxlan/etcd.conflist, the same file on \
                every host; `vxlan agent` takes each host's subnet from etcd and programs the others.",
        run: overlay_etcd,
    },
];

/// The addresses (without prefix) in a result, IPv4 first.
fn result_ips(r: &Option<serde_json::Value>) -> Vec<String> {
    let mut out: Vec<String> = r
        .as_ref()
        .and_then(|v| v["ips"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i["address"].as_str().map(|a| a.split('/').next().unwrap_or(a).to_string()))
        .collect();
    out.sort_by_key(|a| a.contains(':'));
    out
}

/// The interface lines for a container's box in a picture.
fn iface_lines(r: &Option<serde_json::Value>, ifname: &str) -> Vec<String> {
    result_ips(r).iter().map(|a| format!("{ifname} {a}")).collect()
}

fn bridge(d: &mut Demo) {
    let host = d.ns("bridge-host");
    let (c1, c2) = (d.ns("bridge-c1"), d.ns("bridge-c2"));
    let r1 = d.cnitool(host, "add", "cni-rs", c1, "eth0", "");
    let r2 = d.cnitool(host, "add", "cni-rs", c2, "eth0", "");
    d.proof("cnitool add cni-rs (two containers)", r1.is_some() && r2.is_some());
    d.show(c1, &["ip", "-br", "addr", "show", "eth0"]);
    d.show(c1, &["ip", "route"]);
    d.show(host, &["ip", "-br", "link", "show", "master", "cni0"]);
    d.show(host, &["nft", "list", "map", "inet", "cnirs-nat", "masq-src4"]);
    let (ips1, ips2) = (result_ips(&r1), result_ips(&r2));
    if let (Some(a2), Some(a1v6)) = (ips2.first(), ips1.get(1)) {
        d.proof(&format!("c1 pings c2 at {a2}"), d.get(c1).ping(a2));
        d.proof(&format!("c2 pings c1 at {a1v6} (IPv6)"), d.get(c2).ping(a1v6));
    } else {
        d.proof("both containers got an IPv4 and an IPv6 address", false);
    }
    d.proof("c1 pings the gateway 10.88.0.1", d.get(c1).ping("10.88.0.1"));
    d.proof("c1 pings the gateway fd00:88::1 (IPv6)", d.get(c1).ping("fd00:88::1"));
    d.proof("cnitool check (c1)", d.cnitool(host, "check", "cni-rs", c1, "eth0", "").is_some());
    let del = d.cnitool(host, "del", "cni-rs", c1, "eth0", "").is_some()
        && d.cnitool(host, "del", "cni-rs", c2, "eth0", "").is_some();
    d.proof("cnitool del (both)", del);
    let left = witness::ip(d.get(host), &["link", "show", "type", "veth"]).as_array().map_or(0, Vec::len);
    d.proof(&format!("no veth left on the host after DEL ({left})"), left == 0);
    let mut t = Topology::default();
    let h =
        t.node("host", vec!["cni0 10.88.0.1/16".into(), "cni0 fd00:88::1/64".into(), "nft: masquerade".into()], None);
    let n1 = t.node("container c1", iface_lines(&r1, "eth0"), Some(h));
    let n2 = t.node("container c2", iface_lines(&r2, "eth0"), Some(h));
    t.link(n1, n2, "via cni0");
    d.picture("bridge", &t, "bridge: cni0 with two containers");
}

fn isolation(d: &mut Demo) {
    let host = d.ns("iso-host");
    let (ca, cb, cab) = (d.ns("iso-a"), d.ns("iso-b"), d.ns("iso-ab"));
    let ra = d.cnitool(host, "add", "isolated-a", ca, "eth0", "");
    let rb = d.cnitool(host, "add", "isolated-b", cb, "eth0", "");
    let rab1 = d.cnitool(host, "add", "isolated-a", cab, "eth0", "");
    let rab2 = d.cnitool(host, "add", "isolated-b", cab, "eth1", "");
    d.proof(
        "containers on isolated-a, isolated-b, and one on both",
        [&ra, &rb, &rab1, &rab2].iter().all(|r| r.is_some()),
    );
    d.show(cab, &["ip", "-br", "addr"]);
    d.show(host, &["nft", "list", "table", "inet", "cnirs-isolation"]);
    let (a, b) = (result_ips(&ra), result_ips(&rb));
    if let (Some(a), Some(b)) = (a.first(), b.first()) {
        d.proof(&format!("a cannot reach b ({b}): isolated"), !d.get(ca).ping(b));
        d.proof(&format!("b cannot reach a ({a}): isolated"), !d.get(cb).ping(a));
        d.proof("the container on both networks reaches a", d.get(cab).ping(a));
        d.proof("the container on both networks reaches b", d.get(cab).ping(b));
    } else {
        d.proof("every container got an address", false);
    }
    let dels = [
        ("isolated-a", ca, "eth0"),
        ("isolated-b", cb, "eth0"),
        ("isolated-a", cab, "eth0"),
        ("isolated-b", cab, "eth1"),
    ];
    let ok = dels.iter().all(|(n, c, i)| d.cnitool(host, "del", n, *c, i, "").is_some());
    d.proof("cnitool del (all four attachments)", ok);
    let mut t = Topology::default();
    let h = t.node(
        "host",
        vec!["cni-iso-a 10.91.1.1/24".into(), "cni-iso-b 10.91.2.1/24".into(), "nft: a x b dropped".into()],
        None,
    );
    let na = t.node("container a", iface_lines(&ra, "eth0"), Some(h));
    let nab = t.node("container a+b", [iface_lines(&rab1, "eth0"), iface_lines(&rab2, "eth1")].concat(), Some(h));
    let nb = t.node("container b", iface_lines(&rb, "eth0"), Some(h));
    t.link(na, nab, "isolated-a");
    t.link(nab, nb, "isolated-b");
    d.picture("isolation", &t, "isolation: two networks, one container on both");
}

fn none(d: &mut Demo) {
    let host = d.ns("none-host");
    let ctr = d.ns("none-c1");
    let added = d.cnitool(host, "add", "lo", ctr, "eth0", "");
    d.proof("cnitool add lo", added.is_some());
    d.show(ctr, &["ip", "-br", "addr"]);
    d.show(ctr, &["ip", "route"]);
    d.proof("ping 127.0.0.1 from the container", d.get(ctr).ping("127.0.0.1"));
    let links = witness::link_names(d.get(ctr));
    d.proof(&format!("the container has only lo (links: {links:?})"), links == ["lo"]);
    d.proof("ping 10.0.0.1 fails: no route out", !d.get(ctr).ping("10.0.0.1"));
    d.proof("cnitool check lo", d.cnitool(host, "check", "lo", ctr, "eth0", "").is_some());
    d.proof("cnitool del lo", d.cnitool(host, "del", "lo", ctr, "eth0", "").is_some());
    let mut t = Topology::default();
    let h = t.node("host (namespace)", vec!["no links: nothing attached".into()], None);
    t.node("container c1", vec!["lo 127.0.0.1/8".into(), "lo ::1/128".into()], Some(h));
    d.picture("none", &t, "none: loopback only");
}

fn underlay(d: &mut Demo) {
    let host = d.ns("ul-host");
    let peer = d.ns("ul-peer");
    let (c1, c2) = (d.ns("ul-c1"), d.ns("ul-c2"));
    // The "physical" segment: a veth pair from the host to a peer machine,
    // which is also the host's default gateway (so macvlan's default
    // master is this link).
    let peer_name = d.get(peer).name.clone();
    for argv in [
        vec!["ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul1", "netns", &peer_name],
        vec!["ip", "link", "set", "ul0", "up"],
        vec!["ip", "route", "add", "default", "dev", "ul0"],
    ] {
        d.get(host).ok(&argv);
    }
    for argv in [
        vec!["ip", "addr", "add", "192.168.77.1/24", "dev", "ul1"],
        vec!["ip", "addr", "add", "fd00:77::1/64", "dev", "ul1", "nodad"],
        vec!["ip", "link", "set", "ul1", "up"],
    ] {
        d.get(peer).ok(&argv);
    }
    let r1 = d.cnitool(host, "add", "underlay", c1, "eth0", "");
    let r2 = d.cnitool(host, "add", "underlay", c2, "eth0", "");
    d.proof("cnitool add underlay (two containers)", r1.is_some() && r2.is_some());
    d.show(c1, &["ip", "-d", "-br", "link", "show", "eth0"]);
    d.show(c1, &["ip", "-br", "addr", "show", "eth0"]);
    let (a1, a2) = (result_ips(&r1), result_ips(&r2));
    if let (Some(a2), Some(a1)) = (a2.first(), a1.first()) {
        d.proof(&format!("c1 pings c2 at {a2} (same segment, no bridge)"), d.get(c1).ping(a2));
        d.proof(&format!("the peer machine pings c1 at {a1}"), d.get(peer).ping(a1));
    } else {
        d.proof("both containers got addresses", false);
    }
    d.proof("c2 pings the peer machine 192.168.77.1", d.get(c2).ping("192.168.77.1"));
    d.proof("c2 pings the peer machine fd00:77::1 (IPv6)", d.get(c2).ping("fd00:77::1"));
    let del = d.cnitool(host, "del", "underlay", c1, "eth0", "").is_some()
        && d.cnitool(host, "del", "underlay", c2, "eth0", "").is_some();
    d.proof("cnitool del (both)", del);
    let mut t = Topology::default();
    let h = t.node("host", vec!["ul0 (master)".into()], None);
    let n1 = t.node("container c1", iface_lines(&r1, "eth0"), Some(h));
    let n2 = t.node("container c2", iface_lines(&r2, "eth0"), Some(h));
    let p = t.node("peer machine", vec!["ul1 192.168.77.1/24".into(), "ul1 fd00:77::1/64".into()], None);
    t.link(n1, n2, "macvlan bridge mode");
    t.link(h, p, "L2 segment");
    d.picture("underlay", &t, "underlay: macvlan on the host's segment");
}

fn overlay(d: &mut Demo) {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo").join("cni-conf/vxlan");
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(repo.join(f)).expect("example config")).expect("JSON")
    };
    let lab = d.ns("ov-lab");
    d.get(lab).ok(&["ip", "link", "add", "ul0", "type", "bridge"]);
    d.get(lab).ok(&["ip", "link", "set", "ul0", "up"]);
    let peers = d.work.join("peers.json");
    std::fs::write(&peers, read("peers.json").to_string()).expect("peers file");
    let lab_name = d.get(lab).name.clone();
    let mut hosts = Vec::new();
    let mut ctrs = Vec::new();
    let mut results = Vec::new();
    for i in 1..=3 {
        let host = d.ns(&format!("ov-host{i}"));
        let leg = format!("leg{i}");
        let ip = format!("192.168.100.{i}/24");
        d.get(host).ok(&["ip", "link", "add", "eth0", "type", "veth", "peer", "name", &leg, "netns", &lab_name]);
        d.get(host).ok(&["ip", "addr", "add", &ip, "dev", "eth0"]);
        d.get(host).ok(&["ip", "link", "set", "eth0", "up"]);
        d.get(host).ok(&["ip", "link", "set", "lo", "up"]);
        d.get(lab).ok(&["ip", "link", "set", &leg, "master", "ul0", "up"]);
        let mut conf = read(&format!("host{i}.conflist"));
        conf["plugins"][0]["peersFile"] = peers.display().to_string().into();
        d.host_configs(host, &[(&format!("host{i}.conflist"), conf)]);
        let ctr = d.ns(&format!("ov-c{i}"));
        results.push(d.cnitool(host, "add", "overlay", ctr, "eth0", ""));
        hosts.push(host);
        ctrs.push(ctr);
    }
    d.proof("cnitool add overlay on each of three hosts", results.iter().all(Option::is_some));
    d.show(hosts[0], &["ip", "-d", "-br", "link", "show", "vxlan.1"]);
    d.show(hosts[0], &["ip", "route", "show", "dev", "vxlan.1"]);
    d.show(hosts[0], &["bridge", "fdb", "show", "dev", "vxlan.1"]);
    let addrs: Vec<Option<String>> = results.iter().map(|r| result_ips(r).into_iter().next()).collect();
    for (i, a) in addrs.iter().enumerate().skip(1) {
        match a {
            Some(a) => {
                d.proof(&format!("container on host 1 pings the one on host {} at {a}", i + 1), d.get(ctrs[0]).ping(a))
            }
            None => d.proof(&format!("container on host {} got an address", i + 1), false),
        }
    }
    for (i, (host, ctr)) in hosts.iter().zip(&ctrs).enumerate() {
        let ok = d.cnitool(*host, "del", "overlay", *ctr, "eth0", "").is_some();
        d.proof(&format!("cnitool del on host {}", i + 1), ok);
    }
    let mut t = Topology::default();
    let mut prev = None;
    for (i, r) in results.iter().enumerate() {
        let h = t.node(
            &format!("host {}", i + 1),
            vec![format!("eth0 192.168.100.{}", i + 1), "vxlan.1 (VNI 1, UDP 4789)".into()],
            None,
        );
        t.node(&format!("container on host {}", i + 1), iface_lines(r, "eth0"), Some(h));
        if let Some(p) = prev {
            t.link(p, h, "underlay + vxlan");
        }
        prev = Some(h);
    }
    d.picture("overlay", &t, "overlay: vxlan between three hosts");
}

fn portmap(d: &mut Demo) {
    let host = d.ns("pm-host");
    let client = d.ns("pm-client");
    let ctr = d.ns("pm-c1");
    // The host's uplink to a client machine.
    let client_name = d.get(client).name.clone();
    d.get(host).ok(&["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", &client_name]);
    d.get(host).ok(&["ip", "addr", "add", "192.0.2.1/24", "dev", "up0"]);
    d.get(host).ok(&["ip", "link", "set", "up0", "up"]);
    d.get(host).ok(&["ip", "link", "set", "lo", "up"]);
    d.get(client).ok(&["ip", "addr", "add", "192.0.2.2/24", "dev", "up1"]);
    d.get(client).ok(&["ip", "link", "set", "up1", "up"]);
    let caps = r#"{"portMappings":[{"hostPort":8888,"containerPort":80,"protocol":"tcp"}]}"#;
    let r = d.cnitool(host, "add", "cni-rs", ctr, "eth0", caps);
    d.proof("cnitool add cni-rs with CAP_ARGS portMappings 8888->80", r.is_some());
    let server = crate::tcp::Server::start(&d.get(ctr).name, "[::]:80", "hello from the container\n");
    d.proof("a server listens on port 80 in the container", server.is_ok());
    d.show(host, &["nft", "list", "table", "inet", "cnirs-portmap"]);
    let client_ns = d.get(client).name.clone();
    let got = crate::tcp::request(&client_ns, "192.0.2.1:8888");
    println!("  client -> 192.0.2.1:8888: {got:?}");
    d.proof(
        "a client in another namespace reaches the container through host port 8888",
        got.is_ok_and(|s| s.contains("hello")),
    );
    let host_ns = d.get(host).name.clone();
    let local = crate::tcp::request(&host_ns, "127.0.0.1:8888");
    d.proof("the host itself reaches it at 127.0.0.1:8888", local.is_ok_and(|s| s.contains("hello")));
    drop(server);
    d.proof("cnitool del cni-rs", d.cnitool(host, "del", "cni-rs", ctr, "eth0", caps).is_some());
    let after = crate::tcp::request(&client_ns, "192.0.2.1:8888");
    d.proof("after DEL the port no longer answers", after.is_err());
    let mut t = Topology::default();
    let h = t.node(
        "host",
        vec!["up0 192.0.2.1/24".into(), "cni0 10.88.0.1/16".into(), "nft: tcp 8888 -> :80".into()],
        None,
    );
    t.node("container c1", [iface_lines(&r, "eth0"), vec!["listens on :80".into()]].concat(), Some(h));
    let c = t.node("client", vec!["up1 192.0.2.2/24".into(), "connects to 192.0.2.1:8888".into()], None);
    t.link(h, c, "uplink");
    d.picture("portmap", &t, "port mapping: host 8888 -> container 80");
}

fn dns(d: &mut Demo) {
    use crate::dns::{self, Type};
    let host = d.ns("dns-host");
    let (web, client, other) = (d.ns("dns-web"), d.ns("dns-client"), d.ns("dns-other"));
    // The bundled example, its records kept in the demo's scratch space.
    let mut list: serde_json::Value =
        serde_json::from_str(include_str!("../../cni-conf/60-dnsname.conflist")).expect("the example");
    list["plugins"][1]["dataDir"] = d.work_dir().join("dnsname").display().to_string().into();
    let default: serde_json::Value =
        serde_json::from_str(include_str!("../../cni-conf/10-bridge.conflist")).expect("the bridge example");
    d.host_configs(host, &[("60-dnsname.conflist", list), ("10-bridge.conflist", default)]);
    let aliases = r#"{"aliases":{"dnsnet":["www"]}}"#;
    let rw = d.cnitool_args(host, "add", "dnsnet", web, "eth0", aliases, "IgnoreUnknown=1;K8S_POD_NAME=web");
    let rc = d.cnitool_args(host, "add", "dnsnet", client, "eth0", "", "IgnoreUnknown=1;K8S_POD_NAME=client");
    let ro = d.cnitool(host, "add", "cni-rs", other, "eth0", "");
    d.proof("web and client on dnsnet, other on the default network", rw.is_some() && rc.is_some() && ro.is_some());
    let dns_of = rc.as_ref().map(|r| r["dns"].clone()).unwrap_or_default();
    println!("  client's result: \"dns\": {dns_of}");
    let server = dns_of["nameservers"][0].as_str().unwrap_or("10.89.60.1").to_string();
    let web_ips = result_ips(&rw);
    // Without addresses the proofs below fail, and the DELs still run.
    let web4 = web_ips.first().cloned().unwrap_or_default();
    let web6 = web_ips.get(1).cloned().unwrap_or_default();
    let cname = d.get(client).name.clone();
    let a = |name: &str, t: Type| dns::query(&cname, &server, name, t).map(|m| dns::answers(&m)).unwrap_or_default();
    d.proof(&format!("client resolves web to {web4}"), a("web", Type::A) == [web4.clone()]);
    d.proof(&format!("client resolves web.dns.podman (AAAA) to {web6}"), a("web.dns.podman", Type::AAAA) == [web6]);
    d.proof("client resolves the alias www", a("www", Type::A) == [web4.clone()]);
    let ptr = web4
        .parse::<std::net::IpAddr>()
        .ok()
        .and_then(|_| dns::query(&cname, &server, &dns::arpa(&web4), Type::PTR))
        .map(|m| dns::answers(&m))
        .unwrap_or_default();
    d.proof(&format!("{web4} is web.dns.podman (PTR)"), ptr == ["web.dns.podman."]);
    d.proof("client pings web by name", a("web", Type::A).first().is_some_and(|ip| d.get(client).ping(ip)));
    d.show(host, &["ss", "-lnup", "sport = :53"]);
    let oname = d.get(other).name.clone();
    d.proof(
        &format!("other (default network) gets no answer from {server}: not its network"),
        dns::query(&oname, &server, "web", Type::A).is_none(),
    );
    let del_web = d.cnitool_args(host, "del", "dnsnet", web, "eth0", "", "").is_some();
    let gone = dns::query(&cname, &server, "web.dns.podman", Type::A).map(|m| dns::rcode(&m));
    d.proof("after web's DEL, web.dns.podman is NXDOMAIN", del_web && gone == Some(dns::Rcode::NXDomain));
    let dels = d.cnitool_args(host, "del", "dnsnet", client, "eth0", "", "").is_some()
        && d.cnitool(host, "del", "cni-rs", other, "eth0", "").is_some();
    let listening = d.get(host).ok(&["ss", "-H", "-lnu", "sport = :53"]);
    d.proof("after the last DEL no name server listens", dels && listening.is_empty());
    let mut t = Topology::default();
    let h = t.node(
        "host",
        vec!["cni-dns0 10.89.60.1/24".into(), "dnsname serve :53".into(), "cni0 10.88.0.1/16".into()],
        None,
    );
    let nw = t.node("web (alias www)", iface_lines(&rw, "eth0"), Some(h));
    let nc = t.node("client", iface_lines(&rc, "eth0"), Some(h));
    let no = t.node("other (default net)", iface_lines(&ro, "eth0"), Some(h));
    t.link(nc, nw, "dnsnet: \"web\" resolves");
    t.link(no, nc, "cni-rs: no names");
    d.picture("dns", &t, "names: one server per network, on its gateway");
}

/// Processes a scene started, killed by PID when it ends (also on panic).
struct Children(Vec<(String, std::process::Child)>);

impl Children {
    /// Sends `sig` to the child called `name` and waits for it.
    fn stop(&mut self, name: &str, sig: i32) -> Option<std::process::ExitStatus> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        let (_, mut c) = self.0.remove(i);
        // SAFETY: a signal to a process this scene started, by its PID.
        unsafe { libc::kill(c.id() as i32, sig) };
        c.wait().ok()
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            // SAFETY: as above.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    f()
}

fn overlay_etcd(d: &mut Demo) {
    use std::process::{Command, Stdio};
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo").join("cni-conf/vxlan");
    let example: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join("etcd.conflist")).expect("etcd.conflist"))
            .expect("JSON");
    let mut kids = Children(Vec::new());
    let lab = d.ns("ove-lab");
    d.get(lab).ok(&["ip", "link", "add", "ul0", "type", "bridge"]);
    d.get(lab).ok(&["ip", "link", "set", "ul0", "up"]);
    let lab_name = d.get(lab).name.clone();
    let plug = |d: &Demo, ns: usize, leg: &str, ip: &str| {
        d.get(ns).ok(&["ip", "link", "add", "eth0", "type", "veth", "peer", "name", leg, "netns", &lab_name]);
        d.get(ns).ok(&["ip", "addr", "add", ip, "dev", "eth0"]);
        d.get(ns).ok(&["ip", "link", "set", "eth0", "up"]);
        d.get(ns).ok(&["ip", "link", "set", "lo", "up"]);
        d.get(lab).ok(&["ip", "link", "set", leg, "master", "ul0", "up"]);
    };
    // The store: one etcd member on the underlay (plain http in the demo;
    // the example's TLS files are what a real cluster uses).
    let store = d.ns("ove-etcd");
    plug(d, store, "lege", "192.168.100.250/24");
    let ep = "http://192.168.100.250:2379";
    let etcd_log = std::fs::File::create(d.work.join("etcd.log")).expect("etcd log");
    let etcd = Command::new("ip")
        .args(["netns", "exec", &d.get(store).name, "etcd", "--name", "demo", "--data-dir"])
        .arg(d.work.join("etcd"))
        .args(["--listen-client-urls", ep, "--advertise-client-urls", ep])
        .args(["--listen-peer-urls", "http://192.168.100.250:2380"])
        .args(["--initial-advertise-peer-urls", "http://192.168.100.250:2380"])
        .args(["--initial-cluster", "demo=http://192.168.100.250:2380"])
        .stdin(Stdio::null())
        .stdout(etcd_log.try_clone().expect("log"))
        .stderr(etcd_log)
        .spawn();
    let Ok(etcd) = etcd else {
        d.proof("etcd starts (Debian package etcd-server: make demo installs it)", false);
        return;
    };
    kids.0.push(("etcd".into(), etcd));
    let etcdctl = |d: &Demo, args: &[&str]| {
        let mut argv = vec!["etcdctl", "--endpoints", ep];
        argv.extend_from_slice(args);
        d.get(store).exec(&argv)
    };
    let up = wait_until(20, || etcdctl(d, &["endpoint", "health"]).status.success());
    d.proof("etcd 3.4 runs in its own namespace at 192.168.100.250", up);
    if !up {
        return;
    }
    let vx = d.bin_dir.join("vxlan").display().to_string();
    let (mut hosts, mut ctrs, mut results, mut confs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 1..=3usize {
        let host = d.ns(&format!("ove-host{i}"));
        plug(d, host, &format!("leg{i}"), &format!("192.168.100.{i}/24"));
        let mut conf = example.clone();
        let p = &mut conf["plugins"][0];
        p["etcd"] = serde_json::json!({"endpoints": [ep], "prefix": p["etcd"]["prefix"], "leaseTTL": 5});
        p["stateDir"] = d.work.join(format!("state-{i}")).display().to_string().into();
        // These hosts have no default route to find the underlay by.
        p["underlayInterface"] = "eth0".into();
        d.host_configs(host, &[("etcd.conflist", conf.clone())]);
        let file = d.work.join(format!("net.d-{host}")).join("etcd.conflist");
        println!("$ vxlan agent {}   (in {}, host {i})", file.display(), d.get(host).name);
        let log = std::fs::File::create(d.work.join(format!("agent-{i}.log"))).expect("agent log");
        let agent = Command::new("ip")
            .args(["netns", "exec", &d.get(host).name, &vx, "agent"])
            .arg(&file)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting the agent");
        kids.0.push((format!("agent{i}"), agent));
        let state = d.work.join(format!("state-{i}")).join("overlay").join("state.json");
        let running = wait_until(15, || {
            std::fs::read(&state)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v["status"] == "running")
        });
        let subnet = std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["subnets"][0].as_str().map(String::from))
            .unwrap_or_default();
        d.proof(&format!("host {i}'s agent holds subnet {subnet} in etcd"), running);
        let ctr = d.ns(&format!("ove-c{i}"));
        let r = d.cnitool(host, "add", "overlay", ctr, "eth0", "");
        d.proof(&format!("cnitool add overlay on host {i}"), r.is_some());
        let a = result_ips(&r).into_iter().next().unwrap_or_default();
        for (j, (&oc, or)) in ctrs.iter().zip(&results).enumerate() {
            let b = result_ips(or).into_iter().next().unwrap_or_default();
            let both = wait_until(3, || d.get(oc).ping(&a)) && d.get(ctr).ping(&b);
            d.proof(&format!("host {i}'s container {a} and host {}'s {b} reach each other", j + 1), both);
        }
        hosts.push(host);
        ctrs.push(ctr);
        results.push(r);
        confs.push(file);
    }
    d.show(hosts[0], &["ip", "route", "show", "dev", "vxlan.1"]);
    d.show(hosts[0], &["bridge", "fdb", "show", "dev", "vxlan.1"]);
    d.show(store, &["etcdctl", "--endpoints", ep, "get", "--prefix", "/cni-rs/overlay/", "--keys-only"]);
    d.show(hosts[0], &[&vx, "status", &confs[0].display().to_string()]);
    // Host 3 stops: its lease is revoked and the others forget it.
    println!("$ kill -TERM <agent of host 3>");
    let ok = kids.stop("agent3", libc::SIGTERM).is_some_and(|s| s.success());
    d.proof("host 3's agent stops cleanly on SIGTERM", ok);
    let gone = |d: &Demo, h: usize| {
        !String::from_utf8_lossy(&d.get(h).exec(&["bridge", "fdb", "show", "dev", "vxlan.1"]).stdout)
            .contains("192.168.100.3")
    };
    let dropped = wait_until(2, || gone(d, hosts[0]) && gone(d, hosts[1]));
    d.proof("hosts 1 and 2 dropped host 3 from their tables at once", dropped);
    d.show(hosts[0], &["ip", "route", "show", "dev", "vxlan.1"]);
    let log = std::fs::read_to_string(d.work.join("agent-1.log")).unwrap_or_default();
    println!("  host 1's agent said:");
    for line in log.lines() {
        println!("    {line}");
    }
    for (i, (host, ctr)) in hosts.iter().zip(&ctrs).enumerate() {
        let ok = d.cnitool(*host, "del", "overlay", *ctr, "eth0", "").is_some();
        d.proof(&format!("cnitool del on host {}", i + 1), ok);
    }
    let stopped = kids.stop("agent1", libc::SIGTERM).is_some() && kids.stop("agent2", libc::SIGTERM).is_some();
    let keys = etcdctl(d, &["get", "--prefix", "/cni-rs/overlay/", "--keys-only"]);
    let none = stopped && keys.status.success() && String::from_utf8_lossy(&keys.stdout).trim().is_empty();
    d.proof("every agent stopped: no key is left in etcd", none);
    kids.stop("etcd", libc::SIGKILL);
    let mut t = Topology::default();
    let e = t.node("etcd", vec!["192.168.100.250:2379".into()], None);
    for (i, r) in results.iter().enumerate() {
        let h = t.node(
            &format!("host {}", i + 1),
            vec![format!("eth0 192.168.100.{}", i + 1), "vxlan agent".into(), "vxlan.1 (VNI 1)".into()],
            None,
        );
        t.node(&format!("container on host {}", i + 1), iface_lines(r, "eth0"), Some(h));
        t.link(h, e, "lease + watch");
    }
    d.picture("overlay-etcd", &t, "overlay on etcd: three hosts, one store");
}
