//! `ferry lab` (placeholder until its issue lands).

/// Arguments of `ferry lab`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Free-form arguments (placeholder).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// Runs `ferry lab`.
pub async fn run(_args: Args) -> anyhow::Result<u8> {
    super::not_yet("lab")
}
