//! The host-local binary: all protocol work is in `cni::skel`, all IPAM
//! work in the library.

fn main() {
    cni::skel::run(host_local::HostLocal)
}
