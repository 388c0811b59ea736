//! loopback: brings `lo` up in the container (`docker run --network none`).

mod plugin;

fn main() {
    cni::skel::run(plugin::Loopback)
}
