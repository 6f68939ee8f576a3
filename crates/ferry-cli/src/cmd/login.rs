//! `ferry login` (placeholder until its issue lands).

/// Arguments of `ferry login`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Free-form arguments (placeholder).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// Runs `ferry login`.
pub async fn run(_args: Args) -> anyhow::Result<u8> {
    super::not_yet("login")
}

/// Arguments of `ferry logout`.
#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// The service to sign out of.
    pub service: String,
}

/// Runs `ferry logout`.
pub async fn logout(_args: LogoutArgs) -> anyhow::Result<u8> {
    super::not_yet("logout")
}
