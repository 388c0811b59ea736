//! The floor: the kernel work of a veth attachment done with no plugin at
//! all, to show how close each suite gets to the kernel's own cost.
//!
//! ADD is one `ip -batch` per container, run in the container (the bench
//! thread enters it, as it enters a host for a plugin): the veth
//! pair with its host end created straight in the host namespace (the
//! cheapest path the kernel has, which is also what our plugins do; a move
//! of a link between namespaces would add ~30 ms), the address, the link up
//! and the default route. DEL is one `ip link del` of the container end,
//! where the kernel waits for RCU grace periods.

use super::namespaces::ip_batch;
use std::net::Ipv4Addr;
use std::process::Command;

/// The floor's subnet (its own host namespace, so no clash with a suite).
const NET: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 0);

/// The `ip -batch` lines that attach container `k`.
fn add_lines(host_ns: &str, k: usize) -> Vec<String> {
    let addr = Ipv4Addr::from(u32::from(NET) + 2 + k as u32);
    vec![
        format!("link add eth0 type veth peer name fl{k} netns {host_ns}"),
        format!("addr add {addr}/16 dev eth0"),
        "link set eth0 up".to_string(),
        format!("route add default via {}", Ipv4Addr::from(u32::from(NET) + 1)),
    ]
}

/// Attaches container `k` with one `ip -batch`, run in the calling
/// thread's namespace, which must be the container's. (Not `ip -n`: that
/// copies the mount table to remount /sys, which costs more the more
/// namespaces exist, and would make the floor grow with N.)
pub fn add(host_ns: &str, k: usize) -> Result<(), String> {
    ip_batch(None, &add_lines(host_ns, k))
}

/// Deletes the container end of the veth (the pair goes with it), in the
/// calling thread's namespace, which must be the container's.
pub fn del() -> Result<(), String> {
    let out =
        Command::new("ip").args(["link", "del", "eth0"]).output().map_err(|e| format!("running ip link del: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip link del eth0: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_host_and_a_unique_address() {
        let l = add_lines("h", 300);
        assert_eq!(l[0], "link add eth0 type veth peer name fl300 netns h");
        assert_eq!(l[1], "addr add 10.88.1.46/16 dev eth0");
        assert_eq!(l[3], "route add default via 10.88.0.1");
    }
}
