//! dnsname: containers on one network reach each other by name. A chained
//! plugin (containers/dnsname's contract: `domainName`, `K8S_POD_NAME`,
//! the `aliases` capability) that keeps a record per attachment, and, as
//! `dnsname serve <dir>`, the network's name server, started by the
//! first ADD and gone after the last DEL (`dnsname status <dir>` prints
//! its state as JSON).

mod add;
mod check;
mod config;
mod del;
mod names;
mod serve;
mod server;
mod store;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => std::process::exit(serve::main(&args[1..])),
        Some("status") => std::process::exit(serve::status_main(&args[1..])),
        _ => {}
    }
    cni::skel::run(cni::skel::Commands {
        name: "dnsname",
        add: add::add,
        del: del::del,
        check: check::check,
        gc: del::gc,
        status: check::status,
    })
}
