//! Shared by the exit-node and app-mode tests: a minimal in-process WireGuard client peer (a
//! boringtun `Tunn` on a UDP socket, joined by a pipe to a userspace stack) and small servers.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use bytes::Bytes;
use ferry_tunnel::exit::{Egress, ExitNode};
use ferry_tunnel::netstack::{Netstack, NetstackConfig};
use ferry_tunnel::pipe::{pipe, PipeEnd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// A client peer loop: encrypts what the pipe end gives it, decrypts what the exit node sends.
pub struct ClientPeer {
    pub task: JoinHandle<()>,
}

impl Drop for ClientPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a client peer loop towards `server` on `end`.
pub async fn client_peer(
    server: SocketAddr,
    server_key: PublicKey,
    key: StaticSecret,
    end: PipeEnd,
) -> ClientPeer {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    let mut tunn = Tunn::new(
        key,
        server_key,
        None,
        None,
        rand::random::<u32>() >> 8,
        None,
    );
    let task = tokio::spawn(async move {
        let PipeEnd { tx, mut rx } = end;
        let mut buf = vec![0u8; 65_600];
        let mut out = vec![0u8; 65_600];
        let mut timers = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                received = socket.recv(&mut buf) => {
                    let Ok(n) = received else { continue };
                    let mut input = &buf[..n];
                    loop {
                        match tunn.decapsulate(None, input, &mut out) {
                            TunnResult::WriteToNetwork(data) => {
                                let _ = socket.send(data).await;
                                input = &[];
                            }
                            TunnResult::WriteToTunnelV4(p, _) | TunnResult::WriteToTunnelV6(p, _) => {
                                if !p.is_empty() && tx.send(Bytes::copy_from_slice(p)).await.is_err() {
                                    return;
                                }
                                break;
                            }
                            _ => break,
                        }
                    }
                }
                packet = rx.recv() => {
                    let Some(packet) = packet else { return };
                    if let TunnResult::WriteToNetwork(data) = tunn.encapsulate(&packet, &mut out) {
                        let _ = socket.send(data).await;
                    }
                }
                _ = timers.tick() => {
                    if let TunnResult::WriteToNetwork(data) = tunn.update_timers(&mut out) {
                        let _ = socket.send(data).await;
                    }
                }
            }
        }
    });
    ClientPeer { task }
}

/// A client: its stack, its peer loop and its key.
pub struct Client {
    pub stack: Netstack,
    pub peer: ClientPeer,
    pub public_key: PublicKey,
}

/// A client with tunnel address `tunnel_ip`, registered at `exit` as `registered_ip` (or not at
/// all when `None`).
pub async fn client_of(
    exit: &ExitNode,
    tunnel_ip: IpAddr,
    registered_ip: Option<IpAddr>,
    connect_timeout: Duration,
) -> Client {
    let key = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let public_key = PublicKey::from(&key);
    if let Some(ip) = registered_ip {
        exit.add_peer(public_key, ip);
    }
    let (stack_end, peer_end) = pipe(1024);
    let prefix = if tunnel_ip.is_ipv4() { 32 } else { 128 };
    let mut config = NetstackConfig::new(vec![ipnet_of(tunnel_ip, prefix)]);
    config.connect_timeout = connect_timeout;
    let stack = Netstack::start(stack_end, config).unwrap();
    let peer = client_peer(exit.local_addr(), exit.public_key(), key, peer_end).await;
    Client {
        stack,
        peer,
        public_key,
    }
}

fn ipnet_of(ip: IpAddr, prefix: u8) -> ferry_tunnel::netstack::IpNet {
    ferry_tunnel::netstack::IpNet::new(ip, prefix).unwrap()
}

/// An exit node on 127.0.0.1 with loopback egress.
pub async fn loopback_exit() -> ExitNode {
    let key = StaticSecret::random_from_rng(rand::rngs::OsRng);
    ExitNode::bind("127.0.0.1:0".parse().unwrap(), key, Egress::Loopback)
        .await
        .unwrap()
}

