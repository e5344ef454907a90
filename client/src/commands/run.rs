//! `cohort-node run`: take part in a federation until it finishes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use cohort_client::data::{DatasetDescriptor, LegalBasis};
use cohort_client::node::distributed_privacy::DistributedPrivacy;
use cohort_client::node::record_privacy::RecordPrivacy;
use cohort_client::node::secure_aggregation::RoundRequirements;
use cohort_client::node::{LocalData, Node, NodeConfig};
use cohort_client::training::DpSgdConfig;
use cohort_crypto::secagg::{AttemptBudget, NodePolicy};
use cohort_privacy::PrivacyBudget;
use cohort_privacy::reported_stats::TrainingStatsRelease;

use super::{ConnectionArgs, DataArgs};

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Another coordinator of the federation, when it runs several over one
    /// database (one active, the others standing by): tried in turn after
    /// --coordinator when the one in use is down or a standby (repeatable;
    /// --server-name, if given, applies to each).
    #[arg(long = "standby-coordinator")]
    standby_coordinators: Vec<String>,
    #[command(flatten)]
    data: DataArgs,
    /// Give up after the coordinator has been unreachable this many seconds.
    #[arg(long, default_value_t = 600)]
    give_up_after_secs: u64,
    /// Keep every global model fetched, and the final one, in this folder
    /// (`{version}.model.json`), to serve encrypted predictions afterwards.
    #[arg(long)]
    models_dir: Option<PathBuf>,
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
    /// Train with record-level DP-SGD under this ε budget, enforced by the
    /// node: past it, the node stops training (the federation goes on).
    #[arg(long, requires = "dp_sgd_ledger")]
    dp_sgd_epsilon: Option<f64>,
    #[arg(long, default_value_t = 1e-5, requires = "dp_sgd_epsilon")]
    dp_sgd_delta: f64,
    /// DP-SGD noise multiplier σ.
    #[arg(long, default_value_t = 1.0, requires = "dp_sgd_epsilon")]
    dp_sgd_noise_multiplier: f64,
    /// DP-SGD bound C on one row's gradient norm.
    #[arg(long, default_value_t = 1.0, requires = "dp_sgd_epsilon")]
    dp_sgd_clip_norm: f64,
    /// The node's privacy ledger (JSON; created if missing, kept across runs).
    #[arg(long, requires = "dp_sgd_epsilon")]
    dp_sgd_ledger: Option<PathBuf>,
    /// Noise multiplier of the example count and loss sum reported beside a
    /// DP-SGD update (each round is charged for them too).
    #[arg(long, default_value_t = 10.0, requires = "dp_sgd_epsilon")]
    dp_sgd_stats_noise_multiplier: f64,
    /// Bound each row's reported loss is clamped to.
    #[arg(long, default_value_t = 5.0, requires = "dp_sgd_epsilon")]
    dp_sgd_loss_bound: f64,
    /// Take no part in a secure-aggregation round with fewer participants,
    /// whatever the coordinator asks.
    #[arg(long, default_value_t = NodePolicy::default().min_participants)]
    secagg_min_participants: usize,
    /// Take no part in a secure-aggregation round whose threshold t is lower:
    /// any sum the coordinator unmasks with this node's change in it holds the
    /// changes of at least t − c of its neighbours (c colluding).
    #[arg(long, default_value_t = NodePolicy::default().min_threshold)]
    secagg_min_threshold: usize,
    /// Secure-aggregation attempts the node lets abort (before it sent its
    /// masked input) before it has completed any: with the next flag, the
    /// bound on a coordinator that aborts and retries until the neighbour
    /// graph suits it.
    #[arg(long, default_value_t = AttemptBudget::default().allowance)]
    secagg_abort_allowance: u32,
    /// Further aborted attempts the node allows per attempt it completed.
    #[arg(long, default_value_t = AttemptBudget::default().per_completed)]
    secagg_aborts_per_completed: u32,
    /// Under distributed DP, take no part in a round whose sum would carry a
    /// noise multiplier below this (σ·γ·√survivors / C, from what the
    /// coordinator asks the node to add), and sign no survivor set that small.
    #[arg(long)]
    min_noise_multiplier: Option<f64>,
    /// Sign no survivor set of a secure-aggregation round smaller than this:
    /// the fewest nodes' changes a sum holding this node's may have.
    #[arg(long)]
    min_cohort: Option<usize>,
    /// Under distributed DP, the most ε the coordinator may learn about this
    /// node's data over all rounds (it knows the sample: no amplification).
    /// Each round is charged to `--privacy-ledger` as a sum of `--min-cohort`
    /// noisy changes before the masked change leaves; past the budget, or in
    /// a round without distributed noise, the node does not take part.
    #[arg(long, requires_all = ["min_cohort", "privacy_ledger"])]
    max_epsilon: Option<f64>,
    /// δ of `--max-epsilon`.
    #[arg(long, default_value_t = 1e-5, requires = "max_epsilon")]
    max_epsilon_delta: f64,
    /// The node's ledger of distributed-DP rounds (JSON; created if missing,
    /// kept across runs).
    #[arg(long, requires = "max_epsilon")]
    privacy_ledger: Option<PathBuf>,
    /// Serve this node's Prometheus metrics (`/metrics`, `/healthz`) over
    /// plain HTTP at this address, e.g. 127.0.0.1:9465. They state exact
    /// example counts and training times: give a loopback or monitoring
    /// network address.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
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

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let (train, holdout) = args.data.load_split()?;
    let record_privacy = record_privacy(&args)?;
    let config = NodeConfig {
        coordinator: args.connection.address(),
        standby_coordinators: args
            .standby_coordinators
            .iter()
            .map(|address| args.connection.address_of(address))
            .collect(),
        tls: args.connection.tls.files(),
        federation_id: args.connection.federation.clone(),
        give_up_after: Duration::from_secs(args.give_up_after_secs),
        models_dir: args.models_dir.clone(),
    };
    let descriptor = dataset_descriptor(&args);
    let mut node = Node::new(config, LocalData { train, holdout })?
        .with_dataset(&descriptor)
        .with_round_requirements(RoundRequirements {
            secagg: NodePolicy {
                min_participants: args.secagg_min_participants,
                min_threshold: args.secagg_min_threshold,
            },
            min_noise_multiplier: args.min_noise_multiplier,
            min_cohort: args.min_cohort,
            attempts: AttemptBudget {
                allowance: args.secagg_abort_allowance,
                per_completed: args.secagg_aborts_per_completed,
            },
        });
    if let (Some(epsilon), Some(min_cohort), Some(ledger_path)) =
        (args.max_epsilon, args.min_cohort, args.privacy_ledger)
    {
        node = node.with_distributed_privacy(&DistributedPrivacy {
            budget: PrivacyBudget::new(epsilon, args.max_epsilon_delta)
                .context("--max-epsilon / --max-epsilon-delta")?,
            min_cohort,
            ledger_path,
        })?;
    }
    if let Some(record_privacy) = &record_privacy {
        node = node.with_record_privacy(record_privacy)?;
    }
    tracing::info!(
        dataset = %node.dataset().dataset_id,
        version = %node.dataset().version,
        legal_basis = %node.dataset().legal_basis,
        "training data described for the audit log"
    );
    let _metrics = match args.metrics_listen {
        Some(address) => Some(
            cohort_client::node::metrics::serve(address, node.metrics())
                .await
                .with_context(|| format!("--metrics-listen {address}"))?,
        ),
        None => None,
    };
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

