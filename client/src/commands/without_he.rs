//! `cohort-node inference` and `cohort-node he` in a build without feature `he`:
//! the subcommands stay listed and, when run, say how to get a build that has
//! them instead of failing as unknown commands.

use clap::Args;

/// The build command that turns encrypted inference on.
pub const BUILD_WITH_HE: &str = "cargo build --release -p cohort-client --features he";

/// The arguments of a left-out subcommand, taken as they come so that the user
/// sees the refusal, not a parse error about them.
#[derive(Args)]
pub struct LeftOut {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<String>,
}

/// Refuses `cohort-node {command}`: it needs encrypted inference (tfhe), which
/// this build leaves out so that training nodes do not compile tfhe.
pub fn refuse(command: &str) -> anyhow::Result<()> {
    anyhow::bail!(
        "`cohort-node {command}` needs encrypted inference, which this build of cohort-node \
         leaves out (cargo feature `he`, off by default); build it with `{BUILD_WITH_HE}` \
         (or run `cargo run -p cohort-client --features he -- {command} ...`)"
    )
}
