//! `ferry workspaces` and `ferry sessions`: NeoSC workspaces (list, launch, stop) and workspace
//! sessions (list, disconnect). Every session seen is remembered in the history store.

use chrono::Utc;
use ferry_core::services::neosc::WorkspaceSession;
use ferry_core::store::{Store, WorkspaceSessionSeen};
use ferry_core::timefmt::format_rfc3339;
use serde_json::json;

use super::context::{human_secs, print_json, Common, Context};
use ferry_core::services::ServiceKind;

/// Arguments of `ferry workspaces`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to do (default: list).
    #[command(subcommand)]
    pub action: Option<WorkspaceAction>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub common: Common,
}

/// `ferry workspaces` actions.
#[derive(clap::Subcommand, Debug)]
pub enum WorkspaceAction {
    /// Launch a workspace (creates an active session).
    Launch {
        /// Workspace id, e.g. ws-linux-desktop.
        id: String,
    },
    /// Stop a workspace (terminates your active session on it).
    Stop {
        /// Workspace id.
        id: String,
    },
}

/// Arguments of `ferry sessions`.
#[derive(clap::Args, Debug)]
pub struct SessionsArgs {
    /// What to do (default: list).
    #[command(subcommand)]
    pub action: Option<SessionAction>,
    /// Only active sessions.
    #[arg(long)]
    pub active: bool,
    /// Keep watching active sessions and print each start and end (one JSON object per line
    /// with --json) until interrupted.
    #[arg(long, conflicts_with = "active")]
    pub watch: bool,
    /// Seconds between refreshes with --watch.
    #[arg(long, default_value_t = 30, value_name = "SECS", requires = "watch")]
    pub interval: u64,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub common: Common,
}

/// `ferry sessions` actions.
#[derive(clap::Subcommand, Debug)]
pub enum SessionAction {
    /// Disconnect one of your sessions.
    Disconnect {
        /// Session id.
        id: String,
    },
}

fn seen(s: &WorkspaceSession, launched_here: bool) -> WorkspaceSessionSeen {
    WorkspaceSessionSeen {
        id: s.id.clone(),
        account: (!s.user_email.is_empty()).then(|| s.user_email.clone()),
        workspace_id: s.workspace_id.clone(),
        workspace_name: (!s.workspace_name.is_empty()).then(|| s.workspace_name.clone()),
        workspace_type: (!s.workspace_type.is_empty()).then(|| s.workspace_type.clone()),
        status: s.status.clone(),
        started_at: s.started_at,
        ended_at: s.ended_at,
        launched_here,
    }
}

async fn remember(store: &Store, sessions: &[WorkspaceSession]) {
    let now = Utc::now();
    for s in sessions {
        if let Err(e) = store.upsert_workspace_session(&seen(s, false), now).await {
            tracing::warn!(error = %e, "could not record a workspace session");
        }
    }
}

/// Runs `ferry workspaces`.
pub async fn run(args: Args) -> anyhow::Result<u8> {
    let ctx = Context::new(&args.common, Some(ServiceKind::Neosc))?;
    let client = ctx.neosc().await?;
    match args.action {
        None => {
            let list = client.workspaces().await?;
            if args.json {
                print_json(&serde_json::to_value(&list)?);
            } else {
                println!(
                    "{:<24} {:<26} {:<8} {:<12} NETBIRD",
                    "ID", "NAME", "TYPE", "STATUS"
                );
                for w in &list {
                    println!(
                        "{:<24} {:<26} {:<8} {:<12} {}",
                        w.id,
                        w.name,
                        w.kind,
                        w.status,
                        if w.requires_netbird { "required" } else { "-" }
                    );
                }
            }
        }
        Some(WorkspaceAction::Launch { id }) => {
            let launched = client.launch(&id).await?;
            let store = ctx.store().await?;
            // Record it as ours, so crash recovery may disconnect it later.
            let record = WorkspaceSessionSeen {
                id: launched.session_id.clone(),
                account: None,
                workspace_id: id.clone(),
                workspace_name: launched.workspace.as_ref().map(|w| w.name.clone()),
                workspace_type: launched.workspace.as_ref().map(|w| w.kind.clone()),
                status: "active".into(),
                started_at: Some(Utc::now()),
                ended_at: None,
                launched_here: true,
            };
            store.upsert_workspace_session(&record, Utc::now()).await?;
            if args.json {
                print_json(&serde_json::to_value(&launched)?);
            } else {
                println!("Launched {id}: session {}", launched.session_id);
                if let Some(u) = launched.stream_url.as_deref().filter(|u| !u.is_empty()) {
                    println!("  viewer  {u}");
                }
                if !launched.tunnel_status.is_empty() {
                    println!(
                        "  tunnel  {} (as reported by NeoSC)",
                        launched.tunnel_status
                    );
                }
            }
        }
        Some(WorkspaceAction::Stop { id }) => {
            let answer = client.stop(&id).await?;
            if args.json {
                print_json(&json!({ "workspace_id": id, "message": answer.message }));
            } else {
                println!("Stopped {id}: {}", answer.message);
            }
        }
    }
    Ok(0)
}

