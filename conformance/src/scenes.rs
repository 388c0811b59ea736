//! The demo's scenes, one per network model people know from Docker.

use crate::demo::Demo;
use crate::topology::Topology;
use crate::witness;

/// One scene: a name for `SCENE=`, a heading, and what it does.
pub struct Scene {
    /// Name for `make demo SCENE=<name>`.
    pub name: &'static str,
    /// Heading.
    pub title: &'static str,
    /// One sentence on what the scene shows.
    pub about: &'static str,
    /// Runs the scene, recording its proofs.
    pub run: fn(&mut Demo),
}

/// Every scene, in the order the demo runs them.
pub const SCENES: &[Scene] = &[Scene {
    name: "none",
    title: "none: a container with only lo (loopback plugin)",
    about: "docker run --network none: the container gets lo and nothing else.",
    run: none,
}];

fn none(d: &mut Demo) {
    let host = d.ns("none-host");
    let ctr = d.ns("none-c1");
    let added = d.cnitool(host, "add", "lo", ctr, "eth0", "");
    d.proof("cnitool add lo", added.is_some());
    d.show(ctr, &["ip", "-br", "addr"]);
    d.show(ctr, &["ip", "route"]);
    d.proof("ping 127.0.0.1 from the container", d.get(ctr).ping("127.0.0.1"));
    let links = witness::link_names(d.get(ctr));
    d.proof(&format!("the container has only lo (links: {links:?})"), links == ["lo"]);
    d.proof("ping 10.0.0.1 fails: no route out", !d.get(ctr).ping("10.0.0.1"));
    d.proof("cnitool check lo", d.cnitool(host, "check", "lo", ctr, "eth0", "").is_some());
    d.proof("cnitool del lo", d.cnitool(host, "del", "lo", ctr, "eth0", "").is_some());
    let mut t = Topology::default();
    let h = t.node("host (namespace)", vec!["no links: nothing attached".into()], None);
    t.node("container c1", vec!["lo 127.0.0.1/8".into(), "lo ::1/128".into()], Some(h));
    d.picture("none", &t, "none: loopback only");
}
