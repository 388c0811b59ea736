//! dhcp: IPAM from the LAN's DHCP server. The plugin asks a long-running
//! `dhcp daemon` (same binary), over a unix socket, to acquire a lease from
//! inside the container's namespace on `CNI_IFNAME`; the daemon keeps
//! renewing it until DEL releases it, and keeps its leases across its own
//! restarts. Configs written for the reference plugin (`daemonSocketPath`,
//! `request`, `provide`) work unchanged.

mod add;
mod check;
mod client;
mod config;
mod daemon;
mod del;
mod lease;
mod proto;
mod record;
mod store;

use cni::error::code;
use cni::skel::Commands;
use cni::{Context, Error};
use std::time::Duration;

/// How long the plugin waits for the daemon's answer: longer than the
/// daemon's own acquisition deadline, so the daemon's error (which says
/// what the server did) is the one the runtime sees.
const CALL_TIMEOUT: Duration = Duration::from_secs(90);

/// Builds the request of `op` for the call in `ctx`.
fn request(ctx: &Context, op: proto::Op, conf: &config::Config) -> Result<proto::Request, Error> {
    let netns = match &ctx.netns {
        Some(p) => std::path::absolute(p)
            .map_err(|e| Error::invalid_env(format!("CNI_NETNS {}: {e}", p.display())))?
            .display()
            .to_string(),
        None => String::new(),
    };
    Ok(proto::Request {
        op: Some(op),
        network: ctx.conf.name.clone(),
        container_id: ctx.container_id.clone(),
        ifname: ctx.ifname.clone(),
        netns,
        request: conf.request.clone(),
        provide: conf.provide.clone(),
        valid: Vec::new(),
    })
}

/// Sends `req` to the daemon at `socket`; a daemon that is not running is
/// an error naming the socket, with `unreachable` as its code.
fn ask(socket: &str, req: &proto::Request, unreachable: u32) -> Result<proto::Reply, Error> {
    match proto::call(socket, req, CALL_TIMEOUT) {
        Ok(reply) => match reply.error {
            Some(e) => Err(Error::new(e.code, e.msg).with_details(e.details)),
            None => Ok(reply),
        },
        Err(proto::CallError::Connect(e)) => {
            Err(Error::new(unreachable, format!("the dhcp daemon is not running: cannot connect to {socket}: {e}"))
                .with_details(format!("start it with `dhcp daemon -socketpath {socket}` (see cni-conf/dhcp/)")))
        }
        Err(proto::CallError::Io(e)) => Err(Error::io(format!("talking to the dhcp daemon at {socket}: {e}"))),
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    match argv.get(1).map(String::as_str) {
        Some("daemon") => std::process::exit(daemon::main(&argv[2..])),
        Some("status") => std::process::exit(daemon::status(&argv[2..])),
        _ => {}
    }
    cni::skel::run(Commands {
        name: "dhcp",
        add: add::add,
        del: del::del,
        check: check::check,
        gc: del::gc,
        status: check::status,
    })
}

/// The error code for a daemon that cannot be reached during ADD, DEL,
/// CHECK and GC: try again later (it may be starting).
const UNREACHABLE: u32 = code::TRY_AGAIN;
