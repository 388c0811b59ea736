//! Which build a binary is: the workspace version and the git commit it was
//! built from, so an operator can tell from a node's `/opt/cni/bin` what is
//! installed (the VERSION `about` text, `cnitool --version`).
//!
//! The commit comes from `CNIRS_GIT_COMMIT` at compile time (`make release`
//! and `make dist` set it); a plain `cargo build` says `unknown` rather
//! than rebuild every crate on each commit.

/// The workspace version (`Cargo.toml`'s `workspace.package.version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit this binary was built from, or `unknown`.
const GIT_COMMIT: &str = match option_env!("CNIRS_GIT_COMMIT") {
    Some(c) if !c.is_empty() => c,
    _ => "unknown",
};

/// `<version> (git <commit>)`, as the binaries print it.
pub fn describe() -> String {
    format!("{VERSION} (git {GIT_COMMIT})")
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_version_and_commit() {
        let d = super::describe();
        assert!(d.starts_with(super::VERSION), "{d}");
        assert!(d.contains("(git "), "{d}");
    }
}
