//! Traffic control over rtnetlink, without `tc`: an HTB shaper on a
//! device's root (a shaped class, an unshaped class and u32 filters that
//! send listed subnets to one of them), the ingress qdisc with a u32
//! match-all filter whose mirred action redirects every packet to another
//! device (an ifb), reading both back for CHECK, and deleting them by
//! parent for DEL. netlink-packet-route knows u32 and mirred but not HTB,
//! so HTB's options are built and read here as raw attributes.
//!
//! Handles follow the layout users know from the reference bandwidth
//! plugin (≥ 1.5) and `tc`: root qdisc `1:`, shaped class `1:30`,
//! unshaped class `1:1`, ingress qdisc `ffff:`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use rtnetlink::packet_core::{DefaultNla, Nla, NlasIterator, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_core::{NLM_F_ECHO, NLM_F_REQUEST};
use rtnetlink::packet_route::tc::{
    TcAction, TcActionAttribute, TcActionMirror, TcActionMirrorOption, TcActionOption, TcActionType, TcAttribute,
    TcFilterU32Option, TcHandle, TcMessage, TcMirror, TcMirrorActionType, TcOption, TcU32Key, TcU32Selector,
    TcU32SelectorFlags,
};
use rtnetlink::packet_route::RouteNetlinkMessage;

use super::transport::{Fault, Request};
use super::Handle;
use crate::error::{Error, Result};

/// `TC_H_ROOT`: the parent of a device's root qdisc.
pub const ROOT: u32 = 0xFFFF_FFFF;
/// `TC_H_INGRESS`: the parent of a device's ingress qdisc.
pub const INGRESS: u32 = 0xFFFF_FFF1;
/// The ingress qdisc's own handle, `ffff:`.
const INGRESS_HANDLE: u32 = 0xFFFF_0000;
/// The HTB root qdisc's handle, `1:`.
pub const HTB_HANDLE: u32 = 0x0001_0000;
/// The shaped class, `1:30` (as the reference names it).
const SHAPED_MINOR: u16 = 0x30;
/// The unshaped class, `1:1`.
const UNSHAPED_MINOR: u16 = 0x1;
/// Rate of the unshaped class, bytes/s (100 Gbit/s: never the limit).
const UNSHAPED_RATE: u64 = 100_000_000_000 / 8;

const ETH_P_ALL: u16 = 0x0003;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
/// Filter priorities: one per protocol (u32 cannot mix protocols at one priority).
const PRIO_V4: u16 = 16;
const PRIO_V6: u16 = 15;
const PRIO_REDIRECT: u16 = 1;

const TCA_HTB_PARMS: u16 = 1;
const TCA_HTB_INIT: u16 = 2;
const TCA_HTB_RATE64: u16 = 6;
const TCA_HTB_CEIL64: u16 = 7;
/// `TC_HTB_PROTOVER`.
const HTB_VERSION: u32 = 3;
/// `TC_LINKLAYER_ETHERNET`: the kernel then needs no rate table.
const LINKLAYER_ETHERNET: u8 = 1;
/// The kernel's psched tick is 64 ns (`PSCHED_SHIFT`).
const PSCHED_SHIFT: u32 = 6;
/// HTB's largest sensible quantum (the kernel warns above it).
const QUANTUM_MAX: u64 = 200_000;
const QUANTUM_MIN: u64 = 1_500;
/// The unshaped class's bucket: 10 ms at its rate.
const UNSHAPED_BUCKET_NS: u64 = 10_000_000;

/// A tc handle from its major and minor numbers (`1:30` is `handle(1, 0x30)`).
pub fn handle(major: u16, minor: u16) -> u32 {
    (u32::from(major) << 16) | u32::from(minor)
}

/// The kernel's bucket size for `burst` bytes at `rate` bytes/s: the time to
/// send them, in psched ticks, saturating at the largest the kernel holds.
fn burst_ticks(burst: u64, rate: u64) -> u32 {
    let ns = u128::from(burst) * 1_000_000_000 / u128::from(rate.max(1));
    u32::try_from(ns >> PSCHED_SHIFT).unwrap_or(u32::MAX)
}

