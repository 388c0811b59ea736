//! Throwaway network namespaces for the nftables tests: each test makes its
//! own (`nft-<pid>-<n>`), runs code with the test thread inside it, and the
//! namespace is deleted on drop, also when the test panics. Nothing here
//! touches the namespace the tests were started in.

#![allow(dead_code)]

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{setns, CloneFlags};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace that exists for the lifetime of the value.
pub struct TestNs {
    pub name: String,
}

/// Puts the calling thread back into its original namespace on drop.
pub struct Entered {
    orig: File,
}

impl Drop for Entered {
    fn drop(&mut self) {
        setns(&self.orig, CloneFlags::CLONE_NEWNET).expect("returning to the original netns");
    }
}

impl TestNs {
    /// Creates a fresh namespace with `lo` up.
    pub fn new() -> TestNs {
        let name = format!("nft-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        run("ip", &["netns", "add", &name]);
        let ns = TestNs { name };
        ns.sh("ip link set lo up");
        ns
    }

    /// Moves the calling thread into the namespace until the guard drops.
    pub fn enter(&self) -> Entered {
        let orig = File::open("/proc/thread-self/ns/net").expect("opening own netns");
        let target = File::open(format!("/run/netns/{}", self.name)).expect("opening test netns");
        setns(&target, CloneFlags::CLONE_NEWNET).expect("entering test netns");
        Entered { orig }
    }

    /// Runs `f` with the calling thread inside the namespace.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        let _guard = self.enter();
        f()
    }

    /// Runs a shell command inside the namespace; panics when it fails.
    pub fn sh(&self, cmd: &str) -> String {
        run("ip", &["netns", "exec", &self.name, "sh", "-c", cmd])
    }

    /// Runs a shell command inside the namespace; returns (success, stdout+stderr).
    pub fn try_sh(&self, cmd: &str) -> (bool, String) {
        let out = Command::new("ip").args(["netns", "exec", &self.name, "sh", "-c", cmd]).output().expect("running ip");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// `nft list <what>` inside the namespace (the independent witness).
    pub fn nft_list(&self, what: &str) -> String {
        self.sh(&format!("nft list {what}"))
    }

    /// `nft -j list ruleset` inside the namespace.
    pub fn ruleset_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.sh("nft -j list ruleset")).expect("nft -j output")
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Runs a command; panics with its output when it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{cmd} {args:?} failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    text
}

/// Connects two namespaces with a veth pair: `a_if` in `a`, `b_if` in `b`,
/// both up, with the given addresses (CIDR, `nodad` for IPv6).
pub fn link(a: &TestNs, a_if: &str, a_addrs: &[&str], b: &TestNs, b_if: &str, b_addrs: &[&str]) {
    a.sh(&format!("ip link add {a_if} type veth peer name {b_if} netns {}", b.name));
    for (ns, ifname, addrs) in [(a, a_if, a_addrs), (b, b_if, b_addrs)] {
        for addr in addrs {
            let extra = if addr.contains(':') { " nodad" } else { "" };
            ns.sh(&format!("ip addr add {addr} dev {ifname}{extra}"));
        }
        ns.sh(&format!("ip link set {ifname} up"));
    }
}

// ---- The two recipes the plugins need, as the tests use them. ----

use ipnetwork::IpNetwork;
use kernel::nft::*;
use std::net::IpAddr;

/// The bridge `ipMasq` layout for one network, in table `t`:
/// `postrouting` (nat, srcnat) does `ip saddr vmap @masq-nets4` (and v6),
/// each network's subnet maps to `goto masq-<net>`, and that chain holds
/// `ip saddr @<net>-v4 ip daddr != <subnet> ip daddr != 224.0.0.0/4
/// masquerade` (and the v6 rule). Container addresses are elements of
/// `<net>-v4`/`<net>-v6` commented with their owner.
pub struct Masq {
    pub table: Table,
    pub post: Chain,
    pub chain: Chain,
    pub nets4: Set,
    pub nets6: Set,
    pub v4: Set,
    pub v6: Set,
    pub subnet4: IpNetwork,
    pub subnet6: IpNetwork,
}

