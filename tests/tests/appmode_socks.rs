//! App mode end to end without root: local SOCKS5 / HTTP CONNECT proxies on a userspace stack,
//! Ferry's tunnel in pipe mode (the real peer loop), the exit node with loopback egress, and servers on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod exit_support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use exit_support::*;
use ferry_tunnel::exit::ExitNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const BODY: &str = "hello through the tunnel\n";

async fn setup() -> (ExitNode, AppMode) {
    let exit = loopback_exit().await;
    let app = app_mode(&exit).await;
    (exit, app)
}

fn curl_available() -> bool {
    std::process::Command::new("curl")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

async fn curl(args: &[String]) -> (bool, String, String) {
    let output = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20"])
        .args(args)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("all_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn curl_through_socks5_hostname_and_http_connect() {
    if !curl_available() {
        eprintln!("skipping: curl is not installed");
        return;
    }
    let (exit, app) = setup().await;
    let (http, _server) = http_server(BODY).await;
    let socks = app.proxy.socks_addr();

    // An IP literal, handed to the proxy as is.
    let (ok, body, err) = curl(&[
        "--socks5-hostname".into(),
        socks.to_string(),
        format!("http://127.0.0.1:{}/hello", http.port()),
    ])
    .await;
    assert!(ok, "curl failed: {err}");
    assert_eq!(body, BODY);

    // A name: resolved by the exit node's DNS through the tunnel.
    let (ok, body, err) = curl(&[
        "--socks5-hostname".into(),
        socks.to_string(),
        format!("http://localhost:{}/by-name", http.port()),
    ])
    .await;
    assert!(ok, "curl by name failed: {err}");
    assert_eq!(body, BODY);

    // HTTP CONNECT (curl's proxy tunnel).
    let (ok, body, err) = curl(&[
        "--proxytunnel".into(),
        "--proxy".into(),
        format!("http://{}", app.proxy.http_addr().unwrap()),
        format!("http://localhost:{}/connect", http.port()),
    ])
    .await;
    assert!(ok, "curl via HTTP CONNECT failed: {err}");
    assert_eq!(body, BODY);

    let stats = exit.peer_stats(&app.public_key).unwrap();
    assert!(stats.rx_bytes > 0 && stats.tx_bytes > 0, "{stats:?}");
}

/// Greets the SOCKS proxy and sends one request; returns the stream and the reply header.
async fn socks_request(proxy: SocketAddr, request: &[u8]) -> (TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(&[5, 1, 0]).await.unwrap();
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).await.unwrap();
    assert_eq!(choice, [5, 0]);
    stream.write_all(request).await.unwrap();
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await.unwrap();
    let rest = if head[3] == 4 { 18 } else { 6 };
    let mut tail = vec![0u8; rest];
    stream.read_exact(&mut tail).await.unwrap();
    let mut reply = head.to_vec();
    reply.extend_from_slice(&tail);
    (stream, reply)
}

fn connect_request(addr: SocketAddr) -> Vec<u8> {
    let mut request = vec![5, 1, 0, 1];
    match addr.ip() {
        IpAddr::V4(v4) => request.extend_from_slice(&v4.octets()),
        IpAddr::V6(_) => panic!("IPv4 only here"),
    }
    request.extend_from_slice(&addr.port().to_be_bytes());
    request
}

#[tokio::test]
async fn socks_errors_are_reported_with_their_codes() {
    let (_exit, app) = setup().await;
    let socks = app.proxy.socks_addr();
    // Refused by the exit node's loopback egress: connection refused (5).
    let (_s, reply) = socks_request(socks, &connect_request("192.0.2.1:80".parse().unwrap())).await;
    assert_eq!(reply[1], 5, "{reply:?}");
    // A name the tunnel's DNS does not know: host unreachable (4).
    let mut request = vec![5, 1, 0, 3, 19];
    request.extend_from_slice(b"no-such.example.com");
    request.extend_from_slice(&80u16.to_be_bytes());
    let (_s, reply) = socks_request(socks, &request).await;
    assert_eq!(reply[1], 4, "{reply:?}");
    // BIND is not supported (7).
    let (_s, reply) = socks_request(socks, &[5, 2, 0, 1, 127, 0, 0, 1, 0, 80]).await;
    assert_eq!(reply[1], 7, "{reply:?}");
    // Garbage and wrong versions just close the connection; the proxy keeps serving.
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[4, 1, 0, 80, 127, 0, 0, 1, 0],
        &[5, 0],
    ] {
        let mut stream = TcpStream::connect(socks).await.unwrap();
        stream.write_all(junk).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert!(n <= 2, "unexpected answer to junk: {:?}", &buf[..n]);
    }
    let (echo, _server) = tcp_echo_server().await;
    let (mut stream, reply) = socks_request(socks, &connect_request(echo)).await;
    assert_eq!(reply[1], 0);
    stream.write_all(b"ok").await.unwrap();
    let mut back = [0u8; 2];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"ok");
}

