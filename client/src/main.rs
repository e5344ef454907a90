//! `cohort-node`: a hospital's or bank's node in a Cohort federation.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use cohort_client::data::{
    BadRowPolicy, CsvOptions, DatasetDescriptor, LabelColumn, LegalBasis, load_csv,
    train_holdout_split,
};
use cohort_client::erasure::{ErasureRequest, erasure_report, send_erasure_report};
use cohort_client::node::{LocalData, Node, NodeConfig};
use cohort_client::transport::{CoordinatorAddress, own_identity};
use cohort_crypto::tls::TlsFiles;
use cohort_crypto::transparency::SubjectPseudonymKey;

#[derive(Parser)]
#[command(
    version,
    about = "Cohort node: trains on local data that never leaves it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Join a federation and take part until it finishes.
    Run(RunArgs),
    /// Report an erasure request (GDPR Art. 17) this node has carried out: the
    /// rows are gone and the new data set version registered (restart `run`
    /// on the new data first). The subject is sent as a pseudonym only.
    ReportErasure(ErasureArgs),
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("what").required(true))]
struct ErasureArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// The node's pseudonym key (HMAC-SHA256, created 0600 if missing). Keep
    /// it: the same subject must always get the same pseudonym.
    #[arg(long)]
    pseudonym_key: PathBuf,
    /// The data subject's identifier, as the node knows it (never sent).
    #[arg(long, group = "what")]
    subject: Option<String>,
    /// Withdraw the whole data set version.
    #[arg(long, group = "what")]
    whole_dataset: bool,
    /// Leave the federation: everything this node contributed is withdrawn.
    #[arg(long, group = "what")]
    leave: bool,
    /// The data set that held the data (see the `run` log's "dataset" field).
    #[arg(long, default_value = "")]
    dataset_id: String,
    /// The data set version that held the data (the `run` log's "version").
    #[arg(long, default_value = "")]
    removed_version: String,
}

/// How a node reaches its coordinator: address and mutual-TLS files.
#[derive(Args)]
struct ConnectionArgs {
    /// The coordinator's address, host:port.
    #[arg(long)]
    coordinator: String,
    /// The name on the coordinator's certificate (default: the host of --coordinator).
    #[arg(long)]
    server_name: Option<String>,
    #[arg(long)]
    federation: String,
    /// The federation's CA certificate.
    #[arg(long)]
    ca: PathBuf,
    /// This node's certificate; its identity is the node id.
    #[arg(long)]
    cert: PathBuf,
    /// This node's private key.
    #[arg(long)]
    key: PathBuf,
}

impl ConnectionArgs {
    fn address(&self) -> CoordinatorAddress {
        let mut address = CoordinatorAddress::new(&self.coordinator);
        if let Some(name) = &self.server_name {
            address.server_name = name.clone();
        }
        address
    }

    fn tls(&self) -> TlsFiles {
        TlsFiles {
            ca_certificate: self.ca.clone(),
            certificate: self.cert.clone(),
            private_key: self.key.clone(),
        }
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// The local data: a CSV file (or .csv.gz) of numeric features and a label.
    #[arg(long)]
    data: PathBuf,
    /// The label's 0-based column, or `last`.
    #[arg(long, default_value = "last", value_parser = parse_label_column)]
    label_column: LabelColumn,
    /// Lines at the top of the file that are not data (a header).
    #[arg(long, default_value_t = 0)]
    header_lines: usize,
    /// Fraction of rows held out for federated evaluation.
    #[arg(long, default_value_t = 0.2)]
    holdout: f64,
    /// Seed of the train/holdout split.
    #[arg(long, default_value_t = 0)]
    split_seed: u64,
    /// What to do with rows that fail to parse.
    #[arg(long, value_enum, default_value_t = BadRows::Reject)]
    bad_rows: BadRows,
    /// Give up after the coordinator has been unreachable this many seconds.
    #[arg(long, default_value_t = 600)]
    give_up_after_secs: u64,
    /// The data set's name in the audit log (default: the data file's name
    /// without extensions).
    #[arg(long)]
    dataset_id: Option<String>,
    /// GDPR Art. 6(1) basis for training on the data: consent, contract,
    /// legal_obligation, vital_interests, public_task or legitimate_interests.
    #[arg(long, default_value = "consent")]
    legal_basis: LegalBasis,
    /// A kind of data in the set, e.g. phi, personal, financial (repeatable;
    /// default: personal).
    #[arg(long = "data-category", value_parser = parse_category)]
    data_categories: Vec<String>,
}

fn parse_category(text: &str) -> Result<String, String> {
    if cohort_proto::dataset::is_category(text) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "data category {text:?} must be lowercase letters, digits, '_' or '-'"
        ))
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum BadRows {
    Skip,
    Reject,
}

