//! The exit node end to end, in-process and without root: a boringtun client peer with its own
//! userspace stack talks through the exit node (loopback egress) to servers on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod exit_support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use exit_support::*;
use ferry_tunnel::netstack::NetstackError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENT_IP: &str = "10.64.0.2";

fn client_ip() -> IpAddr {
    CLIENT_IP.parse().unwrap()
}

#[tokio::test]
async fn tcp_echo_through_the_tunnel_with_stats() {
    let exit = loopback_exit().await;
    let (echo, _server) = tcp_echo_server().await;
    let client = client_of(
        &exit,
        client_ip(),
        Some(client_ip()),
        Duration::from_secs(10),
    )
    .await;

    let stream = client.stack.tcp_connect(echo).await.unwrap();
    assert_eq!(stream.peer_addr(), echo);
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let (mut r, mut w) = tokio::io::split(stream);
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
        w
    });
    let mut echoed = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload, "echoed bytes differ");

    let stats = exit.peer_stats(&client.public_key).unwrap();
    assert!(stats.rx_bytes > 1_000_000, "rx {}", stats.rx_bytes);
    assert!(stats.tx_bytes > 1_000_000, "tx {}", stats.tx_bytes);
    let handshake = stats.last_handshake.expect("handshake time recorded");
    let age = std::time::SystemTime::now()
        .duration_since(handshake)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(60), "handshake {age:?} ago");
    assert_eq!(exit.refused_flows(), 0);
}

#[tokio::test]
async fn udp_echo_through_the_tunnel() {
    let exit = loopback_exit().await;
    let (echo, _server) = udp_echo_server().await;
    let client = client_of(
        &exit,
        client_ip(),
        Some(client_ip()),
        Duration::from_secs(10),
    )
    .await;
    let socket = client.stack.udp_bind("0.0.0.0:0".parse().unwrap()).unwrap();
    let mut buf = [0u8; 2048];
    // The first datagram also triggers the handshake; resend until an answer arrives.
    let mut answered = None;
    for i in 0..50u32 {
        let msg = format!("datagram {i}");
        socket.send_to(msg.as_bytes(), echo).unwrap();
        if let Ok(Ok((n, from))) =
            tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await
        {
            answered = Some((buf[..n].to_vec(), from));
            break;
        }
    }
    let (reply, from) = answered.expect("UDP echo answered");
    assert!(reply.starts_with(b"datagram "));
    assert_eq!(from, echo);
    let big = vec![0x5a_u8; 1200];
    socket.send_to(&big, echo).unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], &big[..]);
}

#[tokio::test]
async fn loopback_egress_refuses_other_destinations_before_connecting() {
    let exit = loopback_exit().await;
    let client = client_of(
        &exit,
        client_ip(),
        Some(client_ip()),
        Duration::from_secs(10),
    )
    .await;
    // TEST-NET-1: an attempt to connect would hang for seconds; a refusal is an immediate RST.
    let started = std::time::Instant::now();
    let err = client
        .stack
        .tcp_connect("192.0.2.1:80".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, NetstackError::Refused(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(exit.refused_flows() >= 1);

    let before = exit.refused_flows();
    let socket = client.stack.udp_bind("0.0.0.0:0".parse().unwrap()).unwrap();
    socket
        .send_to(b"query", "192.0.2.1:53".parse().unwrap())
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || exit.refused_flows() > before).await);
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buf))
            .await
            .is_err(),
        "nothing may come back from a refused destination"
    );
    // The tunnel still works for loopback afterwards.
    let (echo, _server) = tcp_echo_server().await;
    let mut stream = client.stack.tcp_connect(echo).await.unwrap();
    stream.write_all(b"still here").await.unwrap();
    let mut back = [0u8; 10];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"still here");
}

