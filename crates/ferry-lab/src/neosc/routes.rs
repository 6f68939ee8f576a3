//! NeoSC's HTTP layer: FastAPI-style bearer auth and `{"detail": ...}` answers. All decisions
//! are made by [`NeoState`](super::NeoState).

use super::{NeoError, NeoState};
use crate::ctx::{lock, LabCtx};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// NeoSC's routes, nested under `/neosc/api`.
pub fn router() -> Router<Arc<LabCtx>> {
    Router::new()
        .route(
            "/",
            get(|| async {
                Json(
                    json!({"message": "NeoSC API - Neogenesys Secure Connect", "version": "1.0.0"}),
                )
            }),
        )
        .route(
            "/health",
            get(|| async { Json(json!({"status": "healthy"})) }),
        )
        .route("/auth/login", post(login))
        .route("/auth/register", post(register))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
        .route("/workspaces", get(workspaces).post(create_workspace))
        .route("/workspaces/reset", post(reset_workspaces))
        .route(
            "/workspaces/{id}",
            put(update_workspace).delete(delete_workspace),
        )
        .route("/workspaces/{id}/launch", post(launch))
        .route("/workspaces/{id}/stop", post(stop))
        .route("/sessions", get(sessions))
        .route("/sessions/active", get(active_sessions))
        .route("/sessions/{id}", get(session))
        .route("/sessions/{id}/disconnect", post(disconnect))
        .route("/audit-logs", get(audit_logs))
        .route("/stats", get(stats))
        .fallback(|| async { reply(Err(NeoError::NotFound)) })
        .method_not_allowed_fallback(|| async { reply(Err(NeoError::MethodNotAllowed)) })
}

type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn ip(peer: &Peer) -> String {
    peer.as_ref()
        .map(|Extension(ConnectInfo(a))| a.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn reply(r: Result<Value, NeoError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            let mut resp = (e.status(), Json(e.body())).into_response();
            if matches!(e, NeoError::NotAuthenticated | NeoError::InvalidToken) {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            resp
        }
    }
}

/// The credentials of `Authorization: Bearer <token>` (scheme case-insensitive), as FastAPI's
/// `HTTPBearer` reads them.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Runs `f` with the state and the caller's user id.
fn authed<T>(
    ctx: &LabCtx,
    headers: &HeaderMap,
    f: impl FnOnce(&mut NeoState, &str) -> Result<T, NeoError>,
) -> Result<T, NeoError> {
    let mut st = lock(&ctx.neosc);
    let uid = st.user_for(bearer(headers))?;
    f(&mut st, &uid)
}

async fn login(State(ctx): State<Arc<LabCtx>>, peer: Peer, body: Bytes) -> Response {
    let now = ctx.clock.now();
    reply(lock(&ctx.neosc).login(&body, &ip(&peer), now))
}

async fn register(State(ctx): State<Arc<LabCtx>>, peer: Peer, body: Bytes) -> Response {
    let now = ctx.clock.now();
    reply(lock(&ctx.neosc).register(&body, &ip(&peer), now))
}

async fn logout(State(ctx): State<Arc<LabCtx>>, peer: Peer, headers: HeaderMap) -> Response {
    let now = ctx.clock.now();
    let token = bearer(&headers).unwrap_or_default().to_owned();
    reply(authed(&ctx, &headers, |st, uid| {
        Ok(st.logout(uid, &token, &ip(&peer), now))
    }))
}

async fn me(State(ctx): State<Arc<LabCtx>>, headers: HeaderMap) -> Response {
    reply(authed(&ctx, &headers, |st, uid| st.me(uid)))
}

async fn workspaces(State(ctx): State<Arc<LabCtx>>, headers: HeaderMap) -> Response {
    reply(authed(&ctx, &headers, |st, _| Ok(st.workspaces_json())))
}

async fn create_workspace(
    State(ctx): State<Arc<LabCtx>>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = ctx.clock.now();
    reply(authed(&ctx, &headers, |st, uid| {
        st.create_workspace(uid, &body, &ip(&peer), now)
    }))
}

async fn update_workspace(
    State(ctx): State<Arc<LabCtx>>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let now = ctx.clock.now();
    reply(authed(&ctx, &headers, |st, uid| {
        st.update_workspace(uid, &id, &body, &ip(&peer), now)
    }))
}

async fn delete_workspace(
    State(ctx): State<Arc<LabCtx>>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let now = ctx.clock.now();
    reply(authed(&ctx, &headers, |st, uid| {
        st.delete_workspace(uid, &id, &ip(&peer), now)
    }))
}

async fn reset_workspaces(
    State(ctx): State<Arc<LabCtx>>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let now = ctx.clock.now();
    reply(authed(&ctx, &headers, |st, uid| {
        st.reset_workspaces(uid, &ip(&peer), now)
    }))
}

async fn launch(
    State(ctx): State<Arc<LabCtx>>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let now = ctx.clock.now();
    reply(authed(&ctx, &headers, |st, uid| {
        st.launch(uid, &id, &ip(&peer), now)
    }))
}

async fn stop(
    State(ctx): State<Arc<LabCtx>>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let now = ctx.clock.now();
    reply(authed(&ctx, &headers, |st, uid| {
        Ok(st.stop(uid, &id, &ip(&peer), now))
    }))
}

async fn sessions(State(ctx): State<Arc<LabCtx>>, headers: HeaderMap) -> Response {
    reply(authed(&ctx, &headers, |st, uid| {
        Ok(st.sessions_json(uid, false))
    }))
}

async fn active_sessions(State(ctx): State<Arc<LabCtx>>, headers: HeaderMap) -> Response {
    reply(authed(&ctx, &headers, |st, uid| {
        Ok(st.sessions_json(uid, true))
    }))
}

async fn session(
    State(ctx): State<Arc<LabCtx>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    reply(authed(&ctx, &headers, |st, uid| st.session_json(uid, &id)))
}

async fn disconnect(
    State(ctx): State<Arc<LabCtx>>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let now = ctx.clock.now();
    reply(authed(&ctx, &headers, |st, uid| {
        st.disconnect(uid, &id, &ip(&peer), now)
    }))
}

async fn audit_logs(State(ctx): State<Arc<LabCtx>>, headers: HeaderMap) -> Response {
    reply(authed(&ctx, &headers, |st, uid| st.audit_json(uid)))
}

async fn stats(State(ctx): State<Arc<LabCtx>>, headers: HeaderMap) -> Response {
    reply(authed(&ctx, &headers, |st, _| Ok(st.stats_json())))
}
