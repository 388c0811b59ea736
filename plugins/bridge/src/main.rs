//! bridge: a Linux bridge on the host, a veth pair per container, the
//! bridge as gateway, masquerade to the outside (the `docker0` model).

mod add;
mod check;
mod config;
mod del;
mod isolation;
mod plugin;
mod spoofchk;
mod vlan;

fn main() {
    cni::skel::run(plugin::Bridge)
}
