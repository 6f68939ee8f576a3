//! `ferry budget set|show|clear`: spend caps per session, per local day and per local calendar
//! month, kept in the store's settings (the same data dir as the history). OrbNET caps are in
//! credits; tunnelbyte caps (`--*-eur`) are amounts in the service's `cost_currency` (EUR in
//! tunnelbyte v1), kept as integer millicents. `ferry connect` and the desktop app honour them.

use ferry_core::app::{load_budget, save_budget};
use ferry_core::meter::caps::{check_credits, format_money, parse_money, Budget};
use serde_json::json;

use super::context::{print_json, Common, Context};

/// Arguments of `ferry budget`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: BudgetAction,
}

/// `ferry budget` actions.
#[derive(clap::Subcommand, Debug)]
pub enum BudgetAction {
    /// Set caps (the ones given; the others are kept).
    Set(SetArgs),
    /// Show the caps.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Remove every cap.
    Clear {
        #[command(flatten)]
        common: Common,
    },
}

/// Arguments of `ferry budget set`.
#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// OrbNET credits per session.
    #[arg(long, value_name = "N", value_parser = credits)]
    pub session_credits: Option<f64>,
    /// OrbNET credits per local day (resets at local midnight).
    #[arg(long, value_name = "N", value_parser = credits)]
    pub day_credits: Option<f64>,
    /// OrbNET credits per local calendar month (resets on the 1st).
    #[arg(long, value_name = "N", value_parser = credits)]
    pub month_credits: Option<f64>,
    /// tunnelbyte money per session, in the service's currency (its cost_currency; EUR in v1).
    #[arg(long, value_name = "X", value_parser = money)]
    pub session_eur: Option<u64>,
    /// tunnelbyte money per local day, in the service's currency.
    #[arg(long, value_name = "X", value_parser = money)]
    pub day_eur: Option<u64>,
    /// tunnelbyte money per local calendar month, in the service's currency.
    #[arg(long, value_name = "X", value_parser = money)]
    pub month_eur: Option<u64>,
    #[command(flatten)]
    pub common: Common,
}

/// Parses a credits amount (positive).
pub fn credits(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    check_credits(v).map_err(|e| e.to_string())
}

/// Parses an amount of the service's currency to millicents.
pub fn money(s: &str) -> Result<u64, String> {
    parse_money(s).map_err(|e| e.to_string())
}

/// Runs `ferry budget`.
pub async fn run(args: Args) -> anyhow::Result<u8> {
    match args.action {
        BudgetAction::Set(a) => {
            let ctx = Context::new(&a.common, None)?;
            let store = ctx.store().await?;
            let given = Budget {
                session_credits: a.session_credits,
                day_credits: a.day_credits,
                month_credits: a.month_credits,
                session_millicents: a.session_eur,
                day_millicents: a.day_eur,
                month_millicents: a.month_eur,
            };
            if given.is_empty() {
                anyhow::bail!("give at least one cap, e.g. `ferry budget set --day-credits 50`");
            }
            let mut budget = load_budget(&store).await?;
            budget.merge(&given);
            save_budget(&store, &budget).await?;
            print_human(&budget);
            Ok(0)
        }
        BudgetAction::Show { json, common } => {
            let ctx = Context::new(&common, None)?;
            let store = ctx.store().await?;
            let budget = load_budget(&store).await?;
            if json {
                print_json(&json!({
                    "orbnet": {
                        "unit": "credits",
                        "session": budget.session_credits,
                        "day": budget.day_credits,
                        "month": budget.month_credits,
                    },
                    "tunnelbyte": {
                        "unit": "millicents of the service's cost_currency",
                        "session_millicents": budget.session_millicents,
                        "day_millicents": budget.day_millicents,
                        "month_millicents": budget.month_millicents,
                    },
                }));
            } else {
                print_human(&budget);
            }
            Ok(0)
        }
        BudgetAction::Clear { common } => {
            let ctx = Context::new(&common, None)?;
            let store = ctx.store().await?;
            save_budget(&store, &Budget::default()).await?;
            println!("No caps set.");
            Ok(0)
        }
    }
}

fn print_human(b: &Budget) {
    if b.is_empty() {
        println!("No caps set.");
        return;
    }
    let credits = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v} credits"));
    let money = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| format_money(v, None));
    println!("{:<12} {:>22} {:>28}", "cap", "OrbNET", "tunnelbyte");
    for (name, c, m) in [
        ("session", b.session_credits, b.session_millicents),
        ("day", b.day_credits, b.day_millicents),
        ("month", b.month_credits, b.month_millicents),
    ] {
        println!("{name:<12} {:>22} {:>28}", credits(c), money(m));
    }
}
