//! tunnelbyte's HTTP layer: bearer auth, the public rate limit, and JSON answers. All decisions
//! are made by [`TbState`](super::TbState).

use super::quota::Tier;
use super::TbError;
use crate::ctx::{lock, LabCtx};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// tunnelbyte's routes, nested under `/tunnelbyte/v1`.
pub fn router() -> Router<Arc<LabCtx>> {
    Router::new()
        .route("/regions", get(regions))
        .route("/ip/{addr}", get(ip_lookup))
        .route("/tokens/anonymous", post(new_anonymous_token))
        .route("/usage", get(usage))
        .route("/sessions", post(create_session))
        .route("/sessions/{id}", get(session).delete(delete_session))
        .fallback(|| async { reply(Err(TbError::NotFound)) })
        .method_not_allowed_fallback(|| async { reply(Err(TbError::MethodNotAllowed)) })
}

/// Extra control routes for tunnelbyte, merged into `/_lab`:
/// `POST /tunnelbyte/handshake {"id", "alive"?}`, `POST /tunnelbyte/nodes {"code", "state":
/// "disconnected"|"healthy"}`, `POST /tunnelbyte/tier {"token", "tier"}`.
pub fn control_routes() -> Router<Arc<LabCtx>> {
    Router::new()
        .route("/tunnelbyte/handshake", post(control_handshake))
        .route("/tunnelbyte/nodes", post(control_nodes))
        .route("/tunnelbyte/tier", post(control_tier))
}

type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn peer_ip(peer: &Peer) -> Option<IpAddr> {
    peer.as_ref().map(|Extension(ConnectInfo(a))| a.ip())
}

fn reply(r: Result<(StatusCode, Value), TbError>) -> Response {
    match r {
        Ok((status, v)) => (status, Json(v)).into_response(),
        Err(e) => {
            let mut resp = (e.status(), Json(e.body())).into_response();
            if let TbError::RateLimited { retry_after } = e {
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            resp
        }
    }
}

fn ok(v: Value) -> Result<(StatusCode, Value), TbError> {
    Ok((StatusCode::OK, v))
}

/// The bearer token from `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

async fn regions(State(ctx): State<Arc<LabCtx>>, peer: Peer) -> Response {
    let now = ctx.clock.now();
    let mut st = lock(&ctx.tunnelbyte);
    reply(
        st.rate_limit(peer_ip(&peer), now)
            .and_then(|()| ok(st.regions_json())),
    )
}

async fn ip_lookup(
    State(ctx): State<Arc<LabCtx>>,
    peer: Peer,
    Path(addr): Path<String>,
) -> Response {
    let now = ctx.clock.now();
    let exit_ip = ctx.exit.endpoint().ip();
    let limited = lock(&ctx.tunnelbyte).rate_limit(peer_ip(&peer), now);
    let mut resp = reply(limited.and_then(|()| ip_info(&addr, exit_ip)));
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

/// `GET /v1/ip/{addr}`: the lab knows no ASN data, so a routable address answers with
/// `asn: 0` and `is_tunnelbyte_exit` true only for the lab's own exit address.
fn ip_info(addr: &str, exit_ip: IpAddr) -> Result<(StatusCode, Value), TbError> {
    let ip: IpAddr = addr.parse().map_err(|_| TbError::InvalidIp)?;
    let is_exit = ip == exit_ip;
    let routable = match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || (v6.segments()[0] & 0xfe00) == 0xfc00)
        }
    };
    if !routable && !is_exit {
        return Err(TbError::NotRoutable);
    }
    let mut v = json!({
        "ip": ip.to_string(),
        "asn": 0,
        "asn_org": "",
        "country": "",
        "is_tunnelbyte_exit": is_exit,
        "abuse_contact": "abuse@tunnelbyte.dev",
    });
    if is_exit {
        if let Some(o) = v.as_object_mut() {
            o.insert("region".to_owned(), json!("fsn"));
        }
    }
    ok(v)
}

