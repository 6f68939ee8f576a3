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

/// Waits (bounded) until `stack` holds `want` sockets; returns the last count seen.
async fn settle(stack: &Netstack, want: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = stack.socket_count();
        if n == want || tokio::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn relay_carries_a_big_upload_and_download_byte_for_byte() {
    let (client, _server, mut incoming) = pair(Arc::new(|_, _| true));
    // The far end echoes everything back, then closes.
    let serve = tokio::spawn(async move {
        let pending = incoming.tcp.recv().await.unwrap();
        let mut stream = pending.accept().await.unwrap();
        let mut buf = vec![0u8; 100_000];
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
    let mut remote = client
        .tcp_connect("198.51.100.7:443".parse().unwrap())
        .await
        .unwrap();
    // The "client" of the relay is one end of an in-memory duplex; the test drives the other.
    let (mut app, mut relay_side) = tokio::io::duplex(7_000);
    let relay = tokio::spawn(async move { remote.relay(&mut relay_side).await.unwrap() });
    let payload: Vec<u8> = (0..6_000_000u32).map(|i| (i % 253) as u8).collect();
    let (mut r, mut w) = tokio::io::split(&mut app);
    let sent = payload.clone();
    let write = async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut echoed = Vec::new();
    let read = r.read_to_end(&mut echoed);
    let ((), got) =
        tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(write, read) })
            .await
            .unwrap();
    got.unwrap();
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload);
    let carried = relay.await.unwrap();
    assert_eq!(carried.up, payload.len() as u64);
    assert_eq!(carried.down, payload.len() as u64);
    assert_eq!(serve.await.unwrap(), payload.len());
}

#[tokio::test]
async fn closed_connections_leave_no_socket_behind() {
    let (client, server, mut incoming) = pair(Arc::new(|_, _| true));
    let serve = tokio::spawn(async move {
        let mut streams = Vec::new();
        for _ in 0..40 {
            let pending = incoming.tcp.recv().await.unwrap();
            let mut stream = pending.accept().await.unwrap();
            stream.write_all(b"hi").await.unwrap();
            streams.push(stream);
        }
        streams
    });
    let mut open = Vec::new();
    for i in 0..40u16 {
        let mut stream = client
            .tcp_connect(SocketAddr::new("198.51.100.9".parse().unwrap(), 1000 + i))
            .await
            .unwrap();
        let mut hi = [0u8; 2];
        stream.read_exact(&mut hi).await.unwrap();
        open.push(stream);
    }
    let served = serve.await.unwrap();
    assert_eq!(client.socket_count(), 40);
    assert_eq!(server.socket_count(), 40);
    drop(open);
    drop(served);
    assert_eq!(
        settle(&client, 0).await,
        0,
        "client stack kept closed sockets"
    );
    assert_eq!(
        settle(&server, 0).await,
        0,
        "server stack kept closed sockets"
    );
}

/// Echoes one 2 MB exchange over a new connection through `client`; returns the client stack's
/// socket visits during it.
async fn echo_2mb(client: &Netstack, port: u16) -> u64 {
    let mut stream = client
        .tcp_connect(SocketAddr::new("198.51.100.8".parse().unwrap(), port))
        .await
        .unwrap();
    let before = client.socket_visits();
    let payload = vec![7u8; 2_000_000];
    let (mut r, mut w) = tokio::io::split(&mut stream);
    let write = async {
        w.write_all(&payload).await.unwrap();
    };
    let mut back = vec![0u8; payload.len()];
    let read = r.read_exact(&mut back);
    let ((), got) =
        tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(write, read) })
            .await
            .unwrap();
    got.unwrap();
    assert!(back == payload);
    client.socket_visits() - before
}

#[tokio::test]
async fn idle_connections_are_not_polled_while_another_one_works() {
    let (client, _server, mut incoming) = pair(Arc::new(|_, _| true));
    // The far end echoes every connection until it closes.
    tokio::spawn(async move {
        while let Some(pending) = incoming.tcp.recv().await {
            tokio::spawn(async move {
                let Ok(mut stream) = pending.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let alone = echo_2mb(&client, 2000).await;
    let mut idle = Vec::new();
    for i in 0..200u16 {
        let mut stream = client
            .tcp_connect(SocketAddr::new("198.51.100.8".parse().unwrap(), 3000 + i))
            .await
            .unwrap();
        stream.write_all(b"hi").await.unwrap();
        let mut hi = [0u8; 2];
        stream.read_exact(&mut hi).await.unwrap();
        idle.push(stream);
    }
    let crowded = echo_2mb(&client, 2001).await;
    // In one socket set every poll would visit all 200 idle sockets too (about 200 times the
    // work); in lanes only the busy connection's is polled.
    assert!(
        crowded < alone * 3 + 100,
        "{crowded} socket visits with 200 idle connections open, {alone} alone"
    );
    assert_eq!(idle.len(), 200);
}
