//! OrbNET's HTTP routes. Every handler passes the [`Gate`] first: it resolves the bearer token,
//! counts the request against its rate-limit tier (answering 429 when over), and puts the
//! `X-RateLimit-*` headers on whatever the handler answers.

use super::envelope::{ok, ApiError};
use super::ratelimit::{Bucket, Verdict};
use super::servers;
use super::sessions::{BeatReq, EndReq, StartReq, DISCONNECT_REASONS, PROTOCOLS};
use super::validate::Fields;
use super::vpn::server_field;
use crate::ctx::{lock, LabCtx};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// OrbNET's routes, nested under `/orbnet/api/v1`.
pub fn router() -> Router<Arc<LabCtx>> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/vpn/servers", get(list_servers))
        .route("/vpn/servers/{id}", get(one_server))
        .route("/vpn/servers/{id}/wireguard", get(wireguard))
        .route("/vpn/authorize", post(authorize_post).get(authorize_get))
        .route("/vpn/connection", get(connection))
        .route("/vpn/session/start", post(session_start))
        .route("/vpn/session/heartbeat", post(session_heartbeat))
        .route("/vpn/session/end", post(session_end))
        .route("/vpn/session/active", get(session_active))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
}

/// Who is calling and how much of their rate limit is left.
pub struct Gate {
    verdict: Verdict,
    token: Option<String>,
    user: Option<u64>,
    ip: IpAddr,
}

/// Paths in the auth tier (10/min per IP): the unauthenticated auth endpoints.
fn is_auth_path(path: &str) -> bool {
    let Some(rest) = path.split("/auth/").nth(1) else {
        return false;
    };
    !matches!(rest, "logout" | "devices") && !rest.starts_with("devices/")
}

fn bearer(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

impl FromRequestParts<Arc<LabCtx>> for Gate {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ctx: &Arc<LabCtx>) -> Result<Self, Response> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |c| c.0.ip());
        let token = bearer(parts);
        let now = ctx.clock.now();
        let mut state = lock(&ctx.orbnet);
        let user = token
            .as_deref()
            .and_then(|t| state.tokens.user_for_access(t, now));
        let bucket = if is_auth_path(parts.uri.path()) {
            Bucket::Auth(ip.to_string())
        } else if let Some(id) = user {
            Bucket::User(id)
        } else {
            Bucket::Global(ip.to_string())
        };
        let verdict = state.limiter.check(bucket, now.timestamp_millis());
        drop(state);
        if !verdict.allowed {
            let mut r = ApiError::rate_limited(verdict.retry_after).into_response();
            put_headers(&mut r, &verdict);
            return Err(r);
        }
        Ok(Self {
            verdict,
            token,
            user,
            ip,
        })
    }
}

fn put_headers(r: &mut Response, v: &Verdict) {
    let h = r.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", i64::from(v.limit)),
        ("x-ratelimit-remaining", i64::from(v.remaining)),
        ("x-ratelimit-reset", v.reset_unix),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
            h.insert(name, value);
        }
    }
}

impl Gate {
    /// The caller's account id, or 401 `UNAUTHORIZED`.
    fn user(&self) -> Result<u64, ApiError> {
        match (self.user, &self.token) {
            (Some(id), _) => Ok(id),
            (None, None) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "Missing or malformed Authorization header",
            )),
            (None, Some(_)) => Err(ApiError::unauthorized()),
        }
    }

    /// The handler's answer with the rate-limit headers added.
    fn finish(&self, result: Result<serde_json::Value, ApiError>) -> Response {
        let mut r = match result {
            Ok(data) => ok(data),
            Err(e) => e.into_response(),
        };
        put_headers(&mut r, &self.verdict);
        r
    }
}

type Ctx = State<Arc<LabCtx>>;

/// A request body, or why it could not be read.
type Body = Result<Bytes, BytesRejection>;

/// The body's fields; an unreadable body (e.g. over axum's 2 MB limit) is a 400 as well.
fn fields(body: Body) -> Result<Fields, ApiError> {
    let bytes = body.map_err(|e| {
        ApiError::validation(
            "body",
            "readable",
            json!(null),
            format!("Cannot read body: {e}"),
        )
    })?;
    Fields::from_body(&bytes)
}

async fn no_route(gate: Gate) -> Response {
    gate.finish(Err(ApiError::no_route()))
}

async fn wrong_method(gate: Gate) -> Response {
    gate.finish(Err(ApiError::wrong_method()))
}

async fn login(State(ctx): Ctx, gate: Gate, body: Body) -> Response {
    let r = fields(body).and_then(|f| lock(&ctx.orbnet).login(&f, ctx.clock.now()));
    gate.finish(r)
}

