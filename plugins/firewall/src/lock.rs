//! A host-wide lock around inserting the iptables-nft FORWARD rule, so
//! concurrent first ADDs do not both insert it (an insert is not
//! idempotent; everything else an ADD writes is, and needs no lock).

use cni::Error;
use std::fs::File;
use std::path::Path;

/// The lock file (on tmpfs: a reboot leaves no stale lock).
const LOCK_PATH: &str = "/run/cnirs-firewall.lock";

/// An exclusive `flock`, released when dropped.
pub struct SetupLock {
    _file: File,
}

/// Takes the lock, waiting for another plugin holding it (it holds it for
/// a few milliseconds).
pub fn lock() -> Result<SetupLock, Error> {
    lock_at(Path::new(LOCK_PATH))
}

fn lock_at(path: &Path) -> Result<SetupLock, Error> {
    let file =
        kernel::flock::open(path).map_err(|e| Error::io(format!("firewall: opening lock {}: {e}", path.display())))?;
    kernel::flock::lock(&file).map_err(|e| Error::io(format!("firewall: locking {}: {e}", path.display())))?;
    Ok(SetupLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_and_relock() {
        let p = std::env::temp_dir().join(format!("fw-lock-{}", std::process::id()));
        drop(lock_at(&p).unwrap());
        drop(lock_at(&p).unwrap());
        let _ = std::fs::remove_file(p);
    }
}
