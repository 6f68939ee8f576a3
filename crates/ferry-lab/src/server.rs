//! Starting the lab: the HTTP listener, the exit node, and the middleware every request passes
//! (timing rules, request log, faults, state saving).

use crate::clock::LabClock;
use crate::ctx::{LabCtx, PersistedState};
use crate::exit::{ExitPeers, UdpOnlyExit};
use crate::faults::{FaultRule, Faults};
use crate::reqlog::{is_secret_header, RecordedRequest, RequestLog};
use crate::{control, neosc, orbnet, tunnelbyte};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::BodyExt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// Largest request body the lab reads; larger ones get 413.
const MAX_REQUEST_BODY: usize = 4 * 1024 * 1024;

/// Which destinations the exit node relays decrypted traffic to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Egress {
    /// Only 127.0.0.0/8: what tests use.
    #[default]
    Loopback,
    /// Any destination the host can reach.
    Any,
}

/// How to run the lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// HTTP listen address; port 0 picks a free port. The exit node's UDP port is picked the same
    /// way on the same IP.
    pub listen: SocketAddr,
    /// Where the exit node may relay traffic.
    pub egress: Egress,
    /// Save state here after every change and restore it at start.
    pub state_file: Option<PathBuf>,
}

impl Default for LabConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            egress: Egress::Loopback,
            state_file: None,
        }
    }
}

/// The base URLs of a running lab: what `ferry lab` prints as one JSON line.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LabUrls {
    /// OrbNET base, e.g. `http://127.0.0.1:PORT/orbnet/api/v1`.
    pub orbnet: String,
    /// tunnelbyte base, e.g. `http://127.0.0.1:PORT/tunnelbyte/v1`.
    pub tunnelbyte: String,
    /// NeoSC base, e.g. `http://127.0.0.1:PORT/neosc/api`.
    pub neosc: String,
    /// Control API base, e.g. `http://127.0.0.1:PORT/_lab`.
    pub control: String,
}

impl LabUrls {
    fn for_addr(addr: SocketAddr) -> Self {
        let base = format!("http://{addr}");
        Self {
            orbnet: format!("{base}/orbnet/api/v1"),
            tunnelbyte: format!("{base}/tunnelbyte/v1"),
            neosc: format!("{base}/neosc/api"),
            control: format!("{base}/_lab"),
        }
    }
}

/// Why the lab could not start.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The HTTP or UDP port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The WireGuard exit node could not start.
    #[error("cannot start the exit node: {0}")]
    Exit(String),
    /// The state file exists but cannot be read or parsed.
    #[error("cannot restore lab state from {path}: {reason}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// A running lab. Dropping it stops the server.
pub struct Lab {
    ctx: Arc<LabCtx>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab").field("urls", &self.ctx.urls).finish()
    }
}

/// Marks a connection to be closed without an answer (fault `drop`).
#[derive(Clone, Default)]
struct DropSignal(Arc<Notify>);

impl Lab {
    /// Binds the ports, restores state if asked, and starts serving.
    pub async fn start(config: LabConfig) -> Result<Self, LabError> {
        let exit_addr = SocketAddr::new(config.listen.ip(), 0);
        let key = crate::exit_key::generate();
        let egress = match config.egress {
            Egress::Loopback => ferry_tunnel::exit::Egress::Loopback,
            Egress::Any => ferry_tunnel::exit::Egress::Any,
        };
        let node = ferry_tunnel::exit::ExitNode::bind(exit_addr, key.private.into(), egress)
            .await
            .map_err(|e| LabError::Exit(e.to_string()))?;
        let exit: Arc<dyn ExitPeers> = Arc::new(node);
        Self::start_with_exit(config, exit).await
    }

    /// Like [`Lab::start`] with an exit node that holds its UDP port but carries no traffic.
    pub async fn start_without_data_plane(config: LabConfig) -> Result<Self, LabError> {
        let exit_addr = SocketAddr::new(config.listen.ip(), 0);
        let key = crate::exit_key::generate();
        let exit: Arc<dyn ExitPeers> =
            Arc::new(UdpOnlyExit::bind(exit_addr, key.public).map_err(|source| {
                LabError::Bind {
                    addr: exit_addr,
                    source,
                }
            })?);
        Self::start_with_exit(config, exit).await
    }

