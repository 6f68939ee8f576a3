//! `ferry connect [REGION|SERVER] [--service orbnet|tunnelbyte] [--all] [--proxy ADDR]
//! [--proxy-auth FILE] [--json] [-- CMD ARGS...]`: connects through a service, meters the
//! session live, and disconnects cleanly on SIGINT/SIGTERM or when CMD exits.
//!
//! CMD runs once the tunnel is up, with the proxies in its environment (`ALL_PROXY`,
//! `HTTP(S)_PROXY`) and without any `FERRY_*_TOKEN` variable of ours: the service tokens are
//! never handed to it (nor put in its argv or in logs).
//!
//! Exit codes: 0 clean disconnect, 1 error, 2 credits or quota exhausted or a spend cap reached
//! at start, 3 ended by the server or by depleted credits while running, 4 ended by a spend cap.
//! With CMD: when CMD exits first, its exit status (128 + N when killed by signal N); when the
//! session ends first (1, 2, 3, 4), that code.
//!
//! Without `--proxy`, the proxies listen on 127.0.0.1:1080 and 1081, or on the next free pair
//! of ports when those are taken (the start line names both).

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use ferry_core::app::{launch, AppError, LaunchSpec, Launched, SessionCaps};
use ferry_core::clock::SystemClock;
use ferry_core::meter::credits::CreditsConfig;
use ferry_core::meter::quota::format_cost;
use ferry_core::services::orbnet::OrbnetClient;
use ferry_core::services::ServiceKind;
use ferry_core::session::event::SessionEvent;
use ferry_core::session::machine::{State, TunnelMode};
use ferry_core::session::wg_tunnels::WgTunnels;
use ferry_core::store::Store;
use ferry_tunnel::proxy::{Access, Credentials};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::broadcast::error::RecvError;

use super::context::{human_bytes, human_secs, Common, Context};

/// Arguments of `ferry connect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// An OrbNET server id or name, or a tunnelbyte region code; default: the last choice, or
    /// the first available.
    pub target: Option<String>,
    /// The service: orbnet or tunnelbyte (default: the last one used, else orbnet).
    #[arg(long)]
    pub service: Option<String>,
    /// System mode: route everything through a TUN device (root or CAP_NET_ADMIN).
    #[arg(long)]
    pub all: bool,
    /// System mode through the helper: let the local network (printers, file shares; RFC 1918,
    /// link-local and ULA addresses, never DNS) through the kill switch.
    #[arg(long, requires = "all")]
    pub allow_lan: bool,
    /// App mode: where the SOCKS5 proxy listens (an HTTP CONNECT proxy listens on the next port).
    /// A non-loopback address needs --proxy-auth. Default 127.0.0.1:1080, or the next free pair
    /// of ports when taken (an address given here is used as is or fails).
    #[arg(long, value_name = "ADDR")]
    pub proxy: Option<SocketAddr>,
    /// App mode: a file holding `user:password` (not readable by group or others); every client
    /// of the proxies must then authenticate (SOCKS5 username/password, HTTP Basic), and the
    /// proxies may listen on any address. Without it only your UID may use them, on loopback.
    #[arg(long, value_name = "FILE")]
    pub proxy_auth: Option<std::path::PathBuf>,
    /// One JSON event per line on stdout instead of the status line.
    #[arg(long)]
    pub json: bool,
    /// Heartbeat every N seconds instead of min(60, next_deduction) (tests, demos).
    #[arg(long, env = "FERRY_HEARTBEAT_SECS", value_name = "N")]
    pub heartbeat_secs: Option<u64>,
    /// tunnelbyte status poll interval in seconds (default 10).
    #[arg(long, env = "FERRY_STATUS_POLL_SECS", value_name = "N")]
    pub poll_secs: Option<u64>,
    /// OrbNET: end this session before it spends more than N credits (replaces the budget's
    /// session cap; day and month caps still apply).
    #[arg(long, value_name = "N", value_parser = super::budget::credits)]
    pub cap_credits: Option<f64>,
    /// tunnelbyte: end this session before it costs more than X, in the service's currency
    /// (its cost_currency, EUR in v1; the name says eur, the amount is the service's).
    #[arg(long, value_name = "X", value_parser = super::budget::money)]
    pub cap_eur: Option<u64>,
    /// Seconds to wait for the tunnel's first handshake.
    #[arg(long, default_value_t = 15)]
    pub handshake_timeout: u64,
    /// URLs, data dir.
    #[command(flatten)]
    pub common: Common,
    /// A command to run through the tunnel; the session ends when it exits.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Where the SOCKS5 proxy listens unless `--proxy` says otherwise (HTTP on the next port).
