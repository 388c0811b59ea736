//! Opening the container's namespace from `CNI_NETNS` with the semantics
//! each command needs: ADD and CHECK require it, DEL treats "empty" and
//! "already gone" as nothing to do.

use cni::error::code;
use kernel::error::Kind;
use kernel::netns::Netns;
use std::path::Path;

/// Opens the namespace an ADD or CHECK acts on; a missing one is code 3
/// (the container does not exist), naming the path.
pub fn open_required(path: Option<&Path>) -> Result<Netns, cni::Error> {
    let Some(path) = path else {
        return Err(cni::Error::invalid_env("required env variables [CNI_NETNS] missing"));
    };
    Netns::open(path).map_err(|e| {
        let c = if e.is_not_found() { code::UNKNOWN_CONTAINER } else { code::PLUGIN };
        cni::Error::new(c, format!("failed to open netns {:?}: {}", path.display().to_string(), e.cause))
    })
}

/// Opens the namespace a DEL acts on: `None` when `CNI_NETNS` is empty or
/// the namespace is already gone, which DEL must treat as success. A path
/// that is not a network namespace (the empty file an unmounted bind mount
/// leaves, a FIFO, a directory) holds nothing of the container either: DEL
/// goes on to clean up what it keys by name, instead of failing forever.
pub fn open_for_del(path: Option<&Path>) -> Result<Option<Netns>, cni::Error> {
    let Some(path) = path else { return Ok(None) };
    match Netns::open(path) {
        Ok(ns) => Ok(Some(ns)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) if e.kind == Kind::Invalid => {
            log::warn!("DEL: {e}; treating the namespace as gone");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Refuses an ADD whose interface name is already taken in the container
/// (code 102, the reference's message), before anything is made: a veth
/// plugin would otherwise fail half-way with a vaguer kernel error.
pub fn ensure_ifname_free(ctr: &kernel::netlink::Handle, ifname: &str) -> Result<(), cni::Error> {
    if ctr.link_by_name(ifname)?.is_some() {
        return Err(cni::Error::new(code::CONFLICT, format!("container veth name provided ({ifname}) already exists")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_namespace() {
        let p = Path::new("/run/netns/surely-not-here-sandbox-test");
        assert_eq!(open_required(Some(p)).unwrap_err().code, code::UNKNOWN_CONTAINER);
        assert!(open_for_del(Some(p)).unwrap().is_none());
        assert!(open_for_del(None).unwrap().is_none());
        assert_eq!(open_required(None).unwrap_err().code, code::INVALID_ENV);
    }
}