impl Masq {
    pub fn new(table: &str, net: &str, subnet4: &str, subnet6: &str) -> Masq {
        let t = Table::new(Family::Inet, table).unwrap();
        Masq {
            post: t.base_chain("postrouting", Hook::Postrouting, ChainType::Nat, priority::SRCNAT).unwrap(),
            chain: t.chain(format!("masq-{net}")).unwrap(),
            nets4: t.vmap("masq-nets4", &[DataType::Ipv4Addr]).unwrap().interval().unwrap(),
            nets6: t.vmap("masq-nets6", &[DataType::Ipv6Addr]).unwrap().interval().unwrap(),
            v4: t.set(format!("{net}-v4"), &[DataType::Ipv4Addr]).unwrap(),
            v6: t.set(format!("{net}-v6"), &[DataType::Ipv6Addr]).unwrap(),
            subnet4: subnet4.parse().unwrap(),
            subnet6: subnet6.parse().unwrap(),
            table: t,
        }
    }

    /// Everything an ADD needs, idempotent: objects if missing, the fixed
    /// rules (rewritten only when they differ), and the container's addresses.
    pub fn add(&self, addrs: &[IpAddr], owner: &str) -> Batch {
        let mut b = Batch::new();
        b.add_table(&self.table)
            .add_chain(&self.post)
            .add_chain(&self.chain)
            .add_set(&self.nets4)
            .add_set(&self.nets6)
            .add_set(&self.v4)
            .add_set(&self.v6)
            .replace_rules(
                &self.post,
                [
                    Rule::new(&self.post).vmap(&[Field::Ip4Saddr], &self.nets4),
                    Rule::new(&self.post).vmap(&[Field::Ip6Saddr], &self.nets6),
                ],
            )
            .add_element(&self.nets4, Element::prefix(self.subnet4).verdict(self.chain.goto()))
            .add_element(&self.nets6, Element::prefix(self.subnet6).verdict(self.chain.goto()))
            .replace_rules(
                &self.chain,
                [
                    Rule::new(&self.chain)
                        .in_set(&[Field::Ip4Saddr], &self.v4)
                        .prefix(Field::Ip4Daddr, self.subnet4, CmpOp::Neq)
                        .prefix(Field::Ip4Daddr, "224.0.0.0/4".parse().unwrap(), CmpOp::Neq)
                        .masquerade(),
                    Rule::new(&self.chain)
                        .in_set(&[Field::Ip6Saddr], &self.v6)
                        .prefix(Field::Ip6Daddr, self.subnet6, CmpOp::Neq)
                        .prefix(Field::Ip6Daddr, "ff00::/8".parse().unwrap(), CmpOp::Neq)
                        .masquerade(),
                ],
            );
        for a in addrs {
            let set = if a.is_ipv4() { &self.v4 } else { &self.v6 };
            b.add_element(set, Element::new([Value::from(*a)]).comment(owner));
        }
        b
    }

    /// DEL without knowing the addresses: list both sets, delete what the
    /// owner holds.
    pub fn del(&self, sock: &Socket, owner: &str) -> Batch {
        let mut b = Batch::new();
        for set in [&self.v4, &self.v6] {
            for e in sock.list_elements(set).unwrap() {
                if e.comment.as_deref() == Some(owner) {
                    b.delete_element(set, &e);
                }
            }
        }
        b
    }
}

/// The portmap layout in table `t`: maps keyed by `l4proto . daddr . dport`
/// (and `l4proto . dport` for mappings on every host address), consulted
/// for local destinations from prerouting and output, and a hairpin set
/// `saddr . daddr` that masquerades a container reaching itself.
pub struct Portmap {
    pub table: Table,
    pub pre: Chain,
    pub out: Chain,
    pub post: Chain,
    pub hostports: Chain,
    pub hp4: Set,
    pub hp4all: Set,
    pub hp6: Set,
    pub hp6all: Set,
    pub hairpin4: Set,
    pub hairpin6: Set,
}

