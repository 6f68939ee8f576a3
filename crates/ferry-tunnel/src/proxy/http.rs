//! The HTTP proxy (hyper, HTTP/1.1 with keep-alive): `CONNECT host:port` (then bytes both
//! ways), and plain `http://` requests in absolute form (`GET http://host/path HTTP/1.1`,
//! RFC 9112 §3.2.2), forwarded through the tunnel to the origin in origin form with the
//! hop-by-hop headers removed (RFC 9110 §7.6.1); bodies stream both ways, chunked or not, and
//! the connection to an origin is kept for the client's next request to it. For the owner only
//! (anyone else gets 403) or, with credentials, for clients sending `Proxy-Authorization: Basic`
//! (else 407).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{combinators::BoxBody, BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::peer::Admission;
use super::{Context, Host, ProxyError, HANDSHAKE_TIMEOUT};
use crate::netstack::NetstackError;

/// What the proxy answers with: its own short bodies or an origin's streamed one.
type Body = BoxBody<Bytes, hyper::Error>;

/// Sent in `Via` (RFC 9110 §7.6.3) on what is forwarded.
const VIA: &str = "1.1 ferry";

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
            if let Admission::Refused(why) = &admission {
                tracing::info!(%peer, reason = %why, "HTTP proxy client refused");
            }
            let _ = client.set_nodelay(true);
            let connection = Arc::new(Connection {
                context,
                admission,
                upstream: tokio::sync::Mutex::new(None),
            });
            let service = hyper::service::service_fn(move |request| {
                let connection = connection.clone();
                async move { Ok::<_, Infallible>(connection.handle(request).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT)
                .serve_connection(TokioIo::new(client), service)
                .with_upgrades()
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "HTTP proxy client ended");
            }
        });
    }
}

/// What a request asks the proxy for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// `CONNECT host:port`: a tunnel.
    Connect(Host, u16),
    /// An absolute-form `http://` request: forward it to `host:port` as `origin_form`, with
    /// `Host: authority`.
    Forward {
        /// The origin's host.
        host: Host,
        /// Its port (80 unless given).
        port: u16,
        /// `host[:port]` for the `Host` header.
        authority: String,
        /// `/path?query`.
        origin_form: String,
    },
    /// Not something this proxy serves.
    Bad(&'static str),
}

