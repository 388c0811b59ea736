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

/// Starts the delegate for `command` through the suite's one plugin
/// runner; its stdout comes from [`invoke::Running::wait_plugin`], and an
/// error object it printed comes back unchanged. The delegate dies with
/// its caller: one that outlived a caller the runtime killed could reserve
/// an address after the runtime's follow-up DEL.
fn start(ctx: &Context, ipam_type: &str, command: Command, stdin_bytes: &[u8]) -> Result<invoke::Running, Error> {
    let path = find_plugin(ipam_type, &ctx.cni_path)?;
    let env = [("CNI_COMMAND".to_string(), command.as_str().to_string())];
    invoke::spawn_plugin(&invoke::Request::new(&path, stdin_bytes, &env))
}

/// Runs the delegate for `command` and returns its stdout on success.
fn exec(ctx: &Context, ipam_type: &str, command: Command, stdin_bytes: &[u8]) -> Result<Vec<u8>, Error> {
    start(ctx, ipam_type, command, stdin_bytes)?.wait_plugin()
}

/// STATUS of a plugin whose readiness is its IPAM plugin's (none
/// configured: ready).
pub fn status(ctx: &Context) -> Result<(), Error> {
    forward_configured(ctx, Command::Status)
}

/// Forwards `command` (DEL, CHECK, GC, STATUS) to the configured IPAM
/// plugin, if there is one.
pub fn forward_configured(ctx: &Context, command: Command) -> Result<(), Error> {
    match configured(ctx)? {
        Some(t) => forward(ctx, &t, command),
        None => Ok(()),
    }
}

/// Whether the IPAM plugin `ipam_type` may run beside the caller's link
/// work: its ADD while the link is made, its DEL while the link is
/// deleted. Only for the suite's own host-local and static, which read
/// their config and their own store and never the container's interface.
/// Any other runs in the reference's order, ADD after the link exists and
/// DEL before it goes: dhcp acquires on the container's interface and
/// sends its release from the leased address, and a third-party IPAM may
/// do the same.
pub fn runs_beside_links(ipam_type: &str) -> bool {
    matches!(ipam_type, "host-local" | "static")
}

/// Whether a DEL may release the address while the link is deleted: no
/// IPAM to call at all, or one that [`runs_beside_links`].
pub fn releases_beside(ipam_type: Option<&str>) -> bool {
    ipam_type.is_none_or(runs_beside_links)
}

/// The configured IPAM type, or `None` for `"ipam": {}`.
pub fn configured(ctx: &Context) -> Result<Option<String>, Error> {
    Ok(ctx.conf.ipam_type()?.map(str::to_string))
}

/// Reads the delegate's ADD output as an IPAM result in the internal form.
fn parse_add(ctx: &Context, ipam_type: &str, out: &[u8]) -> Result<CniResult, Error> {
    let v: serde_json::Value = serde_json::from_slice(out)
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

/// An address lease from the IPAM delegate, released again (the
/// delegate's DEL, with the same stdin) when dropped unless [`Lease::keep`]
/// took it: an ADD that fails after the lease, at any `?`, never leaks an
/// address. (The Go reference gets this with `defer ipam.ExecDel`.)
///
/// Acquire or start one only once the container's interface name is known
/// to be free: host-local hands a repeated ADD of a live attachment that
/// attachment's own lease, and the failed ADD's release would take it
/// from the live container.
pub struct Lease<'a> {
    ctx: &'a Context,
    ipam_type: &'a str,
    stdin: &'a [u8],
    result: CniResult,
    kept: bool,
}

impl<'a> Lease<'a> {
    /// Runs the delegate's ADD; a result without any address is refused
    /// (and released).
    pub fn acquire(ctx: &'a Context, ipam_type: &'a str) -> Result<Lease<'a>, Error> {
        Lease::acquire_stdin(ctx, ipam_type, &ctx.stdin)
    }

    /// [`Lease::acquire`] with `stdin` as the delegate's config (for the
    /// ADD and for the DEL that undoes it).
    pub fn acquire_stdin(ctx: &'a Context, ipam_type: &'a str, stdin: &'a [u8]) -> Result<Lease<'a>, Error> {
        Lease::start_stdin(ctx, ipam_type, stdin)?.finish()
    }

    /// Starts the delegate's ADD and returns while it runs, so the caller
    /// can make its links meanwhile; [`PendingLease::finish`] gives the
    /// lease. Only a delegate that cannot be found or started fails here.
    /// A delegate that must not run beside the link work
    /// ([`runs_beside_links`]) is only started by `finish`, once the
    /// caller's link exists.
    pub fn start(ctx: &'a Context, ipam_type: &'a str) -> Result<PendingLease<'a>, Error> {
        Lease::start_stdin(ctx, ipam_type, &ctx.stdin)
    }

    /// [`Lease::start`] with `stdin` as the delegate's config.
    pub fn start_stdin(ctx: &'a Context, ipam_type: &'a str, stdin: &'a [u8]) -> Result<PendingLease<'a>, Error> {
        if !runs_beside_links(ipam_type) {
            return Ok(PendingLease { ctx, ipam_type, stdin, running: None, deferred: true });
        }
        let running = start(ctx, ipam_type, Command::Add, stdin)?;
        Ok(PendingLease { ctx, ipam_type, stdin, running: Some(running), deferred: false })
    }

    /// What the delegate reserved.
    pub fn result(&self) -> &CniResult {
        &self.result
    }

    /// The ADD succeeded: the lease stays reserved.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

/// An IPAM ADD that is still running (from [`Lease::start`]). Its one way
/// out is [`PendingLease::finish`]; dropped without it (the caller's link
/// work failed), it waits for the delegate and releases whatever it
/// reserved, through [`Lease`]'s own drop, so a failed ADD never leaks an
/// address and never leaves the delegate running behind it.
pub struct PendingLease<'a> {
    ctx: &'a Context,
    ipam_type: &'a str,
    stdin: &'a [u8],
    running: Option<invoke::Running>,
    /// Not started yet: it starts in `finish`, after the link work.
    deferred: bool,
}

