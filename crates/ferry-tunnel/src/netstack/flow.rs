//! What flow an IP packet belongs to: protocol, source and destination endpoints, read from
//! the headers without copying (for any-IP admission and for routing a packet to its lane).

use std::net::{IpAddr, SocketAddr};

use smoltcp::wire::{IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

/// What `parse` found in an IP packet.
pub(crate) struct Flow {
    pub(crate) proto: IpProtocol,
    pub(crate) src: SocketAddr,
    pub(crate) dst: SocketAddr,
    /// A TCP SYN without ACK: the start of a connection.
    pub(crate) syn: bool,
    /// An ICMP(v6) echo request (ports are 0).
    pub(crate) echo: bool,
}

/// IPv6's Fragment extension header.
const IPV6_FRAGMENT: u8 = 44;

pub(crate) fn parse(packet: &[u8]) -> Option<Flow> {
    // A datagram larger than the MTU arrives in fragments, reassembled by the interface: its
    // flow is known from the first fragment (offset 0), which carries the transport header;
    // the later ones go straight on.
    let (src_ip, dst_ip, proto, payload, first_fragment): (
        IpAddr,
        IpAddr,
        IpProtocol,
        &[u8],
        bool,
    ) = match packet.first()? >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(packet).ok()?;
            if ip.frag_offset() != 0 {
                return None;
            }
            let header = usize::from(ip.header_len());
            let total = usize::from(ip.total_len()).min(packet.len());
            (
                ip.src_addr().into(),
                ip.dst_addr().into(),
                ip.next_header(),
                packet.get(header..total)?,
                ip.more_frags(),
            )
        }
        6 => {
            let ip = Ipv6Packet::new_checked(packet).ok()?;
            let payload = packet.get(40..40 + usize::from(ip.payload_len()))?;
            if u8::from(ip.next_header()) == IPV6_FRAGMENT {
                // next header (1), reserved (1), offset (13 bits) + flags, id (4).
                let offset = u16::from_be_bytes([*payload.get(2)?, *payload.get(3)?]) >> 3;
                if offset != 0 {
                    return None;
                }
                (
                    ip.src_addr().into(),
                    ip.dst_addr().into(),
                    IpProtocol::from(*payload.first()?),
                    payload.get(8..)?,
                    true,
                )
            } else {
                (
                    ip.src_addr().into(),
                    ip.dst_addr().into(),
                    ip.next_header(),
                    payload,
                    false,
                )
            }
        }
        _ => return None,
    };
    if first_fragment {
        // Only the ports are whole in a first fragment (the lengths and checksums cover the
        // reassembled datagram).
        let port = |i: usize| Some(u16::from_be_bytes([*payload.get(i)?, *payload.get(i + 1)?]));
        return match proto {
            IpProtocol::Udp | IpProtocol::Tcp => Some(Flow {
                proto,
                src: SocketAddr::new(src_ip, port(0)?),
                dst: SocketAddr::new(dst_ip, port(2)?),
                syn: proto == IpProtocol::Tcp && payload.get(13).is_some_and(|f| f & 0x12 == 0x02),
                echo: false,
            }),
            _ => None,
        };
    }
    match proto {
        IpProtocol::Tcp => {
            let tcp = TcpPacket::new_checked(payload).ok()?;
            Some(Flow {
                proto,
                src: SocketAddr::new(src_ip, tcp.src_port()),
                dst: SocketAddr::new(dst_ip, tcp.dst_port()),
                syn: tcp.syn() && !tcp.ack(),
                echo: false,
            })
        }
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(payload).ok()?;
            Some(Flow {
                proto,
                src: SocketAddr::new(src_ip, udp.src_port()),
                dst: SocketAddr::new(dst_ip, udp.dst_port()),
                syn: false,
                echo: false,
            })
        }
        // Echo request: type 8 (ICMP) or 128 (ICMPv6); smoltcp checks the rest.
        IpProtocol::Icmp | IpProtocol::Icmpv6 => {
            let request = if proto == IpProtocol::Icmp { 8 } else { 128 };
            (payload.first() == Some(&request)).then(|| Flow {
                proto,
                src: SocketAddr::new(src_ip, 0),
                dst: SocketAddr::new(dst_ip, 0),
                syn: false,
                echo: true,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_first_fragment_names_its_flow_and_later_ones_pass() {
        // IPv6: Fragment header (offset 0, more fragments) then the UDP header.
        let mut p = vec![0x60, 0, 0, 0, 0, 16, IPV6_FRAGMENT, 64];
        p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 7]);
        p.extend_from_slice(&[0x03, 0xe8, 0, 53, 0x1f, 0x40, 0, 0]);
        let f = parse(&p).unwrap();
        assert_eq!(f.proto, IpProtocol::Udp);
        assert_eq!((f.src.port(), f.dst.port()), (1000, 53));
        // A later fragment (offset 1448 / 8 = 181): no flow of its own.
        p[42..44].copy_from_slice(&((181u16 << 3) | 1).to_be_bytes());
        assert!(parse(&p).is_none());
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }
    }
}