/// `POST /v1/tokens/anonymous`: an invented path (the vendor's token issuance is undocumented)
/// that issues an anonymous token, rate-limited like the public endpoints.
async fn new_anonymous_token(State(ctx): State<Arc<LabCtx>>, peer: Peer) -> Response {
    let now = ctx.clock.now();
    let mut st = lock(&ctx.tunnelbyte);
    let r = st.rate_limit(peer_ip(&peer), now).map(|()| {
        let token = st.issue_token(Tier::Anonymous);
        (
            StatusCode::CREATED,
            json!({"token": token, "tier": "anonymous"}),
        )
    });
    reply(r)
}

async fn usage(State(ctx): State<Arc<LabCtx>>, headers: HeaderMap) -> Response {
    let now = ctx.clock.now();
    let mut st = lock(&ctx.tunnelbyte);
    let r = st
        .auth(bearer(&headers))
        .and_then(|t| st.usage_json(&t, now))
        .map(|v| (StatusCode::OK, v));
    reply(r)
}

/// `POST /v1/sessions` answers 201 Created (the vendor does not state 200 or 201).
async fn create_session(
    State(ctx): State<Arc<LabCtx>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = ctx.clock.now();
    let mut st = lock(&ctx.tunnelbyte);
    let r = st
        .auth(bearer(&headers))
        .and_then(|t| st.create_session(&t, &body, now, ctx.exit.as_ref()))
        .map(|v| (StatusCode::CREATED, v));
    reply(r)
}

async fn session(
    State(ctx): State<Arc<LabCtx>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let now = ctx.clock.now();
    let mut st = lock(&ctx.tunnelbyte);
    let r = st
        .auth(bearer(&headers))
        .and_then(|t| st.session_json(&t, &id, now))
        .map(|v| (StatusCode::OK, v));
    reply(r)
}

async fn delete_session(
    State(ctx): State<Arc<LabCtx>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let now = ctx.clock.now();
    let mut st = lock(&ctx.tunnelbyte);
    let r = st
        .auth(bearer(&headers))
        .and_then(|t| st.delete_session(&t, &id, now, ctx.exit.as_ref()))
        .map(|v| (StatusCode::OK, v));
    reply(r)
}

fn control_done(r: Result<(), String>) -> Response {
    match r {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => (StatusCode::NOT_FOUND, Json(json!({"error": e}))).into_response(),
    }
}

#[derive(Deserialize)]
struct Handshake {
    id: String,
    alive: Option<bool>,
}

async fn control_handshake(State(ctx): State<Arc<LabCtx>>, Json(h): Json<Handshake>) -> Response {
    let now = ctx.clock.now();
    control_done(lock(&ctx.tunnelbyte).handshake(&h.id, h.alive, now))
}

#[derive(Deserialize)]
struct NodeState {
    code: String,
    state: String,
}

async fn control_nodes(State(ctx): State<Arc<LabCtx>>, Json(n): Json<NodeState>) -> Response {
    let now = ctx.clock.now();
    let disconnected =
        match n.state.as_str() {
            "disconnected" => true,
            "healthy" => false,
            other => return (
                StatusCode::BAD_REQUEST,
                Json(
                    json!({"error": format!("state must be disconnected or healthy, not {other}")}),
                ),
            )
                .into_response(),
        };
    control_done(lock(&ctx.tunnelbyte).set_node_disconnected(&n.code, disconnected, now))
}

#[derive(Deserialize)]
struct SetTier {
    token: String,
    tier: Tier,
}

async fn control_tier(State(ctx): State<Arc<LabCtx>>, Json(t): Json<SetTier>) -> Response {
    let mut st = lock(&ctx.tunnelbyte);
    let r = match st.accounts.get_mut(&t.token) {
        Some(a) => {
            a.tier = t.tier;
            Ok(())
        }
        None => Err("no such tunnelbyte token".to_owned()),
    };
    control_done(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn ip_info_rules() {
        let exit: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(matches!(ip_info("nope", exit), Err(TbError::InvalidIp)));
        assert!(matches!(
            ip_info("10.1.2.3", exit),
            Err(TbError::NotRoutable)
        ));
        assert!(matches!(
            ip_info("fe80::1", exit),
            Err(TbError::NotRoutable)
        ));
        let (_, v) = ip_info("5.223.57.171", exit).unwrap();
        assert_eq!(v["is_tunnelbyte_exit"], false);
        let (_, v) = ip_info("127.0.0.1", exit).unwrap();
        assert_eq!(v["is_tunnelbyte_exit"], true);
    }
}
