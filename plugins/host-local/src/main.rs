//! The host-local binary: all protocol work is in `cni::skel`, all IPAM
//! work in the library.

fn main() {
    host_local::parent::note();
    cni::skel::run(host_local::HostLocal)
}
