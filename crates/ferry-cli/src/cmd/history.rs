//! `ferry history` (placeholder until its issue lands).

/// Arguments of `ferry history`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Free-form arguments (placeholder).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// Runs `ferry history`.
pub async fn run(_args: Args) -> anyhow::Result<u8> {
    super::not_yet("history")
}
