//! The HTTP CONNECT proxy: `CONNECT host:port HTTP/1.1`, then bytes both ways; for the owner
//! only (anyone else gets 403).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::peer::Admission;
use super::{Context, Host, ProxyError, COPY_BUF, HANDSHAKE_TIMEOUT};
use crate::netstack::NetstackError;

/// Largest request head we read.
const HEAD_MAX: usize = 16 * 1024;

pub(crate) async fn serve(listener: TcpListener, context: Arc<Context>) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "HTTP proxy accept failed");
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
            match handle(client, admission, &context).await {
                Err(ProxyError::Refused(why)) => {
                    tracing::info!(%peer, reason = %why, "HTTP proxy client refused")
                }
                Err(e) => tracing::debug!(%peer, error = %e, "HTTP proxy client ended"),
                Ok(()) => {}
            }
        });
    }
}

/// What the request head asked for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// `CONNECT host:port`.
    Connect(Host, u16),
    /// Another method: not served.
    OtherMethod,
    /// Not an HTTP request line.
    Malformed,
}

/// Parses the request line of a complete head.
pub(crate) fn parse_head(head: &[u8]) -> Parsed {
    let Some(line_end) = head.windows(2).position(|w| w == b"\r\n") else {
        return Parsed::Malformed;
    };
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Parsed::Malformed;
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Malformed;
    };
    if !version.starts_with("HTTP/1.") {
        return Parsed::Malformed;
    }
    if method != "CONNECT" {
        return Parsed::OtherMethod;
    }
    let Some((host, port)) = target.rsplit_once(':') else {
        return Parsed::Malformed;
    };
    let Ok(port) = port.parse::<u16>() else {
        return Parsed::Malformed;
    };
    if host.is_empty() || port == 0 {
        return Parsed::Malformed;
    }
    Parsed::Connect(Host::parse(host), port)
}

/// The value of the first header `name` (lower case) in a complete head.
pub(crate) fn header_value<'a>(head: &'a [u8], name: &str) -> Option<&'a [u8]> {
    head.split(|b| *b == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|b| *b == b':')?;
        let (key, value) = line.split_at(colon);
        key.eq_ignore_ascii_case(name.as_bytes())
            .then(|| value[1..].trim_ascii())
    })
}

async fn respond(client: &mut TcpStream, status: &str, extra: &str) -> Result<(), ProxyError> {
    let response =
        format!("HTTP/1.1 {status}\r\n{extra}content-length: 0\r\nconnection: close\r\n\r\n");
    client.write_all(response.as_bytes()).await?;
    Ok(())
}

/// Reads until the end of the request head; returns the head and any bytes after it.
async fn read_head(client: &mut TcpStream) -> Result<(Vec<u8>, Vec<u8>), ProxyError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(ProxyError::Protocol(
                "client closed before the request ended".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > HEAD_MAX {
            return Err(ProxyError::Protocol("request head too large".into()));
        }
    }
}

async fn handle(
    mut client: TcpStream,
    admission: Admission,
    context: &Context,
) -> Result<(), ProxyError> {
    let (head, rest) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_head(&mut client)).await {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => {
            let _ = respond(&mut client, "400 Bad Request", "").await;
            return Err(e);
        }
        Err(_) => {
            let _ = respond(&mut client, "408 Request Timeout", "").await;
            return Err(ProxyError::Protocol("request timed out".into()));
        }
    };
    if let Admission::Refused(why) = admission {
        respond(&mut client, "403 Forbidden", "").await?;
        return Err(ProxyError::Refused(why));
    }
    if let Some(credentials) = context.credentials() {
        let given = header_value(&head, "proxy-authorization");
        if !given.is_some_and(|v| credentials.verify_basic(v)) {
            respond(
                &mut client,
                "407 Proxy Authentication Required",
                "proxy-authenticate: Basic realm=\"ferry\"\r\n",
            )
            .await?;
            return Err(ProxyError::Refused(match given {
                Some(_) => "wrong credentials".into(),
                None => "no credentials given".into(),
            }));
        }
    }
    let (host, port) = match parse_head(&head) {
        Parsed::Connect(host, port) => (host, port),
        Parsed::OtherMethod => {
            respond(&mut client, "405 Method Not Allowed", "allow: CONNECT\r\n").await?;
            return Err(ProxyError::Protocol("only CONNECT is served".into()));
        }
        Parsed::Malformed => {
            respond(&mut client, "400 Bad Request", "").await?;
            return Err(ProxyError::Protocol("malformed request line".into()));
        }
    };
    let mut remote = match context.connect(&host, port).await {
        Ok(stream) => stream,
        Err(e) => {
            let status = match &e {
                ProxyError::Stack(NetstackError::TimedOut(_)) => "504 Gateway Timeout",
                _ => "502 Bad Gateway",
            };
            respond(&mut client, status, "").await?;
            return Err(e);
        }
    };
    client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await?;
    if !rest.is_empty() {
        remote.write_all(&rest).await?;
    }
    let _ = client.set_nodelay(true);
    tokio::io::copy_bidirectional_with_sizes(&mut client, &mut remote, COPY_BUF, COPY_BUF).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn connect_lines_parse() {
        assert_eq!(
            parse_head(b"CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Parsed::Connect(Host::Name("example.com".into()), 443)
        );
        assert_eq!(
            parse_head(b"CONNECT [::1]:8080 HTTP/1.1\r\n\r\n"),
            Parsed::Connect(Host::Ip("::1".parse().unwrap()), 8080)
        );
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\n\r\n"), Parsed::OtherMethod);
        assert_eq!(
            parse_head(b"CONNECT host HTTP/1.1\r\n\r\n"),
            Parsed::Malformed
        );
        assert_eq!(
            parse_head(b"CONNECT host:0 HTTP/1.1\r\n\r\n"),
            Parsed::Malformed
        );
        assert_eq!(parse_head(b"CONNECT h:1 SPDY\r\n\r\n"), Parsed::Malformed);
    }

    #[test]
    fn headers_are_found_by_name() {
        let head = b"CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nProxy-Authorization:  Basic abc \r\n\r\n";
        assert_eq!(
            header_value(head, "proxy-authorization"),
            Some(&b"Basic abc"[..])
        );
        assert_eq!(header_value(head, "host"), Some(&b"h:1"[..]));
        assert_eq!(header_value(head, "connect h"), None);
        assert_eq!(header_value(head, "authorization"), None);
    }

    proptest! {
        #[test]
        fn garbage_heads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_head(&bytes);
        }
    }
}
