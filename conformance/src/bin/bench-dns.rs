//! `make bench`'s dnsname part: `bench-dns [--n N] [--secs S] [--out DIR]
//! [--ours DIR]` (the directory holding `dnsname`; default: beside us).
//! Prints the table, writes `<out>/dnsname.json`, exits non-zero when an
//! operation failed or something was left behind.

use conformance::bench::dns;
use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let mut secs = 5;
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf();
    let mut out = repo.join("bench-out");
    let mut ours = conformance::bin_dir_of_exe();
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("bench-dns: {name} needs a value");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--n" => n = value("--n").parse().expect("--n: a number"),
            "--secs" => secs = value("--secs").parse().expect("--secs: a number"),
            "--out" => out = PathBuf::from(value("--out")),
            "--ours" => ours = PathBuf::from(value("--ours")),
            other => {
                eprintln!("usage: bench-dns [--n N] [--secs S] [--out DIR] [--ours DIR] (unknown {other:?})");
                std::process::exit(2);
            }
        }
    }
    let bin = ours.join("dnsname");
    match dns::run(&bin, n, secs) {
        Ok(r) => {
            print!("{}", dns::text(&r));
            let _ = std::fs::create_dir_all(&out);
            let path = out.join("dnsname.json");
            match std::fs::write(&path, serde_json::to_string_pretty(&r.to_json()).expect("JSON")) {
                Ok(()) => println!("json: {}", path.display()),
                Err(e) => eprintln!("bench-dns: writing {}: {e}", path.display()),
            }
        }
        Err(e) => {
            eprintln!("bench-dns: {e}");
            std::process::exit(1);
        }
    }
}
