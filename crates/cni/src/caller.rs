//! Who started this call, passed down explicitly.
//!
//! An IPAM delegate must not change its store once its caller is dead: a
//! runtime that killed the caller (a timeout) sends DEL next, and a lease
//! the orphan writes after that DEL is never released. `getppid()` at the
//! delegate's start cannot tell: when the caller is killed after forking
//! but before the delegate's `main` runs, the delegate already starts as
//! an orphan. So the caller writes its identity into [`CALLER_ENV`] before
//! it execs the delegate, and the delegate checks, under its store lock,
//! that this very process (PID and start time, so a reused PID does not
//! count) still runs. This reads `/proc` only; it is the one system read
//! of this crate besides the environment and stdin.

/// The variable that carries the caller's identity: `<pid>:<start time>`,
/// the start time in clock ticks since boot as `/proc/<pid>/stat` gives it.
pub const CALLER_ENV: &str = "CNIRS_CALLER";

/// One process, told apart from a later one with the same PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The PID.
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`.
    pub start: u64,
}

impl Identity {
    /// This process, for the variable of a child it execs.
    pub fn current() -> Option<Identity> {
        Identity::of(std::process::id())
    }

    /// The process running now with `pid`, if any.
    pub fn of(pid: u32) -> Option<Identity> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(Identity { pid, start: start_time(&stat)? })
    }

    /// Parses the variable's value; `None` when malformed.
    pub fn parse(s: &str) -> Option<Identity> {
        let (pid, start) = s.split_once(':')?;
        Some(Identity { pid: pid.parse().ok()?, start: start.parse().ok()? })
    }

    /// The variable's value.
    pub fn to_env(&self) -> String {
        format!("{}:{}", self.pid, self.start)
    }

    /// Whether this process still runs (not a later one with its PID). A
    /// zombie counts as gone: it will never send the follow-up DEL.
    pub fn is_alive(&self) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else { return false };
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        start_time(&stat) == Some(self.start) && !matches!(state, Some("Z") | Some("X") | Some("x"))
    }
}

/// Field 22 of a `/proc/<pid>/stat` line. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after the last `)`.
fn start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts with field 3 (state); field 22 is the 20th after it.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_different_start_is_not() {
        let me = Identity::current().unwrap();
        assert!(me.is_alive());
        assert_eq!(Identity::parse(&me.to_env()), Some(me));
        assert!(!Identity { start: me.start + 1, ..me }.is_alive(), "a reused PID is another process");
        assert_eq!(Identity::parse("12"), None);
        assert_eq!(Identity::parse("x:1"), None);
    }

    #[test]
    fn an_exited_child_is_gone() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let id = Identity::of(child.id()).unwrap();
        assert!(id.is_alive());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!id.is_alive());
    }

    #[test]
    fn command_names_with_parentheses_parse() {
        let line = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time(line), Some(987654));
    }
}