const DEFAULT_PROXY: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1080);

const LAST_SERVICE: &str = "connect.last_service";
const LAST_ORBNET: &str = "connect.last_orbnet_server";
const LAST_TUNNELBYTE: &str = "connect.last_tunnelbyte_region";

/// Runs `ferry connect`.
pub async fn run(args: Args) -> anyhow::Result<u8> {
    // Refused before anything starts (no session is created for a proxy that cannot run).
    let proxy = args.proxy.unwrap_or(DEFAULT_PROXY);
    let access = match args.all {
        true => Access::default(),
        false => super::proxy_access(proxy, args.proxy_auth.as_deref())?,
    };
    let service = match args.service.as_deref() {
        Some(s) => Some(
            s.parse::<ServiceKind>()
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        None => None,
    };
    let ctx = Context::new(&args.common, service)?;
    let store = ctx.store().await?;
    let service = match service {
        Some(s) => s,
        None => store
            .setting(LAST_SERVICE)
            .await
            .ok()
            .flatten()
            .and_then(|s| s.parse().ok())
            .unwrap_or(ServiceKind::Orbnet),
    };
    match (service, args.cap_credits, args.cap_eur) {
        (ServiceKind::Orbnet, _, Some(_)) => {
            bail!("--cap-eur is for tunnelbyte; OrbNET sessions take --cap-credits")
        }
        (ServiceKind::Tunnelbyte, Some(_), _) => {
            bail!("--cap-credits is for OrbNET; tunnelbyte sessions take --cap-eur")
        }
        _ => {}
    }
    let out = Output::new(args.json);
    let store = Arc::new(store);
    let target = match service {
        ServiceKind::Orbnet => {
            let client = ctx.orbnet().await?;
            resolve_server(&client, &store, args.target.as_deref())
                .await?
                .map(|id| id.to_string())
        }
        ServiceKind::Tunnelbyte => match args.target.clone() {
            Some(r) => Some(r),
            None => store.setting(LAST_TUNNELBYTE).await.ok().flatten(),
        },
        ServiceKind::Neosc => {
            bail!("NeoSC has no tunnel to connect; use `ferry workspaces` and `ferry sessions`")
        }
    };
    let helper = ferry_core::session::wg_tunnels::HelperLink::default();
    helper.set_allow_lan(args.allow_lan);
    let spec = LaunchSpec {
        service,
        target: target.clone(),
        tunnels: WgTunnels {
            system: args.all,
            proxy,
            any_port_if_taken: args.proxy.is_none(),
            access: access.clone(),
            helper,
        },
        heartbeat: args.heartbeat_secs.map(Duration::from_secs),
        status_poll: args.poll_secs.map(|s| Duration::from_secs(s.max(1))),
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        traffic_every: Duration::from_secs(2),
        warn_minutes: CreditsConfig::default().warn_minutes,
        front_end: "`ferry connect`".into(),
        caps: SessionCaps {
            credits: args.cap_credits,
            millicents: args.cap_eur,
        },
    };
    let launched = match launch(
        ctx.services(),
        store.clone(),
        ctx.data_dir(),
        SystemClock::shared(),
        spec,
    )
    .await
    {
        Ok(l) => l,
        Err(e @ AppError::CapReached { .. }) => {
            eprintln!("ferry: {e}");
            return Ok(2);
        }
        Err(e) => return Err(e.into()),
    };
    let r = &launched.recovered;
    if r.closed > 0 {
        out.notice(&format!(
            "closed {} session(s) left open by an earlier run ({} ended on the server)",
            r.closed, r.ended_on_server
        ));
    }
    let _ = store.set_setting(LAST_SERVICE, service.as_str()).await;
    if let Some(t) = &target {
        let key = match service {
            ServiceKind::Orbnet => LAST_ORBNET,
            _ => LAST_TUNNELBYTE,
        };
        let _ = store.set_setting(key, t).await;
    }
    let credentials = match access {
        Access::Credentials(c) => Some(c),
        Access::Owner(_) => None,
    };
    let child = ChildSpec {
        command: args.command,
        credentials,
    };
    drive(launched, out, child).await
}

/// An OrbNET server from an id or a name; with neither, the last choice (or OrbNET picks).
async fn resolve_server(
    client: &OrbnetClient,
    store: &Store,
    target: Option<&str>,
) -> anyhow::Result<Option<i64>> {
    let Some(t) = target else {
        return Ok(store
            .setting(LAST_ORBNET)
            .await
            .ok()
            .flatten()
            .and_then(|s| s.parse().ok()));
    };
    if let Ok(id) = t.parse::<i64>() {
        return Ok(Some(id));
    }
    let servers = client.servers().await.context("listing OrbNET servers")?;
    let wanted = t.to_ascii_lowercase();
    servers
        .iter()
        .find(|s| {
            s.display_name().to_ascii_lowercase() == wanted
                || s.host_name.to_ascii_lowercase() == wanted
        })
        .map(|s| Some(s.id))
        .ok_or_else(|| {
            let names: Vec<_> = servers
                .iter()
                .map(|s| s.display_name().to_string())
                .collect();
            anyhow::anyhow!("no OrbNET server named {t:?}; known: {}", names.join(", "))
        })
}

/// The command to run through the tunnel and what it is told about the proxies.
struct ChildSpec {
    /// CMD ARGS (empty: none).
    command: Vec<String>,
    /// Credentials to put in the proxy URLs, when the proxies require them.
    credentials: Option<Credentials>,
}

/// Connects, shows events, and disconnects on a signal or when the command exits.
async fn drive(launched: Launched, mut out: Output, spec: ChildSpec) -> anyhow::Result<u8> {
    let Launched {
        handle,
        task,
        lock,
        helper,
        ..
    } = launched;
    let mut events = handle.subscribe();
    let mut state = handle.state();
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    handle.connect();
    let mut child: Option<tokio::process::Child> = None;
    // CMD's exit code, once it exited (before the session ended on its own).
    let mut child_code: Option<u8> = None;
    let mut ended_cause = None;
    let code = loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => {
                    if let SessionEvent::Connected { proxy, http_proxy, .. } = &ev {
                        if !spec.command.is_empty() && child.is_none() && child_code.is_none() {
                            let proxies = (proxy.as_deref(), http_proxy.as_deref());
                            child = Some(spawn_command(&spec, proxies)?);
                        }
                    }
                    if let SessionEvent::Failed { cause, .. } = &ev {
                        ended_cause = Some(cause.clone());
                    }
                    out.event(&ev);
                }
                Err(RecvError::Lagged(n)) => tracing::warn!(n, "status output fell behind"),
                Err(RecvError::Closed) => break 1,
            },
            _ = sigint.recv() => handle.disconnect(),
            _ = sigterm.recv() => handle.disconnect(),
            // `ferry disconnect` from another process: the user's disconnect.
            _ = helper.disconnect_requested() => handle.disconnect(),
            status = wait_child(&mut child) => {
                let (code, text) = match status {
                    Ok(s) => (exit_code_of(s), s.to_string()),
                    Err(e) => (1, e.to_string()),
                };
                out.notice(&format!("command exited ({text}); disconnecting"));
                child = None;
                child_code = Some(code);
                handle.disconnect();
            }
            changed = state.changed() => {
                if changed.is_err() { break 1; }
                let s = state.borrow_and_update().clone();
                match s {
                    State::Disconnected => {
                        // The user's disconnect: the helper (system mode) clears its block
                        // before this process exits.
                        helper.apply(s.network_policy(TunnelMode::System { endpoint: None })).await;
                        break 0;
                    }
                    State::Error { cause } => {
                        // Drain what is already queued (the Failed event) before leaving.
                        while let Ok(ev) = events.try_recv() {
                            if let SessionEvent::Failed { cause, .. } = &ev {
                                ended_cause = Some(cause.clone());
                            }
                            out.event(&ev);
                        }
                        // The Failed event printed it already: say it once.
                        if ended_cause.is_none() {
                            out.error(&cause.to_string());
                        }
                        if helper.is_active().await {
                            helper.keep_blocking();
                            out.notice("system mode: traffic stays blocked until `ferry disconnect`");
                        }
                        break cause.exit_code();
                    }
                    _ => {}
                }
            }
        }
    };
    while let Ok(ev) = events.try_recv() {
        out.event(&ev);
    }
    out.finish();
    if let Some(mut c) = child {
        let _ = c.start_kill();
        let _ = c.wait().await;
    }
    drop(handle);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    drop(lock);
    // CMD exited first: its status is ours (the session then ended because of it).
    Ok(child_code.unwrap_or(code))
}

