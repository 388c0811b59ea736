//! Whether firewalld runs here, for `backend: "firewalld"`: its nftables
//! backend keeps a table `inet firewalld` in the namespace it guards, and
//! the daemon leaves a pid file. Without either, that backend is a clear
//! error instead of silently doing something else.

use kernel::nft::{Family, Socket, Table};

/// Where firewalld writes its pid.
const PID_FILES: [&str; 2] = ["/run/firewalld.pid", "/var/run/firewalld.pid"];

/// Whether firewalld is running.
pub fn running(sock: &Socket) -> bool {
    let table = Table::new(Family::Inet, "firewalld").ok();
    if table.is_some_and(|t| sock.has_table(&t).unwrap_or(false)) {
        return true;
    }
    PID_FILES.iter().any(|p| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|pid| *pid > 0)
            // SAFETY: signal 0 only checks that the process exists.
            .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0)
    })
}