/// Which address of a packet a subnet filter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The source address (traffic coming from the subnet).
    Source,
    /// The destination address (traffic going to the subnet).
    Destination,
}

/// An HTB shaper for one device's transmit side: packets to (or from) the
/// listed subnets go to one class, the rest to the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaper {
    /// Rate of the shaped class, bytes/s (> 0).
    pub rate: u64,
    /// Its bucket, bytes.
    pub burst: u64,
    /// The subnets the config lists.
    pub subnets: Vec<IpNetwork>,
    /// `true`: only the listed subnets are shaped; `false`: everything but them.
    pub only_listed: bool,
    /// Which address the subnets are compared with.
    pub side: Side,
}

/// What a device's root holds, read back as far as a shaper is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShaperState {
    /// Kind of the root qdisc (`htb`, `noqueue`, ...), `None` without one.
    pub root_kind: Option<String>,
    /// Handle of the root qdisc.
    pub root_handle: u32,
    /// HTB's default class minor, when the root is HTB.
    pub default_minor: Option<u16>,
    /// HTB classes: (minor, rate bytes/s, bucket ticks).
    pub classes: Vec<(u16, u64, u32)>,
    /// u32 filters on the root: (subnet, side, target class minor), sorted.
    pub filters: Vec<(IpNetwork, Side, u16)>,
}

impl Shaper {
    fn default_minor(&self) -> u16 {
        if self.only_listed {
            UNSHAPED_MINOR
        } else {
            SHAPED_MINOR
        }
    }

    fn listed_minor(&self) -> u16 {
        if self.only_listed {
            SHAPED_MINOR
        } else {
            UNSHAPED_MINOR
        }
    }

    /// The bucket in ticks, as the kernel stores it.
    fn ticks(&self) -> u32 {
        burst_ticks(self.burst, self.rate)
    }

    /// What a device holding this shaper reads back as.
    pub fn expected(&self) -> ShaperState {
        let mut filters: Vec<_> =
            self.subnets.iter().map(|n| (canonical(*n), self.side, self.listed_minor())).collect();
        filters.sort();
        ShaperState {
            root_kind: Some("htb".into()),
            root_handle: HTB_HANDLE,
            default_minor: Some(self.default_minor()),
            classes: vec![(UNSHAPED_MINOR, UNSHAPED_RATE, unshaped_ticks()), (SHAPED_MINOR, self.rate, self.ticks())],
            filters,
        }
    }

    /// Why `found` differs from this shaper, or `None` when it matches.
    pub fn diff(&self, found: &ShaperState) -> Option<String> {
        let want = self.expected();
        if found.root_kind != want.root_kind || found.root_handle != HTB_HANDLE {
            return Some(format!(
                "the root qdisc is {} (handle {}), not htb 1:",
                found.root_kind.as_deref().unwrap_or("missing"),
                HandleFmt(found.root_handle)
            ));
        }
        if found.default_minor != want.default_minor {
            return Some(format!(
                "the htb default class is {:?}, expected 1:{:x}",
                found.default_minor.map(|m| format!("1:{m:x}")),
                self.default_minor()
            ));
        }
        let shaped = found.classes.iter().find(|c| c.0 == SHAPED_MINOR);
        match shaped {
            None => return Some("the shaped class 1:30 is missing".into()),
            Some(&(_, rate, ticks)) if rate != self.rate || ticks != self.ticks() => {
                return Some(format!(
                    "class 1:30 has rate {} bit/s and bucket {ticks} ticks, expected {} bit/s and {} ticks",
                    rate.saturating_mul(8),
                    self.rate.saturating_mul(8),
                    self.ticks()
                ))
            }
            Some(_) => {}
        }
        if !found.classes.iter().any(|c| c.0 == UNSHAPED_MINOR) {
            return Some("the unshaped class 1:1 is missing".into());
        }
        if found.filters != want.filters {
            return Some(format!("the subnet filters are {:?}, expected {:?}", found.filters, want.filters));
        }
        None
    }
}

struct HandleFmt(u32);

impl fmt::Display for HandleFmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ROOT => f.write_str("root"),
            INGRESS => f.write_str("ingress"),
            h => write!(f, "{:x}:{:x}", h >> 16, h & 0xffff),
        }
    }
}

