//! The exit node's own DNS server at the tunnel DNS address.
//!
//! Our decision (the issue leaves it open): the exit node answers DNS itself rather than
//! relaying to a host resolver. With [`Egress::Loopback`] only `localhost` and `*.localhost`
//! resolve (to 127.0.0.1 / ::1) and every other name is NXDOMAIN, so nothing leaves the
//! machine; with [`Egress::Any`] names go to the host's resolver. Only A and AAAA are
//! answered; other types get an empty answer.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use simple_dns::rdata::{RData, A, AAAA};
use simple_dns::{Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, QTYPE, RCODE, TYPE};

use super::Egress;
use crate::netstack::UdpSocket;

/// TTL of our answers, in seconds.
const TTL: u32 = 60;
/// How long a host lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn serve(socket: UdpSocket, egress: Egress) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, src)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let query = buf[..n].to_vec();
        let socket = socket.clone();
        tokio::spawn(async move {
            if let Some(reply) = answer(&query, egress).await {
                let _ = socket.send_to(&reply, src);
            }
        });
    }
}

/// Builds the reply to one query; `None` for input that is not a DNS query.
pub(crate) async fn answer(query: &[u8], egress: Egress) -> Option<Vec<u8>> {
    let packet = Packet::parse(query).ok()?;
    if packet.has_flags(PacketFlag::RESPONSE) {
        return None;
    }
    let mut reply = Packet::new_reply(packet.id());
    reply.set_flags(PacketFlag::RECURSION_AVAILABLE);
    if packet.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    let Some(question) = packet.questions.first() else {
        *reply.rcode_mut() = RCODE::FormatError;
        return reply.build_bytes_vec().ok();
    };
    let name = question.qname.to_string();
    let want = match question.qtype {
        QTYPE::TYPE(TYPE::A) => Some(false),
        QTYPE::TYPE(TYPE::AAAA) => Some(true),
        _ => None,
    };
    reply.questions.push(Question::new(
        question.qname.clone(),
        question.qtype,
        question.qclass,
        false,
    ));
    match resolve(&name, egress).await {
        None => *reply.rcode_mut() = RCODE::NameError,
        Some(addrs) => {
            let qname = Name::new_unchecked(&name);
            for addr in addrs {
                let rdata = match (addr, want) {
                    (IpAddr::V4(v4), Some(false)) => RData::A(A {
                        address: u32::from(v4),
                    }),
                    (IpAddr::V6(v6), Some(true)) => RData::AAAA(AAAA {
                        address: u128::from(v6),
                    }),
                    _ => continue,
                };
                reply
                    .answers
                    .push(ResourceRecord::new(qname.clone(), CLASS::IN, TTL, rdata));
            }
            return reply.build_bytes_vec().ok();
        }
    }
    reply.build_bytes_vec().ok()
}

/// The addresses of `name`, or `None` if it does not exist (for this egress policy).
async fn resolve(name: &str, egress: Egress) -> Option<Vec<IpAddr>> {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return Some(vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1u16]),
        ]);
    }
    match egress {
        Egress::Loopback => None,
        Egress::Any => {
            let lookup = tokio::net::lookup_host((lower.as_str(), 0));
            match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
                Ok(Ok(addrs)) => Some(addrs.map(|a| a.ip()).collect()),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn query(name: &str, qtype: TYPE) -> Vec<u8> {
        let mut packet = Packet::new_query(7);
        packet.set_flags(PacketFlag::RECURSION_DESIRED);
        packet.questions.push(Question::new(
            Name::new_unchecked(name),
            QTYPE::TYPE(qtype),
            simple_dns::QCLASS::CLASS(CLASS::IN),
            false,
        ));
        packet.build_bytes_vec().unwrap()
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback() {
        let reply = answer(&query("localhost", TYPE::A), Egress::Loopback)
            .await
            .unwrap();
        let reply = Packet::parse(&reply).unwrap();
        assert_eq!(reply.id(), 7);
        assert_eq!(reply.rcode(), RCODE::NoError);
        assert_eq!(reply.answers.len(), 1);
        assert!(
            matches!(reply.answers[0].rdata, RData::A(A { address }) if address == 0x7f00_0001)
        );
    }

    #[tokio::test]
    async fn other_names_do_not_exist_under_loopback_egress() {
        let reply = answer(&query("example.com", TYPE::A), Egress::Loopback)
            .await
            .unwrap();
        let reply = Packet::parse(&reply).unwrap();
        assert_eq!(reply.rcode(), RCODE::NameError);
        assert!(reply.answers.is_empty());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let _ = rt.block_on(answer(&bytes, Egress::Loopback));
        }
    }
}
