//! `cohort-sim`: run whole federations on one machine.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use cohort_coordinator::config::{
    AccountantKind, NoisePlacement, PrivacyConfig, SecureAggregationConfig,
};
use cohort_sim::demo::{self, DemoOptions};
use cohort_sim::progress;
use cohort_sim::scenario::Scenario;

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
    /// Run a scenario file and write its reports (rounds.csv, rounds.json, summary.json).
    Run {
        /// The scenario (TOML), e.g. simulations/scenarios/digits-iid.toml.
        #[arg(long)]
        scenario: PathBuf,
        /// The run folder; by default runs/<scenario>-<unix time>.
        #[arg(long)]
        out: Option<PathBuf>,
    },
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
        /// Aggregate under secure aggregation (SecAgg+): the coordinator sees only the sum.
        #[arg(long)]
        secure_aggregation: bool,
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
        Command::Run { scenario, out } => run(&scenario, out).await?,
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
            secure_aggregation,
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
                    // Under secure aggregation the nodes add the noise.
                    placement: if secure_aggregation {
                        NoisePlacement::Distributed
                    } else {
                        NoisePlacement::Central
                    },
                }),
                secure_aggregation: secure_aggregation.then(SecureAggregationConfig::default),
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

async fn run(path: &std::path::Path, out: Option<PathBuf>) -> anyhow::Result<()> {
    let scenario = Scenario::load(path)?;
    let name = path
        .file_stem()
        .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned());
    let out = match out {
        Some(out) => out,
        None => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            PathBuf::from("runs").join(format!("{name}-{now}"))
        }
    };
    println!(
        "{name}: {} nodes, {} split {}, {} rounds of {} (seed {})",
        scenario.nodes,
        scenario.data.name(),
        scenario.partition.describe(),
        scenario.rounds.count,
        scenario.model.kind,
        scenario.seed
    );
    println!("{}", progress::header(scenario.privacy.is_some()));
    let outcome = cohort_sim::run::run(&scenario, &name, &out, progress::print)
        .await
        .with_context(|| format!("running {}", path.display()))?;
    let s = &outcome.summary;
    let epsilon = s
        .epsilon_spent
        .map(|e| format!(", ε = {e:.3}"))
        .unwrap_or_default();
    println!(
        "\n{} of {} rounds in {:.1} s: accuracy {:.2}% (best {:.2}%), loss {:.4}{epsilon}; reports in {}",
        s.rounds_completed,
        s.rounds_planned,
        s.seconds,
        s.final_accuracy.unwrap_or(f64::NAN) * 100.0,
        s.best_accuracy.unwrap_or(f64::NAN) * 100.0,
        s.final_loss.unwrap_or(f64::NAN),
        out.display()
    );
    anyhow::ensure!(
        s.final_accuracy.is_some_and(f64::is_finite),
        "no node reported an evaluation"
    );
    Ok(())
}
