//! `ferry login` and `ferry logout`: sign in to a service and keep its token in the secret store.

use anyhow::{bail, Context as _};
use ferry_core::secrets::Secret;
use ferry_core::services::orbnet::{LoginOutcome, LoginRequest, OrbnetTokens};
use ferry_core::services::tunnelbyte::read_cli_token;
use ferry_core::services::{ApiError, ServiceKind, StoredToken};
use serde_json::json;

use super::context::{print_json, read_stdin_secret, Common, Context, SecretsMode};

/// Arguments of `ferry login`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The service: orbnet, tunnelbyte or neosc.
    pub service: ServiceKind,
    /// Account email (orbnet, neosc).
    #[arg(long)]
    pub email: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long, conflicts_with_all = ["token_stdin", "import_tunnelbyte_cli"])]
    pub password_stdin: bool,
    /// Read an existing token from the first line of stdin.
    #[arg(long, conflicts_with_all = ["password_stdin", "import_tunnelbyte_cli"])]
    pub token_stdin: bool,
    /// Import the tunnelbyte CLI's token ($XDG_CONFIG_HOME/tunnelbyte/token).
    #[arg(long, conflicts_with_all = ["password_stdin", "token_stdin"])]
    pub import_tunnelbyte_cli: bool,
    /// OrbNET two-factor (TOTP) code.
    #[arg(long, value_name = "CODE")]
    pub totp: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Arguments of `ferry logout`.
#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// The service to sign out of.
    pub service: ServiceKind,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Settings key of this device's OrbNET `device_id` (a UUID, not a secret).
pub const ORBNET_DEVICE_ID: &str = "orbnet.device_id";

/// Runs `ferry login`.
pub async fn run(args: Args) -> anyhow::Result<u8> {
    let ctx = Context::new(&args.common, Some(args.service))?;
    if args.import_tunnelbyte_cli && args.service != ServiceKind::Tunnelbyte {
        bail!("--import-tunnelbyte-cli only applies to `ferry login tunnelbyte`");
    }
    let (account, stored, detail) = match args.service {
        ServiceKind::Orbnet => login_orbnet(&ctx, &args).await?,
        ServiceKind::Tunnelbyte => login_tunnelbyte(&ctx, &args).await?,
        ServiceKind::Neosc => login_neosc(&ctx, &args).await?,
    };
    // Read back before saying it is kept: a store that takes the token and loses it (a session
    // keyring that dies with this process) is an error, not a sign-in.
    ferry_core::secrets::keep(&**ctx.secrets(), args.service, stored)
        .await
        .map_err(|e| ctx.secrets_error(e))
        .with_context(|| format!("keeping the {} token", args.service))?;
    let store_name = ctx.secrets().name();
    let persistent = ctx.secrets().persistent();
    if args.json {
        print_json(&json!({
            "service": args.service,
            "account": account,
            "detail": detail,
            "secret_store": store_name,
            "persistent": persistent,
        }));
    } else {
        println!(
            "Signed in to {} as {account}{}. Token kept in the {store_name}.",
            args.service,
            if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            }
        );
        match ctx.secrets_mode() {
            SecretsMode::Memory => eprintln!(
                "note: FERRY_SECRETS=memory: the token is forgotten when this command ends"
            ),
            SecretsMode::Keyutils => eprintln!(
                "note: FERRY_SECRETS=keyutils: the token is forgotten at reboot, or after the \
                 kernel's persistent keyring expiry without use"
            ),
            SecretsMode::Keyring => {}
        }
    }
    Ok(0)
}

async fn device_id(ctx: &Context) -> anyhow::Result<String> {
    let store = ctx.store().await?;
    if let Some(id) = store.setting(ORBNET_DEVICE_ID).await? {
        return Ok(id);
    }
    let id = uuid::Uuid::new_v4().to_string();
    store.set_setting(ORBNET_DEVICE_ID, &id).await?;
    Ok(id)
}

fn need_email(args: &Args) -> anyhow::Result<String> {
    match args.email.as_deref().map(str::trim) {
        Some(e) if !e.is_empty() => Ok(e.to_string()),
        _ => bail!(
            "`ferry login {}` needs --email E and --password-stdin (or --token-stdin)",
            args.service
        ),
    }
}