/// Sends echo requests to `dst` with sequence numbers from `seq` (resending, as the first one
/// also starts the handshake) until an ICMP packet comes back; returns it. Echo replies with a
/// sequence number below `seq` answer an earlier call's resends and are skipped.
async fn first_icmp_answer(client: &mut RawClient, dst: [u8; 4], seq: u16) -> Vec<u8> {
    for attempt in 0..50u16 {
        let request = icmp_echo_v4(8, [10, 64, 0, 2], dst, 0x4652, seq + attempt, b"ferry ping");
        client.end.tx.send(request.into()).await.unwrap();
        while let Ok(Some(p)) =
            tokio::time::timeout(Duration::from_millis(200), client.end.rx.recv()).await
        {
            let stale = p.len() >= 28 && p[20] == 0 && u16::from_be_bytes([p[26], p[27]]) < seq;
            if !stale {
                return p.to_vec();
            }
        }
    }
    panic!("no ICMP answer from {dst:?}");
}

#[tokio::test]
async fn exit_node_answers_ping_for_itself_and_loopback_only() {
    let exit = loopback_exit().await;
    let mut client = raw_client_of(&exit, client_ip()).await;

    // The exit node's own (DNS) address: a well-formed echo reply from 10.64.0.1.
    let reply = first_icmp_answer(&mut client, [10, 64, 0, 1], 1).await;
    let seq = u16::from_be_bytes([reply[26], reply[27]]);
    let expected = icmp_echo_v4(
        0,
        [10, 64, 0, 1],
        [10, 64, 0, 2],
        0x4652,
        seq,
        b"ferry ping",
    );
    // IPv4 version, length, protocol and addresses (identification, flags and TTL are the
    // replier's), then the whole ICMP echo reply: type 0, same ident, sequence and payload.
    assert_eq!(reply.len(), expected.len());
    assert_eq!(reply[..4], expected[..4]);
    assert_eq!(reply[9], 1, "ICMP");
    assert_eq!(reply[12..20], expected[12..20], "10.64.0.1 -> 10.64.0.2");
    assert_eq!(reply[20..], expected[20..], "echo reply");
    assert_eq!(inet_checksum(&reply[..20]), 0, "IPv4 header checksum");
    assert_eq!(inet_checksum(&reply[20..]), 0, "ICMP checksum");

    // Loopback (what this node may relay to) is this host: answered too.
    let reply = first_icmp_answer(&mut client, [127, 0, 0, 1], 100).await;
    assert_eq!(&reply[12..16], &[127, 0, 0, 1]);
    assert_eq!(reply[20], 0, "echo reply");

    // A destination the node would not relay to gets no answer: the next packet back answers
    // the echo sent after it (the refused one's sequence number is above 600, so not skipped).
    let refused = icmp_echo_v4(8, [10, 64, 0, 2], [192, 0, 2, 1], 0x4652, 700, b"x");
    client.end.tx.send(refused.into()).await.unwrap();
    let reply = first_icmp_answer(&mut client, [10, 64, 0, 1], 600).await;
    assert_eq!(&reply[12..16], &[10, 64, 0, 1], "192.0.2.1 must not answer");
    let stats = exit.peer_stats(&client.public_key).unwrap();
    assert!(stats.rx_bytes > 0 && stats.tx_bytes > 0, "{stats:?}");
}

#[tokio::test]
async fn exit_node_answers_ping_v6_at_its_dns_address() {
    use std::net::Ipv6Addr;
    let exit = loopback_exit().await;
    let me: Ipv6Addr = "fd00:64::2".parse().unwrap();
    let dns: Ipv6Addr = "fd00:64::1".parse().unwrap();
    let mut client = raw_client_of(&exit, me.into()).await;
    let mut answer = None;
    for seq in 0..50u16 {
        let request = icmp_echo_v6(128, me, dns, 7, seq, b"ferry ping6");
        client.end.tx.send(request.into()).await.unwrap();
        if let Ok(Some(p)) =
            tokio::time::timeout(Duration::from_millis(200), client.end.rx.recv()).await
        {
            answer = Some(p.to_vec());
            break;
        }
    }
    let reply = answer.expect("an ICMPv6 answer from fd00:64::1");
    // The reply may answer an earlier, resent request: take its sequence number.
    let seq = u16::from_be_bytes([reply[46], reply[47]]);
    assert!(seq < 50, "sequence {seq}");
    let expected = icmp_echo_v6(129, dns, me, 7, seq, b"ferry ping6");
    assert_eq!(reply.len(), expected.len());
    assert_eq!(reply[6], 58, "ICMPv6");
    assert_eq!(reply[8..40], expected[8..40], "fd00:64::1 -> fd00:64::2");
    assert_eq!(
        reply[40..],
        expected[40..],
        "echo reply, same ident, sequence, payload"
    );
}