#[tokio::test]
async fn socks_udp_associate_round_trips() {
    let (_exit, app) = setup().await;
    let (echo, _server) = udp_echo_server().await;
    let (control, reply) =
        socks_request(app.proxy.socks_addr(), &[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]).await;
    assert_eq!(reply[1], 0, "{reply:?}");
    let relay = SocketAddr::new(
        IpAddr::from([reply[4], reply[5], reply[6], reply[7]]),
        u16::from_be_bytes([reply[8], reply[9]]),
    );
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Addressed by name, resolved through the tunnel.
    let mut datagram = vec![0, 0, 0, 3, 9];
    datagram.extend_from_slice(b"localhost");
    datagram.extend_from_slice(&echo.port().to_be_bytes());
    datagram.extend_from_slice(b"udp payload");
    let mut buf = [0u8; 2048];
    let mut answer = None;
    for _ in 0..50 {
        socket.send_to(&datagram, relay).await.unwrap();
        if let Ok(Ok((n, from))) =
            tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await
        {
            answer = Some((buf[..n].to_vec(), from));
            break;
        }
    }
    let (answer, from) = answer.expect("an answer through the association");
    assert_eq!(from, relay);
    assert_eq!(&answer[..4], &[0, 0, 0, 1]);
    assert_eq!(&answer[4..8], &[127, 0, 0, 1]);
    assert_eq!(u16::from_be_bytes([answer[8], answer[9]]), echo.port());
    assert_eq!(&answer[10..], b"udp payload");
    drop(control);
}

/// Datagrams larger than the tunnel's MTU (DNS with large EDNS answers, games) are fragmented
/// by the userspace stack and reassembled at the other end, both ways, byte for byte.
#[tokio::test]
async fn socks_udp_associate_carries_datagrams_larger_than_the_mtu() {
    let (_exit, app) = setup().await;
    let (echo, _server) = udp_echo_server().await;
    let (control, reply) =
        socks_request(app.proxy.socks_addr(), &[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]).await;
    assert_eq!(reply[1], 0, "{reply:?}");
    let relay = SocketAddr::new(
        IpAddr::from([reply[4], reply[5], reply[6], reply[7]]),
        u16::from_be_bytes([reply[8], reply[9]]),
    );
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for size in [1393usize, 4000, 8000] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let mut datagram = vec![0, 0, 0, 1, 127, 0, 0, 1];
        datagram.extend_from_slice(&echo.port().to_be_bytes());
        datagram.extend_from_slice(&payload);
        let mut buf = vec![0u8; 70_000];
        let mut answer = None;
        for _ in 0..50 {
            socket.send_to(&datagram, relay).await.unwrap();
            if let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await
            {
                answer = Some(buf[..n].to_vec());
                break;
            }
        }
        let answer = answer.unwrap_or_else(|| panic!("no answer to a {size}-byte datagram"));
        assert_eq!(answer.len(), 10 + size, "{size}");
        assert_eq!(&answer[10..], &payload[..], "{size} bytes came back intact");
    }
    drop(control);
}
