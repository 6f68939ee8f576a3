//! `ferry usage`: OrbNET credits, tunnelbyte quota windows and resets, NeoSC active sessions.

use ferry_core::services::orbnet::{codes, Protocol};
use ferry_core::services::tunnelbyte::Usage;
use ferry_core::services::{ApiError, ServiceKind};
use ferry_core::timefmt::format_rfc3339;
use serde_json::{json, Value};

use super::context::{human_bytes, human_secs, print_json, Common, Context};

/// Arguments of `ferry usage`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this service.
    #[arg(long)]
    pub service: Option<ServiceKind>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `ferry usage`.
pub async fn run(args: Args) -> anyhow::Result<u8> {
    let ctx = Context::new(&args.common, args.service)?;
    let services: Vec<ServiceKind> = match args.service {
        Some(s) => vec![s],
        None => {
            let mut v = Vec::new();
            for s in ServiceKind::ALL {
                if ctx.token(s).await?.is_some() {
                    v.push(s);
                }
            }
            if v.is_empty() {
                anyhow::bail!("not signed in to any service: run `ferry login SERVICE`");
            }
            v
        }
    };
    let explicit = args.service.is_some();
    let mut out = serde_json::Map::new();
    let mut failures = 0;
    for s in &services {
        let r = match s {
            ServiceKind::Orbnet => orbnet(&ctx, args.json).await,
            ServiceKind::Tunnelbyte => tunnelbyte(&ctx, args.json).await,
            ServiceKind::Neosc => neosc(&ctx, args.json).await,
        };
        match r {
            Ok(v) => {
                out.insert(s.to_string(), v);
            }
            Err(e) if explicit => return Err(e),
            Err(e) => {
                failures += 1;
                if args.json {
                    out.insert(s.to_string(), json!({ "error": format!("{e:#}") }));
                } else {
                    eprintln!("{s}: {e:#}");
                }
            }
        }
    }
    if args.json {
        print_json(&Value::Object(out));
    }
    Ok(if failures == services.len() { 1 } else { 0 })
}

async fn orbnet(ctx: &Context, json_out: bool) -> anyhow::Result<Value> {
    let client = ctx.orbnet().await?;
    let (available, rate, hours) = match client.authorize(None, Protocol::Wireguard).await {
        Ok(a) => (
            a.credits.available,
            a.credits.consumption_rate,
            a.credits.estimated_hours,
        ),
        Err(e) if e.has_code(codes::INSUFFICIENT_CREDITS) => (0.0, 0.0, 0.0),
        Err(e) => return Err(e.into()),
    };
    let active = client.active_session().await?;
    let minutes_left = if rate > 0.0 { available / rate } else { 0.0 };
    if !json_out {
        println!("OrbNET");
        println!("  credits      {available:.2}");
        if rate > 0.0 {
            println!(
                "  rate         {rate} credits/min (about {} left)",
                human_secs((minutes_left * 60.0) as u64)
            );
        } else if available <= 0.0 {
            println!("  no credits left: top up to connect");
        }
        match &active.session {
            Some(s) if active.has_active_session => println!(
                "  active       session {} on server {}",
                s.session_id,
                s.server_id.map(|i| i.to_string()).unwrap_or_default()
            ),
            _ => println!("  active       none"),
        }
    }
    Ok(json!({
        "credits": available,
        "consumption_rate": rate,
        "estimated_hours": hours,
        "minutes_left": minutes_left,
        "active_session": active.session.filter(|_| active.has_active_session),
    }))
}

fn window(
    used: u64,
    limit: u64,
    resets: Option<chrono::DateTime<chrono::Utc>>,
    bytes: bool,
) -> String {
    let fmt = |v: u64| if bytes { human_bytes(v) } else { human_secs(v) };
    let mut s = if limit == 0 {
        format!("{} used, no cap", fmt(used))
    } else {
        let pct = used as f64 * 100.0 / limit as f64;
        format!("{} of {} ({pct:.0} %)", fmt(used), fmt(limit))
    };
    if let Some(r) = resets {
        s.push_str(&format!(", resets {}", format_rfc3339(r)));
    }
    s
}

async fn tunnelbyte(ctx: &Context, json_out: bool) -> anyhow::Result<Value> {
    let u: Usage = ctx.tunnelbyte().await?.usage().await?;
    if !json_out {
        println!("tunnelbyte ({} tier)", u.tier);
        println!(
            "  data         {}",
            window(u.bytes_used, u.bytes_limit, u.bytes_window_resets_at, true)
        );
        println!(
            "  time         {}",
            window(
                u.session_seconds,
                u.session_seconds_limit,
                u.seconds_window_resets_at,
                false
            )
        );
        if let Some(r) = &u.default_region {
            println!("  region       {r} (default)");
        }
    }
    Ok(serde_json::to_value(&u)?)
}

async fn neosc(ctx: &Context, json_out: bool) -> anyhow::Result<Value> {
    let active = ctx
        .neosc()
        .await?
        .active_sessions()
        .await
        .map_err(|e: ApiError| anyhow::Error::from(e))?;
    if !json_out {
        println!("NeoSC");
        println!("  active workspace sessions: {}", active.len());
    }
    Ok(json!({ "active_sessions": active.len() }))
}
