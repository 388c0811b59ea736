//! Typed values for set keys, map data and rule comparisons, and their wire
//! encoding: the byte order of each type, and the 4-byte padding of every
//! field of a concatenation (that is how the kernel lays registers out).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Error, Kind, Result};

/// Bits per field in the type id of a concatenation (nft's `TYPE_BITS`).
const CONCAT_TYPE_BITS: u32 = 6;

/// An IP version; rules and NAT statements that touch addresses need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// The `NFPROTO_*` number, compared against `meta nfproto`.
    pub fn nfproto(self) -> u8 {
        match self {
            IpFamily::V4 => libc::NFPROTO_IPV4 as u8,
            IpFamily::V6 => libc::NFPROTO_IPV6 as u8,
        }
    }

    /// The ethertype, compared against `meta protocol` where `nfproto` does
    /// not tell IPv4 from IPv6 (bridge and netdev tables).
    pub fn ethertype(self) -> u16 {
        match self {
            IpFamily::V4 => 0x0800,
            IpFamily::V6 => 0x86dd,
        }
    }

    /// The family of an address.
    pub fn of(addr: &IpAddr) -> IpFamily {
        match addr {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }
}

/// The type of one field of a set key or map value, named as in `nft`
/// (`ipv4_addr`, `inet_service`, ...), so `nft list` shows our sets readably.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `ipv4_addr`, 4 bytes, network order.
    Ipv4Addr,
    /// `ipv6_addr`, 16 bytes, network order.
    Ipv6Addr,
    /// `ether_addr`, 6 bytes.
    EtherAddr,
    /// `inet_proto`, 1 byte (6 = tcp, 17 = udp, 132 = sctp).
    InetProto,
    /// `inet_service`, a port: 2 bytes, network order.
    InetService,
    /// `mark`, 4 bytes, host order.
    Mark,
    /// `ifname`, 16 bytes, NUL padded.
    Ifname,
}

impl DataType {
    /// nft's datatype number, stored in the set so `nft` can print it.
    pub fn id(self) -> u32 {
        match self {
            DataType::Ipv4Addr => 7,
            DataType::Ipv6Addr => 8,
            DataType::EtherAddr => 9,
            DataType::InetProto => 12,
            DataType::InetService => 13,
            DataType::Mark => 19,
            DataType::Ifname => 41,
        }
    }

    /// The length in bytes of one value of this type.
    pub fn size(self) -> usize {
        match self {
            DataType::Ipv4Addr | DataType::Mark => 4,
            DataType::Ipv6Addr | DataType::Ifname => 16,
            DataType::EtherAddr => 6,
            DataType::InetProto => 1,
            DataType::InetService => 2,
        }
    }

    /// Whether values of this type compare as big-endian numbers, which is
    /// what interval (range) sets need.
    pub fn is_big_endian(self) -> bool {
        !matches!(self, DataType::Mark | DataType::Ifname)
    }

    /// nft's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Ipv4Addr => "ipv4_addr",
            DataType::Ipv6Addr => "ipv6_addr",
            DataType::EtherAddr => "ether_addr",
            DataType::InetProto => "inet_proto",
            DataType::InetService => "inet_service",
            DataType::Mark => "mark",
            DataType::Ifname => "ifname",
        }
    }

    /// The type id of a (possibly concatenated) key: the first field sits in
    /// the highest bits, as `nft` encodes it.
    pub fn type_id(types: &[DataType]) -> u32 {
        types.iter().fold(0, |id, t| (id << CONCAT_TYPE_BITS) | t.id())
    }

    /// The key length: a single field as is, every field of a concatenation
    /// rounded up to a 4-byte register.
    pub fn key_len(types: &[DataType]) -> usize {
        match types {
            [one] => one.size(),
            _ => types.iter().map(|t| t.size().next_multiple_of(4)).sum(),
        }
    }

    /// Lists types as nft does: `inet_proto . ipv4_addr . inet_service`.
    pub fn join(types: &[DataType]) -> String {
        types.iter().map(|t| t.name()).collect::<Vec<_>>().join(" . ")
    }
}

/// One typed value: a field of a set key, a map value, or the right-hand
/// side of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address.
    Ipv6(Ipv6Addr),
    /// A MAC address.
    Ether([u8; 6]),
    /// An IP protocol number (use [`Value::TCP`], [`Value::UDP`], [`Value::SCTP`]).
    Proto(u8),
    /// A TCP/UDP/SCTP port.
    Port(u16),
    /// A packet mark.
    Mark(u32),
    /// An interface name (at most 15 bytes).
    Ifname(String),
}