/// A TCP connection to the IPv4 `target` through the SOCKS5 proxy at `proxy` (no auth,
/// Nagle off).
pub async fn socks_connect(proxy: SocketAddr, target: SocketAddr) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    stream.write_all(&[5, 1, 0]).await.unwrap();
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).await.unwrap();
    assert_eq!(choice, [5, 0], "SOCKS5 without authentication");
    let SocketAddr::V4(v4) = target else {
        panic!("IPv4 target")
    };
    let mut request = vec![5, 1, 0, 1];
    request.extend_from_slice(&v4.ip().octets());
    request.extend_from_slice(&v4.port().to_be_bytes());
    stream.write_all(&request).await.unwrap();
    let mut reply = [0u8; 10];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[1], 0, "SOCKS connect failed");
    stream.set_nodelay(true).unwrap();
    stream
}

/// A TCP echo server on 127.0.0.1.
pub async fn tcp_echo_server() -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (addr, task)
}

/// A UDP echo server on 127.0.0.1.
pub async fn udp_echo_server() -> (SocketAddr, JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    (addr, task)
}

/// An HTTP/1.1 server on 127.0.0.1 answering every GET with `body`.
pub async fn http_server(body: &'static str) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    body.len(),
                    body
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, task)
}

/// Polls `f` every 20 ms until it returns true or `limit` passes.
pub async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// App mode as Ferry runs it: Ferry's tunnel (`Tunnel::up` in pipe mode, the real peer loop)
/// joined to the app-mode proxies, with the exit node as the server.
pub struct AppMode {
    pub proxy: ferry_tunnel::proxy::AppProxy,
    pub tunnel: ferry_tunnel::tunnel::Tunnel,
    pub public_key: PublicKey,
}

/// Brings up app mode against `exit`, with tunnel address 10.64.0.2 and the exit's DNS.
pub async fn app_mode(exit: &ExitNode) -> AppMode {
    app_mode_with(
        exit,
        ferry_tunnel::proxy::Access::default(),
        "127.0.0.1:0",
        true,
    )
    .await
}

/// [`app_mode`] with the proxies' access rule, the SOCKS listen address, and whether the HTTP
/// proxy listens (on the same IP, any port).
pub async fn app_mode_with(
    exit: &ExitNode,
    access: ferry_tunnel::proxy::Access,
    socks_listen: &str,
    http: bool,
) -> AppMode {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let public_key = PublicKey::from(&key);
    let tunnel_ip: IpAddr = "10.64.0.2".parse().unwrap();
    exit.add_peer(public_key, tunnel_ip);
    let text = format!(
        "[Interface]\nPrivateKey = {}\nAddress = {tunnel_ip}/32\nDNS = {}\n\n[Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = 0.0.0.0/0\n",
        b64.encode(key.to_bytes()),
        ferry_tunnel::exit::TUNNEL_DNS_V4,
        b64.encode(exit.public_key().as_bytes()),
        exit.local_addr(),
    );
    let config = ferry_tunnel::wgconf::WgConfig::parse(&text).unwrap();
    let (stack_end, peer_end) = pipe(1024);
    let tunnel = ferry_tunnel::tunnel::Tunnel::up(
        config.clone(),
        ferry_tunnel::tunnel::Mode::Pipe(peer_end),
    )
    .await
    .unwrap();
    let socks_listen: SocketAddr = socks_listen.parse().unwrap();
    let proxy = ferry_tunnel::proxy::AppProxy::start_with(
        stack_end,
        ferry_tunnel::proxy::ProxyOptions {
            tunnel_addrs: config.interface.addresses.clone(),
            dns: config.interface.dns.clone(),
            socks_listen,
            http_listen: http.then(|| SocketAddr::new(socks_listen.ip(), 0)),
            mtu: 1420,
            access,
        },
    )
    .await
    .unwrap();
    AppMode {
        proxy,
        tunnel,
        public_key,
    }
}

/// A client with no stack: raw IP packets go in and come out of `end` (for ICMP tests).
pub struct RawClient {
    pub end: PipeEnd,
    pub peer: ClientPeer,
    pub public_key: PublicKey,
}

