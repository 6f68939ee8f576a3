//! `ferry connect` (placeholder until its issue lands).

/// Arguments of `ferry connect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Free-form arguments (placeholder).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// Runs `ferry connect`.
pub async fn run(_args: Args) -> anyhow::Result<u8> {
    super::not_yet("connect")
}
