//! `cohort-node`: a hospital's or bank's node in a Cohort federation, and the
//! requester's tool for encrypted predictions.

mod commands;

use clap::{Parser, Subcommand};
use cohort_proto::logging::{self, LogFormat};

#[derive(Parser)]
#[command(
    version,
    about = "Cohort node: trains on local data that never leaves it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to stderr: `text` (coloured only at a
    /// terminal) or `json` (one object a line).
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

// Parsed once at start: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Join a federation and take part until it finishes.
    Run(commands::run::RunArgs),
    /// Serve encrypted predictions with the models this node kept.
    #[cfg(feature = "he")]
    Inference {
        #[command(subcommand)]
        command: commands::serve::InferenceCommand,
    },
    /// Serve encrypted predictions (not in this build: it needs feature `he`).
    #[cfg(not(feature = "he"))]
    Inference(commands::without_he::LeftOut),
    /// The requester's side of encrypted predictions: keys and predictions.
    #[cfg(feature = "he")]
    He {
        #[command(subcommand)]
        command: commands::he::HeCommand,
    },
    /// Encrypted predictions' keys and requests (not in this build: it needs feature `he`).
    #[cfg(not(feature = "he"))]
    He(commands::without_he::LeftOut),
    /// Report an erasure request (GDPR Art. 17) this node has carried out: the
    /// rows are gone and the new data set version registered (restart `run`
    /// on the new data first). The subject is sent as a pseudonym only.
    ReportErasure(commands::erasure::ErasureArgs),
    /// The models this node kept: export one as ONNX or safetensors.
    Model {
        #[command(subcommand)]
        command: commands::model::ModelCommand,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format, "info");
    match cli.command {
        Command::Run(args) => commands::run::run(args).await,
        #[cfg(feature = "he")]
        Command::Inference { command } => commands::serve::inference(command).await,
        #[cfg(not(feature = "he"))]
        Command::Inference(_) => commands::without_he::refuse("inference"),
        #[cfg(feature = "he")]
        Command::He { command } => commands::he::he(command).await,
        #[cfg(not(feature = "he"))]
        Command::He(_) => commands::without_he::refuse("he"),
        Command::ReportErasure(args) => commands::erasure::report_erasure(args).await,
        Command::Model { command } => commands::model::model(command),
    }
}
