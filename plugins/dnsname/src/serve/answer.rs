//! What the server replies to one query, decided from the zone alone (no
//! I/O, so it is unit-tested): names of this network bare or under the
//! domain (A, AAAA, TTL 0; NODATA for a known name without that type),
//! NXDOMAIN for an unknown name under the domain, PTR for this network's
//! addresses; everything else goes upstream.

use super::zone::Zone;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use std::net::IpAddr;

/// Largest UDP answer when the client sent no EDNS (RFC 1035).
pub const UDP_PLAIN_MAX: usize = 512;
/// Largest UDP answer we offer with EDNS (the DNS flag day's value).
const UDP_EDNS_MAX: u16 = 1232;

/// What to do with a query.
#[derive(Debug)]
pub enum Reply {
    /// Send this answer.
    Answer(Box<Message>),
    /// Not ours: relay it to an upstream resolver.
    Forward,
}

fn base(req: &Message, code: ResponseCode) -> Message {
    let mut m = Message::response(req.metadata.id, req.metadata.op_code);
    m.metadata.recursion_desired = req.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.metadata.response_code = code;
    m.queries = req.queries.clone();
    if req.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(UDP_EDNS_MAX);
        m.edns = Some(e);
    }
    m
}

fn authoritative(req: &Message, code: ResponseCode) -> Message {
    let mut m = base(req, code);
    m.metadata.authoritative = true;
    m
}

/// An error answer of `code` for a request.
pub fn error(req: &Message, code: ResponseCode) -> Message {
    base(req, code)
}

/// How the zone answers `req`.
pub fn respond(zone: &Zone, req: &Message) -> Reply {
    if req.metadata.message_type != MessageType::Query {
        return Reply::Answer(Box::new(error(req, ResponseCode::FormErr)));
    }
    if req.metadata.op_code != OpCode::Query {
        return Reply::Answer(Box::new(error(req, ResponseCode::NotImp)));
    }
    if req.queries.len() != 1 {
        return Reply::Answer(Box::new(error(req, ResponseCode::FormErr)));
    }
    let q = &req.queries[0];
    if q.query_class() != DNSClass::IN {
        // CHAOS (version.bind) and the like are the upstream's business.
        return Reply::Forward;
    }
    let qname = q.name();
    let text = crate::names::canonical(&qname.to_ascii());
    let qtype = q.query_type();

    if text.ends_with(".in-addr.arpa") || text.ends_with(".ip6.arpa") {
        return reverse(zone, req, qname, qtype);
    }
    let label = if text == zone.domain {
        return Reply::Answer(Box::new(authoritative(req, ResponseCode::NoError)));
    } else if let Some(rest) = text.strip_suffix(&format!(".{}", zone.domain)) {
        if rest.contains('.') {
            return Reply::Answer(Box::new(authoritative(req, ResponseCode::NXDomain)));
        }
        match zone.lookup(rest) {
            Some(_) => rest,
            None => return Reply::Answer(Box::new(authoritative(req, ResponseCode::NXDomain))),
        }
    } else if !text.contains('.') && zone.lookup(&text).is_some() {
        text.as_str()
    } else {
        return Reply::Forward;
    };
    let ips = zone.lookup(label).unwrap_or_default();
    let mut m = authoritative(req, ResponseCode::NoError);
    for ip in &ips {
        let rdata = match (ip, qtype) {
            (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(*v4)),
            (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(*v6)),
            _ => continue,
        };
        m.answers.push(Record::from_rdata(qname.clone(), 0, rdata));
    }
    Reply::Answer(Box::new(m))
}

fn reverse(zone: &Zone, req: &Message, qname: &Name, qtype: RecordType) -> Reply {
    let mut fqdn = qname.clone();
    fqdn.set_fqdn(true);
    let Ok(net) = fqdn.parse_arpa_name() else {
        return Reply::Forward;
    };
    let full = matches!(net, ipnet::IpNet::V4(n) if n.prefix_len() == 32)
        || matches!(net, ipnet::IpNet::V6(n) if n.prefix_len() == 128);
    let ip = net.addr();
    if !full || !zone.on_network(&ip) {
        return Reply::Forward;
    }
    let Some(name) = zone.name_of(&ip) else {
        return Reply::Answer(Box::new(authoritative(req, ResponseCode::NXDomain)));
    };
    let mut m = authoritative(req, ResponseCode::NoError);
    if matches!(qtype, RecordType::PTR | RecordType::ANY) {
        if let Ok(target) = Name::from_ascii(format!("{name}.{}.", zone.domain)) {
            m.answers.push(Record::from_rdata(qname.clone(), 0, RData::PTR(PTR(target))));
        }
    }
    Reply::Answer(Box::new(m))
}

/// The wire form of an answer, cut to `max` bytes by dropping the
/// records and setting TC (the client then asks over TCP).
pub fn encode(m: &Message, max: usize) -> Option<Vec<u8>> {
    let bytes = m.to_vec().ok()?;
    if bytes.len() <= max {
        return Some(bytes);
    }
    m.truncate().to_vec().ok()
}