    /// Like [`Lab::start`], with a given exit node (the real data plane or a stand-in).
    pub async fn start_with_exit(
        config: LabConfig,
        exit: Arc<dyn ExitPeers>,
    ) -> Result<Self, LabError> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| LabError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| LabError::Bind {
            addr: config.listen,
            source,
        })?;
        let restored = match &config.state_file {
            Some(path) if path.exists() => Some(load_state(path)?),
            _ => None,
        };
        let (clock, orb, tb, neo) = match restored {
            Some(s) => (
                LabClock::with_offset_ms(s.clock_offset_ms),
                s.orbnet,
                s.tunnelbyte,
                s.neosc,
            ),
            None => (
                LabClock::new(),
                orbnet::OrbState::seeded(),
                tunnelbyte::TbState::seeded(),
                neosc::NeoState::seeded(),
            ),
        };
        let ctx = Arc::new(LabCtx {
            clock,
            faults: Faults::default(),
            requests: RequestLog::default(),
            orbnet: Mutex::new(orb),
            tunnelbyte: Mutex::new(tb),
            neosc: Mutex::new(neo),
            exit,
            urls: LabUrls::for_addr(addr),
            state_file: config.state_file.clone(),
        });
        let app = router(ctx.clone());
        let (tx, rx) = oneshot::channel();
        let ticker_ctx = ctx.clone();
        let task = tokio::spawn(async move {
            let ticker = tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                loop {
                    every.tick().await;
                    ticker_ctx.tick_all();
                }
            });
            serve(listener, app, rx).await;
            ticker.abort();
        });
        tracing::info!(%addr, "lab listening");
        Ok(Self {
            ctx,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The base URLs this lab serves.
    pub fn urls(&self) -> &LabUrls {
        &self.ctx.urls
    }

    /// The shared state, for in-process use (the demo mode).
    pub fn ctx(&self) -> &Arc<LabCtx> {
        &self.ctx
    }

    /// Stops serving and saves state.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.ctx.save();
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop();
    }
}

fn load_state(path: &std::path::Path) -> Result<PersistedState, LabError> {
    let text = std::fs::read_to_string(path).map_err(|e| LabError::State {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| LabError::State {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// The whole lab as one router (exposed for in-process benchmarks).
pub fn router(ctx: Arc<LabCtx>) -> Router {
    Router::new()
        .nest("/orbnet/api/v1", orbnet::router())
        .nest("/tunnelbyte/v1", tunnelbyte::router())
        .nest("/neosc/api", neosc::router())
        .nest("/_lab", control::router())
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            lab_middleware,
        ))
        .with_state(ctx)
}

async fn serve(listener: TcpListener, app: Router, mut stop: oneshot::Receiver<()>) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let signal = DropSignal::default();
            let sig = signal.clone();
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(sig.clone());
                    // The client address, for per-IP rate limits (tunnelbyte's public endpoints).
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    let app = app.clone();
                    async move {
                        use tower::ServiceExt;
                        app.oneshot(req.map(Body::new)).await
                    }
                });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = signal.0.notified() => {
                    tracing::debug!("fault: connection dropped without an answer");
                }
            }
        });
    }
}

async fn lab_middleware(State(ctx): State<Arc<LabCtx>>, req: Request, next: Next) -> Response {
    ctx.tick_all();
    let (parts, body) = req.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_REQUEST_BODY)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            let value = if is_secret_header(k.as_str()) {
                "<redacted>".to_owned()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            };
            (k.as_str().to_owned(), value)
        })
        .collect();
    if !path.starts_with("/_lab/requests") {
        ctx.requests.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: parts.uri.query().map(str::to_owned),
            headers,
            body: serde_json::from_slice(&bytes).ok().map(|mut v| {
                crate::reqlog::redact_body(&mut v);
                v
            }),
            at_ms: ctx.clock.now_ms(),
        });
    }
    let signal = parts.extensions.get::<DropSignal>().cloned();
    let fault = if path.starts_with("/_lab") {
        None
    } else {
        ctx.faults.take(method.as_str(), &path)
    };
    let req = Request::from_parts(parts, Body::from(bytes));

    if let Some(rule) = fault.as_ref().filter(|r| !r.after) {
        return apply_fault(rule, signal).await;
    }
    let response = next.run(req).await;
    if method != Method::GET {
        ctx.save();
    }
    match fault {
        Some(rule) => apply_fault(&rule, signal).await,
        None => response,
    }
}

async fn apply_fault(rule: &FaultRule, signal: Option<DropSignal>) -> Response {
    if rule.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(rule.delay_ms)).await;
    }
    if rule.drop {
        if let Some(sig) = signal {
            sig.0.notify_one();
            std::future::pending::<()>().await;
        }
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let status = rule
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, rule.body_bytes()).into_response();
    let content_type = rule.content_type.as_deref().unwrap_or("application/json");
    if let Ok(v) = HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, v);
    }
    for (k, v) in &rule.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            response.headers_mut().insert(k, v);
        }
    }
    response
}
