//! The SOCKS5 proxy (RFC 1928): CONNECT and UDP ASSOCIATE, for the owner only (a refused
//! client gets reply 2, "connection not allowed by ruleset", after its request is read), or,
//! with credentials, for every client that authenticates (RFC 1929 username/password).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::peer::Admission;
use super::{Context, Credentials, Host, ProxyError, HANDSHAKE_TIMEOUT};
use crate::netstack::NetstackError;

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0;
const USER_PASSWORD: u8 = 2;
/// RFC 1929 sub-negotiation version, and its status codes.
const AUTH_VERSION: u8 = 1;
const AUTH_OK: u8 = 0;
const AUTH_FAILED: u8 = 1;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CMD_CONNECT: u8 = 1;
const CMD_UDP_ASSOCIATE: u8 = 3;
const ATYP_V4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_V6: u8 = 4;

/// Reply codes.
const SUCCEEDED: u8 = 0;
const GENERAL_FAILURE: u8 = 1;
const NOT_ALLOWED: u8 = 2;
const NETWORK_UNREACHABLE: u8 = 3;
const HOST_UNREACHABLE: u8 = 4;
const CONNECTION_REFUSED: u8 = 5;
const COMMAND_NOT_SUPPORTED: u8 = 7;
const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 8;

/// Room for the largest UDP request header (IPv6 form, or a 255-byte name).
const UDP_HEADER_MAX: usize = 4 + 1 + 255 + 2;

pub(crate) async fn serve(listener: TcpListener, context: Arc<Context>) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "SOCKS accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let context = context.clone();
        tokio::spawn(async move {
            let admission = match client.local_addr() {
                Ok(local) => context.admit(local, peer),
                Err(e) => Admission::Refused(format!("no local address: {e}")),
            };
            match handle(client, peer, admission, &context).await {
                Err(ProxyError::Refused(why)) => {
                    tracing::info!(%peer, reason = %why, "SOCKS client refused")
                }
                Err(e) => tracing::debug!(%peer, error = %e, "SOCKS client ended"),
                Ok(()) => {}
            }
        });
    }
}

/// A parsed SOCKS5 request.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    command: u8,
    host: Host,
    port: u16,
}

/// Why an address field could not be parsed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AddrError {
    /// More bytes are needed.
    Incomplete,
    /// Unknown address type.
    BadType(u8),
    /// A domain name that is empty or not UTF-8.
    BadName,
}

/// Parses `ATYP ADDR PORT` at the start of `buf`: the host, port and bytes used.
pub(crate) fn parse_address(buf: &[u8]) -> Result<(Host, u16, usize), AddrError> {
    let atyp = *buf.first().ok_or(AddrError::Incomplete)?;
    let (host, used) = match atyp {
        ATYP_V4 => {
            let b: [u8; 4] = buf
                .get(1..5)
                .and_then(|s| s.try_into().ok())
                .ok_or(AddrError::Incomplete)?;
            (Host::Ip(Ipv4Addr::from(b).into()), 5)
        }
        ATYP_V6 => {
            let b: [u8; 16] = buf
                .get(1..17)
                .and_then(|s| s.try_into().ok())
                .ok_or(AddrError::Incomplete)?;
            (Host::Ip(Ipv6Addr::from(b).into()), 17)
        }
        ATYP_DOMAIN => {
            let len = usize::from(*buf.get(1).ok_or(AddrError::Incomplete)?);
            let raw = buf.get(2..2 + len).ok_or(AddrError::Incomplete)?;
            let name = std::str::from_utf8(raw).map_err(|_| AddrError::BadName)?;
            if name.is_empty() {
                return Err(AddrError::BadName);
            }
            (Host::parse(name), 2 + len)
        }
        other => return Err(AddrError::BadType(other)),
    };
    let port = buf.get(used..used + 2).ok_or(AddrError::Incomplete)?;
    Ok((host, u16::from_be_bytes([port[0], port[1]]), used + 2))
}