fn canonical(n: IpNetwork) -> IpNetwork {
    IpNetwork::new(n.network(), n.prefix()).unwrap_or(n)
}

/// `struct tc_ratespec` for `rate` bytes/s (clamped; the 64-bit attribute carries more).
fn ratespec(rate: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[1] = LINKLAYER_ETHERNET;
    b[8..12].copy_from_slice(&u32::try_from(rate).unwrap_or(u32::MAX).to_ne_bytes());
    b
}

fn header(index: u32, handle: u32, parent: u32, info: u32) -> TcMessage {
    let mut m = TcMessage::with_index(index as i32);
    m.header.handle = TcHandle::from(handle);
    m.header.parent = TcHandle::from(parent);
    m.header.info = info;
    m
}

fn raw_options(attrs: Vec<(u16, Vec<u8>)>) -> TcAttribute {
    TcAttribute::Options(attrs.into_iter().map(|(k, v)| TcOption::Other(DefaultNla::new(k, v))).collect())
}

/// The unshaped class's bucket in ticks.
fn unshaped_ticks() -> u32 {
    burst_ticks(UNSHAPED_RATE * UNSHAPED_BUCKET_NS / 1_000_000_000, UNSHAPED_RATE)
}

/// The `RTM_NEWQDISC` of an HTB root `1:` whose unclassified traffic goes to `default_minor`.
pub(crate) fn htb_qdisc_msg(index: u32, default_minor: u16) -> TcMessage {
    let mut glob = Vec::with_capacity(20);
    for v in [HTB_VERSION, 10, u32::from(default_minor), 0, 0] {
        glob.extend_from_slice(&v.to_ne_bytes());
    }
    let mut m = header(index, HTB_HANDLE, ROOT, 0);
    m.attributes.push(TcAttribute::Kind("htb".into()));
    m.attributes.push(raw_options(vec![(TCA_HTB_INIT, glob)]));
    m
}

/// The `RTM_NEWTCLASS` of HTB class `1:<minor>` at `rate` bytes/s with a
/// bucket of `ticks` (ceiling = rate: nothing to borrow from).
pub(crate) fn htb_class_msg(index: u32, minor: u16, rate: u64, ticks: u32) -> TcMessage {
    let quantum = (rate / 10).clamp(QUANTUM_MIN, QUANTUM_MAX) as u32;
    let mut opt = Vec::with_capacity(44);
    opt.extend_from_slice(&ratespec(rate));
    opt.extend_from_slice(&ratespec(rate));
    for v in [ticks, ticks, quantum, 0, 0] {
        opt.extend_from_slice(&v.to_ne_bytes());
    }
    let mut attrs = vec![(TCA_HTB_PARMS, opt)];
    if rate > u64::from(u32::MAX) {
        attrs.push((TCA_HTB_RATE64, rate.to_ne_bytes().to_vec()));
        attrs.push((TCA_HTB_CEIL64, rate.to_ne_bytes().to_vec()));
    }
    let mut m = header(index, handle(1, minor), HTB_HANDLE, 0);
    m.attributes.push(TcAttribute::Kind("htb".into()));
    m.attributes.push(raw_options(attrs));
    m
}

/// u32 keys matching `net` on `side` of an IPv4 or IPv6 header (offsets
/// from the network header); one all-zero key matches everything.
pub(crate) fn subnet_keys(net: IpNetwork, side: Side) -> Vec<TcU32Key> {
    let net = canonical(net);
    let (addr, mask, off): (Vec<u8>, Vec<u8>, i32) = match (net.network(), net.mask(), side) {
        (IpAddr::V4(a), IpAddr::V4(m), s) => {
            (a.octets().to_vec(), m.octets().to_vec(), if s == Side::Source { 12 } else { 16 })
        }
        (IpAddr::V6(a), IpAddr::V6(m), s) => {
            (a.octets().to_vec(), m.octets().to_vec(), if s == Side::Source { 8 } else { 24 })
        }
        _ => unreachable!("an IpNetwork's address and mask share a family"),
    };
    let mut keys = Vec::new();
    for (i, (a, m)) in addr.chunks(4).zip(mask.chunks(4)).enumerate() {
        let m = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
        if m == 0 {
            continue;
        }
        let mut k = TcU32Key::default();
        k.mask = m;
        k.val = u32::from_be_bytes([a[0], a[1], a[2], a[3]]) & m;
        k.off = off + 4 * i as i32;
        keys.push(k);
    }
    if keys.is_empty() {
        keys.push(TcU32Key::default());
    }
    keys
}