fn parse_label_column(text: &str) -> Result<LabelColumn, String> {
    if text == "last" {
        return Ok(LabelColumn::Last);
    }
    text.parse()
        .map(LabelColumn::Index)
        .map_err(|_| format!("expected a column index or `last`, got {text:?}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Run(args) => run(args).await,
        Command::ReportErasure(args) => report_erasure(args).await,
    }
}

async fn report_erasure(args: ErasureArgs) -> anyhow::Result<()> {
    let tls = args.connection.tls();
    let identity = own_identity(&tls)?;
    let pseudonyms = if args.pseudonym_key.exists() {
        SubjectPseudonymKey::load(&args.pseudonym_key)?
    } else {
        SubjectPseudonymKey::generate(&args.pseudonym_key)?
    };
    let request = match (args.subject, args.whole_dataset, args.leave) {
        (Some(subject), false, false) => ErasureRequest::Subject(subject),
        (None, true, false) => ErasureRequest::WholeDataset,
        (None, false, true) => ErasureRequest::Leave,
        _ => anyhow::bail!("name exactly one of --subject, --whole-dataset, --leave"),
    };
    let report = erasure_report(
        identity.name(),
        &args.connection.federation,
        &request,
        &pseudonyms,
        &args.dataset_id,
        &args.removed_version,
    );
    let receipt = send_erasure_report(&args.connection.address(), &tls, report).await?;
    println!(
        "erasure request {} recorded; deadline {} ms since the epoch; {} model versions tainted{}",
        receipt.request_id,
        receipt.deadline_unix_ms,
        receipt.tainted_models.len(),
        if receipt.rollback_to.is_empty() {
            String::new()
        } else {
            format!("; retraining from {}", receipt.rollback_to)
        }
    );
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let options = CsvOptions {
        label_column: args.label_column,
        header_lines: args.header_lines,
        bad_rows: match args.bad_rows {
            BadRows::Skip => BadRowPolicy::Skip,
            BadRows::Reject => BadRowPolicy::Reject,
        },
    };
    let loaded = load_csv(&args.data, &options)
        .with_context(|| format!("loading {}", args.data.display()))?;
    for bad in &loaded.skipped {
        tracing::warn!(line = bad.line, reason = %bad.reason, "skipped malformed row");
    }
    let (train, holdout) = train_holdout_split(&loaded.dataset, args.holdout, args.split_seed)?;
    tracing::info!(
        rows = loaded.dataset.len(),
        skipped = loaded.skipped.len(),
        train = train.len(),
        holdout = holdout.len(),
        "local data loaded"
    );
    let config = NodeConfig {
        coordinator: args.connection.address(),
        tls: args.connection.tls(),
        federation_id: args.connection.federation.clone(),
        give_up_after: Duration::from_secs(args.give_up_after_secs),
    };
    let default = DatasetDescriptor::default();
    let descriptor = DatasetDescriptor {
        dataset_id: args
            .dataset_id
            .or_else(|| {
                let name = args.data.file_name()?.to_str()?;
                Some(name.split('.').next().unwrap_or(name).to_owned())
            })
            .filter(|id| !id.is_empty())
            .unwrap_or(default.dataset_id),
        legal_basis: args.legal_basis,
        data_categories: if args.data_categories.is_empty() {
            default.data_categories
        } else {
            args.data_categories
        },
    };
    let node = Node::new(config, LocalData { train, holdout })?.with_dataset(&descriptor);
    tracing::info!(
        dataset = %node.dataset().dataset_id,
        version = %node.dataset().version,
        legal_basis = %node.dataset().legal_basis,
        "training data described for the audit log"
    );
    let summary = node.run().await?;
    println!(
        "federation finished after {} rounds; final model {}; this node sent {} updates and {} evaluations",
        summary.completed_rounds,
        summary.final_model_version,
        summary.updates_sent,
        summary.evaluations_sent
    );
    if let Some(reason) = summary.stop_reason {
        println!("the federation stopped early: {reason}");
    }
    Ok(())
}
