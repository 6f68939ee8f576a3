//! Name resolution through the tunnel: DNS queries over UDP on the userspace stack to the
//! tunnel's DNS servers, with a small TTL-bounded cache.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use simple_dns::rdata::RData;
use simple_dns::{Name, Packet, PacketFlag, Question, CLASS, QCLASS, QTYPE, RCODE, TYPE};

use super::ProxyError;
use crate::netstack::Netstack;

/// How long one query waits for its answer before it is sent again.
const QUERY_TIMEOUT: Duration = Duration::from_millis(1500);
/// Rounds over the server list.
const ROUNDS: usize = 3;
/// Cache lifetime bounds, whatever the TTL says.
const MIN_TTL: u64 = 5;
const MAX_TTL: u64 = 300;
/// Entries kept at most.
const CACHE_MAX: usize = 1024;

pub(crate) struct Resolver {
    servers: Vec<IpAddr>,
    want_v4: bool,
    want_v6: bool,
    cache: Mutex<HashMap<String, (Vec<IpAddr>, Instant)>>,
}

fn failure(name: &str, reason: impl Into<String>) -> ProxyError {
    ProxyError::Resolve {
        name: name.to_string(),
        reason: reason.into(),
    }
}

impl Resolver {
    pub(crate) fn new(servers: Vec<IpAddr>, want_v4: bool, want_v6: bool) -> Self {
        Self {
            servers,
            want_v4,
            want_v6,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The addresses of `name`, IPv4 first.
    pub(crate) async fn resolve(
        &self,
        stack: &Netstack,
        name: &str,
    ) -> Result<Vec<IpAddr>, ProxyError> {
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        if key.is_empty() || key.len() > 253 || Name::new(&key).is_err() {
            return Err(failure(name, "not a valid host name"));
        }
        if let Some((addrs, expires)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            if *expires > Instant::now() {
                return Ok(addrs.clone());
            }
        }
        if self.servers.is_empty() {
            return Err(failure(name, "the tunnel has no DNS server"));
        }
        let mut addrs = Vec::new();
        let mut ttl = MAX_TTL;
        let mut not_found = true;
        for (wanted, qtype) in [(self.want_v4, TYPE::A), (self.want_v6, TYPE::AAAA)] {
            if !wanted {
                continue;
            }
            match self.query(stack, &key, qtype).await {
                Ok(Some((found, found_ttl))) => {
                    not_found = false;
                    ttl = ttl.min(found_ttl);
                    addrs.extend(found);
                }
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        if addrs.is_empty() {
            let reason = if not_found {
                "no such name"
            } else {
                "no address records"
            };
            return Err(failure(name, reason));
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        let expires = Instant::now() + Duration::from_secs(ttl.clamp(MIN_TTL, MAX_TTL));
        cache.insert(key, (addrs.clone(), expires));
        Ok(addrs)
    }

    /// One question to the servers: `Some((addresses, ttl))` when the name exists (possibly
    /// without records of this type), `None` for NXDOMAIN.
    async fn query(
        &self,
        stack: &Netstack,
        name: &str,
        qtype: TYPE,
    ) -> Result<Option<(Vec<IpAddr>, u64)>, ProxyError> {
        let id: u16 = rand::random();
        let query = build_query(id, name, qtype).map_err(|e| failure(name, e))?;
        let any: IpAddr = if self.want_v4 {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let socket = stack.udp_bind(SocketAddr::new(any, 0))?;
        let mut buf = vec![0u8; 4096];
        for _ in 0..ROUNDS {
            for server in &self.servers {
                let server = SocketAddr::new(*server, 53);
                if socket.send_to(&query, server).is_err() {
                    continue;
                }
                let deadline = tokio::time::Instant::now() + QUERY_TIMEOUT;
                loop {
                    let received =
                        tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
                    let Ok(received) = received else { break };
                    let (n, from) = received?;
                    if from != server {
                        continue;
                    }
                    match parse_answer(&buf[..n], id, qtype) {
                        Answer::Mismatch => continue,
                        Answer::Found(addrs, ttl) => return Ok(Some((addrs, ttl))),
                        Answer::NoSuchName => return Ok(None),
                        Answer::ServerFailure => break,
                    }
                }
            }
        }
        Err(failure(name, "no answer from the tunnel's DNS servers"))
    }
}

pub(crate) fn build_query(id: u16, name: &str, qtype: TYPE) -> Result<Vec<u8>, String> {
    let mut packet = Packet::new_query(id);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    let qname = Name::new(name).map_err(|e| e.to_string())?;
    packet.questions.push(Question::new(
        qname,
        QTYPE::TYPE(qtype),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    packet.build_bytes_vec().map_err(|e| e.to_string())
}

#[derive(Debug, PartialEq)]
pub(crate) enum Answer {
    /// Not the reply to our query.
    Mismatch,
    Found(Vec<IpAddr>, u64),
    NoSuchName,
    ServerFailure,
}

pub(crate) fn parse_answer(data: &[u8], id: u16, qtype: TYPE) -> Answer {
    let Ok(packet) = Packet::parse(data) else {
        return Answer::Mismatch;
    };
    if packet.id() != id || !packet.has_flags(PacketFlag::RESPONSE) {
        return Answer::Mismatch;
    }
    match packet.rcode() {
        RCODE::NoError => {}
        RCODE::NameError => return Answer::NoSuchName,
        _ => return Answer::ServerFailure,
    }
    let mut addrs = Vec::new();
    let mut ttl = MAX_TTL;
    for record in &packet.answers {
        let ip: IpAddr = match (&record.rdata, qtype) {
            (RData::A(a), TYPE::A) => Ipv4Addr::from(a.address).into(),
            (RData::AAAA(a), TYPE::AAAA) => Ipv6Addr::from(a.address).into(),
            _ => continue,
        };
        ttl = ttl.min(u64::from(record.ttl));
        addrs.push(ip);
    }
    Answer::Found(addrs, ttl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn answers_are_matched_by_id_and_parsed() {
        let query = build_query(42, "localhost", TYPE::A).unwrap();
        let mut reply = Packet::parse(&query).unwrap().into_reply();
        reply.answers.push(simple_dns::ResourceRecord::new(
            Name::new_unchecked("localhost"),
            CLASS::IN,
            30,
            RData::A(simple_dns::rdata::A {
                address: 0x7f00_0001,
            }),
        ));
        let bytes = reply.build_bytes_vec().unwrap();
        assert_eq!(
            parse_answer(&bytes, 42, TYPE::A),
            Answer::Found(vec![IpAddr::from([127, 0, 0, 1])], 30)
        );
        assert_eq!(parse_answer(&bytes, 43, TYPE::A), Answer::Mismatch);
        assert_eq!(parse_answer(&query, 42, TYPE::A), Answer::Mismatch);
    }

    proptest! {
        #[test]
        fn garbage_answers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_answer(&bytes, 1, TYPE::A);
        }
    }
}
