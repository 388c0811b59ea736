//! Filesystem safety of the store: restrictive modes, no write through a
//! symlink planted anywhere in the data directory, corrupt and truncated
//! leases reported and never trusted, a limit of each kind refused with a
//! clear error, and an orphaned delegate that changes nothing.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

/// Names of the lease files (whatever their content).
fn lease_names(store: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(store)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    out.sort();
    out
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A /29 network: addresses .1 (gateway) to .6, so five to hand out.
fn small(d: &DataDir) -> Value {
    conf("1.1.0", "net", d, json!({"ranges": [[{"subnet": "10.90.0.0/29"}]]}))
}

/// A file outside the data dir that nothing may touch.
struct Victim(std::path::PathBuf);

impl Victim {
    fn new(d: &DataDir) -> Victim {
        let p = d.0.with_extension("victim");
        fs::write(&p, "precious").unwrap();
        Victim(p)
    }
    fn intact(&self) {
        assert_eq!(fs::read(&self.0).unwrap(), b"precious", "{} was written through a link", self.0.display());
        assert!(fs::symlink_metadata(&self.0).unwrap().file_type().is_file());
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn files_are_created_0600_and_directories_0755() {
    let d = DataDir::new("modes");
    let c = small(&d);
    Call::new("ADD", "c1").run(&c).ok();
    let store = d.store("net");
    assert_eq!(mode(&store), 0o755);
    for f in ["lock", "10.90.0.2", "last_reserved_ip.0", ".host-local-index/seal"] {
        assert_eq!(mode(&store.join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&store.join(".host-local-index")), 0o755);
    // Index entries are symlinks we wrote (read with readlink, never followed).
    assert!(fs::symlink_metadata(store.join(".host-local-index/c1:eth0")).unwrap().file_type().is_symlink());
}

#[test]
fn a_symlinked_marker_seal_or_index_is_replaced_not_followed() {
    let d = DataDir::new("links");
    let victim = Victim::new(&d);
    let c = small(&d);
    Call::new("ADD", "c1").run(&c).ok();
    let store = d.store("net");
    let elsewhere = d.0.with_extension("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    fs::remove_file(store.join("last_reserved_ip.0")).unwrap();
    symlink(&victim.0, store.join("last_reserved_ip.0")).unwrap();
    fs::remove_file(store.join(".host-local-index/seal")).unwrap();
    symlink(&victim.0, store.join(".host-local-index/seal")).unwrap();
    Call::new("ADD", "c2").run(&c).ok();
    victim.intact();
    assert!(fs::symlink_metadata(store.join("last_reserved_ip.0")).unwrap().is_file());
    assert!(fs::symlink_metadata(store.join(".host-local-index/seal")).unwrap().is_file());

    // The whole index directory replaced by a link to another directory.
    fs::rename(store.join(".host-local-index"), d.0.join("old-index")).unwrap();
    symlink(&elsewhere, store.join(".host-local-index")).unwrap();
    Call::new("ADD", "c3").run(&c).ok();
    Call::new("DEL", "c1").run(&c).ok();
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0, "something was written through the index link");
    assert!(fs::symlink_metadata(store.join(".host-local-index")).unwrap().is_dir());
    let owners: Vec<String> = leases(&store).into_values().collect();
    assert_eq!(owners.len(), 2, "{owners:?}");
    victim.intact();
    let _ = fs::remove_dir_all(&elsewhere);
}

#[test]
fn a_symlinked_lease_keeps_its_address_and_is_reported() {
    let d = DataDir::new("leaselink");
    let victim = Victim::new(&d);
    let c = small(&d);
    let store = d.store("net");
    fs::create_dir_all(&store).unwrap();
    symlink(&victim.0, store.join("10.90.0.2")).unwrap();
    // Allocation skips the name (taken), writes nothing through it.
    assert_eq!(Call::new("ADD", "c1").run(&c).ips(), ["10.90.0.3/29"]);
    // Asking for it by name is refused, naming the file.
    let e = Call::new("ADD", "c2").args("IP=10.90.0.2").run(&c).err(5);
    assert!(e["msg"].as_str().unwrap().contains("10.90.0.2 is corrupt: not a regular file"), "{e}");
    // GC does everything else, keeps the link and reports it.
    let gc = json!({"cniVersion": "1.1.0", "name": "net", "type": "bridge",
                    "ipam": c["ipam"].clone(), "cni.dev/valid-attachments": []});
    let e = Call::new("GC", "").run(&gc).err(5);
    assert!(e["msg"].as_str().unwrap().contains("kept 1 corrupt lease"), "{e}");
    assert!(!store.join("10.90.0.3").exists(), "GC released the rest");
    assert!(fs::symlink_metadata(store.join("10.90.0.2")).unwrap().file_type().is_symlink());
    victim.intact();
}

#[test]
fn a_symlinked_lock_or_store_is_refused() {
    let d = DataDir::new("locklink");
    let c = small(&d);
    let store = d.store("net");
    fs::create_dir_all(&store).unwrap();
    // A dangling link: following it would create a file elsewhere.
    let target = d.0.with_extension("lock-target");
    symlink(&target, store.join("lock")).unwrap();
    let e = Call::new("ADD", "c1").run(&c).err(5);
    assert!(e["msg"].as_str().unwrap().contains("opening lock"), "{e}");
    assert!(e["details"].as_str().unwrap().contains("not a regular file"), "{e}");
    assert!(!target.exists(), "the lock link was followed");
    assert!(leases(&store).is_empty());
    let status = json!({"cniVersion": "1.1.0", "name": "net", "type": "bridge", "ipam": c["ipam"].clone()});
    assert!(Call::new("STATUS", "").run(&status).err(50)["msg"].as_str().unwrap().contains("lock file"));

    // The store directory itself a link to another directory.
    let d = DataDir::new("storelink");
    let c = small(&d);
    let elsewhere = d.0.with_extension("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    symlink(&elsewhere, d.store("net")).unwrap();
    let e = Call::new("ADD", "c1").run(&c).err(5);
    assert!(e["msg"].as_str().unwrap().contains("not a directory"), "{e}");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
    let _ = fs::remove_dir_all(&elsewhere);
}

#[test]
fn a_corrupt_lease_is_reported_never_trusted_and_never_released() {
    let d = DataDir::new("corrupt");
    let c = small(&d);
    let store = d.store("net");
    let r = Call::new("ADD", "c1").run(&c).ok();
    assert_eq!(r["ips"][0]["address"], "10.90.0.2/29");
    fs::write(store.join("10.90.0.2"), b"\xff\xfe\x00garbage").unwrap();
    // CHECK of the owner names the file.
    let mut check = c.clone();
    check["prevResult"] = r.clone();
    let e = Call::new("CHECK", "c1").run(&check).err(5);
    assert!(e["msg"].as_str().unwrap().contains("lease file") && e["msg"].as_str().unwrap().contains("corrupt"));
    // DEL succeeds but cannot prove the lease is c1's: it stays.
    Call::new("DEL", "c1").run(&c).ok();
    assert!(store.join("10.90.0.2").exists());
    // The address is never handed out: the other four, then exhaustion.
    for (i, cid) in ["a", "b", "c", "d"].iter().enumerate() {
        assert_eq!(Call::new("ADD", cid).run(&c).ips(), [format!("10.90.0.{}/29", i + 3)]);
    }
    Call::new("ADD", "e").run(&c).err(101);
    // GC releases everything else and reports the corrupt lease.
    let gc = json!({"cniVersion": "1.1.0", "name": "net", "type": "bridge",
                    "ipam": c["ipam"].clone(), "cni.dev/valid-attachments": []});
    let e = Call::new("GC", "").run(&gc).err(5);
    assert!(e["msg"].as_str().unwrap().contains("10.90.0.2 is corrupt: not UTF-8"), "{e}");
    assert_eq!(lease_names(&store), ["10.90.0.2"]);
    // Other kinds of corruption are caught the same way.
    for bad in [&b"../../etc\r\neth0"[..], b"c1\r\neth0\r\nextra", &[b'a'; 200_000][..]] {
        fs::write(store.join("10.90.0.2"), bad).unwrap();
        assert_eq!(Call::new("GC", "").run(&gc).err(5)["code"], 5);
        assert!(store.join("10.90.0.2").exists());
    }
}

#[test]
fn a_truncated_lease_keeps_its_address_until_gc() {
    let d = DataDir::new("truncated");
    let c = small(&d);
    let store = d.store("net");
    fs::create_dir_all(&store).unwrap();
    // What a reference plugin killed between create and write leaves.
    fs::write(store.join("10.90.0.2"), b"").unwrap();
    assert_eq!(Call::new("ADD", "c1").run(&c).ips(), ["10.90.0.3/29"]);
    let gc = json!({"cniVersion": "1.1.0", "name": "net", "type": "bridge",
                    "ipam": c["ipam"].clone(), "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]});
    Call::new("GC", "").run(&gc).ok();
    assert!(!store.join("10.90.0.2").exists(), "GC releases an empty lease");
    assert!(store.join("10.90.0.3").exists());
}

#[test]
fn an_emptied_live_lease_stays_its_owners_and_is_never_handed_out_again() {
    let d = DataDir::new("emptied");
    let c = small(&d);
    let store = d.store("net");
    let r = Call::new("ADD", "c1").run(&c).ok();
    assert_eq!(r["ips"][0]["address"], "10.90.0.2/29");
    let gc = |valid: Value| {
        let mut g = c.clone();
        g["cni.dev/valid-attachments"] = valid;
        Call::new("GC", "").run(&g)
    };
    let c1_valid = json!([{"containerID": "c1", "ifname": "eth0"}]);
    // What a crash can leave of an unsynced lease, or a truncation.
    fs::write(store.join("10.90.0.2"), b"").unwrap();
    gc(c1_valid.clone()).ok();
    assert!(store.join("10.90.0.2").exists(), "GC released the lease of a valid container");
    assert_eq!(Call::new("ADD", "c2").run(&c).ips(), ["10.90.0.3/29"], "handed out again");
    // Also after the index is rebuilt (a foreign writer changed the store).
    fs::write(store.join("10.90.0.6"), "foreign\r\neth0").unwrap();
    assert_eq!(Call::new("ADD", "c3").run(&c).ips(), ["10.90.0.4/29"]);
    gc(json!([{"containerID": "c1", "ifname": "eth0"}, {"containerID": "c2", "ifname": "eth0"},
              {"containerID": "c3", "ifname": "eth0"}, {"containerID": "foreign", "ifname": "eth0"}]))
    .ok();
    assert!(store.join("10.90.0.2").exists(), "GC after a rebuild released it");
    // CHECK says what is wrong and what happens to it.
    let mut check = c.clone();
    check["prevResult"] = r.clone();
    let e = Call::new("CHECK", "c1").run(&check).err(5);
    let (msg, details) = (e["msg"].as_str().unwrap(), e["details"].as_str().unwrap());
    assert!(msg.contains("10.90.0.2 is empty (truncated)") && msg.contains("for container c1 (eth0)"), "{e}");
    assert!(
        details.contains("GC keeps it while the attachment is valid") && details.contains("DEL releases it"),
        "{e}"
    );
    // A repeated ADD of the owner gets it back and rewrites it.
    assert_eq!(Call::new("ADD", "c1").run(&c).ips(), ["10.90.0.2/29"]);
    assert_eq!(fs::read(store.join("10.90.0.2")).unwrap(), b"c1\r\neth0");
    Call::new("CHECK", "c1").run(&check).ok();
    // Emptied again, its owner's DEL releases it; and GC releases one
    // whose owner is not valid.
    fs::write(store.join("10.90.0.2"), b"").unwrap();
    Call::new("DEL", "c1").run(&c).ok();
    assert!(!store.join("10.90.0.2").exists(), "DEL left it");
    fs::write(store.join("10.90.0.3"), b"").unwrap();
    gc(json!([{"containerID": "c3", "ifname": "eth0"}])).ok();
    assert_eq!(lease_names(&store), ["10.90.0.4"]);
}

#[test]
fn each_limit_is_a_clear_code_7_error() {
    let d = DataDir::new("limits");
    let sets: Vec<Value> =
        (0..=cni::limits::MAX_RANGE_SETS).map(|i| json!([{"subnet": format!("10.{i}.0.0/24")}])).collect();
    let e = Call::new("ADD", "c1").run(&conf("1.0.0", "net", &d, json!({"ranges": sets}))).err(7);
    assert!(e["msg"].as_str().unwrap().starts_with("too many range sets"), "{e}");
    let ranges: Vec<Value> =
        (0..=cni::limits::MAX_RANGES).map(|i| json!({"subnet": format!("10.{}.{}.0/24", i / 256, i % 256)})).collect();
    let e = Call::new("ADD", "c1").run(&conf("1.0.0", "net", &d, json!({"ranges": [ranges]}))).err(7);
    assert!(e["msg"].as_str().unwrap().starts_with("too many ranges"), "{e}");
    let routes: Vec<Value> = (0..=cni::limits::MAX_ROUTES).map(|_| json!({"dst": "0.0.0.0/0"})).collect();
    let e = Call::new("ADD", "c1")
        .run(&conf("1.0.0", "net", &d, json!({"ranges": [[{"subnet": "10.1.0.0/24"}]], "routes": routes})))
        .err(7);
    assert!(e["msg"].as_str().unwrap().starts_with("too many routes"), "{e}");
    assert!(!d.store("net").exists(), "nothing was written");
}

/// Reads field 4 (ppid) of /proc/<pid>/stat.
fn ppid(pid: u32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// Reads field 3 (state) of /proc/<pid>/stat.
fn state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[test]
fn an_orphaned_delegate_changes_nothing() {
    use std::os::fd::AsRawFd;
    let d = DataDir::new("orphan");
    let c = small(&d);
    let store = d.store("net");
    Call::new("ADD", "seed").run(&c).ok();
    // Hold the store lock, so the delegate blocks right before its work.
    let lock = fs::File::open(store.join("lock")).unwrap();
    // SAFETY: flock on an fd we own.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let stdin = d.0.with_extension("stdin");
    let out = d.0.with_extension("out");
    fs::write(&stdin, c.to_string()).unwrap();
    // A "bridge" that starts host-local and is then killed.
    let mut parent = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"CNI_COMMAND=ADD CNI_CONTAINERID=orphan CNI_IFNAME=eth0 CNI_NETNS=/x "$0" <"$1" >"$2" 2>/dev/null & wait"#)
        .arg(OURS)
        .arg(&stdin)
        .arg(&out)
        .spawn()
        .unwrap();
    let sh = parent.id();
    let child = loop {
        let kids = fs::read_to_string(format!("/proc/{sh}/task/{sh}/children")).unwrap_or_default();
        if let Some(pid) = kids.split_whitespace().next().and_then(|p| p.parse::<u32>().ok()) {
            // Started, and blocked on the lock (it noted its parent first).
            let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            if exe.ends_with("host-local") && state(pid) == Some('S') {
                break pid;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    parent.kill().unwrap();
    parent.wait().unwrap();
    while ppid(child) == Some(sh as i32) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(lock);
    // Gone, or a zombie of whoever adopted it.
    while state(child).is_some_and(|s| s != 'Z') {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let printed = fs::read_to_string(&out).unwrap();
    let v: Value = serde_json::from_str(&printed).unwrap_or_else(|e| panic!("{e}: {printed:?}"));
    assert_eq!(v["code"], 11, "{printed}");
    let owners: Vec<String> = leases(&store).into_values().collect();
    assert_eq!(owners, ["seed\r\neth0"], "the orphan reserved nothing");
    let _ = fs::remove_file(&stdin);
    let _ = fs::remove_file(&out);
}

/// Field 22 (start time) of /proc/<pid>/stat.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

#[test]
fn a_delegate_whose_named_caller_is_gone_changes_nothing() {
    // A caller (bridge) killed after forking host-local but before its
    // `main` ran: host-local starts already re-parented, so only the
    // identity the caller passed tells. Here the caller is a process that
    // has exited, or one whose PID now belongs to another process.
    let d = DataDir::new("orphan-named");
    let c = small(&d);
    let store = d.store("net");
    Call::new("ADD", "seed").run(&c).ok();
    let mut dead = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    let dead_id = format!("{}:{}", dead.id(), start_time(dead.id()).unwrap());
    dead.kill().unwrap();
    dead.wait().unwrap();
    let me = std::process::id();
    let reused = format!("{me}:{}", start_time(me).unwrap() + 1);
    let before = snapshot(&d.0);
    for (caller, cmd) in [(&dead_id, "ADD"), (&reused, "ADD"), (&dead_id, "DEL")] {
        let cid = if cmd == "DEL" { "seed" } else { "orphan" };
        let e = Call::new(cmd, cid).env("CNIRS_CALLER", caller.as_str()).run(&c).err(11);
        assert!(e["msg"].as_str().unwrap().contains("is gone"), "{e}");
        assert_eq!(snapshot(&d.0), before, "{cmd} with caller {caller} changed the store");
    }
    // A caller that runs: the call goes through.
    let live = format!("{me}:{}", start_time(me).unwrap());
    assert_eq!(Call::new("ADD", "orphan").env("CNIRS_CALLER", live).run(&c).ips(), ["10.90.0.3/29"]);
    let owners: Vec<String> = leases(&store).into_values().collect();
    assert_eq!(owners, ["seed\r\neth0", "orphan\r\neth0"]);
}
