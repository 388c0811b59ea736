//! IPAM delegation: run the IPAM plugin named by `ipam.type` from
//! `CNI_PATH` with the caller's environment and the same stdin, as the spec
//! requires, and undo its ADD when a later step of the caller fails.

use cni::error::code;
use cni::{CniResult, Command, Context, Error};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Finds the first executable file called `name` in `dirs`.
pub fn find_plugin(name: &str, dirs: &[PathBuf]) -> Result<PathBuf, Error> {
    cni::validate::plugin_type("ipam.type", name)?;
    if dirs.is_empty() {
        return Err(Error::invalid_env(format!("CNI_PATH is required to run the IPAM plugin {name:?}")));
    }
    for dir in dirs {
        let p = dir.join(name);
        if is_executable(&p) {
            return Ok(p);
        }
    }
    let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(Error::invalid_config(format!("failed to find plugin {name:?} in path [{}]", shown.join(" "))))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Runs the delegate for `command` and returns its stdout on success; an
/// error object it printed comes back unchanged.
fn exec(ctx: &Context, ipam_type: &str, command: Command) -> Result<Vec<u8>, Error> {
    let path = find_plugin(ipam_type, &ctx.cni_path)?;
    let mut tries = 0;
    let mut child = loop {
        let spawned = std::process::Command::new(&path)
            .env("CNI_COMMAND", command.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        match spawned {
            Ok(c) => break c,
            // The binary is being replaced (an upgrade): retry as runtimes do.
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 5 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(Error::plugin(format!("running IPAM plugin {}: {e}", path.display()))),
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A delegate that exits early closes its stdin; its exit status tells.
        let _ = stdin.write_all(&ctx.stdin);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::plugin(format!("waiting for IPAM plugin {}: {e}", path.display())))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    match serde_json::from_slice::<Error>(&out.stdout) {
        Ok(e) => Err(e),
        Err(_) => Err(Error::plugin(format!(
            "IPAM plugin {ipam_type:?} {} failed ({}) without an error object",
            command.as_str(),
            out.status
        ))
        .with_details(String::from_utf8_lossy(&out.stdout).into_owned())),
    }
}

/// The configured IPAM type, or `None` for `"ipam": {}`.
pub fn configured(ctx: &Context) -> Result<Option<String>, Error> {
    Ok(ctx.conf.ipam_type()?.map(str::to_string))
}

/// Delegates ADD and returns the IPAM result in the internal form.
pub fn add(ctx: &Context, ipam_type: &str) -> Result<CniResult, Error> {
    let out = exec(ctx, ipam_type, Command::Add)?;
    let v: serde_json::Value = serde_json::from_slice(&out)
        .map_err(|e| Error::decode(format!("IPAM plugin {ipam_type:?} printed an invalid result: {e}")))?;
    CniResult::parse(&v, ctx.version).map_err(|e| e.context(format!("IPAM plugin {ipam_type:?}")))
}

/// Delegates DEL, CHECK, GC or STATUS (they print nothing on success).
pub fn forward(ctx: &Context, ipam_type: &str, command: Command) -> Result<(), Error> {
    exec(ctx, ipam_type, command).map(|_| ())
}

/// Runs the IPAM ADD, then `rest` with its result; when `rest` fails the
/// lease is released before the error is returned, so a failed ADD never
/// leaks an address.
pub fn add_with_rollback<T>(
    ctx: &Context,
    ipam_type: &str,
    rest: impl FnOnce(CniResult) -> Result<T, Error>,
) -> Result<T, Error> {
    let lease = add(ctx, ipam_type)?;
    if lease.ips.is_empty() {
        let e = Error::new(code::PLUGIN, format!("IPAM plugin {ipam_type:?} returned no IP address"));
        let _ = forward(ctx, ipam_type, Command::Del);
        return Err(e);
    }
    rest(lease).inspect_err(|_| {
        if let Err(e) = forward(ctx, ipam_type, Command::Del) {
            log::warn!("rolling back IPAM lease after a failed ADD: {e}");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_refuses_paths_and_needs_cni_path() {
        assert_eq!(find_plugin("../x", &[PathBuf::from("/bin")]).unwrap_err().code, code::INVALID_CONFIG);
        assert_eq!(find_plugin("x", &[]).unwrap_err().code, code::INVALID_ENV);
        let e = find_plugin("no-such-plugin-here", &[PathBuf::from("/nonexistent")]).unwrap_err();
        assert!(e.msg.contains("failed to find plugin \"no-such-plugin-here\""));
        assert!(find_plugin("sh", &[PathBuf::from("/nonexistent"), PathBuf::from("/bin")]).is_ok());
    }
}
