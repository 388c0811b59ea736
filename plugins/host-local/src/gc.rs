//! GC and STATUS (spec 1.1).
//!
//! GC releases every lease whose attachment is not in the runtime's valid
//! list (a missing list means do nothing; an empty one means nothing is
//! valid). Only lease files are candidates: `lock`, `last_reserved_ip.*`
//! and the index are never deleted. STATUS reports whether the store can
//! take a new lease.

use crate::config::{Config, Mode};
use crate::store::{Open, Owner, Store, LOCK_FILE};
use cni::error::code;
use cni::{Context, Error};
use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Runs GC.
pub fn gc(ctx: &Context) -> Result<(), Error> {
    let conf = Config::load(ctx, Mode::Release)?;
    let Some(valid) = ctx.valid_attachments()? else {
        log::info!("GC without cni.dev/valid-attachments: nothing to do");
        return Ok(());
    };
    let Some(store) = Store::open(&conf.data_dir, &conf.network, Open::Existing)? else {
        return Ok(());
    };
    let pairs: HashSet<(&str, &str)> = valid.iter().map(|a| (a.container_id.as_str(), a.ifname.as_str())).collect();
    let ids: HashSet<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
    let keep = |o: &Owner| match &o.ifname {
        Some(ifname) => pairs.contains(&(o.container_id.as_str(), ifname.as_str())),
        None => ids.contains(o.container_id.as_str()),
    };
    let rebuilt = store.rebuild(&keep)?;
    if !rebuilt.errors.is_empty() {
        let msgs: Vec<String> = rebuilt.errors.iter().map(|e| e.msg.clone()).collect();
        return Err(Error::io(format!(
            "GC of network {:?} could not release {} lease(s)",
            conf.network,
            rebuilt.errors.len()
        ))
        .with_details(msgs.join("; ")));
    }
    if !rebuilt.corrupt.is_empty() {
        // Everything else is done; the report is what is left.
        let msgs: Vec<String> = rebuilt.corrupt.iter().map(|e| e.msg.clone()).collect();
        return Err(Error::io(format!(
            "GC of network {:?} kept {} corrupt lease file(s): {}",
            conf.network,
            rebuilt.corrupt.len(),
            msgs.join("; ")
        ))
        .with_details("their addresses stay reserved; remove the files once no container uses those addresses"));
    }
    Ok(())
}

/// Runs STATUS: the store directory exists (or can be made), is a
/// writable directory with free space and inodes, and its lock file opens.
pub fn status(ctx: &Context) -> Result<(), Error> {
    let conf = Config::load(ctx, Mode::Verify)?;
    let dir = conf.store_dir();
    let unusable = |why: String| {
        Error::new(code::NOT_AVAILABLE, format!("host-local store {} is not usable: {why}", dir.display()))
            .with_details(format!("network {:?} cannot reserve addresses until this is fixed", conf.network))
    };
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(&dir).map_err(|e| unusable(e.to_string()))?;
    let meta = std::fs::metadata(&dir).map_err(|e| unusable(e.to_string()))?;
    if !meta.is_dir() {
        return Err(unusable("not a directory".into()));
    }
    let c = cpath(&dir).ok_or_else(|| unusable("path contains a NUL byte".into()))?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        return Err(unusable(std::io::Error::last_os_error().to_string()));
    }
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.file_type().is_dir() => {}
        _ => return Err(unusable("a symlink, not a directory".into())),
    }
    crate::store::open_lock(&dir.join(LOCK_FILE)).map_err(|e| unusable(format!("lock file: {e}")))?;
    // SAFETY: an all-zero statvfs is a valid out-parameter.
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut vfs) } == 0 {
        if vfs.f_bavail == 0 {
            return Err(unusable("no free space".into()));
        }
        if vfs.f_files > 0 && vfs.f_favail == 0 {
            return Err(unusable("no free inodes".into()));
        }
    }
    Ok(())
}

fn cpath(p: &Path) -> Option<CString> {
    CString::new(p.as_os_str().as_bytes()).ok()
}
