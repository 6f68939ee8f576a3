//! The control API under `/_lab`, for tests and the demo: accounts, clock, credits, usage,
//! faults, forced termination, regions, and the request log.

use crate::ctx::{lock, LabCtx};
use crate::faults::FaultRule;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The control routes, to be nested under `/_lab`.
pub fn router() -> Router<Arc<LabCtx>> {
    Router::new()
        .route("/health", get(|| async { Json(json!({"ok": true})) }))
        .route("/accounts", get(accounts))
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance))
        .route("/orbnet/credits", post(orbnet_credits))
        .route("/tunnelbyte/usage", post(tunnelbyte_usage))
        .route("/faults", post(add_fault).delete(clear_faults))
        .route("/sessions/terminate", post(terminate))
        .route("/regions/offline", post(region_offline))
        .route("/regions/online", post(region_online))
        .route("/requests", get(requests).delete(clear_requests))
        .merge(crate::tunnelbyte::control_routes())
        .fallback(|| async { bad(StatusCode::NOT_FOUND, "no such control route") })
}

fn bad(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

fn done(r: Result<(), String>) -> Response {
    match r {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => bad(StatusCode::NOT_FOUND, e),
    }
}

async fn accounts(State(ctx): State<Arc<LabCtx>>) -> Json<serde_json::Value> {
    Json(json!({
        "orbnet": lock(&ctx.orbnet).accounts(),
        "tunnelbyte": lock(&ctx.tunnelbyte).accounts(),
        "neosc": lock(&ctx.neosc).accounts(),
    }))
}

async fn clock(State(ctx): State<Arc<LabCtx>>) -> Json<serde_json::Value> {
    let now = ctx.clock.now();
    Json(json!({
        "now": crate::clock::rfc3339_ms(now),
        "now_ms": now.timestamp_millis(),
        "offset_ms": ctx.clock.offset_ms(),
    }))
}

#[derive(Deserialize)]
struct Advance {
    seconds: f64,
}

async fn advance(State(ctx): State<Arc<LabCtx>>, Json(a): Json<Advance>) -> Response {
    if !a.seconds.is_finite() || a.seconds < 0.0 {
        return bad(
            StatusCode::BAD_REQUEST,
            "seconds must be a non-negative number",
        );
    }
    ctx.clock.advance(a.seconds);
    ctx.tick_all();
    clock(State(ctx)).await.into_response()
}

#[derive(Deserialize)]
struct Credits {
    email: String,
    credits: f64,
}

async fn orbnet_credits(State(ctx): State<Arc<LabCtx>>, Json(c): Json<Credits>) -> Response {
    if !c.credits.is_finite() || c.credits < 0.0 {
        return bad(
            StatusCode::BAD_REQUEST,
            "credits must be a non-negative number",
        );
    }
    done(lock(&ctx.orbnet).set_credits(&c.email, c.credits))
}

#[derive(Deserialize)]
struct Usage {
    token: String,
    bytes_used: Option<u64>,
    session_seconds: Option<u64>,
}

async fn tunnelbyte_usage(State(ctx): State<Arc<LabCtx>>, Json(u): Json<Usage>) -> Response {
    let now = ctx.clock.now();
    done(lock(&ctx.tunnelbyte).set_usage(&u.token, u.bytes_used, u.session_seconds, now))
}

async fn add_fault(State(ctx): State<Arc<LabCtx>>, Json(rule): Json<FaultRule>) -> Response {
    if !rule.path.starts_with('/') {
        return bad(StatusCode::BAD_REQUEST, "path must start with /");
    }
    if let Some(s) = rule.status {
        if StatusCode::from_u16(s).is_err() {
            return bad(StatusCode::BAD_REQUEST, "status is not a valid HTTP status");
        }
    }
    ctx.faults.add(rule);
    Json(json!({"ok": true, "armed": ctx.faults.len()})).into_response()
}

async fn clear_faults(State(ctx): State<Arc<LabCtx>>) -> Json<serde_json::Value> {
    ctx.faults.clear();
    Json(json!({"ok": true}))
}

#[derive(Deserialize)]
struct Terminate {
    service: String,
    id: String,
    reason: Option<String>,
}

async fn terminate(State(ctx): State<Arc<LabCtx>>, Json(t): Json<Terminate>) -> Response {
    let now = ctx.clock.now();
    let exit = ctx.exit.as_ref();
    let result = match t.service.as_str() {
        "orbnet" => {
            let reason = t.reason.as_deref().unwrap_or("error");
            lock(&ctx.orbnet).terminate(&t.id, reason, now, exit)
        }
        "tunnelbyte" => {
            let reason = t.reason.as_deref().unwrap_or("terminated by operator");
            lock(&ctx.tunnelbyte).terminate(&t.id, reason, now, exit)
        }
        "neosc" => {
            let reason = t.reason.as_deref().unwrap_or("terminated");
            lock(&ctx.neosc).terminate(&t.id, reason, now)
        }
        other => return bad(StatusCode::BAD_REQUEST, format!("unknown service {other}")),
    };
    done(result)
}

#[derive(Deserialize)]
struct Region {
    code: String,
}

async fn region_offline(State(ctx): State<Arc<LabCtx>>, Json(r): Json<Region>) -> Response {
    done(lock(&ctx.tunnelbyte).set_region_online(&r.code, false))
}

async fn region_online(State(ctx): State<Arc<LabCtx>>, Json(r): Json<Region>) -> Response {
    done(lock(&ctx.tunnelbyte).set_region_online(&r.code, true))
}

async fn requests(State(ctx): State<Arc<LabCtx>>) -> Json<serde_json::Value> {
    Json(json!({"requests": ctx.requests.all()}))
}

async fn clear_requests(State(ctx): State<Arc<LabCtx>>) -> Json<serde_json::Value> {
    ctx.requests.clear();
    Json(json!({"ok": true}))
}