async fn refresh(State(ctx): Ctx, gate: Gate, body: Body) -> Response {
    let r = fields(body).and_then(|f| lock(&ctx.orbnet).refresh(&f, ctx.clock.now()));
    gate.finish(r)
}

async fn logout(State(ctx): Ctx, gate: Gate, body: Body) -> Response {
    let r = gate.user().and_then(|_| {
        let f = fields(body)?;
        let token = gate.token.as_deref().unwrap_or_default();
        lock(&ctx.orbnet).logout(token, &f)
    });
    gate.finish(r)
}

async fn list_servers(State(ctx): Ctx, gate: Gate) -> Response {
    let ip = ctx.exit.endpoint().ip();
    let r = gate.user().map(|_| {
        let list: Vec<_> = servers::SERVERS.iter().map(|s| s.json(ip)).collect();
        json!({ "servers": list })
    });
    gate.finish(r)
}

async fn one_server(State(ctx): Ctx, gate: Gate, Path(id): Path<String>) -> Response {
    let r = gate.user().and_then(|_| {
        id.parse::<u64>()
            .ok()
            .and_then(servers::find)
            .map(|s| s.json(ctx.exit.endpoint().ip()))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "SERVER_NOT_FOUND",
                    "Server not found",
                )
            })
    });
    gate.finish(r)
}

async fn wireguard(
    State(ctx): Ctx,
    gate: Gate,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let r = gate.user().and_then(|user| {
        let f = query_fields(query)?;
        f.opt_int("device_id", 0, i64::MAX)?;
        lock(&ctx.orbnet).wireguard(user, &id, ctx.exit.as_ref())
    });
    gate.finish(r)
}

fn query_fields(
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Fields, ApiError> {
    q.map(|Query(pairs)| Fields::from_query(pairs))
        .map_err(|e| {
            ApiError::validation(
                "query",
                "urlencoded",
                json!(null),
                format!("Bad query string: {e}"),
            )
        })
}

async fn authorize_post(State(ctx): Ctx, gate: Gate, body: Body) -> Response {
    let r = gate.user().and_then(|user| {
        let f = fields(body)?;
        lock(&ctx.orbnet).authorize(user, &f)
    });
    gate.finish(r)
}

async fn authorize_get(
    State(ctx): Ctx,
    gate: Gate,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let r = gate.user().and_then(|user| {
        let f = query_fields(query)?;
        lock(&ctx.orbnet).authorize(user, &f)
    });
    gate.finish(r)
}

async fn connection(State(ctx): Ctx, gate: Gate) -> Response {
    let r = gate.user().map(|user| {
        lock(&ctx.orbnet).connection_json(user, ctx.clock.now(), ctx.exit.as_ref(), gate.ip)
    });
    gate.finish(r)
}

/// Longest accepted client `session_id`.
const SESSION_ID_MAX: usize = 128;

async fn session_start(State(ctx): Ctx, gate: Gate, body: Body) -> Response {
    let r = gate.user().and_then(|user| {
        let f = fields(body)?;
        let req = StartReq {
            session_id: f.string("session_id", SESSION_ID_MAX)?,
            server_id: server_field(&f, true)?.map_or(0, |s| s.id),
            protocol: f.one_of("protocol", PROTOCOLS)?,
        };
        lock(&ctx.orbnet).start_session(user, req, ctx.clock.now())
    });
    gate.finish(r)
}

async fn session_heartbeat(State(ctx): Ctx, gate: Gate, body: Body) -> Response {
    let r = gate.user().and_then(|user| {
        let f = fields(body)?;
        let req = BeatReq {
            session_id: f.string("session_id", SESSION_ID_MAX)?,
            seconds: f.int("seconds_since_last", 1, 300)? as u64,
        };
        lock(&ctx.orbnet).heartbeat(user, req, ctx.clock.now(), ctx.exit.as_ref())
    });
    gate.finish(r)
}

async fn session_end(State(ctx): Ctx, gate: Gate, body: Body) -> Response {
    let r = gate.user().and_then(|user| {
        let f = fields(body)?;
        let req = EndReq {
            session_id: f.string("session_id", SESSION_ID_MAX)?,
            seconds: f.int("seconds_since_last", 1, 300)? as u64,
            reason: f.one_of("disconnect_reason", DISCONNECT_REASONS)?,
        };
        lock(&ctx.orbnet).end_session(user, req, ctx.clock.now(), ctx.exit.as_ref())
    });
    gate.finish(r)
}

async fn session_active(State(ctx): Ctx, gate: Gate) -> Response {
    let r = gate
        .user()
        .map(|user| lock(&ctx.orbnet).active_json(user, ctx.clock.now()));
    gate.finish(r)
}