/// Writes `ATYP ADDR PORT` for `addr` into `out`, returning the length.
fn write_address(addr: SocketAddr, out: &mut Vec<u8>) {
    match addr.ip() {
        IpAddr::V4(v4) => {
            out.push(ATYP_V4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(ATYP_V6);
            out.extend_from_slice(&v6.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

async fn reply(client: &mut TcpStream, code: u8, bound: SocketAddr) -> Result<(), ProxyError> {
    let mut out = vec![VERSION, code, 0];
    write_address(bound, &mut out);
    client.write_all(&out).await?;
    Ok(())
}

fn unspecified() -> SocketAddr {
    SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0)
}

/// Reads one length-prefixed field (RFC 1929).
async fn read_field(client: &mut TcpStream) -> Result<Vec<u8>, ProxyError> {
    let mut len = [0u8; 1];
    client.read_exact(&mut len).await?;
    let mut field = vec![0u8; usize::from(len[0])];
    client.read_exact(&mut field).await?;
    Ok(field)
}

/// Picks the method: no authentication for the owner-only proxy, username/password (RFC 1929)
/// when credentials are set, checked here.
async fn authenticate(
    client: &mut TcpStream,
    methods: &[u8],
    credentials: Option<&Credentials>,
) -> Result<(), ProxyError> {
    let Some(credentials) = credentials else {
        if !methods.contains(&NO_AUTH) {
            client.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await?;
            return Err(ProxyError::Protocol(
                "client offers no unauthenticated method".into(),
            ));
        }
        client.write_all(&[VERSION, NO_AUTH]).await?;
        return Ok(());
    };
    if !methods.contains(&USER_PASSWORD) {
        client.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await?;
        return Err(ProxyError::Refused(
            "no username/password offered (credentials required)".into(),
        ));
    }
    client.write_all(&[VERSION, USER_PASSWORD]).await?;
    let mut version = [0u8; 1];
    client.read_exact(&mut version).await?;
    if version[0] != AUTH_VERSION {
        return Err(ProxyError::Protocol(format!(
            "username/password version {}",
            version[0]
        )));
    }
    let user = read_field(client).await?;
    let password = read_field(client).await?;
    if !credentials.verify(&user, &password) {
        client.write_all(&[AUTH_VERSION, AUTH_FAILED]).await?;
        return Err(ProxyError::Refused("wrong credentials".into()));
    }
    client.write_all(&[AUTH_VERSION, AUTH_OK]).await?;
    Ok(())
}

/// Reads the method negotiation (and authentication) and the request.
async fn negotiate(
    client: &mut TcpStream,
    credentials: Option<&Credentials>,
) -> Result<Request, ProxyError> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await?;
    if head[0] != VERSION {
        return Err(ProxyError::Protocol(format!(
            "SOCKS version {} (only 5 is served)",
            head[0]
        )));
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods).await?;
    authenticate(client, &methods, credentials).await?;
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    if request[0] != VERSION {
        return Err(ProxyError::Protocol("bad request version".into()));
    }
    let mut buf = vec![request[3]];
    let need = match request[3] {
        ATYP_V4 => 4 + 2,
        ATYP_V6 => 16 + 2,
        ATYP_DOMAIN => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            buf.push(len[0]);
            usize::from(len[0]) + 2
        }
        other => {
            reply(client, ADDRESS_TYPE_NOT_SUPPORTED, unspecified()).await?;
            return Err(ProxyError::Protocol(format!("address type {other}")));
        }
    };
    let start = buf.len();
    buf.resize(start + need, 0);
    client.read_exact(&mut buf[start..]).await?;
    match parse_address(&buf) {
        Ok((host, port, _)) => Ok(Request {
            command: request[1],
            host,
            port,
        }),
        Err(e) => {
            reply(client, GENERAL_FAILURE, unspecified()).await?;
            Err(ProxyError::Protocol(format!("bad address: {e:?}")))
        }
    }
}

async fn handle(
    mut client: TcpStream,
    peer: SocketAddr,
    admission: Admission,
    context: &Context,
) -> Result<(), ProxyError> {
    let request = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        negotiate(&mut client, context.credentials()),
    )
    .await
    .map_err(|_| ProxyError::Protocol("request timed out".into()))??;
    // Refused clients learn so only after their request (so they show a clear error), and
    // nothing of it is acted upon.
    if let Admission::Refused(why) = admission {
        reply(&mut client, NOT_ALLOWED, unspecified()).await?;
        return Err(ProxyError::Refused(why));
    }
    match request.command {
        CMD_CONNECT => connect(client, request, context).await,
        CMD_UDP_ASSOCIATE => associate(client, peer, request, context).await,
        other => {
            reply(&mut client, COMMAND_NOT_SUPPORTED, unspecified()).await?;
            Err(ProxyError::Protocol(format!(
                "command {other} not supported"
            )))
        }
    }
}

/// The reply code for a failed connect.
fn failure_code(error: &ProxyError) -> u8 {
    match error {
        ProxyError::Resolve { .. } => HOST_UNREACHABLE,
        ProxyError::Stack(NetstackError::Refused(_)) => CONNECTION_REFUSED,
        ProxyError::Stack(NetstackError::TimedOut(_)) => HOST_UNREACHABLE,
        ProxyError::Stack(NetstackError::Unaddressable(_)) => NETWORK_UNREACHABLE,
        _ => GENERAL_FAILURE,
    }
}

async fn connect(
    mut client: TcpStream,
    request: Request,
    context: &Context,
) -> Result<(), ProxyError> {
    let mut remote = match context.connect(&request.host, request.port).await {
        Ok(stream) => stream,
        Err(e) => {
            reply(&mut client, failure_code(&e), unspecified()).await?;
            return Err(e);
        }
    };
    reply(&mut client, SUCCEEDED, remote.local_addr()).await?;
    let _ = client.set_nodelay(true);
    remote.relay(&mut client).await?;
    Ok(())
}

/// UDP ASSOCIATE: a relay socket on the proxy's address carries the client's datagrams
/// (each with a SOCKS header) to and from a UDP socket on the tunnel's stack, for as long as
/// the control connection stays open.
async fn associate(
    mut client: TcpStream,
    peer: SocketAddr,
    request: Request,
    context: &Context,
) -> Result<(), ProxyError> {
    let local_ip = client.local_addr()?.ip();
    let relay = UdpSocket::bind(SocketAddr::new(local_ip, 0)).await?;
    let any: IpAddr = match context.stack_prefers_v6() {
        true => Ipv6Addr::UNSPECIFIED.into(),
        false => Ipv4Addr::UNSPECIFIED.into(),
    };
    let tunnel = match context.stack.udp_bind(SocketAddr::new(any, 0)) {
        Ok(s) => s,
        Err(e) => {
            reply(&mut client, GENERAL_FAILURE, unspecified()).await?;
            return Err(e.into());
        }
    };
    reply(&mut client, SUCCEEDED, relay.local_addr()?).await?;
    // Datagrams are accepted only from the control connection's host; the port is the one the
    // client announced, or else the first one it sends from.
    let mut client_udp: Option<SocketAddr> = match (&request.host, request.port) {
        (Host::Ip(ip), port) if port != 0 && !ip.is_unspecified() => {
            Some(SocketAddr::new(*ip, port))
        }
        _ => None,
    };
    let mut control = [0u8; 64];
    let mut from_client = vec![0u8; 65_535];
    let mut from_tunnel = vec![0u8; UDP_HEADER_MAX + 65_535];
    loop {
        tokio::select! {
            read = client.read(&mut control) => {
                match read {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => continue,
                }
            }
            received = relay.recv_from(&mut from_client) => {
                let (n, src) = received?;
                if src.ip() != peer.ip() {
                    continue;
                }
                match client_udp {
                    Some(known) if known != src => continue,
                    None => client_udp = Some(src),
                    _ => {}
                }
                let datagram = &from_client[..n];
                if datagram.len() < 4 || datagram[2] != 0 {
                    // Too short, or a fragment: fragmentation is not supported (RFC 1928 §7).
                    continue;
                }
                let Ok((host, port, used)) = parse_address(&datagram[3..]) else { continue };
                let payload = &datagram[3 + used..];
                let ip = match host {
                    Host::Ip(ip) => ip,
                    Host::Name(name) => match context.resolver.resolve(&context.stack, &name).await {
                        Ok(addrs) => match addrs.first() {
                            Some(ip) => *ip,
                            None => continue,
                        },
                        Err(e) => {
                            tracing::debug!(error = %e, "UDP destination did not resolve");
                            continue;
                        }
                    },
                };
                let _ = tunnel.send_to(payload, SocketAddr::new(ip, port));
            }
            received = tunnel.recv_from(&mut from_tunnel[UDP_HEADER_MAX..]) => {
                let (n, src) = received?;
                let Some(to) = client_udp else { continue };
                let mut header = vec![0u8, 0, 0];
                write_address(src, &mut header);
                let start = UDP_HEADER_MAX - header.len();
                from_tunnel[start..UDP_HEADER_MAX].copy_from_slice(&header);
                let _ = relay.send_to(&from_tunnel[start..UDP_HEADER_MAX + n], to).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            parse_address(&[1, 127, 0, 0, 1, 0, 80]).unwrap(),
            (Host::Ip([127, 0, 0, 1].into()), 80, 7)
        );
        let mut name = vec![3, 9];
        name.extend_from_slice(b"localhost");
        name.extend_from_slice(&443u16.to_be_bytes());
        assert_eq!(
            parse_address(&name).unwrap(),
            (Host::Name("localhost".into()), 443, 13)
        );
        assert_eq!(parse_address(&[1, 127, 0]), Err(AddrError::Incomplete));
        assert_eq!(parse_address(&[9, 0, 0]), Err(AddrError::BadType(9)));
        assert_eq!(parse_address(&[3, 0, 0, 80]), Err(AddrError::BadName));
        assert_eq!(parse_address(&[3, 1, 0xff, 0, 80]), Err(AddrError::BadName));
    }

    #[test]
    fn written_addresses_parse_back() {
        for addr in ["10.1.2.3:53", "[2001:db8::1]:8080"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut out = Vec::new();
            write_address(addr, &mut out);
            let (host, port, used) = parse_address(&out).unwrap();
            assert_eq!(
                (host, port, used),
                (Host::Ip(addr.ip()), addr.port(), out.len())
            );
        }
    }

    proptest! {
        #[test]
        fn garbage_addresses_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_address(&bytes);
        }
    }
}