/// The UDP size limit a request allows its answer.
pub fn udp_limit(req: &Message) -> usize {
    match &req.edns {
        Some(e) => (e.max_payload().clamp(UDP_PLAIN_MAX as u16, UDP_EDNS_MAX)) as usize,
        None => UDP_PLAIN_MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Record as Rec;
    use hickory_proto::op::Query;

    fn zone() -> Zone {
        let mut z = Zone::new("dns.podman", vec!["10.1.0.0/24".parse().unwrap(), "fd01::/64".parse().unwrap()]);
        z.set(
            "c1:eth0.json",
            Some(Rec {
                container_id: "c1".into(),
                ifname: "eth0".into(),
                name: "Web".into(),
                aliases: vec!["www".into()],
                ips: vec!["10.1.0.2/24".parse().unwrap(), "fd01::2/64".parse().unwrap()],
            }),
        );
        z.set(
            "c2:eth0.json",
            Some(Rec {
                container_id: "c2".into(),
                ifname: "eth0".into(),
                name: "db".into(),
                aliases: vec![],
                ips: vec!["10.1.0.3/24".parse().unwrap()],
            }),
        );
        z
    }

    fn ask(z: &Zone, name: &str, t: RecordType) -> Reply {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        respond(z, &m)
    }

    fn answer(r: Reply) -> (ResponseCode, Vec<String>) {
        match r {
            Reply::Answer(m) => {
                assert!(m.answers.iter().all(|r| r.ttl == 0));
                (m.metadata.response_code, m.answers.iter().map(|r| r.data.to_string()).collect())
            }
            Reply::Forward => panic!("forwarded"),
        }
    }

    #[test]
    fn names_bare_and_under_the_domain_any_case() {
        let z = zone();
        for n in ["web", "WEB.", "web.dns.podman", "Web.DNS.Podman.", "www", "www.dns.podman"] {
            assert_eq!(answer(ask(&z, n, RecordType::A)), (ResponseCode::NoError, vec!["10.1.0.2".into()]), "{n}");
            assert_eq!(answer(ask(&z, n, RecordType::AAAA)), (ResponseCode::NoError, vec!["fd01::2".into()]), "{n}");
        }
    }

    #[test]
    fn nodata_nxdomain_and_forward() {
        let z = zone();
        assert_eq!(answer(ask(&z, "db", RecordType::AAAA)), (ResponseCode::NoError, vec![]));
        assert_eq!(answer(ask(&z, "db.dns.podman", RecordType::MX)), (ResponseCode::NoError, vec![]));
        assert_eq!(answer(ask(&z, "nope.dns.podman", RecordType::A)).0, ResponseCode::NXDomain);
        assert_eq!(answer(ask(&z, "a.web.dns.podman", RecordType::A)).0, ResponseCode::NXDomain);
        assert!(matches!(ask(&z, "nope", RecordType::A), Reply::Forward));
        assert!(matches!(ask(&z, "example.com", RecordType::A), Reply::Forward));
        assert!(matches!(ask(&z, "web.example.com", RecordType::A), Reply::Forward));
    }

    #[test]
    fn other_classes_go_upstream() {
        let z = zone();
        let mut m = Message::query();
        let mut q = Query::query(Name::from_ascii("web").unwrap(), RecordType::TXT);
        q.set_query_class(DNSClass::CH);
        m.add_query(q);
        assert!(matches!(respond(&z, &m), Reply::Forward));
    }

    #[test]
    fn reverse_names() {
        let z = zone();
        let r = answer(ask(&z, "2.0.1.10.in-addr.arpa.", RecordType::PTR));
        assert_eq!(r, (ResponseCode::NoError, vec!["web.dns.podman.".into()]));
        let v6 = Name::from(IpAddr::from("fd01::2".parse::<std::net::Ipv6Addr>().unwrap())).to_ascii();
        assert_eq!(answer(ask(&z, &v6, RecordType::PTR)).1, vec!["web.dns.podman.".to_string()]);
        assert_eq!(answer(ask(&z, "9.0.1.10.in-addr.arpa.", RecordType::PTR)).0, ResponseCode::NXDomain);
        assert!(matches!(ask(&z, "8.8.8.8.in-addr.arpa.", RecordType::PTR), Reply::Forward));
    }

    #[test]
    fn only_the_network_is_served() {
        let z = zone();
        assert!(z.on_network(&"10.1.0.9".parse().unwrap()));
        assert!(z.on_network(&"fd01::9".parse().unwrap()));
        assert!(!z.on_network(&"10.2.0.9".parse().unwrap()));
    }

    #[test]
    fn truncation_keeps_the_header() {
        let z = zone();
        let Reply::Answer(m) = ask(&z, "web", RecordType::ANY) else { panic!() };
        let cut = encode(&m, 20).unwrap();
        let back = Message::from_vec(&cut).unwrap();
        assert!(back.metadata.truncation);
        assert!(back.answers.is_empty());
    }
}