impl<'a> PendingLease<'a> {
    /// Waits for the delegate (starting it first when it was deferred):
    /// its lease, or its error as the delegate printed it; a result without
    /// any address is refused (and released).
    pub fn finish(mut self) -> Result<Lease<'a>, Error> {
        self.wait()
    }

    /// For a caller whose link work failed: the delegate's outcome when it
    /// was already running beside it (its error comes first), `None` when
    /// it was deferred and so never started (nothing to release).
    pub fn finish_if_started(self) -> Option<Result<Lease<'a>, Error>> {
        (!self.deferred).then(|| self.finish())
    }

    fn wait(&mut self) -> Result<Lease<'a>, Error> {
        let (ctx, ipam_type, stdin) = (self.ctx, self.ipam_type, self.stdin);
        let running = match self.running.take() {
            Some(running) => running,
            None if self.deferred => {
                self.deferred = false;
                start(ctx, ipam_type, Command::Add, stdin)?
            }
            None => return Err(Error::plugin(format!("IPAM plugin {ipam_type:?} was already waited for"))),
        };
        let result = parse_add(ctx, ipam_type, &running.wait_plugin()?)?;
        let lease = Lease { ctx, ipam_type, stdin, result, kept: false };
        if lease.result.ips.is_empty() {
            return Err(Error::new(code::PLUGIN, format!("IPAM plugin {ipam_type:?} returned no IP address")));
        }
        Ok(lease)
    }
}

impl Drop for PendingLease<'_> {
    fn drop(&mut self) {
        if self.running.is_some() {
            // The lease (if the delegate gave one) is released as it drops.
            let _ = self.wait();
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.kept {
            if let Err(e) = forward_stdin(self.ctx, self.ipam_type, Command::Del, self.stdin) {
                log::warn!("releasing the IPAM lease of a failed ADD: {e}");
            }
        }
    }
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
        let own = r#"{"cniVersion":"1.0.0","name":"n","type":"vxlan","subnet":"10.9.0.0/24"}"#;
        let ctx = cni::testing::context(Command::Add, own, &[("CNI_PATH", &dir.display().to_string())]);
        let derived = br#"{"cniVersion":"1.0.0","name":"n","ipam":{"type":"fake-ipam"}}"#;
        let lease = Lease::acquire_stdin(&ctx, "fake-ipam", derived).unwrap();
        assert_eq!(lease.result().ips[0].address.to_string(), "10.9.0.2/24");
        lease.keep();
        assert_eq!(std::fs::read(dir.join("seen.ADD")).unwrap(), derived);
        // The delegate is told who its caller is (PID and start time).
        let me = cni::caller::Identity::current().unwrap().to_env();
        assert_eq!(std::fs::read_to_string(dir.join("seen.caller")).unwrap().trim(), me);
        let _ = std::fs::remove_file(dir.join("seen.DEL"));
        let failed_add = || -> Result<(), Error> {
            let _lease = Lease::acquire_stdin(&ctx, "fake-ipam", derived)?;
            Err(Error::plugin("later step failed"))
        };
        assert_eq!(failed_add().unwrap_err().msg, "later step failed");
        assert_eq!(std::fs::read(dir.join("seen.DEL")).unwrap(), derived, "the rollback DEL gets the same bytes");
        // A delegate that may run beside the link work (the fake, under
        // host-local's name) and is dropped before it was finished (the
        // link work failed) is waited for and released too.
        std::fs::copy(&script, dir.join("host-local")).unwrap();
        let _ = std::fs::remove_file(dir.join("seen.DEL"));
        drop(Lease::start_stdin(&ctx, "host-local", derived).unwrap());
        assert_eq!(std::fs::read(dir.join("seen.DEL")).unwrap(), derived, "the dropped pending lease is released");
        let pending = Lease::start_stdin(&ctx, "host-local", derived).unwrap();
        assert!(pending.finish_if_started().unwrap().is_ok(), "a started delegate is waited for");
        // Any other delegate starts only at `finish`: dropped before it
        // (the link work failed), it never ran and releases nothing.
        let _ = std::fs::remove_file(dir.join("seen.ADD"));
        let _ = std::fs::remove_file(dir.join("seen.DEL"));
        drop(Lease::start_stdin(&ctx, "fake-ipam", derived).unwrap());
        assert!(Lease::start_stdin(&ctx, "fake-ipam", derived).unwrap().finish_if_started().is_none());
        assert!(!dir.join("seen.ADD").exists() && !dir.join("seen.DEL").exists(), "a deferred delegate never ran");
        let lease = Lease::start_stdin(&ctx, "fake-ipam", derived).unwrap().finish().unwrap();
        assert_eq!(lease.result().ips[0].address.to_string(), "10.9.0.2/24");
        lease.keep();
        forward_stdin(&ctx, "fake-ipam", Command::Check, derived).unwrap();
        assert_eq!(std::fs::read(dir.join("seen.CHECK")).unwrap(), derived);
        forward(&ctx, "fake-ipam", Command::Check).unwrap();
        assert_eq!(
            std::fs::read(dir.join("seen.CHECK")).unwrap(),
            own.as_bytes(),
            "forward still sends the caller's stdin"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
