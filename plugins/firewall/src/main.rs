//! firewall: a chained plugin that admits forwarded traffic to and from
//! the container's addresses (so it passes a host whose FORWARD policy is
//! DROP), with an optional same-bridge ingress policy; nftables only.

mod add;
mod check;
mod config;
mod del;
mod firewalld;
mod forward;
mod lock;
mod plugin;
mod ruleset;

fn main() {
    cni::skel::run(plugin::Firewall)
}
