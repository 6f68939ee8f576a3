//! `ferry regions`: OrbNET servers and tunnelbyte regions.

use anyhow::bail;
use ferry_core::services::ServiceKind;
use serde_json::{json, Value};

use super::context::{print_json, Common, Context};

/// Arguments of `ferry regions`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this service (orbnet or tunnelbyte).
    #[arg(long)]
    pub service: Option<ServiceKind>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `ferry regions`.
pub async fn run(args: Args) -> anyhow::Result<u8> {
    if args.service == Some(ServiceKind::Neosc) {
        bail!("NeoSC has workspaces, not regions: try `ferry workspaces`");
    }
    let ctx = Context::new(&args.common, args.service)?;
    let services: Vec<ServiceKind> = match args.service {
        Some(s) => vec![s],
        None => vec![ServiceKind::Orbnet, ServiceKind::Tunnelbyte],
    };
    let explicit = args.service.is_some();
    let mut out = serde_json::Map::new();
    let mut failures = 0;
    for s in services {
        let result: anyhow::Result<Value> = match s {
            ServiceKind::Orbnet => orbnet(&ctx, args.json).await,
            _ => tunnelbyte(&ctx, args.json).await,
        };
        match result {
            Ok(v) => {
                out.insert(s.to_string(), v);
            }
            Err(e) => {
                failures += 1;
                if explicit {
                    return Err(e);
                }
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
    Ok(if failures == 2 { 1 } else { 0 })
}

async fn orbnet(ctx: &Context, json_out: bool) -> anyhow::Result<Value> {
    let servers = ctx.orbnet().await?.servers().await?;
    let visible: Vec<_> = servers.into_iter().filter(|s| !s.hidden).collect();
    if !json_out {
        println!("OrbNET servers ({}):", visible.len());
        println!("  {:>6}  {:<24} {:<18} COUNTRY", "ID", "NAME", "CITY");
        for s in &visible {
            println!(
                "  {:>6}  {:<24} {:<18} {}",
                s.id,
                s.display_name(),
                s.city,
                s.country
            );
        }
    }
    Ok(serde_json::to_value(&visible)?)
}

async fn tunnelbyte(ctx: &Context, json_out: bool) -> anyhow::Result<Value> {
    let regions = ctx.tunnelbyte().await?.regions().await?;
    if !json_out {
        println!("tunnelbyte regions ({}):", regions.len());
        println!("  {:<8} NODES", "CODE");
        for r in &regions {
            println!("  {:<8} {}", r.code, r.node_count);
        }
    }
    Ok(serde_json::to_value(&regions)?)
}
