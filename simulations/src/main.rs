//! `cohort-sim`: run whole federations on one machine.

use clap::{Parser, Subcommand};
use cohort_coordinator::config::{AccountantKind, PrivacyConfig};
use cohort_sim::demo::{self, DemoOptions};

#[derive(Parser)]
#[command(
    version,
    about = "Cohort simulations: whole federations over real mutual-TLS gRPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ten hospitals, breast-cancer data split non-IID, 20 FedAvg rounds.
    Demo {
        #[arg(long, default_value_t = 10)]
        nodes: usize,
        #[arg(long, default_value_t = 20)]
        rounds: u64,
        /// Dirichlet concentration of the label skew.
        #[arg(long, default_value_t = 0.5)]
        alpha: f64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Print each hospital's rows per class.
        #[arg(long)]
        show_partition: bool,
        /// Train with client-level DP-FedAvg under this ε budget.
        #[arg(long)]
        dp_epsilon: Option<f64>,
        /// DP noise multiplier σ.
        #[arg(long, default_value_t = 1.0, requires = "dp_epsilon")]
        noise_multiplier: f64,
        /// DP clip norm C of one node's model change.
        #[arg(long, default_value_t = 1.0, requires = "dp_epsilon")]
        clip_norm: f64,
        #[arg(long, default_value_t = 1e-5, requires = "dp_epsilon")]
        delta: f64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Demo {
            nodes,
            rounds,
            alpha,
            seed,
            show_partition,
            dp_epsilon,
            noise_multiplier,
            clip_norm,
            delta,
        } => {
            let options = DemoOptions {
                data: demo::bundled("breast_cancer.csv"),
                nodes,
                rounds,
                alpha,
                seed,
                show_partition,
                privacy: dp_epsilon.map(|epsilon| PrivacyConfig {
                    noise_multiplier,
                    clip_norm,
                    epsilon,
                    delta,
                    accountant: AccountantKind::Rdp,
                }),
            };
            let summary = demo::run(&options).await?;
            anyhow::ensure!(
                summary.final_accuracy.is_finite(),
                "no node reported an evaluation"
            );
        }
    }
    Ok(())
}
