//! The release tarball (`make dist`): upstream's layout, checksums that
//! verify, and self-contained binaries: each one runs VERSION (and
//! loopback an ADD) in a chroot holding nothing but itself (and a netns),
//! so no loader, libnftnl, libmnl or libgcc_s is needed; and the set
//! programs netlink and nftables through cnitool.

use conformance::release::{self, assert_names_build, dist_file, makefile_list, Flow, VERSION};
use conformance::{witness, TestNs};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn tgz_name() -> String {
    format!("cni-rs-linux-amd64-v{VERSION}.tgz")
}

fn binaries() -> Vec<String> {
    let mut all = makefile_list("PLUGINS");
    all.extend(makefile_list("TOOLS"));
    all
}

/// The tarball unpacked into a scratch directory.
fn unpacked() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("cnirs-dist-").tempdir().unwrap();
    let out = Command::new("tar").arg("-xzf").arg(dist_file(&tgz_name())).arg("-C").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "tar -x: {out:?}");
    dir
}

#[test]
fn the_tarball_holds_every_binary_license_and_install_at_the_top_level() {
    let out = Command::new("tar").arg("-tvzf").arg(dist_file(&tgz_name())).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let mut names = Vec::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (mode, owner, name) = (f[0], f[1], *f.last().unwrap());
        assert_eq!(owner, "0/0", "{line}");
        if name == "./" {
            continue;
        }
        let name = name.strip_prefix("./").unwrap_or_else(|| panic!("not at the top level: {line}"));
        assert!(!name.contains('/'), "not at the top level: {line}");
        let want = if name == "LICENSE" || name == "INSTALL" { "-rw-r--r--" } else { "-rwxr-xr-x" };
        assert_eq!(mode, want, "{line}");
        names.push(name.to_string());
    }
    let mut want = binaries();
    want.extend(["LICENSE".to_string(), "INSTALL".to_string()]);
    names.sort();
    want.sort();
    assert_eq!(names, want);

    let dir = unpacked();
    let license = std::fs::read_to_string(dir.path().join("LICENSE")).unwrap();
    assert!(license.contains("Apache License") && license.contains("Version 2.0"), "LICENSE is the Apache-2.0 text");
    let install = std::fs::read_to_string(dir.path().join("INSTALL")).unwrap();
    assert!(install.contains(&tgz_name()) && install.contains("cni-install --from"), "{install}");
    assert!(!install.contains('@'), "every placeholder filled: {install}");
}

#[test]
fn the_checksum_files_verify_the_tarball_and_catch_a_changed_byte() {
    for tool in ["sha256sum", "sha512sum"] {
        let sums = dist_file(&format!("{}.{}", tgz_name(), &tool[..6]));
        let out = Command::new(tool).arg("-c").arg(&sums).current_dir(release::dist_dir()).output().unwrap();
        assert!(out.status.success(), "{tool} -c: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{}: OK", tgz_name()));

        // The same check against a copy with one byte changed fails.
        let scratch = tempfile::tempdir().unwrap();
        let mut data = std::fs::read(dist_file(&tgz_name())).unwrap();
        let mid = data.len() / 2;
        data[mid] ^= 1;
        std::fs::write(scratch.path().join(tgz_name()), data).unwrap();
        let out = Command::new(tool).arg("-c").arg(&sums).current_dir(scratch.path()).output().unwrap();
        assert!(!out.status.success(), "{tool} accepted a changed tarball");
    }
}