/// How the node describes its data to the audit log: `--dataset-id` (else
/// the data file's name without extensions), legal basis and categories.
fn dataset_descriptor(args: &RunArgs) -> DatasetDescriptor {
    let default = DatasetDescriptor::default();
    DatasetDescriptor {
        dataset_id: args
            .dataset_id
            .clone()
            .or_else(|| {
                let name = args.data.data.file_name()?.to_str()?;
                Some(name.split('.').next().unwrap_or(name).to_owned())
            })
            .filter(|id| !id.is_empty())
            .unwrap_or(default.dataset_id),
        legal_basis: args.legal_basis,
        data_categories: if args.data_categories.is_empty() {
            default.data_categories
        } else {
            args.data_categories.clone()
        },
    }
}

/// The node's record-level privacy (`--dp-sgd-*`), if configured.
fn record_privacy(args: &RunArgs) -> anyhow::Result<Option<RecordPrivacy>> {
    let (Some(epsilon), Some(ledger_path)) = (args.dp_sgd_epsilon, args.dp_sgd_ledger.clone())
    else {
        return Ok(None);
    };
    Ok(Some(RecordPrivacy {
        dp: DpSgdConfig {
            noise_multiplier: args.dp_sgd_noise_multiplier,
            clip_norm: args.dp_sgd_clip_norm,
        },
        stats: TrainingStatsRelease::new(
            args.dp_sgd_stats_noise_multiplier,
            args.dp_sgd_loss_bound,
        )
        .context("--dp-sgd-stats-noise-multiplier / --dp-sgd-loss-bound")?,
        budget: PrivacyBudget::new(epsilon, args.dp_sgd_delta)
            .context("--dp-sgd-epsilon / --dp-sgd-delta")?,
        ledger_path,
    }))
}
