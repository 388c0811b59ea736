//! macvlan: each container gets a macvlan sub-interface of a host NIC, with
//! its own MAC, on the same L2 segment as the host (underlay networking).

mod add;
mod check;
mod config;
mod del;
mod master;
mod plugin;

fn main() {
    cni::skel::run(plugin::Macvlan)
}
