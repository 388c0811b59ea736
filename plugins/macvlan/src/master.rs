//! Finding the master (parent) link: the configured one, or the interface
//! of the default route, in the host or, with `linkInContainer`, in the
//! container. ADD and CHECK need it; DEL never looks (plugins#953).

use cni::Error;
use kernel::netlink::{Handle, Link};

use crate::config::MacvlanConf;

/// Where the master is looked up, for messages.
fn place(conf: &MacvlanConf) -> &'static str {
    if conf.link_in_container {
        "the container network namespace (linkInContainer)"
    } else {
        "the host network namespace"
    }
}

/// The master link, seen through `h` (a handle on the namespace it lives
/// in), with `mtu` checked against it. A missing master is code 7 naming
/// the field: the config points at something that is not there.
pub fn resolve(h: &Handle, conf: &MacvlanConf) -> Result<Link, Error> {
    let link = if conf.master.is_empty() {
        let index = h.default_route_interface()?.ok_or_else(|| {
            Error::invalid_config(format!(
                "no \"master\" given and there is no default route in {} to take it from",
                place(conf)
            ))
            .with_details("set \"master\" to the host interface the containers should share")
        })?;
        h.link_by_index(index)?.ok_or_else(|| {
            Error::invalid_config(format!("the default route's interface #{index} vanished (field \"master\" unset)"))
        })?
    } else {
        h.link_by_name(&conf.master)?.ok_or_else(|| {
            Error::invalid_config(format!(
                "master interface {:?} (field \"master\") not found in {}",
                conf.master,
                place(conf)
            ))
        })?
    };
    conf.check_mtu(&link.name, link.mtu)?;
    Ok(link)
}
