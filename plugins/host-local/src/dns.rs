//! `resolvConf`: the result's `dns` read from a resolv.conf file, parsed
//! the way the reference parses it.

use cni::config::Dns;
use cni::Error;
use std::io::Read;
use std::path::Path;

/// Largest resolv.conf read; a real one is a few hundred bytes.
const MAX_SIZE: u64 = 64 * 1024;

/// Parses resolv.conf text: `nameserver`, `domain`, `search`, `options`;
/// comments (`#`, `;`) and unknown keywords are skipped.
pub fn parse(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 2 {
            continue;
        }
        let rest = fields[1..].iter().map(|s| s.to_string());
        match fields[0] {
            "nameserver" => dns.nameservers.push(fields[1].to_string()),
            "domain" => dns.domain = fields[1].to_string(),
            "search" => dns.search.extend(rest),
            "options" => dns.options.extend(rest),
            _ => {}
        }
    }
    dns
}

/// Reads and parses `path`; an unreadable file fails the ADD (code 7), as
/// the config names a file that is not there.
pub fn read(path: &Path) -> Result<Dns, Error> {
    let fail = |e: std::io::Error| Error::invalid_config(format!("reading ipam.resolvConf {}: {e}", path.display()));
    let mut text = String::new();
    std::fs::File::open(path).map_err(fail)?.take(MAX_SIZE).read_to_string(&mut text).map_err(fail)?;
    Ok(parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_the_reference() {
        let dns = parse(
            "# comment\n; other\nnameserver 10.0.0.53\nnameserver fd00::53\ndomain example.com\n\
             search a.example b.example\nsearch c.example\noptions ndots:5 rotate\nsortlist 1.2.3.4\nnameserver\n",
        );
        assert_eq!(dns.nameservers, ["10.0.0.53", "fd00::53"]);
        assert_eq!(dns.domain, "example.com");
        assert_eq!(dns.search, ["a.example", "b.example", "c.example"]);
        assert_eq!(dns.options, ["ndots:5", "rotate"]);
        assert!(parse("").is_empty());
    }

    #[test]
    fn missing_file_is_a_config_error() {
        let e = read(Path::new("/nonexistent/resolv.conf")).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("/nonexistent/resolv.conf"));
    }
}
