//! `make bench PROFILE=1`: where the milliseconds of one ADD and one DEL
//! go, per process of the chain. The plugins record their phases through
//! the `phases` crate into the file named by `CNI_RS_PROFILE` (set by the
//! bench for the profiled operation only); this module turns those events
//! into one line per process:
//!
//! - `start`: from the runner's spawn to the first instruction of `main`
//!   (fork, exec, dynamic loader, std's set-up);
//! - `parse`: reading stdin and the config, validation;
//! - `nl-open`: opening the rtnetlink connection (socket and runtime);
//! - `netlink`: waiting on rtnetlink requests (calls, requests);
//! - `nft`: nftables batches committed and queries;
//! - `nft-close`: closing netfilter sockets (after a deletion the kernel
//!   waits there for an RCU grace period);
//! - `fsync`: host-local putting a lease on disk (file and directory);
//! - `ipam`: the delegated IPAM plugin, spawn to reaped (its own line
//!   below); `(waited ..)` when it ran beside the caller's link work: only
//!   that wait counts in the sum;
//! - `other`: the rest of the plugin's own work (locks, files, logic);
//! - `exit`: from the result written to the process reaped.

use phases::Event;
use std::collections::BTreeMap;
use std::fmt::Write;

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn span(e: &Event) -> u64 {
    e.end.saturating_sub(e.start)
}

/// Formats the processes that `runner_pid` exec'd (and their children) as
/// an indented list, one line per process.
pub fn format(events: &[Event], runner_pid: u32) -> String {
    let mut by_pid: BTreeMap<u32, Vec<&Event>> = BTreeMap::new();
    for e in events {
        by_pid.entry(e.pid).or_default().push(e);
    }
    let mut out = String::new();
    let mut roots: Vec<&Event> = events.iter().filter(|e| e.pid == runner_pid && e.phase == "exec").collect();
    roots.sort_by_key(|e| e.start);
    for r in roots {
        process(&mut out, r, &by_pid, 1);
    }
    out
}

fn sum<'a>(evs: &[&'a Event], phase: &str) -> (u64, usize, Vec<&'a Event>) {
    let v: Vec<&Event> = evs.iter().copied().filter(|e| e.phase == phase).collect();
    (v.iter().map(|e| span(e)).sum(), v.len(), v)
}

fn process(out: &mut String, exec: &Event, by_pid: &BTreeMap<u32, Vec<&Event>>, depth: usize) {
    let mut it = exec.detail.splitn(2, ' ');
    let pid: u32 = it.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let name = it.next().unwrap_or("?");
    let total = span(exec);
    let indent = "  ".repeat(depth);
    let evs = by_pid.get(&pid).cloned().unwrap_or_default();
    let main = evs.iter().find(|e| e.phase == "main");
    let Some(main) = main else {
        let _ = writeln!(out, "{indent}{name:<11} {:>6.2} ms (not instrumented)", ms(total));
        return;
    };
    let start = main.start.saturating_sub(exec.start);
    let exit = evs.iter().find(|e| e.phase == "exit").map(|e| exec.end.saturating_sub(e.start)).unwrap_or(0);
    let (parse, _, _) = sum(&evs, "parse");
    let (open, _, _) = sum(&evs, "netlink-open");
    let (nl, calls, nl_ev) = sum(&evs, "netlink");
    let requests: usize =
        nl_ev.iter().filter_map(|e| e.detail.split(' ').next().and_then(|n| n.parse::<usize>().ok())).sum();
    let (commit, batches, _) = sum(&evs, "nft-commit");
    let (query, queries, _) = sum(&evs, "nft-query");
    let (close, _, _) = sum(&evs, "nfnl-close");
    let (fsync, syncs, _) = sum(&evs, "fsync");
    let (ipam, _, children) = sum(&evs, "exec");
    // A delegate that ran beside the caller's own work counts only for
    // the time the caller waited for it.
    let (waited, waits, _) = sum(&evs, "exec-wait");
    let ipam_cost = if waits > 0 { waited } else { ipam };
    let overlapped = if waits > 0 { format!(" (waited {:.2})", ms(waited)) } else { String::new() };
    let known = start + exit + parse + open + nl + commit + query + close + fsync + ipam_cost;
    let other = total.saturating_sub(known);
    let _ = write!(
        out,
        "{indent}{name:<11} {:>6.2} ms = start {:.2} + parse {:.2} + nl-open {:.2} + netlink {:.2} ({calls} calls, \
         {requests} requests) + nft {:.2} ({batches} batches, {queries} queries) + nft-close {:.2} + fsync {:.2} ({syncs}) + ipam {:.2}{overlapped} \
         + other {:.2} + exit {:.2}",
        ms(total),
        ms(start),
        ms(parse),
        ms(open),
        ms(nl),
        ms(commit + query),
        ms(close),
        ms(fsync),
        ms(ipam),
        ms(other),
        ms(exit),
    );
    out.push('\n');
    let mut children = children;
    children.sort_by_key(|e| e.start);
    for c in children {
        process(out, c, by_pid, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_process_with_children_indented() {
        let text = "\
1 bench exec 1000000 9000000 10 bridge
10 bridge main 1500000 1500000 
10 bridge parse 1600000 1700000 
10 bridge netlink 2000000 3000000 4 requests
10 bridge netlink 3000000 3500000 2 requests
10 bridge exec 4000000 6000000 11 host-local
11 host-local main 4300000 4300000 
11 host-local exit 5800000 5800000 
10 bridge exit 8500000 8500000 
";
        let out = format(&phases::parse(text), 1);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].starts_with("  bridge") && lines[0].contains(" 8.00 ms"), "{out}");
        assert!(lines[0].contains("start 0.50") && lines[0].contains("netlink 1.50 (2 calls, 6 requests)"), "{out}");
        assert!(lines[0].contains("ipam 2.00") && lines[0].contains("exit 0.50"), "{out}");
        // 8.0 - (0.5 start + 0.1 parse + 1.5 netlink + 2.0 ipam + 0.5 exit)
        assert!(lines[0].contains("other 3.40"), "{out}");
        assert!(lines[1].starts_with("    host-local") && lines[1].contains("start 0.30"), "{out}");
    }

    #[test]
    fn an_overlapped_delegate_counts_only_the_wait() {
        let text = "\
1 bench exec 1000000 9000000 10 bridge
10 bridge main 1500000 1500000 
10 bridge netlink 2000000 3500000 6 requests
10 bridge exec 1800000 6000000 11 host-local
10 bridge exec-wait 3600000 6000000 11 host-local
10 bridge exit 8500000 8500000 
";
        let out = format(&phases::parse(text), 1);
        assert!(out.contains("ipam 4.20 (waited 2.40)"), "{out}");
        // 8.0 - (0.5 start + 1.5 netlink + 2.4 waited + 0.5 exit)
        assert!(out.contains("other 3.10"), "{out}");
    }
}
