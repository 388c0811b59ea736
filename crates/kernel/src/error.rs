//! One error type for every kernel operation, keeping the errno so callers
//! can tell "already there" and "already gone" from real failures. It
//! converts into `std::io::Error` (kind from [`Kind`]), through which
//! `cni::Error` takes it: this crate knows no CNI type.

use std::fmt;

/// What kind of failure a kernel operation hit; DEL paths treat `NotFound`
/// as success, concurrent ADDs treat `Exists` as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ENOENT, ENODEV, ESRCH, EADDRNOTAVAIL: the object is not there.
    NotFound,
    /// EEXIST: the object is already there.
    Exists,
    /// EBUSY, EAGAIN: try again.
    Busy,
    /// EOPNOTSUPP, EPROTONOSUPPORT, EAFNOSUPPORT: the kernel lacks the feature.
    Unsupported,
    /// EINVAL, ERANGE: the kernel refused the value.
    Invalid,
    /// Anything else.
    Other,
}

/// A failed kernel operation: what we tried, and why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The class of failure.
    pub kind: Kind,
    /// The errno, when the kernel gave one.
    pub errno: Option<i32>,
    /// What was being done, e.g. `creating veth "veth1a2b" in netns /run/netns/x`.
    pub what: String,
    /// The underlying message.
    pub cause: String,
}

impl Error {
    /// An error from an errno.
    pub fn from_errno(what: impl Into<String>, errno: i32) -> Error {
        let kind = match errno {
            libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::EADDRNOTAVAIL | libc::ENXIO => Kind::NotFound,
            libc::EEXIST => Kind::Exists,
            libc::EBUSY | libc::EAGAIN => Kind::Busy,
            libc::EOPNOTSUPP | libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT => Kind::Unsupported,
            libc::EINVAL | libc::ERANGE => Kind::Invalid,
            _ => Kind::Other,
        };
        let cause = std::io::Error::from_raw_os_error(errno).to_string();
        Error { kind, errno: Some(errno), what: what.into(), cause }
    }

    /// An error from an I/O error (keeps its errno when it has one).
    pub fn from_io(what: impl Into<String>, e: &std::io::Error) -> Error {
        match e.raw_os_error() {
            Some(n) => Error::from_errno(what, n),
            None => Error::other(what, e.to_string()),
        }
    }

    /// An error with no errno.
    pub fn other(what: impl Into<String>, cause: impl Into<String>) -> Error {
        Error { kind: Kind::Other, errno: None, what: what.into(), cause: cause.into() }
    }

    /// An error of a given kind with no errno.
    pub fn new(kind: Kind, what: impl Into<String>, cause: impl Into<String>) -> Error {
        Error { kind, errno: None, what: what.into(), cause: cause.into() }
    }

    /// Whether the object was not there.
    pub fn is_not_found(&self) -> bool {
        self.kind == Kind::NotFound
    }

    /// Whether the object was already there.
    pub fn is_exists(&self) -> bool {
        self.kind == Kind::Exists
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.cause)
    }
}

impl std::error::Error for Error {}

/// The kind in std's vocabulary, the message as [`fmt::Display`] prints it.
impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        use std::io::ErrorKind;
        let kind = match e.kind {
            Kind::NotFound => ErrorKind::NotFound,
            Kind::Exists => ErrorKind::AlreadyExists,
            Kind::Busy => ErrorKind::WouldBlock,
            Kind::Unsupported => ErrorKind::Unsupported,
            Kind::Invalid => ErrorKind::InvalidInput,
            Kind::Other => ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

/// Shorthand for kernel operations.
pub type Result<T> = std::result::Result<T, Error>;

/// Maps `NotFound` to `Ok(None)`: the idempotent-DEL idiom.
pub trait OrMissing<T> {
    /// `Ok(Some(v))`, `Ok(None)` when the object was not there, or the error.
    fn or_missing(self) -> Result<Option<T>>;
}

impl<T> OrMissing<T> for Result<T> {
    fn or_missing(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_errno() {
        assert!(Error::from_errno("x", libc::ENODEV).is_not_found());
        assert!(Error::from_errno("x", libc::EEXIST).is_exists());
        let e: std::io::Error = Error::from_errno("adding link", libc::EBUSY).into();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        assert!(e.to_string().starts_with("adding link: "));
    }

    #[test]
    fn or_missing() {
        let r: Result<u32> = Err(Error::from_errno("x", libc::ENOENT));
        assert_eq!(r.or_missing().unwrap(), None);
        let r: Result<u32> = Err(Error::from_errno("x", libc::EPERM));
        assert!(r.or_missing().is_err());
    }
}
