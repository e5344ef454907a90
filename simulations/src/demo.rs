//! `cohort-sim demo`: ten hospitals learn breast-cancer diagnosis together.
//!
//! A fresh PKI in a temporary folder, a coordinator and 10 nodes on loopback over
//! mutual-TLS gRPC, the bundled Wisconsin breast-cancer data split among them
//! non-IID (Dirichlet α = 0.5, seeded), 20 FedAvg rounds of logistic regression.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use cohort_client::data::{CsvOptions, Dataset, FeatureScaling, load_csv};
use cohort_client::model::SavedSpec;
use cohort_client::node::LocalData;
use cohort_coordinator::Coordinator;
use cohort_coordinator::config::{
    ModelConfig, PrivacyConfig, RoundsConfig, SecureAggregationConfig, StrategyConfig,
    TrainingConfig,
};

use crate::harness::{
    FederationPlan, Provisioned, local_data, pooled_training_scaling, spawn_node,
};
use crate::partition::{dirichlet, label_histogram};
use crate::progress;

/// How to run the demo: its data, federation size, rounds and privacy.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The CSV file (one header line, label in the last column) split among the hospitals.
    pub data: std::path::PathBuf,
    /// Hospitals in the federation; all are sampled every round.
    pub nodes: usize,
    /// Rounds of federated training to run.
    pub rounds: u64,
    /// Dirichlet concentration of the label split: smaller is more skewed.
    pub alpha: f64,
    /// Seeds the partition, the initial model, the holdout splits and (without DP)
    /// node sampling.
    pub seed: u64,
    /// Print each hospital's rows per class before training.
    pub show_partition: bool,
    /// Client-level DP-FedAvg with this budget, if set.
    pub privacy: Option<PrivacyConfig>,
    /// Secure aggregation: the coordinator sees only the sum of the updates.
    pub secure_aggregation: Option<SecureAggregationConfig>,
}

/// What the demo reached.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSummary {
    /// Rounds the coordinator committed.
    pub rounds: u64,
    /// Held-out accuracy of the last round's model; NaN if it was not evaluated.
    pub final_accuracy: f64,
    /// Held-out loss of the last round's model; NaN if it was not evaluated.
    pub final_loss: f64,
    /// Wall time of the whole demo, loading the data included.
    pub seconds: f64,
    /// Content address of the final global model.
    pub model_version: String,
}

/// Runs the demo: splits the data, starts a coordinator and one node task per
/// hospital, prints each round, and waits for every node to finish.
///
/// Fails if the data cannot be loaded or partitioned, the PKI or coordinator
/// cannot be set up, or the coordinator or a node fails.
pub async fn run(options: &DemoOptions) -> anyhow::Result<DemoSummary> {
    let started = Instant::now();
    let (data, partition) = partitioned(options)?;
    let locals = hospitals_data(&data, &partition, options.seed)?;
    let scaling = declared_scaling(options, &locals)?;

    let workdir = tempfile::tempdir()?;
    let plan = demo_plan(options, data.num_features() as u32, scaling);
    let provisioned = Provisioned::new(&workdir.path().join("pki"), &plan.federation_id)?;
    let config = plan.coordinator_config(
        &provisioned,
        "127.0.0.1:0".parse()?,
        workdir.path().join("state"),
    );
    let mut coordinator = Coordinator::start(config).await?;
    let events = coordinator.events();
    let address = coordinator.local_addr();
    println!(
        "coordinator on {address} (mutual TLS 1.3); {} hospitals, {} rows, Dirichlet α = {}",
        options.nodes,
        data.len(),
        options.alpha
    );

    let mut nodes = Vec::new();
    for (i, local) in locals.into_iter().enumerate() {
        let node_id = format!("hospital-{i:02}");
        let federation = &plan.federation_id;
        nodes.push(spawn_node(
            &provisioned,
            &node_id,
            federation,
            address,
            local,
            None,
            None,
        )?);
    }

    println!("{}", progress::header(options.privacy.is_some()));
    let followed = progress::follow(&mut coordinator, events, progress::print).await?;
    let head = followed.head;
    let last = followed.rounds.last();
    for node in nodes {
        node.await??;
    }
    coordinator.shutdown().await;
    let summary = DemoSummary {
        rounds: head.completed_rounds,
        final_accuracy: last.and_then(|r| r.accuracy).unwrap_or(f64::NAN),
        final_loss: last.and_then(|r| r.loss).unwrap_or(f64::NAN),
        seconds: started.elapsed().as_secs_f64(),
        model_version: head.model_version,
    };
    print_summary(&summary, options.nodes);
    Ok(summary)
}

