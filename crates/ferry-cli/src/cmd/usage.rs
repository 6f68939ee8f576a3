//! `ferry usage` (placeholder until its issue lands).

/// Arguments of `ferry usage`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Free-form arguments (placeholder).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// Runs `ferry usage`.
pub async fn run(_args: Args) -> anyhow::Result<u8> {
    super::not_yet("usage")
}