/// Runs `ferry sessions`.
pub async fn sessions(args: SessionsArgs) -> anyhow::Result<u8> {
    let ctx = Context::new(&args.common, Some(ServiceKind::Neosc))?;
    let client = ctx.neosc().await?;
    if args.watch && args.action.is_none() {
        return watch(ctx, client, args.interval, args.json).await;
    }
    match args.action {
        None => {
            let list = if args.active {
                client.active_sessions().await?
            } else {
                client.sessions().await?
            };
            if let Ok(store) = ctx.store().await {
                remember(&store, &list).await;
            }
            if args.json {
                print_json(&serde_json::to_value(&list)?);
            } else if list.is_empty() {
                println!("No {}sessions.", if args.active { "active " } else { "" });
            } else {
                let now = Utc::now();
                println!(
                    "{:<38} {:<22} {:<13} {:<21} DURATION",
                    "ID", "WORKSPACE", "STATUS", "STARTED"
                );
                for s in &list {
                    let dur = s
                        .started_at
                        .map(|st| {
                            let end = s.ended_at.unwrap_or(now);
                            human_secs(u64::try_from((end - st).num_seconds()).unwrap_or(0))
                        })
                        .unwrap_or_default();
                    println!(
                        "{:<38} {:<22} {:<13} {:<21} {}",
                        s.id,
                        if s.workspace_name.is_empty() {
                            &s.workspace_id
                        } else {
                            &s.workspace_name
                        },
                        s.status,
                        s.started_at.map(format_rfc3339).unwrap_or_default(),
                        dur
                    );
                }
            }
        }
        Some(SessionAction::Disconnect { id }) => {
            let answer = client.disconnect(&id).await?;
            if let Ok(store) = ctx.store().await {
                if let Ok(s) = client.session(&id).await {
                    remember(&store, std::slice::from_ref(&s)).await;
                }
            }
            if args.json {
                print_json(&json!({ "session_id": id, "message": answer.message }));
            } else {
                println!("Disconnected {id}: {}", answer.message);
            }
        }
    }
    Ok(0)
}

/// `ferry sessions --watch`: the workspace watcher's events until SIGINT or SIGTERM.
async fn watch(
    ctx: Context,
    client: ferry_core::services::neosc::NeoscClient,
    interval: u64,
    json: bool,
) -> anyhow::Result<u8> {
    use ferry_core::workspaces::{WatchConfig, WorkspaceEvent, WorkspaceWatcher};
    use tokio::signal::unix::{signal, SignalKind};
    let store = ctx.store().await.ok();
    let config = WatchConfig {
        interval: std::time::Duration::from_secs(interval.max(1)),
        ..WatchConfig::default()
    };
    let (watcher, mut events) = WorkspaceWatcher::spawn(
        std::sync::Arc::new(client),
        store,
        ferry_core::clock::SystemClock::shared(),
        config,
    );
    let mut term = signal(SignalKind::terminate())?;
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        };
        if json {
            print_json(&serde_json::to_value(&ev)?);
            continue;
        }
        match ev {
            WorkspaceEvent::Started { session } => println!(
                "started  {} {} at {}",
                session.id,
                session.workspace_id,
                session.started_at.map(format_rfc3339).unwrap_or_default()
            ),
            WorkspaceEvent::Ended { session } => println!(
                "ended    {} {} ({}) at {}",
                session.id,
                session.workspace_id,
                session.status,
                session.ended_at.map(format_rfc3339).unwrap_or_default()
            ),
            WorkspaceEvent::RefreshFailed {
                message,
                retry_in_secs,
                ..
            } => eprintln!("refresh failed: {message}; retrying in {retry_in_secs} s"),
            WorkspaceEvent::Recovered => eprintln!("refreshing works again"),
        }
    }
    watcher.stop().await;
    Ok(0)
}