/// Classifies a request by its method and target.
pub(crate) fn target(method: &Method, uri: &Uri) -> Target {
    let Some(authority) = uri.authority() else {
        return Target::Bad("a proxy request needs an absolute URI (http://host/path)");
    };
    if authority.as_str().contains('@') {
        return Target::Bad("user information in the request target");
    }
    let host = authority.host();
    if host.is_empty() || host == "[]" {
        return Target::Bad("empty host");
    }
    if method == Method::CONNECT {
        return match authority.port_u16() {
            Some(port) if port != 0 && uri.scheme().is_none() => {
                Target::Connect(Host::parse(host), port)
            }
            _ => Target::Bad("CONNECT needs host:port"),
        };
    }
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") => {}
        Some(_) => return Target::Bad("only http:// is forwarded (use CONNECT for https)"),
        None => return Target::Bad("a proxy request needs an absolute URI (http://host/path)"),
    }
    let port = authority.port_u16().unwrap_or(80);
    if port == 0 {
        return Target::Bad("port 0");
    }
    let origin_form = match uri.path_and_query().map(|p| p.as_str()) {
        Some(p) if p.starts_with('/') => p.to_string(),
        Some(p) => format!("/{p}"),
        None => "/".to_string(),
    };
    Target::Forward {
        host: Host::parse(host),
        port,
        authority: authority.as_str().to_string(),
        origin_form,
    }
}

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1): those named in `Connection`, and
/// `Connection`, `Proxy-Connection`, `Keep-Alive`, `Proxy-Authorization`, `Proxy-Authenticate`,
/// `TE`, `Trailer`, `Transfer-Encoding` (hyper frames bodies anew) and `Upgrade`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("proxy-connection"),
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn empty() -> Body {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A short answer of the proxy's own.
fn answer(status: StatusCode, text: &str, close: bool) -> Response<Body> {
    let mut response = Response::new(full(format!("{text}\n")));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn gateway_error(e: &ProxyError) -> Response<Body> {
    let status = match e {
        ProxyError::Stack(NetstackError::TimedOut(_)) => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    answer(status, &e.to_string(), false)
}

/// The origin connection kept for a client's next request.
struct Upstream {
    host: Host,
    port: u16,
    sender: SendRequest<Incoming>,
}

/// One client connection.
struct Connection {
    context: Arc<Context>,
    admission: Admission,
    upstream: tokio::sync::Mutex<Option<Upstream>>,
}

impl Connection {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        if let Admission::Refused(_) = self.admission {
            return answer(StatusCode::FORBIDDEN, "not your proxy", true);
        }
        if let Some(credentials) = self.context.credentials() {
            let given = request.headers().get(header::PROXY_AUTHORIZATION);
            if !given.is_some_and(|v| credentials.verify_basic(v.as_bytes())) {
                tracing::info!(
                    given = given.is_some(),
                    "HTTP proxy client refused: credentials"
                );
                let mut response = answer(
                    StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                    "proxy credentials required",
                    false,
                );
                response.headers_mut().insert(
                    header::PROXY_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"ferry\""),
                );
                return response;
            }
        }
        match target(request.method(), request.uri()) {
            Target::Connect(host, port) => self.connect(request, host, port).await,
            Target::Forward {
                host,
                port,
                authority,
                origin_form,
            } => {
                self.forward(request, host, port, &authority, &origin_form)
                    .await
            }
            Target::Bad(why) => answer(StatusCode::BAD_REQUEST, why, true),
        }
    }

    /// CONNECT: the origin first (so a failure is a 502/504), then 200 and bytes both ways.
    async fn connect(&self, request: Request<Incoming>, host: Host, port: u16) -> Response<Body> {
        let mut remote = match self.context.connect(&host, port).await {
            Ok(stream) => stream,
            Err(e) => return gateway_error(&e),
        };
        tokio::spawn(async move {
            match hyper::upgrade::on(request).await {
                Ok(upgraded) => {
                    let mut client = TokioIo::new(upgraded);
                    let _ = remote.relay(&mut client).await;
                }
                Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
            }
        });
        Response::new(empty())
    }

    /// A sender to `host:port`: the kept one when it is still usable, else a new connection.
    async fn sender(&self, host: &Host, port: u16) -> Result<SendRequest<Incoming>, ProxyError> {
        let kept = self.upstream.lock().await.take();
        if let Some(mut up) = kept {
            if &up.host == host && up.port == port && up.sender.ready().await.is_ok() {
                return Ok(up.sender);
            }
        }
        let stream = self.context.connect(host, port).await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ProxyError::Protocol(format!("origin handshake: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "origin connection ended");
            }
        });
        Ok(sender)
    }

    /// An absolute-form request, sent on in origin form.
    async fn forward(
        &self,
        request: Request<Incoming>,
        host: Host,
        port: u16,
        authority: &str,
        origin_form: &str,
    ) -> Response<Body> {
        let (mut parts, body) = request.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        // The 100-continue expectation is ours to meet (hyper answers it as the body is read).
        parts.headers.remove(header::EXPECT);
        // RFC 9112 §3.2.2: the target's authority replaces any Host the client sent.
        let Ok(host_value) = HeaderValue::from_str(authority) else {
            return answer(StatusCode::BAD_REQUEST, "bad host", true);
        };
        parts.headers.insert(header::HOST, host_value);
        parts
            .headers
            .append(header::VIA, HeaderValue::from_static(VIA));
        let Ok(uri) = origin_form.parse::<Uri>() else {
            return answer(StatusCode::BAD_REQUEST, "bad request target", true);
        };
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        let mut sender = match self.sender(&host, port).await {
            Ok(s) => s,
            Err(e) => return gateway_error(&e),
        };
        let response = sender.send_request(Request::from_parts(parts, body)).await;
        // Kept for the next request: usable again once this response's body is through.
        *self.upstream.lock().await = Some(Upstream { host, port, sender });
        match response {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                parts
                    .headers
                    .append(header::VIA, HeaderValue::from_static(VIA));
                Response::from_parts(parts, body.boxed())
            }
            Err(e) => answer(
                StatusCode::BAD_GATEWAY,
                &format!("the origin did not answer: {e}"),
                false,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn classify(method: &str, target_text: &str) -> Target {
        let method: Method = method.parse().unwrap();
        let uri: Uri = target_text.parse().unwrap();
        target(&method, &uri)
    }

    #[test]
    fn connect_targets_parse() {
        assert_eq!(
            classify("CONNECT", "example.com:443"),
            Target::Connect(Host::Name("example.com".into()), 443)
        );
        assert_eq!(
            classify("CONNECT", "[::1]:8080"),
            Target::Connect(Host::Ip("::1".parse().unwrap()), 8080)
        );
        assert!(matches!(classify("CONNECT", "host"), Target::Bad(_)));
        assert!(matches!(classify("CONNECT", "host:0"), Target::Bad(_)));
    }

    #[test]
    fn absolute_form_becomes_origin_form() {
        assert_eq!(
            classify("GET", "http://example.com/a/b?c=d"),
            Target::Forward {
                host: Host::Name("example.com".into()),
                port: 80,
                authority: "example.com".into(),
                origin_form: "/a/b?c=d".into(),
            }
        );
        assert_eq!(
            classify("POST", "http://127.0.0.1:8080"),
            Target::Forward {
                host: Host::Ip("127.0.0.1".parse().unwrap()),
                port: 8080,
                authority: "127.0.0.1:8080".into(),
                origin_form: "/".into(),
            }
        );
        assert_eq!(
            classify("GET", "HTTP://[::1]:81/x"),
            Target::Forward {
                host: Host::Ip("::1".parse().unwrap()),
                port: 81,
                authority: "[::1]:81".into(),
                origin_form: "/x".into(),
            }
        );
    }

    #[test]
    fn what_a_proxy_does_not_forward_is_bad() {
        // Origin form (a request for the proxy itself), https, user info, asterisk form.
        for (method, t) in [
            ("GET", "/"),
            ("GET", "https://example.com/"),
            ("GET", "http://user:pw@example.com/"),
            ("OPTIONS", "*"),
            ("GET", "http://example.com:0/"),
        ] {
            assert!(
                matches!(classify(method, t), Target::Bad(_)),
                "{method} {t}"
            );
        }
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, X-Private"),
            ("connection", "x-other"),
            ("x-private", "1"),
            ("x-other", "2"),
            ("proxy-connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic YTpi"),
            ("proxy-authenticate", "Basic"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("content-length", "5"),
            ("accept", "*/*"),
            ("x-kept", "yes"),
        ] {
            h.append(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "content-length", "x-kept"]);
    }

    proptest! {
        #[test]
        fn garbage_targets_never_panic(t in "\\PC{0,60}", m in "[A-Z]{1,8}") {
            if let (Ok(method), Ok(uri)) = (m.parse::<Method>(), t.parse::<Uri>()) {
                let _ = target(&method, &uri);
            }
        }
    }
}
