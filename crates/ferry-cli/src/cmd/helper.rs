//! `ferry status [--json]` and `ferry disconnect`: ask the privileged helper.

use ferry_core::helper::ClientError;
use ferry_helper::proto::{Policy, SessionState};

/// Arguments of `ferry status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `ferry disconnect`.
#[derive(clap::Args, Debug)]
pub struct DisconnectArgs {}

fn refused(e: &ClientError) -> u8 {
    eprintln!("ferry: {e}");
    match e {
        ClientError::NotRunning { .. } => 3,
        _ => 2,
    }
}

/// Runs `ferry status`: state, service, region, and whether the block is on.
pub async fn status(args: StatusArgs) -> anyhow::Result<u8> {
    let helper = match ferry_core::helper::connect().await {
        Ok(h) => h,
        Err(e) => return Ok(refused(&e)),
    };
    let s = match helper.status().await {
        Ok(s) => s,
        Err(e) => return Ok(refused(&e)),
    };
    if args.json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(0);
    }
    let state = match s.state {
        SessionState::Disconnected => "disconnected",
        SessionState::Connecting => "connecting",
        SessionState::Connected => "connected",
        SessionState::Blocked => "blocked (waiting for a tunnel; `ferry disconnect` clears it)",
    };
    println!("state: {state}");
    if let Some(l) = &s.label {
        println!("service: {}", l.service);
        println!("region: {}", l.region);
    }
    if let Some(i) = &s.interface {
        println!("interface: {i}");
    }
    let what = match s.policy {
        Policy::Open => "off",
        Policy::TunnelOnly => "on (only the tunnel)",
        Policy::TunnelEndpointOnly { .. } => "on (everything blocked but the VPN endpoint)",
    };
    println!("block: {}", if s.block { what } else { "off" });
    Ok(0)
}

/// Runs `ferry disconnect`: ends whatever session runs (its client ends it as the user's
/// disconnect) and clears the block.
pub async fn disconnect(_: DisconnectArgs) -> anyhow::Result<u8> {
    let helper = match ferry_core::helper::connect().await {
        Ok(h) => h,
        Err(e) => return Ok(refused(&e)),
    };
    match helper.disconnect_all().await {
        Ok(()) => {
            println!("disconnected; the block is off");
            Ok(0)
        }
        Err(e) => Ok(refused(&e)),
    }
}
