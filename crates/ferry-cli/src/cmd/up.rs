//! `ferry up` (placeholder until its issue lands).

/// Arguments of `ferry up`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Free-form arguments (placeholder).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// Runs `ferry up`.
pub async fn run(_args: Args) -> anyhow::Result<u8> {
    super::not_yet("up")
}
