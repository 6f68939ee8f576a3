//! `ferry workspaces` (placeholder until its issue lands).

/// Arguments of `ferry workspaces`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Free-form arguments (placeholder).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// Runs `ferry workspaces`.
pub async fn run(_args: Args) -> anyhow::Result<u8> {
    super::not_yet("workspaces")
}

/// Arguments of `ferry sessions`.
#[derive(clap::Args, Debug)]
pub struct SessionsArgs {
    /// Free-form arguments (placeholder).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// Runs `ferry sessions`.
pub async fn sessions(_args: SessionsArgs) -> anyhow::Result<u8> {
    super::not_yet("sessions")
}