impl Value {
    /// `tcp`.
    pub const TCP: Value = Value::Proto(6);
    /// `udp`.
    pub const UDP: Value = Value::Proto(17);
    /// `sctp`.
    pub const SCTP: Value = Value::Proto(132);

    /// The type this value belongs to.
    pub fn data_type(&self) -> DataType {
        match self {
            Value::Ipv4(_) => DataType::Ipv4Addr,
            Value::Ipv6(_) => DataType::Ipv6Addr,
            Value::Ether(_) => DataType::EtherAddr,
            Value::Proto(_) => DataType::InetProto,
            Value::Port(_) => DataType::InetService,
            Value::Mark(_) => DataType::Mark,
            Value::Ifname(_) => DataType::Ifname,
        }
    }

    /// The bytes as the kernel compares them (exactly `data_type().size()`).
    pub fn encode(&self) -> Result<Vec<u8>> {
        Ok(match self {
            Value::Ipv4(a) => a.octets().to_vec(),
            Value::Ipv6(a) => a.octets().to_vec(),
            Value::Ether(m) => m.to_vec(),
            Value::Proto(p) => vec![*p],
            Value::Port(p) => p.to_be_bytes().to_vec(),
            Value::Mark(m) => m.to_ne_bytes().to_vec(),
            Value::Ifname(name) => {
                if name.is_empty()
                    || name.len() > 15
                    || name.bytes().any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace())
                {
                    return Err(Error::new(
                        Kind::Invalid,
                        format!("interface name {name:?}"),
                        "must be 1-15 bytes, no '/', NUL or space",
                    ));
                }
                let mut v = name.as_bytes().to_vec();
                v.resize(16, 0);
                v
            }
        })
    }

    /// Reads a value of type `t` back from kernel bytes.
    pub fn decode(t: DataType, b: &[u8]) -> Option<Value> {
        if b.len() < t.size() {
            return None;
        }
        Some(match t {
            DataType::Ipv4Addr => Value::Ipv4(Ipv4Addr::from(<[u8; 4]>::try_from(&b[..4]).ok()?)),
            DataType::Ipv6Addr => Value::Ipv6(Ipv6Addr::from(<[u8; 16]>::try_from(&b[..16]).ok()?)),
            DataType::EtherAddr => Value::Ether(<[u8; 6]>::try_from(&b[..6]).ok()?),
            DataType::InetProto => Value::Proto(b[0]),
            DataType::InetService => Value::Port(u16::from_be_bytes([b[0], b[1]])),
            DataType::Mark => Value::Mark(u32::from_ne_bytes(<[u8; 4]>::try_from(&b[..4]).ok()?)),
            DataType::Ifname => {
                let end = b[..16].iter().position(|&c| c == 0).unwrap_or(16);
                Value::Ifname(String::from_utf8_lossy(&b[..end]).into_owned())
            }
        })
    }
}

impl From<Ipv4Addr> for Value {
    fn from(a: Ipv4Addr) -> Value {
        Value::Ipv4(a)
    }
}

impl From<Ipv6Addr> for Value {
    fn from(a: Ipv6Addr) -> Value {
        Value::Ipv6(a)
    }
}

impl From<IpAddr> for Value {
    fn from(a: IpAddr) -> Value {
        match a {
            IpAddr::V4(a) => Value::Ipv4(a),
            IpAddr::V6(a) => Value::Ipv6(a),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Ipv4(a) => write!(f, "{a}"),
            Value::Ipv6(a) => write!(f, "{a}"),
            Value::Ether(m) => {
                write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
            }
            Value::Proto(6) => write!(f, "tcp"),
            Value::Proto(17) => write!(f, "udp"),
            Value::Proto(132) => write!(f, "sctp"),
            Value::Proto(p) => write!(f, "{p}"),
            Value::Port(p) => write!(f, "{p}"),
            Value::Mark(m) => write!(f, "{m:#x}"),
            Value::Ifname(n) => write!(f, "{n:?}"),
        }
    }
}

/// Formats a key as nft does: `tcp . 10.0.0.1 . 8080`.
pub fn display_values(values: &[Value]) -> String {
    values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" . ")
}

