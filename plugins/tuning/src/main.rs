//! tuning: a chained plugin that adjusts the container interface (MAC,
//! MTU, promiscuous and all-multicast modes, transmit queue length) and
//! `net.*` sysctls inside the container, and puts them back on DEL.

mod add;
mod check;
mod config;
mod del;
mod gc;
mod link;
mod state;

fn main() {
    cni::skel::run(cni::skel::Commands {
        name: "tuning",
        add: add::add,
        del: del::del,
        check: check::check,
        gc: gc::gc,
        status: cni::skel::nothing,
    })
}
