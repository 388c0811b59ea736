//! Many processes on one store at once, and processes killed half-way: the
//! lock and the write order must keep every lease unique, complete, and
//! findable by a later DEL.

mod common;

use common::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Asserts the store invariants: every lease file is complete and owned by
/// one of `cids` on eth0, and no attachment holds two addresses of one family.
fn assert_sound(store: &Path, cids: &BTreeSet<String>) -> BTreeMap<String, String> {
    let leases = leases(store);
    let mut per_owner: BTreeMap<(String, bool), String> = BTreeMap::new();
    for (ip, content) in &leases {
        let (cid, ifname) = content.split_once("\r\n").unwrap_or_else(|| panic!("{ip}: torn lease {content:?}"));
        assert_eq!(ifname, "eth0", "{ip}: {content:?}");
        assert!(cids.contains(cid), "{ip}: unknown owner {cid:?}");
        let v4 = ip.contains('.');
        if let Some(other) = per_owner.insert((cid.to_string(), v4), ip.clone()) {
            panic!("{cid} holds both {other} and {ip}");
        }
    }
    // Nothing half-made is left in the store itself.
    for e in std::fs::read_dir(store).unwrap().flatten() {
        let name = e.file_name().into_string().unwrap();
        assert!(!name.starts_with("tmp."), "stray temp file {name}");
    }
    leases
}

/// Only `lock`, the markers and the index directory remain.
fn assert_no_leases(store: &Path) {
    assert!(leases(store).is_empty(), "{:?}", leases(store));
    assert!(store.join("lock").exists());
}

#[test]
fn sixty_four_parallel_adds_get_distinct_addresses_and_dels_free_them() {
    let d = DataDir::new("par64");
    let c = conf("1.0.0", "par", &d, json!({"ranges": [[{"subnet": "10.70.0.0/24"}]]}));
    let cids: Vec<String> = (0..64).map(|i| format!("par-{i}")).collect();
    let children: Vec<_> = cids.iter().map(|cid| Call::new("ADD", cid).spawn(&c)).collect();
    let mut got = BTreeSet::new();
    for (cid, child) in cids.iter().zip(children) {
        let ips = wait(child).ips();
        assert_eq!(ips.len(), 1, "{cid}");
        assert!(got.insert(ips[0].clone()), "{} handed out twice", ips[0]);
    }
    assert_eq!(got.len(), 64);
    let store = d.store("par");
    let leases = assert_sound(&store, &cids.iter().cloned().collect());
    assert_eq!(leases.len(), 64);

    let children: Vec<_> = cids.iter().map(|cid| Call::new("DEL", cid).spawn(&c)).collect();
    for child in children {
        wait(child).ok();
    }
    assert_no_leases(&store);
}

/// SIGKILLs about half of `children`, each at a random moment within a
/// window of `per_child_us` per victim after they were started (they queue
/// on the store lock, so the batch takes about that long).
fn kill_some<'a>(rng: &mut Rng, children: impl Iterator<Item = &'a mut Child>, per_child_us: u64) {
    let mut victims: Vec<&mut Child> = children.filter(|_| rng.below(2) == 0).collect();
    let window = per_child_us * (victims.len() as u64 * 2 + 1);
    let mut at: Vec<(u64, usize)> = (0..victims.len()).map(|i| (rng.below(window), i)).collect();
    at.sort();
    let start = Instant::now();
    for (t, i) in at {
        if let Some(wait) = Duration::from_micros(t).checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let _ = victims[i].kill();
    }
}

#[test]
fn sigkill_during_add_and_del_leaves_nothing_unreleasable() {
    let d = DataDir::new("kill");
    let c = conf("1.0.0", "kill", &d, json!({"ranges": [[{"subnet": "10.71.0.0/24"}], [{"subnet": "fd00:71::/64"}]]}));
    let store = d.store("kill");
    let mut rng = Rng::new();
    let mut all = BTreeSet::new();
    let mut orphans_seen = 0;
    for round in 0..8 {
        let cids: Vec<String> = (0..24).map(|i| format!("k{round}-{i}")).collect();
        all.extend(cids.iter().cloned());
        let mut children: Vec<Child> = cids.iter().map(|cid| Call::new("ADD", cid).spawn(&c)).collect();
        kill_some(&mut rng, children.iter_mut(), 200);
        let mut owners = BTreeMap::new();
        let mut killed = 0;
        for (cid, child) in cids.iter().zip(children) {
            let out = wait(child);
            match out.code {
                Some(0) => {
                    for ip in out.ips() {
                        owners.insert(ip.split('/').next().unwrap().to_string(), cid.clone());
                    }
                }
                None => killed += 1,
                Some(_) => panic!("{cid} failed without being killed: {out:?}"),
            }
        }
        let leases = assert_sound(&store, &all);
        for (ip, cid) in &owners {
            assert_eq!(leases.get(ip).map(String::as_str), Some(format!("{cid}\r\neth0").as_str()), "{ip}");
        }
        let mine = |o: &String| cids.iter().any(|c| format!("{c}\r\neth0") == *o);
        let orphans = leases.iter().filter(|(ip, o)| mine(o) && !owners.contains_key(*ip)).count();
        orphans_seen += orphans;
        eprintln!("round {round}: {} added, {killed} killed, {orphans} leases left by killed ADDs", owners.len() / 2);
        // A repeated ADD of a survivor is idempotent, of a killed one completes.
        for cid in cids.iter().step_by(3) {
            let ips = Call::new("ADD", cid).run(&c).ips();
            assert_eq!(ips.len(), 2, "{cid}");
        }
        assert_sound(&store, &all);
    }
    eprintln!("{orphans_seen} leases of killed ADDs in all");

    // DELs, some killed too, then DEL again: nothing is left.
    let cids: Vec<String> = all.iter().cloned().collect();
    let mut children: Vec<Child> = cids.iter().map(|cid| Call::new("DEL", cid).spawn(&c)).collect();
    kill_some(&mut rng, children.iter_mut(), 150);
    for child in children {
        let _ = wait(child);
    }
    assert_sound(&store, &all);
    for cid in &cids {
        Call::new("DEL", cid).run(&c).ok();
    }
    assert_no_leases(&store);
    // And the store still works.
    assert_eq!(Call::new("ADD", "after").run(&c).ips().len(), 2);
}
