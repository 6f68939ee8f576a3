//! `ferry history`: the local session history, and its CSV export.

use std::path::PathBuf;

use chrono::Utc;
use ferry_core::services::tunnelbyte::format_cost;
use ferry_core::services::ServiceKind;
use ferry_core::store::HistoryQuery;
use ferry_core::timefmt::format_rfc3339;
use serde_json::json;

use super::context::{human_bytes, human_secs, print_json, Common, Context};

/// Arguments of `ferry history`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Export instead of listing.
    #[command(subcommand)]
    pub action: Option<HistoryAction>,
    /// Rows to show (newest first).
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Only this service.
    #[arg(long)]
    pub service: Option<ServiceKind>,
    /// Also show totals per day and per service.
    #[arg(long)]
    pub totals: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: Common,
}

/// `ferry history` actions.
#[derive(clap::Subcommand, Debug)]
pub enum HistoryAction {
    /// Write the whole history to a CSV file (mode 0600).
    Export {
        /// Output file.
        #[arg(long, value_name = "FILE")]
        csv: PathBuf,
    },
}

/// Runs `ferry history`.
pub async fn run(args: Args) -> anyhow::Result<u8> {
    let ctx = Context::new(&args.common, args.service)?;
    let store = ctx.store().await?;
    if let Some(HistoryAction::Export { csv }) = &args.action {
        let n = store.export_csv_file(csv).await?;
        if args.json {
            print_json(&json!({ "file": csv, "rows": n }));
        } else {
            println!("Wrote {n} session(s) to {}", csv.display());
        }
        return Ok(0);
    }
    let rows = store
        .history(&HistoryQuery {
            limit: args.limit.max(1),
            offset: 0,
            service: args.service,
        })
        .await?;
    let (per_service, per_day) = if args.totals || args.json {
        (
            Some(store.totals_per_service().await?),
            Some(store.totals_per_day().await?),
        )
    } else {
        (None, None)
    };
    if args.json {
        print_json(&json!({
            "sessions": rows,
            "totals_per_service": per_service,
            "totals_per_day": per_day,
        }));
        return Ok(0);
    }
    if rows.is_empty() {
        println!("No sessions yet.");
        return Ok(0);
    }
    let now = Utc::now();
    println!(
        "{:<20} {:<10} {:<10} {:>10} {:<16} {:>12} {:>10}",
        "STARTED", "SERVICE", "WHERE", "DURATION", "END", "CREDITS/COST", "DATA"
    );
    for r in &rows {
        let spend = match (r.credits_used, r.cost_millicents) {
            (Some(c), _) => format!("{c:.2} cr"),
            (None, Some(m)) => format_cost(m, r.cost_currency.as_deref()),
            _ => "-".into(),
        };
        println!(
            "{:<20} {:<10} {:<10} {:>10} {:<16} {:>12} {:>10}",
            format_rfc3339(r.started_at),
            r.service,
            r.location.as_deref().unwrap_or("-"),
            r.connected_secs(now).map(human_secs).unwrap_or("-".into()),
            r.end_reason
                .as_ref()
                .map(|e| e.as_str().to_string())
                .unwrap_or_else(|| r.state.as_str().to_string()),
            spend,
            human_bytes(r.bytes_in + r.bytes_out)
        );
    }
    if let Some(t) = per_service {
        println!();
        println!("Totals:");
        for s in t {
            println!(
                "  {:<10} {} session(s), {}, {:.2} credits, {}, {}",
                s.service,
                s.sessions,
                human_secs(s.connected_secs),
                s.credits_used,
                format_cost(s.cost_millicents, None),
                human_bytes(s.bytes_in + s.bytes_out)
            );
        }
    }
    Ok(0)
}