/// A raw client registered at `exit` as `tunnel_ip`.
pub async fn raw_client_of(exit: &ExitNode, tunnel_ip: IpAddr) -> RawClient {
    let key = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let public_key = PublicKey::from(&key);
    exit.add_peer(public_key, tunnel_ip);
    let (end, peer_end) = pipe(64);
    let peer = client_peer(exit.local_addr(), exit.public_key(), key, peer_end).await;
    RawClient {
        end,
        peer,
        public_key,
    }
}

/// The internet checksum of `data`.
pub fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 ICMP echo request (type 8) or reply (type 0) packet.
pub fn icmp_echo_v4(
    kind: u8,
    src: [u8; 4],
    dst: [u8; 4],
    ident: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut icmp = vec![kind, 0, 0, 0];
    icmp.extend_from_slice(&ident.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(payload);
    let c = inet_checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 1, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = inet_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

/// An IPv6 ICMPv6 echo request (type 128) or reply (type 129) packet.
pub fn icmp_echo_v6(
    kind: u8,
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    ident: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut icmp = vec![kind, 0, 0, 0];
    icmp.extend_from_slice(&ident.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(&icmp);
    let c = inet_checksum(&pseudo);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[58, 64]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(&icmp);
    ip
}

/// One request as the origin server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which accepted TCP connection carried it (0, 1, ...).
    pub connection: usize,
    /// The method.
    pub method: String,
    /// The request target as received (origin-form `/path?query` expected from a proxy).
    pub target: String,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The request body, de-chunked.
    pub body: Vec<u8>,
}

impl Seen {
    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 origin server on 127.0.0.1 (hyper, keep-alive) that records every connection
/// and request. `GET /chunked` answers in chunks of unknown length; `POST /echo` echoes the
/// body; anything else answers `hello <path>` with a length. Every answer carries hop-by-hop
/// headers (`connection: x-hop`, `x-hop`, `keep-alive`) that a proxy must not forward.
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// TCP connections accepted.
    pub connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Requests received.
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// TCP connections accepted so far.
    pub fn connection_count(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The requests so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }
}

/// Starts an [`Origin`].
pub async fn origin_server() -> Origin {
    use http_body_util::BodyExt as _;
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let requests: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
    let (c2, r2) = (connections.clone(), requests.clone());
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let connection = c2.fetch_add(1, Ordering::SeqCst);
            let requests = r2.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let requests = requests.clone();
                        async move {
                            let method = req.method().to_string();
                            let target = req.uri().to_string();
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                                })
                                .collect();
                            let path = req.uri().path().to_string();
                            let body = req.into_body().collect().await?.to_bytes().to_vec();
                            requests.lock().unwrap().push(Seen {
                                connection,
                                method: method.clone(),
                                target,
                                headers,
                                body: body.clone(),
                            });
                            type Body = http_body_util::combinators::BoxBody<
                                Bytes,
                                std::convert::Infallible,
                            >;
                            let body: Body = match (method.as_str(), path.as_str()) {
                                (_, "/chunked") => {
                                    let chunks = ["one-", "two-", "three"].map(|c| {
                                        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(
                                            Bytes::from(c),
                                        ))
                                    });
                                    http_body_util::StreamBody::new(futures::stream::iter(chunks))
                                        .boxed()
                                }
                                ("POST", "/echo") => {
                                    http_body_util::Full::new(Bytes::from(body)).boxed()
                                }
                                _ => {
                                    http_body_util::Full::new(Bytes::from(format!("hello {path}")))
                                        .boxed()
                                }
                            };
                            let response = hyper::Response::builder()
                                .header("connection", "x-hop")
                                .header("x-hop", "must not be forwarded")
                                .header("keep-alive", "timeout=30")
                                .header("x-origin", "seen")
                                .body(body)
                                .unwrap();
                            Ok::<_, hyper::Error>(response)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Origin {
        addr,
        connections,
        requests,
        task,
    }
}