/// Encodes `values` as a key (or map value) of `types`, checking that they
/// match; `what` names the set for the error.
pub fn encode_key(what: &str, types: &[DataType], values: &[Value]) -> Result<Vec<u8>> {
    let got: Vec<DataType> = values.iter().map(Value::data_type).collect();
    if got != types {
        return Err(Error::new(
            Kind::Invalid,
            format!("value {} for {what}", display_values(values)),
            format!("has type {}, expected {}", DataType::join(&got), DataType::join(types)),
        ));
    }
    let mut out = Vec::with_capacity(DataType::key_len(types));
    for v in values {
        out.extend(v.encode()?);
        if types.len() > 1 {
            out.resize(out.len().next_multiple_of(4), 0);
        }
    }
    Ok(out)
}

/// Decodes a key (or map value) of `types`; `None` if the bytes do not fit.
pub fn decode_key(types: &[DataType], bytes: &[u8]) -> Option<Vec<Value>> {
    if bytes.len() != DataType::key_len(types) {
        return None;
    }
    let mut at = 0;
    let mut out = Vec::with_capacity(types.len());
    for t in types {
        out.push(Value::decode(*t, &bytes[at..])?);
        at += if types.len() > 1 { t.size().next_multiple_of(4) } else { t.size() };
    }
    Some(out)
}

/// Adds one to a big-endian number in place; false on overflow (all ones).
pub fn increment_be(bytes: &mut [u8]) -> bool {
    for b in bytes.iter_mut().rev() {
        let (v, carry) = b.overflowing_add(1);
        *b = v;
        if !carry {
            return true;
        }
    }
    false
}

/// Subtracts one from a big-endian number in place (wrapping at zero).
pub fn decrement_be(bytes: &mut [u8]) {
    for b in bytes.iter_mut().rev() {
        let (v, borrow) = b.overflowing_sub(1);
        *b = v;
        if !borrow {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_layout() {
        let types = [DataType::InetProto, DataType::Ipv4Addr, DataType::InetService];
        assert_eq!(DataType::key_len(&types), 12);
        assert_eq!(DataType::type_id(&types), (12 << 12) | (7 << 6) | 13);
        let key =
            encode_key("m", &types, &[Value::TCP, Value::Ipv4(Ipv4Addr::new(10, 0, 0, 1)), Value::Port(8080)]).unwrap();
        assert_eq!(key, [6, 0, 0, 0, 10, 0, 0, 1, 0x1f, 0x90, 0, 0]);
        assert_eq!(decode_key(&types, &key).unwrap()[2], Value::Port(8080));
    }

    #[test]
    fn single_fields_are_not_padded() {
        assert_eq!(DataType::key_len(&[DataType::InetService]), 2);
        assert_eq!(encode_key("s", &[DataType::EtherAddr], &[Value::Ether([1, 2, 3, 4, 5, 6])]).unwrap().len(), 6);
        let types = [DataType::Ifname, DataType::EtherAddr];
        assert_eq!(DataType::key_len(&types), 24);
        let k = encode_key("s", &types, &[Value::Ifname("veth0".into()), Value::Ether([1, 2, 3, 4, 5, 6])]).unwrap();
        assert_eq!(k.len(), 24);
        assert_eq!(decode_key(&types, &k).unwrap()[0], Value::Ifname("veth0".into()));
    }

    #[test]
    fn type_mismatch_is_invalid() {
        let e = encode_key("set inet t s", &[DataType::Ipv4Addr], &[Value::Port(1)]).unwrap_err();
        assert_eq!(e.kind, Kind::Invalid);
        assert!(e.to_string().contains("expected ipv4_addr"), "{e}");
        assert!(Value::Ifname("a/b".into()).encode().is_err());
        assert!(Value::Ifname("x".repeat(16)).encode().is_err());
    }

    #[test]
    fn big_endian_steps() {
        let mut b = [10, 0, 0, 255];
        assert!(increment_be(&mut b));
        assert_eq!(b, [10, 0, 1, 0]);
        decrement_be(&mut b);
        assert_eq!(b, [10, 0, 0, 255]);
        let mut m = [255, 255];
        assert!(!increment_be(&mut m));
    }

    #[test]
    fn display() {
        let v = [Value::UDP, Value::Ipv6("2001:db8::1".parse().unwrap()), Value::Port(53)];
        assert_eq!(display_values(&v), "udp . 2001:db8::1 . 53");
        assert_eq!(Value::Ether([0xa, 0xb, 0xc, 0xd, 0xe, 0xf]).to_string(), "0a:0b:0c:0d:0e:0f");
    }
}