fn selector(keys: Vec<TcU32Key>) -> TcU32Selector {
    let mut sel = TcU32Selector::default();
    sel.flags = TcU32SelectorFlags::Terminal;
    sel.nkeys = keys.len() as u8;
    sel.keys = keys;
    sel
}

fn filter_info(prio: u16, protocol: u16) -> u32 {
    (u32::from(prio) << 16) | u32::from(protocol.to_be())
}

/// The `RTM_NEWTFILTER` sending `net` (on `side`) to class `1:<minor>`.
pub(crate) fn subnet_filter_msg(index: u32, net: IpNetwork, side: Side, minor: u16) -> TcMessage {
    let (prio, proto) = if net.is_ipv4() { (PRIO_V4, ETH_P_IP) } else { (PRIO_V6, ETH_P_IPV6) };
    let mut m = header(index, 0, HTB_HANDLE, filter_info(prio, proto));
    m.attributes.push(TcAttribute::Kind("u32".into()));
    m.attributes.push(TcAttribute::Options(vec![
        TcOption::U32(TcFilterU32Option::ClassId(TcHandle::from(handle(1, minor)))),
        TcOption::U32(TcFilterU32Option::Selector(selector(subnet_keys(net, side)))),
    ]));
    m
}

/// The `RTM_NEWQDISC` of the ingress qdisc `ffff:`.
pub(crate) fn ingress_qdisc_msg(index: u32) -> TcMessage {
    let mut m = header(index, INGRESS_HANDLE, INGRESS, 0);
    m.attributes.push(TcAttribute::Kind("ingress".into()));
    m
}

/// The `RTM_NEWTFILTER` on `ffff:` redirecting every packet to the egress of `target`.
pub(crate) fn redirect_filter_msg(index: u32, target: u32) -> TcMessage {
    let mut mirror = TcMirror::default();
    mirror.generic.action = TcActionType::Stolen;
    mirror.eaction = TcMirrorActionType::EgressRedir;
    mirror.ifindex = target;
    let mut action = TcAction::default();
    action.attributes = vec![
        TcActionAttribute::Kind(TcActionMirror::KIND.to_string()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(mirror))]),
    ];
    let mut m = header(index, 0, INGRESS_HANDLE, filter_info(PRIO_REDIRECT, ETH_P_ALL));
    m.attributes.push(TcAttribute::Kind("u32".into()));
    m.attributes.push(TcAttribute::Options(vec![
        TcOption::U32(TcFilterU32Option::Selector(selector(vec![TcU32Key::default()]))),
        TcOption::U32(TcFilterU32Option::Action(vec![action])),
    ]));
    m
}

/// The `RTM_DELQDISC` of the qdisc under `parent` ([`ROOT`] or [`INGRESS`]).
pub(crate) fn del_qdisc_msg(index: u32, parent: u32) -> TcMessage {
    header(index, if parent == INGRESS { INGRESS_HANDLE } else { 0 }, parent, 0)
}