impl Portmap {
    pub fn new(table: &str) -> Portmap {
        let t = Table::new(Family::Inet, table).unwrap();
        use DataType::*;
        Portmap {
            pre: t.base_chain("prerouting", Hook::Prerouting, ChainType::Nat, priority::DSTNAT).unwrap(),
            out: t.base_chain("output", Hook::Output, ChainType::Nat, priority::DSTNAT).unwrap(),
            post: t.base_chain("postrouting", Hook::Postrouting, ChainType::Nat, priority::SRCNAT).unwrap(),
            hostports: t.chain("hostports").unwrap(),
            hp4: t.map("hp4", &[InetProto, Ipv4Addr, InetService], &[Ipv4Addr, InetService]).unwrap(),
            hp4all: t.map("hp4all", &[InetProto, InetService], &[Ipv4Addr, InetService]).unwrap(),
            hp6: t.map("hp6", &[InetProto, Ipv6Addr, InetService], &[Ipv6Addr, InetService]).unwrap(),
            hp6all: t.map("hp6all", &[InetProto, InetService], &[Ipv6Addr, InetService]).unwrap(),
            hairpin4: t.set("hairpin4", &[Ipv4Addr, Ipv4Addr]).unwrap(),
            hairpin6: t.set("hairpin6", &[Ipv6Addr, Ipv6Addr]).unwrap(),
            table: t,
        }
    }

    /// The shared objects and fixed rules (idempotent).
    pub fn setup(&self) -> Batch {
        use Field::*;
        let mut b = Batch::new();
        b.add_table(&self.table);
        for c in [&self.pre, &self.out, &self.post, &self.hostports] {
            b.add_chain(c);
        }
        for s in [&self.hp4, &self.hp4all, &self.hp6, &self.hp6all, &self.hairpin4, &self.hairpin6] {
            b.add_set(s);
        }
        b.replace_rules(&self.pre, [Rule::new(&self.pre).fib_daddr_local().jump(&self.hostports)])
            .replace_rules(&self.out, [Rule::new(&self.out).fib_daddr_local().jump(&self.hostports)])
            .replace_rules(
                &self.hostports,
                [
                    Rule::new(&self.hostports).dnat_map(&[L4proto, Ip4Daddr, ThDport], &self.hp4),
                    Rule::new(&self.hostports).dnat_map(&[L4proto, ThDport], &self.hp4all),
                    Rule::new(&self.hostports).dnat_map(&[L4proto, Ip6Daddr, ThDport], &self.hp6),
                    Rule::new(&self.hostports).dnat_map(&[L4proto, ThDport], &self.hp6all),
                ],
            )
            .replace_rules(
                &self.post,
                [
                    Rule::new(&self.post).in_set(&[Ip4Saddr, Ip4Daddr], &self.hairpin4).masquerade(),
                    Rule::new(&self.post).in_set(&[Ip6Saddr, Ip6Daddr], &self.hairpin6).masquerade(),
                ],
            );
        b
    }

    /// One mapping `proto host_ip:host_port -> to` (host_ip
    /// `None` = every host address) plus the container's hairpin element.
    pub fn map(
        &self,
        b: &mut Batch,
        proto: Value,
        host_ip: Option<IpAddr>,
        host_port: u16,
        to: std::net::SocketAddr,
        owner: &str,
    ) {
        let (container, port) = (to.ip(), to.port());
        let value = [Value::from(container), Value::Port(port)];
        let (map, key) = match (host_ip, container.is_ipv4()) {
            (Some(h), true) => (&self.hp4, vec![proto, Value::from(h), Value::Port(host_port)]),
            (Some(h), false) => (&self.hp6, vec![proto, Value::from(h), Value::Port(host_port)]),
            (None, true) => (&self.hp4all, vec![proto, Value::Port(host_port)]),
            (None, false) => (&self.hp6all, vec![proto, Value::Port(host_port)]),
        };
        b.add_element(map, Element::new(key).data(value).comment(owner));
        let hairpin = if container.is_ipv4() { &self.hairpin4 } else { &self.hairpin6 };
        b.add_element(hairpin, Element::new([Value::from(container), Value::from(container)]).comment(owner));
    }
}