/// The data set, and its rows' Dirichlet partition over the hospitals
/// (printed per class with `show_partition`).
fn partitioned(options: &DemoOptions) -> anyhow::Result<(Dataset, Vec<Vec<usize>>)> {
    let loaded = load_csv(
        &options.data,
        &CsvOptions {
            header_lines: 1,
            ..CsvOptions::default()
        },
    )
    .with_context(|| format!("loading {}", options.data.display()))?;
    let data = loaded.dataset;
    let partition = dirichlet(
        data.labels(),
        options.nodes,
        options.alpha,
        10,
        options.seed,
    )?;
    if options.show_partition {
        for (i, counts) in label_histogram(data.labels(), &partition)
            .iter()
            .enumerate()
        {
            println!("hospital-{i:02}: rows per class {counts:?}");
        }
    }
    Ok((data, partition))
}

/// The demo's federation: logistic regression over `num_features`, every
/// hospital sampled, half of them enough to commit.
fn demo_plan(
    options: &DemoOptions,
    num_features: u32,
    scaling: Option<FeatureScaling>,
) -> FederationPlan {
    FederationPlan {
        federation_id: "breast-cancer-demo".into(),
        model: ModelConfig::dense(
            SavedSpec::logistic_regression(num_features, 2),
            options.seed,
        ),
        rounds: RoundsConfig {
            count: options.rounds,
            fraction: 1.0,
            min_clients: options.nodes,
            min_results: Some(options.nodes.div_ceil(2)),
            deadline_secs: 60.0,
            seed: options.seed,
            max_failed_attempts: 3,
        },
        training: TrainingConfig {
            local_epochs: 2,
            batch_size: 16,
            learning_rate: 0.05,
        },
        privacy: options.privacy.clone(),
        secure_aggregation: options.secure_aggregation.clone(),
        strategy: StrategyConfig::default(),
        scaling,
        poll_timeout_ms: 5_000,
    }
}

fn print_summary(summary: &DemoSummary, hospitals: usize) {
    println!(
        "\n{} rounds in {:.1} s: held-out accuracy {:.2}% (loss {:.4}) over {hospitals} hospitals' holdouts; final model {}",
        summary.rounds,
        summary.seconds,
        summary.final_accuracy * 100.0,
        summary.final_loss,
        summary
            .model_version
            .get(..16)
            .unwrap_or(&summary.model_version)
    );
}

/// Each hospital's rows, split into training and held-out parts.
fn hospitals_data(
    data: &Dataset,
    partition: &[Vec<usize>],
    seed: u64,
) -> anyhow::Result<Vec<LocalData>> {
    partition
        .iter()
        .enumerate()
        .map(|(i, rows)| local_data(&data.subset(rows)?, 0.2, seed.wrapping_add(i as u64)))
        .collect()
}

/// Under secure aggregation or DP the federation must declare its scaling;
/// the demo declares what the hospitals' pooled training rows give (the
/// simulator holds them all: a stand-in for published reference constants),
/// which is what the clear-text statistics round would have agreed on.
fn declared_scaling(
    options: &DemoOptions,
    locals: &[LocalData],
) -> anyhow::Result<Option<FeatureScaling>> {
    if options.secure_aggregation.is_none() && options.privacy.is_none() {
        return Ok(None);
    }
    Ok(Some(pooled_training_scaling(
        locals.iter().map(|local| &local.train),
    )?))
}

/// The bundled data file, found from the working directory or this crate.
pub fn bundled(name: &str) -> std::path::PathBuf {
    let local = Path::new("data").join(name);
    if local.exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data")
        .join(name)
}