/// Runs `/<name>` in a chroot holding only that binary (and, when `netns`
/// is given, that namespace bind-mounted at `/netns` and the kernel's
/// `/proc`, which every node has and the plugins use to reopen a netns),
/// from a private mount namespace of the child, so nothing is mounted on
/// the host.
fn run_alone(bin: &Path, args: &[&str], env: &[(&str, &str)], netns: Option<&str>, stdin: &str) -> Output {
    let root = tempfile::Builder::new().prefix("cnirs-chroot-").tempdir().unwrap();
    let name = bin.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::copy(bin, root.path().join(&name)).unwrap();
    let entries: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "the chroot holds one file");
    let target = root.path().join("netns");
    let proc_dir = root.path().join("proc");
    if netns.is_some() {
        std::fs::write(&target, "").unwrap();
        std::fs::create_dir(&proc_dir).unwrap();
    }
    let c_proc = CString::new(proc_dir.as_os_str().as_bytes()).unwrap();
    let c_root = CString::new(root.path().as_os_str().as_bytes()).unwrap();
    let c_target = CString::new(target.as_os_str().as_bytes()).unwrap();
    let c_ns = netns.map(|p| CString::new(p).unwrap());
    let mut cmd = Command::new(format!("/{name}"));
    cmd.args(args).env_clear().envs(env.iter().copied());
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: only system calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let check = |rc: libc::c_int| if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            if let Some(ns) = &c_ns {
                check(libc::mount(ns.as_ptr(), c_target.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()))?;
                check(libc::mount(c"proc".as_ptr(), c_proc.as_ptr(), c"proc".as_ptr(), 0, std::ptr::null()))?;
            }
            check(libc::chroot(c_root.as_ptr()))?;
            check(libc::chdir(c"/".as_ptr()))
        });
    }
    // Another test thread forking while a binary of this test was being
    // written holds it open for writing until that child's exec: ETXTBSY
    // for a moment (the runtime's own exec retries the same way).
    let mut attempt = 0;
    let mut child = loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 6 => {
                std::thread::sleep(std::time::Duration::from_millis(20 << attempt));
                attempt += 1;
            }
            other => break other.unwrap_or_else(|e| panic!("exec /{name} alone in a chroot: {e}")),
        }
    };
    use std::io::Write;
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn every_binary_runs_alone_in_a_chroot_and_names_its_version_and_commit() {
    let dir = unpacked();
    let tools = makefile_list("TOOLS");
    for name in binaries() {
        let bin = dir.path().join(&name);
        if tools.contains(&name) {
            let out = run_alone(&bin, &["--version"], &[], None, "");
            assert!(out.status.success(), "{name} --version: {out:?}");
            assert_names_build(&String::from_utf8_lossy(&out.stdout), &name);
            continue;
        }
        let out = run_alone(&bin, &[], &[("CNI_COMMAND", "VERSION")], None, "");
        assert!(out.status.success(), "{name} VERSION: {out:?}");
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{name}: {e}: {out:?}"));
        assert!(v["supportedVersions"].as_array().unwrap().iter().any(|s| s == "1.0.0"), "{name}: {v}");
        let out = run_alone(&bin, &[], &[], None, "");
        assert!(out.status.success(), "{name} about: {out:?}");
        let about = String::from_utf8_lossy(&out.stderr);
        assert!(about.starts_with(&format!("CNI {name} plugin version")), "{about}");
        assert_names_build(&about, &name);
    }
}

#[test]
fn loopback_adds_alone_in_a_chroot_with_only_a_netns() {
    let dir = unpacked();
    let ns = TestNs::new("dist-lo");
    let conf = r#"{"cniVersion":"1.0.0","name":"lo","type":"loopback"}"#;
    let env = [("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "dist-lo"), ("CNI_NETNS", "/netns"), ("CNI_IFNAME", "lo")];
    let out = run_alone(&dir.path().join("loopback"), &[], &env, Some(&ns.path()), conf);
    assert!(out.status.success(), "loopback ADD: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ips"][0]["address"], "127.0.0.1/8", "{v}");
    let lo = witness::link(&ns, "lo").unwrap();
    assert!(lo["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "{lo}");
    assert!(ns.ping("127.0.0.1"));
}

#[test]
fn the_static_binaries_program_netlink_and_nftables() {
    let dir = unpacked();
    let path: PathBuf = dir.path().to_path_buf();
    release::bridge_portmap_flow("dist-flow", &Flow { wrap: &[], cnitool: &path.join("cnitool"), cni_path: &path });
}
