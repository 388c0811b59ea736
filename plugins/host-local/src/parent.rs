//! Whether the process that started this call is still there.
//!
//! host-local usually runs as a delegate of bridge or macvlan. When the
//! runtime kills that plugin (a timeout), this process lives on as an
//! orphan, and the runtime's follow-up DEL may run before it takes the
//! store lock: an ADD or GC finishing after that DEL would leak a lease or
//! release a live one. So the store, once locked, refuses to change
//! anything if the caller is gone. A caller killed after the lock was
//! taken is safe: its follow-up DEL waits for the lock and then undoes
//! what this call did.
//!
//! The caller is known two ways. Our own plugins name themselves in
//! [`cni::caller::CALLER_ENV`] (PID and start time): that holds even when
//! the caller was killed before this process's `main` ran, when this
//! process already starts as an orphan. Without the variable (a reference
//! plugin or a runtime called us), the parent noted at start is compared
//! with the current one, as before.

use cni::caller::{Identity, CALLER_ENV};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

static PARENT: AtomicI32 = AtomicI32::new(0);
static CALLER: OnceLock<Option<Identity>> = OnceLock::new();

/// Records the caller; the binary calls this first thing.
pub fn note() {
    // SAFETY: getppid has no preconditions.
    PARENT.store(unsafe { libc::getppid() }, Ordering::Relaxed);
    // A malformed value names nobody who could still be running.
    let named = std::env::var(CALLER_ENV).ok().map(|v| Identity::parse(&v).unwrap_or(Identity { pid: 0, start: 0 }));
    let _ = CALLER.set(named);
}

/// Whether the caller noted by [`note`] is gone: the process named in
/// the variable no longer runs, or (without it) this process was
/// re-parented. Always false when nothing was noted (library use).
pub fn is_gone() -> bool {
    if let Some(Some(caller)) = CALLER.get() {
        if !caller.is_alive() {
            return true;
        }
    }
    let noted = PARENT.load(Ordering::Relaxed);
    // SAFETY: getppid has no preconditions.
    noted > 1 && unsafe { libc::getppid() } != noted
}

#[cfg(test)]
mod tests {
    #[test]
    fn nothing_noted_means_present() {
        assert!(!super::is_gone());
    }
}