/// The exit code a shell would report for `status`: the code, or 128 + the signal.
fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signal)) => u8::try_from((128 + signal) & 0xff).unwrap_or(1),
        (None, None) => 1,
    }
}

/// Our service tokens (`FERRY_ORBNET_TOKEN`, …, any `FERRY_*_TOKEN`): never passed to CMD.
fn is_token_var(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_some_and(|n| n.starts_with("FERRY_") && n.ends_with("_TOKEN"))
}

/// Runs CMD with the proxies in its environment: `ALL_PROXY` (SOCKS5, names resolved through
/// the tunnel) and, when the HTTP proxy runs, `HTTP(S)_PROXY`; with credentials, the URLs carry
/// them. Every `FERRY_*_TOKEN` variable is removed from its environment.
fn spawn_command(
    spec: &ChildSpec,
    (socks, http): (Option<&str>, Option<&str>),
) -> anyhow::Result<tokio::process::Child> {
    let (prog, rest) = spec
        .command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("empty command"))?;
    let mut c = tokio::process::Command::new(prog);
    c.args(rest);
    for (name, _) in std::env::vars_os() {
        if is_token_var(&name) {
            c.env_remove(name);
        }
    }
    if let Some(p) = socks {
        let userinfo = spec
            .credentials
            .as_ref()
            .map(|c| {
                format!(
                    "{}:{}@",
                    super::url_userinfo(c.user()),
                    super::url_userinfo(c.password())
                )
            })
            .unwrap_or_default();
        let socks = format!("socks5h://{userinfo}{p}");
        c.env("ALL_PROXY", &socks).env("all_proxy", &socks);
        if let Some(h) = http {
            let http = format!("http://{userinfo}{h}");
            for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
                c.env(k, &http);
            }
        }
    }
    c.spawn().with_context(|| format!("cannot run {prog}"))
}