/// The nested attributes of an option block the library keeps raw (HTB's):
/// a message read from the kernel carries the whole `TCA_OPTIONS` block as
/// one attribute, split here.
fn raw_nested(attrs: &[TcAttribute]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    for a in attrs {
        let TcAttribute::Options(opts) = a else { continue };
        for o in opts {
            let TcOption::Other(nla) = o else { continue };
            let mut buf = vec![0u8; nla.value_len()];
            nla.emit_value(&mut buf);
            for inner in NlasIterator::new(&buf[..]).flatten() {
                out.push((inner.kind(), inner.value().to_vec()));
            }
        }
    }
    out
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn kind_of(attrs: &[TcAttribute]) -> Option<String> {
    attrs.iter().find_map(|a| match a {
        TcAttribute::Kind(k) => Some(k.clone()),
        _ => None,
    })
}

/// Rebuilds the subnet a u32 selector matches, from its keys.
fn subnet_of(proto: u16, sel: &TcU32Selector) -> Option<(IpNetwork, Side)> {
    let (base_src, base_dst, len) = match proto {
        ETH_P_IP => (12, 16, 4usize),
        ETH_P_IPV6 => (8, 24, 16usize),
        _ => return None,
    };
    let first = sel.keys.first()?;
    let side = if first.off >= base_dst { Side::Destination } else { Side::Source };
    let base = if side == Side::Source { base_src } else { base_dst };
    let (mut addr, mut mask) = (vec![0u8; len], vec![0u8; len]);
    for k in &sel.keys {
        if k.mask == 0 && k.val == 0 {
            continue;
        }
        let at = usize::try_from(k.off - base).ok()?;
        if at + 4 > len {
            return None;
        }
        addr[at..at + 4].copy_from_slice(&k.val.to_be_bytes());
        mask[at..at + 4].copy_from_slice(&k.mask.to_be_bytes());
    }
    let prefix: u32 = mask.iter().map(|b| b.count_ones()).sum();
    let ip = if len == 4 {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(addr.as_slice()).ok()?))
    };
    IpNetwork::new(ip, prefix as u8).ok().map(|n| (n, side))
}

impl Handle {
    /// Sends `msgs` in one round trip; the first failure, named by its `what`.
    fn tc_batch(&self, msgs: Vec<(RouteNetlinkMessage, u16, String)>) -> Result<()> {
        let (reqs, whats): (Vec<_>, Vec<_>) = msgs
            .into_iter()
            .map(|(msg, extra, what)| (Request { msg, flags: NLM_F_REQUEST | NLM_F_ACK | extra }, what))
            .unzip();
        for (answer, what) in self.tx.requests(reqs).into_iter().zip(whats) {
            if let Err(f) = answer {
                let what = match self.netns_path() {
                    Some(ns) => format!("{what} in netns {ns}"),
                    None => what,
                };
                return Err(match f {
                    Fault::Errno(n) => Error::from_errno(what, n),
                    Fault::Other(cause) => Error::other(what, cause),
                });
            }
        }
        Ok(())
    }

    /// Puts `shaper` at the root of device `index`, replacing what was there
    /// (so a repeated ADD converges): the old root qdisc is deleted, then
    /// qdisc, both classes and the filters are added in one round trip.
    pub fn install_shaper(&self, index: u32, dev: &str, shaper: &Shaper) -> Result<()> {
        if shaper.rate == 0 {
            return Err(Error::new(
                crate::error::Kind::Invalid,
                format!("shaping {dev:?}"),
                "a rate of 0 shapes nothing",
            ));
        }
        // Replacing an htb by an htb would keep its classes: start afresh.
        self.delete_qdisc(index, ROOT)?;
        let mut msgs = vec![
            (
                RouteNetlinkMessage::NewQueueDiscipline(htb_qdisc_msg(index, shaper.default_minor())),
                NLM_F_CREATE | NLM_F_EXCL,
                format!("adding the htb root qdisc to {dev:?}"),
            ),
            (
                RouteNetlinkMessage::NewTrafficClass(htb_class_msg(index, SHAPED_MINOR, shaper.rate, shaper.ticks())),
                NLM_F_CREATE | NLM_F_EXCL,
                format!("adding the shaped htb class 1:30 to {dev:?}"),
            ),
            (
                RouteNetlinkMessage::NewTrafficClass(htb_class_msg(
                    index,
                    UNSHAPED_MINOR,
                    UNSHAPED_RATE,
                    unshaped_ticks(),
                )),
                NLM_F_CREATE | NLM_F_EXCL,
                format!("adding the unshaped htb class 1:1 to {dev:?}"),
            ),
        ];
        for net in &shaper.subnets {
            msgs.push((
                RouteNetlinkMessage::NewTrafficFilter(subnet_filter_msg(
                    index,
                    *net,
                    shaper.side,
                    shaper.listed_minor(),
                )),
                NLM_F_CREATE | NLM_F_EXCL,
                format!("adding the u32 filter for {net} to {dev:?}"),
            ));
        }
        self.tc_batch(msgs)
    }

