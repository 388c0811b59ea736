//! `cni-install` upgrading a plugin directory while a runtime keeps
//! exec'ing the plugins: every exec gets a whole binary, old or new, never
//! "text file busy" or a half-written file.

use conformance::bin;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

/// The plugins the test installs and execs.
const PLUGINS: [&str; 3] = ["loopback", "static", "host-local"];

/// A scratch directory on tmpfs (`/dev/shm`): the upgrade writes some 3 GB
/// in all, which must not go through the shared disk; rename and exec
/// behave the same there.
fn scratch(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("cnirs-install-{tag}-")).tempdir_in("/dev/shm").unwrap()
}

/// A release directory holding the plugins, each followed by `pad` bytes
/// (ignored by the loader) so that two releases differ in every file.
fn release(root: &Path, name: &str, pad: usize) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir(&dir).unwrap();
    for p in PLUGINS {
        let mut data = fs::read(bin(p)).unwrap();
        data.extend(std::iter::repeat_n(0xa5u8, pad));
        let path = dir.join(p);
        fs::write(&path, data).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::write(dir.join("LICENSE"), "not a plugin\n").unwrap();
    dir
}

fn install(from: &Path, to: &Path) -> std::process::Output {
    Command::new(bin("cni-install")).arg("--from").arg(from).arg("--to").arg(to).output().unwrap()
}

/// Execs `plugin` with VERSION as a runtime does (no retry on ETXTBSY);
/// `Err` says what went wrong.
fn exec_version(path: &Path) -> Result<(), String> {
    let out = Command::new(path)
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("exec {}: {e} (os error {:?})", path.display(), e.raw_os_error()))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{}: {e}: {:?} {:?}", path.display(), out.status, String::from_utf8_lossy(&out.stderr)))?;
    if !out.status.success() || v["supportedVersions"].as_array().is_none_or(|a| a.is_empty()) {
        return Err(format!("{}: {:?} {v}", path.display(), out.status));
    }
    Ok(())
}

#[test]
fn a_hundred_upgrades_while_plugins_are_execed_in_a_loop_never_fail_an_exec() {
    let root = scratch("upgrade");
    let (a, b) = (release(root.path(), "a", 4096), release(root.path(), "b", 8192));
    let to = root.path().join("bin");
    let first = install(&a, &to);
    assert!(first.status.success(), "{first:?}");

    let done = Arc::new(AtomicBool::new(false));
    let execers: Vec<_> = (0..2)
        .map(|t| {
            let (to, done) = (to.clone(), done.clone());
            thread::spawn(move || {
                let (mut n, mut failures) = (0usize, Vec::new());
                while !done.load(Ordering::Relaxed) {
                    let p = to.join(PLUGINS[(n + t) % PLUGINS.len()]);
                    if let Err(e) = exec_version(&p) {
                        failures.push(e);
                    }
                    n += 1;
                }
                (n, failures)
            })
        })
        .collect();

    for i in 0..100 {
        let from = if i % 2 == 0 { &b } else { &a };
        let out = install(from, &to);
        assert!(out.status.success(), "upgrade {i}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().filter(|l| l.starts_with("installed ")).count(), PLUGINS.len(), "upgrade {i}: {text}");
    }
    done.store(true, Ordering::Relaxed);
    let (mut execs, mut failures) = (0, Vec::new());
    for h in execers {
        let (n, f) = h.join().unwrap();
        execs += n;
        failures.extend(f);
    }
    assert!(
        failures.is_empty(),
        "{} of {execs} execs failed, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(execs >= 100, "the exec loop ran only {execs} times during the upgrades");
    eprintln!("{execs} execs during 100 upgrades, none failed");
    // The last upgrade installed release `a`, whole; no temp file is left.
    for p in PLUGINS {
        assert_eq!(fs::read(to.join(p)).unwrap(), fs::read(a.join(p)).unwrap(), "{p}");
    }
    let mut left: Vec<_> = fs::read_dir(&to).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, ["host-local", "loopback", "static"]);
}

#[test]
fn a_running_binary_is_replaced_where_writing_over_it_is_text_file_busy() {
    let root = scratch("busy");
    let (a, b) = (release(root.path(), "a", 0), release(root.path(), "b", 16));
    // A binary caught running: a copy of sleep(1) installed as one more file.
    for (dir, pad) in [(&a, 0), (&b, 16)] {
        let mut data = fs::read("/bin/sleep").unwrap();
        data.extend(std::iter::repeat_n(0u8, pad));
        fs::write(dir.join("sleeper"), data).unwrap();
        fs::set_permissions(dir.join("sleeper"), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let to = root.path().join("bin");
    assert!(install(&a, &to).status.success());
    let mut running = Command::new(to.join("sleeper")).arg("30").spawn().unwrap();
    let naive = fs::OpenOptions::new().write(true).open(to.join("sleeper"));
    let busy = naive.err().and_then(|e| e.raw_os_error());
    let out = install(&b, &to);
    running.kill().unwrap();
    running.wait().unwrap();
    assert_eq!(busy, Some(libc::ETXTBSY), "the control: writing over a running binary in place is busy");
    assert!(out.status.success(), "{out:?}");
    for p in ["sleeper", "loopback"] {
        assert_eq!(fs::read(to.join(p)).unwrap(), fs::read(b.join(p)).unwrap(), "{p}");
    }
    exec_version(&to.join("loopback")).unwrap();
}

#[test]
fn a_conflist_is_installed_only_when_changed_and_never_when_broken() {
    let root = scratch("conf");
    let a = release(root.path(), "a", 0);
    let (to, conf_dir) = (root.path().join("bin"), root.path().join("net.d"));
    let file = root.path().join("10-lo.conflist");
    let run = |file: &Path| {
        Command::new(bin("cni-install"))
            .arg("--from")
            .arg(&a)
            .arg("--to")
            .arg(&to)
            .arg("--conflist")
            .arg(file)
            .arg("--conf-dir")
            .arg(&conf_dir)
            .output()
            .unwrap()
    };
    fs::write(&file, r#"{"cniVersion":"1.0.0","name":"lo","plugins":[{"type":"loopback"}]}"#).unwrap();
    let out = run(&file);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains(&format!("installed {}", conf_dir.join("10-lo.conflist").display())), "{text}");

    let out = run(&file);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains(&format!("unchanged {}", conf_dir.join("10-lo.conflist").display())), "{text}");
    assert!(text.contains(&format!("unchanged {}", to.join("loopback").display())), "{text}");

    fs::write(&file, r#"{"cniVersion":"1.0.0","name":"lo","plugins":[{"type":"../x"}]}"#).unwrap();
    let out = run(&file);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid network config"), "{out:?}");
    assert!(fs::read_to_string(conf_dir.join("10-lo.conflist")).unwrap().contains("\"loopback\""));
}
