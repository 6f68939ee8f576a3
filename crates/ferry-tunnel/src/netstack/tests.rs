//! Two stacks joined by a pipe: a client stack and an any-IP stack serving every destination.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::pipe::pipe;

fn pair(policy: FlowPolicy) -> (Netstack, Netstack, Incoming) {
    let (a, b) = pipe(1024);
    let client =
        Netstack::start(a, NetstackConfig::new(vec!["10.7.0.2/32".parse().unwrap()])).unwrap();
    let (server, incoming) = Netstack::start_any_ip(
        b,
        NetstackConfig::new(vec!["10.7.0.1/32".parse().unwrap()]),
        policy,
    )
    .unwrap();
    (client, server, incoming)
}

#[tokio::test]
async fn tcp_to_any_destination_round_trips() {
    let (client, _server, mut incoming) = pair(Arc::new(|_, _| true));
    let serve = tokio::spawn(async move {
        let pending = incoming.tcp.recv().await.unwrap();
        assert_eq!(pending.destination(), "198.51.100.7:8080".parse().unwrap());
        let mut stream = pending.accept().await.unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0;
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            stream.write_all(&buf[..n]).await.unwrap();
            total += n;
        }
        stream.shutdown().await.unwrap();
        total
    });
    let mut stream = client
        .tcp_connect("198.51.100.7:8080".parse().unwrap())
        .await
        .unwrap();
    let payload: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = tokio::io::split(stream);
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
        w
    });
    let mut echoed = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), r.read_to_end(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    let w = writer.await.unwrap();
    stream = r.unsplit(w);
    drop(stream);
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload);
    assert_eq!(serve.await.unwrap(), payload.len());
}

#[tokio::test]
async fn refused_tcp_flow_is_reset_without_a_socket() {
    let asked = Arc::new(AtomicUsize::new(0));
    let seen = asked.clone();
    let (client, _server, mut incoming) = pair(Arc::new(move |_, dst: SocketAddr| {
        seen.fetch_add(1, Ordering::SeqCst);
        dst.ip().is_loopback()
    }));
    let err = client
        .tcp_connect("192.0.2.1:80".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, NetstackError::Refused(_)), "{err:?}");
    assert!(asked.load(Ordering::SeqCst) >= 1);
    assert!(incoming.tcp.try_recv().is_err());
}

#[tokio::test]
async fn udp_to_any_destination_round_trips() {
    let (client, _server, mut incoming) = pair(Arc::new(|_, _| true));
    let socket = client.udp_bind("0.0.0.0:0".parse().unwrap()).unwrap();
    let dst: SocketAddr = "203.0.113.9:5353".parse().unwrap();
    assert!(socket.send_to(b"ping", dst).unwrap());
    let server_socket = tokio::time::timeout(Duration::from_secs(5), incoming.udp.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server_socket.local_addr(), dst);
    let mut buf = [0u8; 64];
    let (n, from) = server_socket.recv_from(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"ping");
    assert!(server_socket.send_to(b"pong", from).unwrap());
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"pong");
    assert_eq!(from, dst);
}

#[tokio::test]
async fn stack_stops_when_the_pipe_closes() {
    let (a, b) = pipe(8);
    let stack =
        Netstack::start(a, NetstackConfig::new(vec!["10.7.0.2/32".parse().unwrap()])).unwrap();
    drop(b);
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        stack.tcp_connect("10.7.0.1:1".parse().unwrap()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        matches!(err, NetstackError::Closed | NetstackError::Refused(_)),
        "{err:?}"
    );
}

#[test]
fn bad_config_is_an_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (a, _b) = pipe(8);
        assert!(matches!(
            Netstack::start(a, NetstackConfig::new(vec![])),
            Err(NetstackError::Config(_))
        ));
    });
}
