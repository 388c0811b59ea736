//! The CNI error object and the spec's well-known codes.
//!
//! Every failure of every plugin ends as one of these, printed on stdout, so
//! the runtime can tell a bad config (7) from a transient condition (11).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Well-known error codes from the spec (0–99) and the suite's own (100+).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid or missing environment variables.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO: u32 = 5;
    /// Failed to decode content.
    pub const DECODE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_CONFIG: u32 = 7;
    /// CNI_NETNS is the plugin's own network namespace (Go reference code).
    pub const INVALID_NETNS: u32 = 8;
    /// Try again later.
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS: the plugin cannot serve ADD.
    pub const NOT_AVAILABLE: u32 = 50;
    /// A kernel or plugin operation failed (netlink, nftables, files).
    pub const PLUGIN: u32 = 100;
    /// An address pool has no free address left.
    pub const IPAM_EXHAUSTED: u32 = 101;
    /// A resource is already held by another container.
    pub const CONFLICT: u32 = 102;
    /// The running kernel lacks a feature the config asks for.
    pub const UNSUPPORTED_KERNEL: u32 = 103;
    /// A panic inside a plugin.
    pub const INTERNAL: u32 = 999;
}

/// A CNI error as the spec prints it: `{"cniVersion","code","msg","details"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    /// One of [`code`].
    pub code: u32,
    /// A short message that names what was wrong.
    pub msg: String,
    /// Longer context: what was expected, which value was seen.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl Error {
    /// An error with a code and a message.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Error { code, msg: msg.into(), details: String::new() }
    }
    /// Adds the long form.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }
    /// Code 7: the network config failed validation.
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(code::INVALID_CONFIG, msg)
    }
    /// Code 6: the input could not be decoded.
    pub fn decode(msg: impl Into<String>) -> Self {
        Self::new(code::DECODE, msg)
    }
    /// Code 4: the environment is invalid.
    pub fn invalid_env(msg: impl Into<String>) -> Self {
        Self::new(code::INVALID_ENV, msg)
    }
    /// Code 5: an I/O failure.
    pub fn io(msg: impl Into<String>) -> Self {
        Self::new(code::IO, msg)
    }
    /// Code 11: transient, the runtime may retry.
    pub fn try_again(msg: impl Into<String>) -> Self {
        Self::new(code::TRY_AGAIN, msg)
    }
    /// Code 100: a kernel or plugin operation failed.
    pub fn plugin(msg: impl Into<String>) -> Self {
        Self::new(code::PLUGIN, msg)
    }
    /// Prefixes the message with context, keeping code and details.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }
    /// The JSON object printed on stdout, labelled with the version in use.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert("cniVersion".into(), cni_version.into());
        map.insert("code".into(), self.code.into());
        map.insert("msg".into(), self.msg.clone().into());
        if !self.details.is_empty() {
            map.insert("details".into(), self.details.clone().into());
        }
        serde_json::Value::Object(map)
    }
}

/// The outcome of a command that tries every step and reports the first
/// failure (DEL: what one step could not remove must not stop the others):
/// each error is logged with `what` in front, the first one is returned.
pub fn first_of(what: &str, errors: Vec<Error>) -> Result<()> {
    for e in &errors {
        log::warn!("{what}: {e}");
    }
    errors.into_iter().next().map_or(Ok(()), Err)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            write!(f, "{} (code {})", self.msg, self.code)
        } else {
            write!(f, "{}: {} (code {})", self.msg, self.details, self.code)
        }
    }
}

impl std::error::Error for Error {}

/// Any error that can say which `std::io::ErrorKind` it is becomes a CNI
/// error with its own message: how a lower layer's errors (the `kernel`
/// crate's, whose kind comes from the errno) pass through `?` in a plugin
/// without this crate knowing that layer. Busy kernels are transient
/// (code 11), a missing kernel feature is code 103, the rest code 100.
impl<E> From<E> for Error
where
    E: std::error::Error + Into<std::io::Error>,
{
    fn from(e: E) -> Error {
        use std::io::ErrorKind;
        let msg = e.to_string();
        let code = match e.into().kind() {
            ErrorKind::WouldBlock | ErrorKind::ResourceBusy => code::TRY_AGAIN,
            ErrorKind::Unsupported => code::UNSUPPORTED_KERNEL,
            _ => code::PLUGIN,
        };
        Error::new(code, msg)
    }
}

/// Shorthand used across the suite.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_leaves_out_empty_details() {
        let e = Error::invalid_config("missing network name");
        let v = e.to_json("1.0.0");
        assert_eq!(v["code"], 7);
        assert_eq!(v["cniVersion"], "1.0.0");
        assert!(v.get("details").is_none());
        let v = e.with_details("x").to_json("1.0.0");
        assert_eq!(v["details"], "x");
    }

    #[test]
    fn errors_with_an_io_kind_convert_with_their_message() {
        #[derive(Debug)]
        struct Lower(std::io::ErrorKind);
        impl fmt::Display for Lower {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "adding link: {:?}", self.0)
            }
        }
        impl std::error::Error for Lower {}
        impl From<Lower> for std::io::Error {
            fn from(l: Lower) -> std::io::Error {
                std::io::Error::new(l.0, l.to_string())
            }
        }
        let e: Error = Lower(std::io::ErrorKind::WouldBlock).into();
        assert_eq!((e.code, e.msg.as_str()), (code::TRY_AGAIN, "adding link: WouldBlock"));
        assert_eq!(Error::from(Lower(std::io::ErrorKind::Unsupported)).code, code::UNSUPPORTED_KERNEL);
        assert_eq!(Error::from(Lower(std::io::ErrorKind::NotFound)).code, code::PLUGIN);
    }

    #[test]
    fn context_keeps_code() {
        let e = Error::plugin("file exists").context("adding route");
        assert_eq!(e.msg, "adding route: file exists");
        assert_eq!(e.code, code::PLUGIN);
    }
}