async fn login_orbnet(ctx: &Context, args: &Args) -> anyhow::Result<(String, Secret, String)> {
    let client = ctx.orbnet().await?;
    if args.token_stdin {
        let token = read_stdin_secret("token")?;
        let tokens = OrbnetTokens::access_only(token).or_bound_to(client.origin());
        client.set_tokens(Some(tokens.clone())).await;
        let servers = client.servers().await.context("checking the token")?;
        return Ok((
            "token".into(),
            tokens.to_stored(),
            format!("{} servers", servers.len()),
        ));
    }
    let email = need_email(args)?;
    if !args.password_stdin {
        bail!("give the password on stdin with --password-stdin");
    }
    let password = read_stdin_secret("password")?;
    let req = LoginRequest {
        email: email.clone(),
        password,
        totp_code: args.totp.clone(),
        device_id: Some(device_id(ctx).await?),
    };
    match client.login(&req).await? {
        LoginOutcome::SignedIn { tokens, .. } => Ok((email, tokens.to_stored(), String::new())),
        LoginOutcome::TwoFactorRequired => {
            bail!("this OrbNET account uses two-factor sign-in: add --totp CODE")
        }
    }
}

async fn login_tunnelbyte(ctx: &Context, args: &Args) -> anyhow::Result<(String, Secret, String)> {
    let token = if args.import_tunnelbyte_cli {
        let path = ferry_core::paths::tunnelbyte_cli_token_from(|k| std::env::var(k).ok())
            .context("cannot find the tunnelbyte CLI's config directory (no HOME)")?;
        read_cli_token(&path)?
    } else if args.token_stdin {
        read_stdin_secret("token")?
    } else {
        bail!("`ferry login tunnelbyte` needs --token-stdin or --import-tunnelbyte-cli");
    };
    let client = ctx.tunnelbyte().await?.with_token(Some(token.clone()));
    let usage = client.usage().await.context("checking the token")?;
    let stored = StoredToken::new(client.origin().clone(), token).to_secret();
    Ok((format!("the {} tier", usage.tier), stored, String::new()))
}

async fn login_neosc(ctx: &Context, args: &Args) -> anyhow::Result<(String, Secret, String)> {
    let mut client = ctx.neosc().await?;
    if args.token_stdin {
        let token = read_stdin_secret("token")?;
        let client = client.with_token(Some(token.clone()));
        let me = client.me().await.context("checking the token")?;
        let stored = StoredToken::new(client.origin().clone(), token).to_secret();
        return Ok((me.email, stored, String::new()));
    }
    let email = need_email(args)?;
    if !args.password_stdin {
        bail!("give the password on stdin with --password-stdin");
    }
    let password = read_stdin_secret("password")?;
    let auth = client.login(&email, &password).await?;
    let who = if auth.user.email.is_empty() {
        email
    } else {
        auth.user.email.clone()
    };
    let stored = StoredToken::new(client.origin().clone(), auth.access_token).to_secret();
    Ok((who, stored, auth.user.role))
}

/// Runs `ferry logout`.
pub async fn logout(args: LogoutArgs) -> anyhow::Result<u8> {
    let ctx = Context::new(&args.common, Some(args.service))?;
    let mut server_note = String::new();
    if ctx.token(args.service).await?.is_some() {
        let result: Result<String, ApiError> = match args.service {
            ServiceKind::Orbnet => ctx.orbnet().await?.logout().await.map(|()| String::new()),
            ServiceKind::Neosc => {
                ctx.neosc()
                    .await?
                    .logout()
                    .await
                    .map(|m| match m.sessions_terminated {
                        Some(n) if n > 0 => format!("the server ended {n} workspace session(s)"),
                        _ => String::new(),
                    })
            }
            // tunnelbyte has no documented logout endpoint: forgetting the token is all.
            ServiceKind::Tunnelbyte => Ok(String::new()),
        };
        match result {
            Ok(note) => server_note = note,
            Err(e) => {
                eprintln!("warning: the server sign-out failed ({e}); forgetting the token anyway")
            }
        }
    }
    let had = ctx
        .secrets()
        .delete(args.service)
        .await
        .map_err(|e| ctx.secrets_error(e))
        .with_context(|| format!("removing the {} token", args.service))?;
    let env_still = std::env::var(args.service.token_env_var())
        .map(|v| !v.trim().is_empty())
        .unwrap_or(false);
    if args.json {
        print_json(&json!({
            "service": args.service,
            "removed": had,
            "note": server_note,
            "env_override_still_set": env_still,
        }));
    } else {
        if had {
            println!("Signed out of {}.", args.service);
        } else {
            println!("No stored {} token.", args.service);
        }
        if !server_note.is_empty() {
            println!("Note: {server_note}.");
        }
        if env_still {
            eprintln!(
                "note: {} is still set and overrides the store",
                args.service.token_env_var()
            );
        }
    }
    Ok(0)
}
