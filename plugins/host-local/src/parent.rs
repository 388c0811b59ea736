//! Whether the process that started this call is still there.
//!
//! host-local usually runs as a delegate of bridge or macvlan. When the
//! runtime kills that plugin (a timeout), this process lives on as an
//! orphan, and the runtime's follow-up DEL may run before it takes the
//! store lock: an ADD or GC finishing after that DEL would leak a lease or
//! release a live one. So the binary notes its parent at start, and the
//! store, once locked, refuses to change anything if the parent is gone.
//! A caller killed after the lock was taken is safe: its follow-up DEL
//! waits for the lock and then undoes what this call did.

use std::sync::atomic::{AtomicI32, Ordering};

static PARENT: AtomicI32 = AtomicI32::new(0);

/// Records the current parent; the binary calls this first thing.
pub fn note() {
    // SAFETY: getppid has no preconditions.
    PARENT.store(unsafe { libc::getppid() }, Ordering::Relaxed);
}

/// Whether the parent noted by [`note`] has died since (this process was
/// re-parented). Always false when nothing was noted (library use).
pub fn is_gone() -> bool {
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
