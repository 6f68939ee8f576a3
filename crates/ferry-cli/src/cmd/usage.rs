//! `ferry usage`: OrbNET credits, tunnelbyte quota windows and resets, NeoSC active sessions;
//! with `--by day|region`, what the local history spent per day or per region instead (no
//! network), with measured rates, the cheapest region and this month's projection.

use chrono::Utc;
use ferry_core::app::insight;
use ferry_core::services::orbnet::{codes, Protocol};
use ferry_core::services::tunnelbyte::{format_cost, Usage};
use ferry_core::services::{ApiError, ServiceKind};
use ferry_core::store::HistoryQuery;
use ferry_core::timefmt::format_rfc3339;
use serde_json::{json, Value};

use super::context::{human_bytes, human_secs, print_json, Common, Context};

/// Arguments of `ferry usage`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this service.
    #[arg(long)]
    pub service: Option<ServiceKind>,
    /// Spend from the local history per local day or per region, instead of the accounts.
    #[arg(long, value_enum)]
    pub by: Option<By>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: Common,
}

/// How `ferry usage --by` groups the history.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// Per local day (sessions count on the day they started).
    Day,
    /// Per service and region, with measured rates.
    Region,
}

/// Runs `ferry usage`.
pub async fn run(args: Args) -> anyhow::Result<u8> {
    let ctx = Context::new(&args.common, args.service)?;
    if let Some(by) = args.by {
        return spend(&ctx, by, args.service, args.json).await;
    }
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

/// Rows of the whole history (the store's page size limit).
const HISTORY_ROWS: u32 = 10_000;

async fn spend(
    ctx: &Context,
    by: By,
    service: Option<ServiceKind>,
    json_out: bool,
) -> anyhow::Result<u8> {
    let store = ctx.store().await?;
    let records = store
        .history(&HistoryQuery {
            limit: HISTORY_ROWS,
            offset: 0,
            service,
        })
        .await?;
    let view = insight::insight(&records, Utc::now(), &chrono::Local);
    let rows = match by {
        By::Day => &view.by_day,
        By::Region => &view.by_region,
    };
    if json_out {
        print_json(&json!({
            "by": match by { By::Day => "day", By::Region => "region" },
            "rows": rows,
            "cheapest": view.cheapest,
            "month": view.month,
        }));
        return Ok(0);
    }
    if rows.is_empty() {
        println!("No sessions in the history yet.");
        return Ok(0);
    }
    let money = |mc: u64, cur: Option<&str>| format_cost(mc, cur);
    match by {
        By::Day => {
            println!(
                "{:<10}  {:>8}  {:>9}  {:>10}  {:>10}  {:>10}",
                "day", "sessions", "time", "credits", "cost", "traffic"
            );
            for r in rows {
                println!(
                    "{:<10}  {:>8}  {:>9}  {:>10.2}  {:>10}  {:>10}",
                    r.label,
                    r.sessions,
                    human_secs(r.duration_s),
                    r.credits,
                    money(r.cost_millicents, r.currency.as_deref()),
                    human_bytes(r.bytes)
                );
            }
        }
        By::Region => {
            println!(
                "{:<11} {:<16} {:>8}  {:>9}  {:>10}  {:>10}  {:>10}  rate",
                "service", "region", "sessions", "time", "credits", "cost", "traffic"
            );
            for r in rows {
                let rate = match (
                    r.credits_per_minute,
                    r.millicents_per_gib,
                    r.millicents_per_hour,
                ) {
                    (Some(c), _, _) => format!("{c:.2} credits/min"),
                    (None, Some(g), _) => {
                        format!("{}/GiB", money(g.round() as u64, r.currency.as_deref()))
                    }
                    (None, None, Some(h)) => {
                        format!("{}/h", money(h.round() as u64, r.currency.as_deref()))
                    }
                    _ => "not measured".into(),
                };
                let mark = if view.cheapest.contains(&r.key) {
                    "  (cheapest)"
                } else {
                    ""
                };
                println!(
                    "{:<11} {:<16} {:>8}  {:>9}  {:>10.2}  {:>10}  {:>10}  {rate}{mark}",
                    r.service.map(|s| s.as_str()).unwrap_or(""),
                    r.label,
                    r.sessions,
                    human_secs(r.duration_s),
                    r.credits,
                    money(r.cost_millicents, r.currency.as_deref()),
                    human_bytes(r.bytes)
                );
            }
        }
    }
    for m in &view.month {
        match m.service {
            ServiceKind::Orbnet => println!(
                "This month ({}): {:.2} credits so far, about {:.0} at this pace.",
                m.month, m.spent_credits, m.projected_credits
            ),
            _ => println!(
                "This month ({}, {}): {} so far, about {} at this pace.",
                m.month,
                m.service,
                money(m.spent_millicents, m.currency.as_deref()),
                money(m.projected_millicents, m.currency.as_deref())
            ),
        }
    }
    Ok(0)
}
