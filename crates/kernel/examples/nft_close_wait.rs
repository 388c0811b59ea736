//! Times the close of a netfilter netlink socket after an nf_tables commit
//! that adds or deletes a map element (run as root inside a scratch
//! network namespace: `ip netns exec <ns> nft_close_wait <mode> <n>`).
//! Modes: `add`, `del`, `del-other` (close a second, fresh socket first),
//! `del-sleep` (sleep 30 ms before the close), `del-gc` (hand the socket to
//! an unreachable Unix socket, so the kernel's garbage collector closes it).
//! Evidence for where portmap DEL's wait comes from; not used by any plugin.

use kernel::nft::{Batch, DataType, Element, Family, Socket, Table, Value};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("del");
    let n: u16 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let t = Table::new(Family::Inet, "closewait").unwrap();
    let m = t
        .map("m", &[DataType::InetProto, DataType::InetService], &[DataType::Ipv4Addr, DataType::InetService])
        .unwrap();
    let mut b = Batch::new();
    b.add_table(&t).add_set(&m);
    b.commit().unwrap();
    let mut times = Vec::new();
    for i in 0..n {
        let e = Element::new([Value::Proto(6), Value::Port(1000 + i)])
            .data([Value::from(std::net::Ipv4Addr::new(10, 0, 0, 2)), Value::Port(80)]);
        let mut add = Batch::new();
        add.add_element(&m, e.clone());
        add.commit().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let s = Socket::open().unwrap();
        let mut b = Batch::new();
        if mode == "add" {
            b.add_element(
                &m,
                Element::new([Value::Proto(17), Value::Port(1000 + i)])
                    .data([Value::from(std::net::Ipv4Addr::new(10, 0, 0, 2)), Value::Port(80)]),
            );
        } else {
            b.destroy_element(&m, &e);
        }
        let t0 = Instant::now();
        s.commit(&b).unwrap();
        let commit = t0.elapsed();
        let mut other = None;
        match mode {
            "del-other" => {
                let s2 = Socket::open().unwrap();
                s2.generation().unwrap();
                let t1 = Instant::now();
                drop(s2);
                other = Some(t1.elapsed());
            }
            "del-sleep" => std::thread::sleep(Duration::from_millis(30)),
            _ => {}
        }
        let t1 = Instant::now();
        if mode == "del-gc" {
            gc_close(&s);
            std::mem::forget(s);
        } else {
            drop(s);
        }
        let close = t1.elapsed();
        if mode == "del-gc" {
            let t2 = Instant::now();
            while user_nfnl_sockets() > 0 && t2.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_micros(200));
            }
            other = Some(t2.elapsed());
        }
        times.push(format!(
            "commit {:.3} close {:.3}{}",
            ms(commit),
            ms(close),
            other.map(|o| format!(" other/gone-after {:.3}", ms(o))).unwrap_or_default()
        ));
    }
    for l in times {
        println!("{mode}: {l}");
    }
}

/// Puts the netlink socket (the only netlink fd: found in /proc/self/fd) in
/// flight inside an unreachable Unix socket cycle and closes our copies.
fn gc_close(_s: &Socket) {
    let fd = netlink_fd();
    let (a, b) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Datagram,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    // b's own fd and the netlink fd, queued on b: only b's queue holds b.
    let fds = [b.as_raw_fd(), fd];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(b"x")];
    nix::sys::socket::sendmsg::<()>(a.as_raw_fd(), &iov, &cmsg, nix::sys::socket::MsgFlags::empty(), None).unwrap();
    // SAFETY: fd is the netlink socket; the Socket is forgotten by the caller.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    drop(b);
    drop(a);
}

fn netlink_fd() -> i32 {
    for e in std::fs::read_dir("/proc/self/fd").unwrap() {
        let e = e.unwrap();
        let fd: i32 = e.file_name().to_string_lossy().parse().unwrap();
        if let Ok(l) = std::fs::read_link(e.path()) {
            if l.to_string_lossy().starts_with("socket:") && fd > 2 {
                return fd;
            }
        }
    }
    panic!("no socket fd");
}

/// Netfilter netlink sockets of processes (port id not 0) in this namespace.
fn user_nfnl_sockets() -> usize {
    std::fs::read_to_string("/proc/self/net/netlink")
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&"12") && f.get(2) != Some(&"0")
        })
        .count()
}