async fn wait_child(
    child: &mut Option<tokio::process::Child>,
) -> std::io::Result<std::process::ExitStatus> {
    match child {
        Some(c) => c.wait().await,
        None => std::future::pending().await,
    }
}

/// Human status line or JSON lines.
struct Output {
    json: bool,
    tty: bool,
    status: Status,
    line_shown: bool,
}

#[derive(Default)]
struct Status {
    state: String,
    location: String,
    connected_at: Option<std::time::Instant>,
    rx: u64,
    tx: u64,
    credits: Option<(f64, Option<f64>)>,
    cost: Option<String>,
    quota: Vec<String>,
}

impl Output {
    fn new(json: bool) -> Self {
        Self {
            json,
            tty: std::io::stderr().is_terminal(),
            status: Status::default(),
            line_shown: false,
        }
    }

    fn notice(&self, msg: &str) {
        if self.json {
            self.print_json(&SessionEvent::Notice {
                message: msg.to_string(),
            });
        } else {
            eprintln!("ferry: {msg}");
        }
    }

    fn error(&self, msg: &str) {
        if !self.json {
            eprintln!("ferry: {msg}");
        }
    }

    fn print_json(&self, ev: &SessionEvent) {
        match serde_json::to_string(ev) {
            Ok(s) => {
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "{s}");
                let _ = o.flush();
            }
            Err(e) => tracing::warn!(error = %e, "event not serialisable"),
        }
    }

    fn event(&mut self, ev: &SessionEvent) {
        if self.json {
            self.print_json(ev);
            return;
        }
        let st = &mut self.status;
        let mut line: Option<String> = None;
        match ev {
            SessionEvent::State { state } => st.state = state.name().to_string(),
            SessionEvent::Connected {
                service,
                location,
                session_id,
                exit_ip,
                proxy,
                http_proxy,
            } => {
                st.location = location.clone();
                st.connected_at = Some(std::time::Instant::now());
                let mut s = format!("connected via {service} to {location} (session {session_id})");
                if let Some(ip) = exit_ip {
                    s.push_str(&format!(", exit IP {ip}"));
                }
                match (proxy, http_proxy) {
                    (Some(p), Some(h)) => {
                        s.push_str(&format!("; SOCKS5 proxy on {p}, HTTP proxy on {h}"))
                    }
                    (Some(p), None) => s.push_str(&format!("; SOCKS5 proxy on {p}")),
                    (None, _) => s.push_str("; all traffic goes through the tunnel"),
                }
                line = Some(s);
            }
            SessionEvent::Credits {
                credits_remaining,
                minutes_left,
                ..
            } => st.credits = Some((*credits_remaining, *minutes_left)),
            SessionEvent::LowCredits {
                minutes_left,
                threshold_minutes,
            } => {
                line = Some(format!(
                "warning: credits run out in {minutes_left:.1} min (under {threshold_minutes} min)"
            ))
            }
            SessionEvent::Quota(q) => {
                st.cost = q
                    .cost_millicents
                    .map(|m| format_cost(m, q.currency.as_deref()));
                st.quota = [
                    ("data", &q.bytes_window, true),
                    ("time", &q.seconds_window, false),
                ]
                .iter()
                .filter(|(_, w, _)| w.limit > 0)
                .map(|(n, w, bytes)| {
                    let pct = w.fraction().unwrap_or(0.0) * 100.0;
                    if *bytes {
                        format!(
                            "{n} {} of {} ({pct:.0}%)",
                            human_bytes(w.used),
                            human_bytes(w.limit)
                        )
                    } else {
                        format!(
                            "{n} {} of {} ({pct:.0}%)",
                            human_secs(w.used),
                            human_secs(w.limit)
                        )
                    }
                })
                .collect();
            }
            SessionEvent::QuotaWarning {
                window,
                threshold_percent,
                usage,
            } => {
                let resets = usage
                    .resets_at
                    .map(|r| format!("; resets {}", r.format("%Y-%m-%d %H:%M UTC")))
                    .unwrap_or_default();
                line = Some(format!(
                    "warning: {threshold_percent}% of the tunnelbyte {} window used{resets}",
                    match window {
                        ferry_core::meter::quota::Window::Bytes => "data",
                        ferry_core::meter::quota::Window::Seconds => "time",
                    }
                ));
            }
            SessionEvent::Traffic {
                rx_bytes, tx_bytes, ..
            } => {
                st.rx = *rx_bytes;
                st.tx = *tx_bytes;
            }
            SessionEvent::SessionEnded {
                reason,
                billed_secs,
                connected_secs,
                credits_used,
            } => {
                let mut s = format!(
                    "session ended ({reason}) after {}",
                    human_secs(connected_secs.round() as u64)
                );
                if let Some(b) = billed_secs {
                    s.push_str(&format!(", {b} s reported"));
                }
                if let Some(c) = credits_used {
                    s.push_str(&format!(", {c:.2} credits used"));
                }
                line = Some(s);
            }
            // The one line of a failure, like every other error of the CLI.
            SessionEvent::Failed { message, .. } => line = Some(format!("ferry: {message}")),
            SessionEvent::Notice { message } => line = Some(message.clone()),
            SessionEvent::CapWarning { cap, percent, .. } => {
                line = Some(format!("warning: {percent:.0}% of the {cap} is spent"));
            }
            SessionEvent::CapStopNear { cap, .. } => {
                line = Some(format!(
                    "warning: disconnecting at the next check to stay within the {cap}"
                ));
            }
            SessionEvent::Heartbeat { .. } => {}
        }
        if let Some(l) = line {
            self.clear_line();
            eprintln!("{l}");
        }
        self.show_status();
    }

    fn status_text(&self) -> String {
        let st = &self.status;
        let mut parts = vec![st.state.clone()];
        if let Some(t) = st.connected_at {
            parts.push(human_secs(t.elapsed().as_secs()));
            parts.push(format!("↓{} ↑{}", human_bytes(st.rx), human_bytes(st.tx)));
        }
        if let Some((c, m)) = st.credits {
            let mut s = format!("{c:.2} credits");
            if let Some(m) = m {
                s.push_str(&format!(" (~{m:.0} min)"));
            }
            parts.push(s);
        }
        if let Some(c) = &st.cost {
            parts.push(c.clone());
        }
        parts.extend(st.quota.iter().cloned());
        parts.join(" | ")
    }

    fn show_status(&mut self) {
        if self.tty && self.status.connected_at.is_some() {
            eprint!("\r\x1b[K{}", self.status_text());
            let _ = std::io::stderr().flush();
            self.line_shown = true;
        }
    }

    fn clear_line(&mut self) {
        if self.line_shown {
            eprint!("\r\x1b[K");
            self.line_shown = false;
        }
    }

    fn finish(&mut self) {
        self.clear_line();
    }
}