#[tokio::test]
async fn unknown_keys_and_spoofed_sources_get_nothing() {
    let exit = loopback_exit().await;
    let (echo, _server) = tcp_echo_server().await;
    // Not registered at all: the handshake is ignored.
    let stranger = client_of(&exit, client_ip(), None, Duration::from_secs(2)).await;
    let err = stranger.stack.tcp_connect(echo).await.unwrap_err();
    assert!(matches!(err, NetstackError::TimedOut(_)), "{err:?}");
    assert!(exit.peer_stats(&stranger.public_key).is_none());

    // Registered as 10.64.0.3 but sending from 10.64.0.4: the handshake works, data is dropped.
    let spoofer = client_of(
        &exit,
        "10.64.0.4".parse().unwrap(),
        Some("10.64.0.3".parse().unwrap()),
        Duration::from_secs(2),
    )
    .await;
    let err = spoofer.stack.tcp_connect(echo).await.unwrap_err();
    assert!(matches!(err, NetstackError::TimedOut(_)), "{err:?}");
    let stats = exit.peer_stats(&spoofer.public_key).unwrap();
    assert!(stats.last_handshake.is_some());
    assert_eq!(stats.rx_bytes, 0);
}

#[tokio::test]
async fn removed_peer_is_cut_off() {
    let exit = loopback_exit().await;
    let (echo, _server) = tcp_echo_server().await;
    let client = client_of(
        &exit,
        client_ip(),
        Some(client_ip()),
        Duration::from_secs(2),
    )
    .await;
    let mut stream = client.stack.tcp_connect(echo).await.unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    stream.read_exact(&mut back).await.unwrap();
    exit.remove_peer(&client.public_key);
    assert!(exit.peer_stats(&client.public_key).is_none());
    assert_eq!(exit.peer_count(), 0);
    let err = client.stack.tcp_connect(echo).await.unwrap_err();
    assert!(matches!(err, NetstackError::TimedOut(_)), "{err:?}");
}

#[tokio::test]
async fn garbage_datagrams_do_not_break_the_node() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let exit = loopback_exit().await;
    let target: SocketAddr = exit.local_addr();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut runner = TestRunner::default();
    // Random bytes, and random bodies behind each WireGuard message type at its exact size.
    let strategy = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..1500),
        (
            1u8..=4,
            prop_oneof![Just(148usize), Just(92), Just(64), 32usize..200]
        )
            .prop_flat_map(|(t, len)| proptest::collection::vec(any::<u8>(), len)
                .prop_map(move |mut v| {
                    v[0] = t;
                    v[1] = 0;
                    v[2] = 0;
                    v[3] = 0;
                    v
                })),
    ];
    for _ in 0..2000 {
        let datagram = strategy.new_tree(&mut runner).unwrap().current();
        sender.send_to(&datagram, target).unwrap();
    }
    // Still serving.
    let (echo, _server) = tcp_echo_server().await;
    let client = client_of(
        &exit,
        client_ip(),
        Some(client_ip()),
        Duration::from_secs(10),
    )
    .await;
    let mut stream = client.stack.tcp_connect(echo).await.unwrap();
    stream.write_all(b"alive").await.unwrap();
    let mut back = [0u8; 5];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"alive");
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let exit = loopback_exit().await;
    let (echo, _server) = tcp_echo_server().await;
    let client = client_of(
        &exit,
        client_ip(),
        Some(client_ip()),
        Duration::from_secs(2),
    )
    .await;
    exit.shutdown();
    let err = client.stack.tcp_connect(echo).await.unwrap_err();
    assert!(matches!(err, NetstackError::TimedOut(_)), "{err:?}");
}
