//! IPAM delegation: run the IPAM plugin named by `ipam.type` from
//! `CNI_PATH` with the caller's environment and the same stdin, as the spec
//! requires, and undo its ADD when a later step of the caller fails.
//!
//! The `*_stdin` variants send other bytes instead: a plugin that derives
//! the IPAM block from its own options (vxlan turns this host's `subnet`
//! into host-local ranges) must give the delegate that config, and must
//! give it the same bytes on ADD, CHECK and DEL.

use cni::error::code;
use cni::{CniResult, Command, Context, Error};
use std::path::PathBuf;

/// Finds the first executable file called `name` in `dirs`.
pub fn find_plugin(name: &str, dirs: &[PathBuf]) -> Result<PathBuf, Error> {
    if dirs.is_empty() {
        cni::validate::plugin_type("ipam.type", name)?;
        return Err(Error::invalid_env(format!("CNI_PATH is required to run the IPAM plugin {name:?}")));
    }
    invoke::find("ipam.type", name, dirs)
}

/// Runs the delegate for `command` through the suite's one plugin runner
/// and returns its stdout on success; an error object it printed comes
/// back unchanged. The delegate dies with its caller: one that outlived a
/// caller the runtime killed could reserve an address after the runtime's
/// follow-up DEL.
fn exec(ctx: &Context, ipam_type: &str, command: Command, stdin_bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let path = find_plugin(ipam_type, &ctx.cni_path)?;
    let env = [("CNI_COMMAND".to_string(), command.as_str().to_string())];
    invoke::run_plugin(&invoke::Request::new(&path, stdin_bytes, &env))
}

/// The configured IPAM type, or `None` for `"ipam": {}`.
pub fn configured(ctx: &Context) -> Result<Option<String>, Error> {
    Ok(ctx.conf.ipam_type()?.map(str::to_string))
}

/// Delegates ADD and returns the IPAM result in the internal form.
pub fn add(ctx: &Context, ipam_type: &str) -> Result<CniResult, Error> {
    add_stdin(ctx, ipam_type, &ctx.stdin)
}

/// [`add`] with `stdin` as the delegate's config instead of the caller's.
pub fn add_stdin(ctx: &Context, ipam_type: &str, stdin: &[u8]) -> Result<CniResult, Error> {
    let out = exec(ctx, ipam_type, Command::Add, stdin)?;
    let v: serde_json::Value = serde_json::from_slice(&out)
        .map_err(|e| Error::decode(format!("IPAM plugin {ipam_type:?} printed an invalid result: {e}")))?;
    CniResult::parse(&v, ctx.version).map_err(|e| e.context(format!("IPAM plugin {ipam_type:?}")))
}

/// Delegates DEL, CHECK, GC or STATUS (they print nothing on success).
pub fn forward(ctx: &Context, ipam_type: &str, command: Command) -> Result<(), Error> {
    forward_stdin(ctx, ipam_type, command, &ctx.stdin)
}

/// [`forward`] with `stdin` as the delegate's config instead of the caller's.
pub fn forward_stdin(ctx: &Context, ipam_type: &str, command: Command, stdin: &[u8]) -> Result<(), Error> {
    exec(ctx, ipam_type, command, stdin).map(|_| ())
}

/// Runs the IPAM ADD, then `rest` with its result; when `rest` fails the
/// lease is released before the error is returned, so a failed ADD never
/// leaks an address.
pub fn add_with_rollback<T>(
    ctx: &Context,
    ipam_type: &str,
    rest: impl FnOnce(CniResult) -> Result<T, Error>,
) -> Result<T, Error> {
    add_with_rollback_stdin(ctx, ipam_type, &ctx.stdin, rest)
}

/// [`add_with_rollback`] with `stdin` as the delegate's config (for the ADD
/// and for the DEL that undoes it).
pub fn add_with_rollback_stdin<T>(
    ctx: &Context,
    ipam_type: &str,
    stdin: &[u8],
    rest: impl FnOnce(CniResult) -> Result<T, Error>,
) -> Result<T, Error> {
    let lease = add_stdin(ctx, ipam_type, stdin)?;
    if lease.ips.is_empty() {
        let e = Error::new(code::PLUGIN, format!("IPAM plugin {ipam_type:?} returned no IP address"));
        let _ = forward_stdin(ctx, ipam_type, Command::Del, stdin);
        return Err(e);
    }
    rest(lease).inspect_err(|_| {
        if let Err(e) = forward_stdin(ctx, ipam_type, Command::Del, stdin) {
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

    /// A fake IPAM plugin that records its stdin and command, and answers
    /// with one address; the context's own stdin must not reach it.
    #[test]
    fn explicit_stdin_reaches_the_delegate() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ipam-stdin-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("fake-ipam");
        let seen = dir.join("seen");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ncat > {seen}.$CNI_COMMAND\necho \"$CNIRS_CALLER\" > {seen}.caller\n[ \"$CNI_COMMAND\" = ADD ] && \
                 echo '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"10.9.0.2/24\"}}]}}'\nexit 0\n",
                seen = seen.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.display().to_string();
        let env = move |k: &str| match k {
            "CNI_CONTAINERID" => Some("c1".to_string()),
            "CNI_NETNS" => Some("/run/netns/x".to_string()),
            "CNI_IFNAME" => Some("eth0".to_string()),
            "CNI_PATH" => Some(path.clone()),
            _ => None,
        };
        let own = br#"{"cniVersion":"1.0.0","name":"n","type":"vxlan","subnet":"10.9.0.0/24"}"#;
        let ctx = cni::skel::build_context(&env, &mut &own[..], Command::Add).unwrap();
        let derived = br#"{"cniVersion":"1.0.0","name":"n","ipam":{"type":"fake-ipam"}}"#;
        let lease = add_stdin(&ctx, "fake-ipam", derived).unwrap();
        assert_eq!(lease.ips[0].address.to_string(), "10.9.0.2/24");
        assert_eq!(std::fs::read(dir.join("seen.ADD")).unwrap(), derived);
        // The delegate is told who its caller is (PID and start time).
        let me = cni::caller::Identity::current().unwrap().to_env();
        assert_eq!(std::fs::read_to_string(dir.join("seen.caller")).unwrap().trim(), me);
        let e: Result<(), Error> =
            add_with_rollback_stdin(&ctx, "fake-ipam", derived, |_| Err(Error::plugin("later step failed")));
        assert_eq!(e.unwrap_err().msg, "later step failed");
        assert_eq!(std::fs::read(dir.join("seen.DEL")).unwrap(), derived, "the rollback DEL gets the same bytes");
        forward_stdin(&ctx, "fake-ipam", Command::Check, derived).unwrap();
        assert_eq!(std::fs::read(dir.join("seen.CHECK")).unwrap(), derived);
        forward(&ctx, "fake-ipam", Command::Check).unwrap();
        assert_eq!(std::fs::read(dir.join("seen.CHECK")).unwrap(), own, "forward still sends the caller's stdin");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
