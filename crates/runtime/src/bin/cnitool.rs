//! `cnitool`: run a network config against a network namespace, with the
//! upstream command line (see `cnitool --help`).

use std::io::Write;

fn main() {
    cni::skel::init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_else(|_| "/".into());
    let out = runtime::cli::run(&args, &|k| std::env::var(k).ok(), &cwd);
    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().write_all(out.stderr.as_bytes());
    std::process::exit(out.exit);
}