    /// Redirects everything device `index` receives to the egress of
    /// device `target` (an ifb): a fresh ingress qdisc `ffff:` (any old one
    /// is removed first) and one u32 match-all filter with a mirred action.
    pub fn redirect_ingress(&self, index: u32, dev: &str, target: u32) -> Result<()> {
        self.delete_qdisc(index, INGRESS)?;
        self.tc_batch(vec![
            (
                RouteNetlinkMessage::NewQueueDiscipline(ingress_qdisc_msg(index)),
                NLM_F_CREATE | NLM_F_EXCL,
                format!("adding the ingress qdisc to {dev:?}"),
            ),
            (
                RouteNetlinkMessage::NewTrafficFilter(redirect_filter_msg(index, target)),
                NLM_F_CREATE | NLM_F_EXCL,
                format!("adding the redirect filter of {dev:?} to link #{target}"),
            ),
        ])
    }

    /// Deletes the qdisc under `parent` ([`ROOT`] or [`INGRESS`]) of device
    /// `index`, with its classes and filters; `false` when there was none
    /// (or no device).
    pub fn delete_qdisc(&self, index: u32, parent: u32) -> Result<bool> {
        let what = || format!("deleting the {} qdisc of link #{index}", HandleFmt(parent));
        match self.ack(RouteNetlinkMessage::DelQueueDiscipline(del_qdisc_msg(index, parent)), 0, what) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) if e.errno == Some(libc::EINVAL) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The devices the ingress qdisc of `index` redirects to (mirred
    /// targets of its filters); empty without an ingress qdisc.
    pub fn ingress_redirects(&self, index: u32) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        for (_, _, attrs) in self.filters(index, INGRESS_HANDLE)? {
            for a in &attrs {
                let TcAttribute::Options(opts) = a else { continue };
                for o in opts {
                    let TcOption::U32(TcFilterU32Option::Action(acts)) = o else { continue };
                    for act in acts {
                        for aa in &act.attributes {
                            let TcActionAttribute::Options(ao) = aa else { continue };
                            for x in ao {
                                if let TcActionOption::Mirror(TcActionMirrorOption::Parms(p)) = x {
                                    out.push(p.ifindex);
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn filters(&self, index: u32, parent: u32) -> Result<Vec<(u16, u16, Vec<TcAttribute>)>> {
        let msg = header(index, 0, parent, 0);
        let what = || format!("listing the filters of link #{index} under {}", HandleFmt(parent));
        let replies = match self.dump(RouteNetlinkMessage::GetTrafficFilter(msg), what) {
            Ok(r) => r,
            Err(e) if e.is_not_found() || e.errno == Some(libc::EINVAL) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewTrafficFilter(m) => {
                    let prio = (m.header.info >> 16) as u16;
                    let proto = u16::from_be((m.header.info & 0xffff) as u16);
                    Some((prio, proto, m.attributes))
                }
                _ => None,
            })
            .collect())
    }

    /// What the root of device `index` holds, as far as a [`Shaper`] goes.
    pub fn shaper_state(&self, index: u32) -> Result<ShaperState> {
        let mut st = ShaperState::default();
        let what = || format!("reading the root qdisc of link #{index}");
        let q = self.send(
            RouteNetlinkMessage::GetQueueDiscipline(header(index, 0, ROOT, 0)),
            // The kernel answers a qdisc GET only as a notification, which
            // reaches the asker only when it asks for an echo.
            NLM_F_REQUEST | NLM_F_ECHO,
            what,
        );
        let replies = match q {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(st),
            Err(e) => return Err(e),
        };
        for r in replies {
            if let RouteNetlinkMessage::NewQueueDiscipline(m) = r {
                st.root_kind = kind_of(&m.attributes);
                st.root_handle = m.header.handle.into();
                for (k, v) in raw_nested(&m.attributes) {
                    if k == TCA_HTB_INIT {
                        st.default_minor = u32_at(&v, 8).map(|d| d as u16);
                    }
                }
            }
        }
        if st.root_kind.as_deref() != Some("htb") {
            return Ok(st);
        }
        let what = || format!("listing the classes of link #{index}");
        for r in self.dump(RouteNetlinkMessage::GetTrafficClass(header(index, 0, 0, 0)), what)? {
            let RouteNetlinkMessage::NewTrafficClass(m) = r else { continue };
            let h: u32 = m.header.handle.into();
            if h >> 16 != HTB_HANDLE >> 16 || kind_of(&m.attributes).as_deref() != Some("htb") {
                continue;
            }
            let (mut rate, mut ticks) = (0u64, 0u32);
            for (k, v) in raw_nested(&m.attributes) {
                match k {
                    TCA_HTB_PARMS => {
                        rate = u64::from(u32_at(&v, 8).unwrap_or(0));
                        ticks = u32_at(&v, 24).unwrap_or(0);
                    }
                    TCA_HTB_RATE64 if v.len() == 8 => {
                        rate = u64::from_ne_bytes(<[u8; 8]>::try_from(v.as_slice()).unwrap_or_default());
                    }
                    _ => {}
                }
            }
            st.classes.push(((h & 0xffff) as u16, rate, ticks));
        }
        st.classes.sort();
        for (_, proto, attrs) in self.filters(index, HTB_HANDLE)? {
            let mut class = None;
            let mut sel = None;
            for a in &attrs {
                let TcAttribute::Options(opts) = a else { continue };
                for o in opts {
                    match o {
                        TcOption::U32(TcFilterU32Option::ClassId(c)) => class = Some(u32::from(*c)),
                        TcOption::U32(TcFilterU32Option::Selector(s)) => sel = Some(s.clone()),
                        _ => {}
                    }
                }
            }
            if let (Some(c), Some(s)) = (class, sel) {
                if let Some((net, side)) = subnet_of(proto, &s) {
                    st.filters.push((net, side, (c & 0xffff) as u16));
                }
            }
        }
        st.filters.sort();
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::fake::Recorder;
    use rtnetlink::packet_core::{Emitable, Parseable};

    fn bytes(m: &TcMessage) -> Vec<u8> {
        let mut b = vec![0u8; m.buffer_len()];
        m.emit(&mut b);
        b
    }

    /// The message as the kernel would echo it: emitted, then parsed.
    fn reparsed(m: &TcMessage) -> TcMessage {
        TcMessage::parse(&bytes(m)).unwrap()
    }

    #[test]
    fn burst_in_ticks_is_the_time_to_send_it() {
        // 125,000 bytes at 1.25 MB/s (10 Mbit/s) is 100 ms = 1,562,500 ticks of 64 ns.
        assert_eq!(burst_ticks(125_000, 1_250_000), 1_562_500);
        // A bucket the kernel cannot hold saturates instead of wrapping.
        assert_eq!(burst_ticks(u64::from(u32::MAX), 1), u32::MAX);
        assert_eq!(handle(1, 0x30), 0x0001_0030);
    }

    #[test]
    fn htb_messages_carry_raw_options() {
        let q = htb_qdisc_msg(7, SHAPED_MINOR);
        let b = bytes(&q);
        // Header: ifindex 7, handle 1:0, parent root.
        assert_eq!(&b[4..8], &7i32.to_ne_bytes());
        assert_eq!(&b[8..12], &0x0001_0000u32.to_ne_bytes());
        assert_eq!(&b[12..16], &ROOT.to_ne_bytes());
        let opts = raw_nested(&reparsed(&q).attributes);
        assert_eq!(opts.len(), 1);
        assert_eq!(opts[0].0, TCA_HTB_INIT);
        assert_eq!(u32_at(&opts[0].1, 0), Some(3));
        assert_eq!(u32_at(&opts[0].1, 8), Some(0x30));

        let c = htb_class_msg(7, SHAPED_MINOR, 1_250_000, 1000);
        let opts = raw_nested(&reparsed(&c).attributes);
        assert_eq!(opts.len(), 1, "no 64-bit rate below 4 GB/s");
        let p = &opts[0].1;
        assert_eq!(p.len(), 44);
        assert_eq!(p[1], LINKLAYER_ETHERNET);
        assert_eq!(u32_at(p, 8), Some(1_250_000));
        assert_eq!(u32_at(p, 20), Some(1_250_000), "ceil = rate");
        assert_eq!(u32_at(p, 24), Some(1000));
        assert_eq!(u32_at(p, 32), Some(125_000), "quantum = rate / 10");
        let big = htb_class_msg(7, UNSHAPED_MINOR, UNSHAPED_RATE, 1);
        let opts = raw_nested(&reparsed(&big).attributes);
        assert_eq!(u32_at(&opts[0].1, 8), Some(u32::MAX));
        assert_eq!(opts[1], (TCA_HTB_RATE64, UNSHAPED_RATE.to_ne_bytes().to_vec()));
        assert_eq!(opts[2].0, TCA_HTB_CEIL64);
    }

    #[test]
    fn subnet_keys_round_trip() {
        for (net, side) in [
            ("10.1.0.0/16", Side::Destination),
            ("192.168.7.9/32", Side::Source),
            ("fd00:1:2::/48", Side::Destination),
            ("2001:db8::1/128", Side::Source),
            ("fd00::/64", Side::Source),
        ] {
            let n: IpNetwork = net.parse().unwrap();
            let keys = subnet_keys(n, side);
            let proto = if n.is_ipv4() { ETH_P_IP } else { ETH_P_IPV6 };
            assert_eq!(subnet_of(proto, &selector(keys)), Some((canonical(n), side)), "{net}");
        }
        let k = subnet_keys("10.1.2.3/16".parse().unwrap(), Side::Destination);
        assert_eq!((k[0].mask, k[0].val, k[0].off), (0xffff_0000, 0x0a01_0000, 16));
        assert_eq!(subnet_keys("fd00::/64".parse().unwrap(), Side::Destination).len(), 2);
        assert_eq!(subnet_keys("0.0.0.0/0".parse().unwrap(), Side::Source), vec![TcU32Key::default()]);
    }

    #[test]
    fn filter_header_puts_the_protocol_in_network_order() {
        let m = subnet_filter_msg(3, "10.0.0.0/8".parse().unwrap(), Side::Source, UNSHAPED_MINOR);
        assert_eq!(m.header.info >> 16, u32::from(PRIO_V4));
        assert_eq!(u16::from_be((m.header.info & 0xffff) as u16), ETH_P_IP);
        let r = redirect_filter_msg(3, 9);
        assert_eq!(u32::from(r.header.parent), INGRESS_HANDLE);
        assert_eq!(u16::from_be((r.header.info & 0xffff) as u16), ETH_P_ALL);
    }

    #[test]
    fn install_sends_everything_in_one_batch_and_names_the_failure() {
        let rec = Recorder::new();
        let h = rec.handle();
        let s = Shaper {
            rate: 1_250_000,
            burst: 12_500,
            subnets: vec!["10.9.0.0/16".parse().unwrap(), "fd00::/8".parse().unwrap()],
            only_listed: false,
            side: Side::Destination,
        };
        h.install_shaper(4, "veth1", &s).unwrap();
        let reqs = rec.requests();
        assert_eq!(reqs.len(), 6);
        assert!(matches!(reqs[0].msg, RouteNetlinkMessage::DelQueueDiscipline(_)));
        assert!(matches!(reqs[1].msg, RouteNetlinkMessage::NewQueueDiscipline(_)));
        assert_eq!(reqs[1].flags & NLM_F_EXCL, NLM_F_EXCL);
        assert!(matches!(reqs[4].msg, RouteNetlinkMessage::NewTrafficFilter(_)));
        let rec = Recorder::new();
        // No old root; the qdisc is made; the class fails.
        rec.fail(libc::ENOENT).reply(Ok(vec![])).fail(libc::ENOENT);
        let e = rec.handle().install_shaper(4, "veth1", &s).unwrap_err();
        assert!(e.what.contains("shaped htb class 1:30"), "{e:?}");
    }

    #[test]
    fn diff_names_what_changed() {
        let s = Shaper { rate: 1000, burst: 3000, subnets: vec![], only_listed: false, side: Side::Source };
        assert_eq!(s.diff(&s.expected()), None);
        let mut st = s.expected();
        st.classes[1].1 = 2000;
        assert!(s.diff(&st).unwrap().contains("rate 16000 bit/s"));
        assert!(s.diff(&ShaperState::default()).unwrap().contains("missing"));
    }
}
