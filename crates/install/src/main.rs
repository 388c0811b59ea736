//! `cni-install`: puts plugin binaries (and a conflist) into a node's plugin
//! directory while runtimes keep exec'ing them (see `cni-install --help`);
//! what a DaemonSet init container or a config-management tool runs.

use cni_install::{parse_args, run, Request, USAGE};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args) {
        Ok(Request::Help) => print!("{USAGE}"),
        Ok(Request::Version) => println!("cni-install version {}", cni::build_info::describe()),
        Ok(Request::Install(opts)) => match run(&opts) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                eprintln!("cni-install: {e}");
                std::process::exit(1);
            }
        },
        Err(msg) => {
            eprintln!("cni-install: {msg}\n\n{USAGE}");
            std::process::exit(2);
        }
    }
}
