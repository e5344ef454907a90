//! `cohort-sim run`: a [`Scenario`] run in one process over the real protocol.
//!
//! The data is loaded and split by the scenario's partitioner; a fresh PKI, a
//! coordinator and one node task per part are started through [`crate::harness`]
//! and talk mutual-TLS gRPC on loopback; [`crate::progress::follow`] records each
//! round; [`crate::report`] writes the run folder. The same scenario and seed give
//! the same per-round participants, accuracy and loss (without DP, whose noise is
//! drawn fresh); only the wall times differ.

use std::path::{Path, PathBuf};
use std::time::Instant;

use cohort_client::data::{DataError, load_csv};
use cohort_client::node::NodeError;
use cohort_coordinator::config::ConfigError;
use cohort_coordinator::{Coordinator, CoordinatorError};
use cohort_crypto::pki::PkiError;

use crate::harness::{FederationPlan, Provisioned, local_data, spawn_node};
use crate::partition::{PartitionError, label_histogram};
use crate::progress::{self, Followed, Progress, RoundRow};
use crate::report::{self, ReportError, RunSummary};
use crate::scenario::Scenario;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("loading {path}: {source}")]
    Data { path: PathBuf, source: DataError },
    #[error("splitting the data among {nodes} nodes (`partition`): {source}")]
    Partition {
        nodes: usize,
        source: PartitionError,
    },
    #[error("the scenario's federation config: {0}")]
    Config(#[from] ConfigError),
    #[error("a temporary folder for the PKI and state: {0}")]
    Workdir(std::io::Error),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    #[error("node {node}: {message}")]
    Node { node: String, message: String },
    #[error("node {node}: {source}")]
    NodeFailed { node: String, source: NodeError },
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// A finished run: its rounds and summary, also written to its folder.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub rounds: Vec<RoundRow>,
    pub summary: RunSummary,
}

/// Runs `scenario` (named `name` in the reports), writes the reports into `out`,
/// and calls `on` for each round as it completes.
pub async fn run(
    scenario: &Scenario,
    name: &str,
    out: &Path,
    on: impl FnMut(Progress<'_>),
) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    // Fail before the run, not after it, if the reports cannot be written.
    std::fs::create_dir_all(out).map_err(|source| ReportError::Io {
        path: out.to_owned(),
        source,
    })?;
    let (path, options) = scenario.data.file();
    let data = load_csv(&path, &options)
        .map_err(|source| RunError::Data {
            path: path.clone(),
            source,
        })?
        .dataset;
    let classes = data
        .labels()
        .iter()
        .map(|&l| l as usize + 1)
        .max()
        .unwrap_or(0);
    let parts = scenario
        .partition
        .split(data.labels(), scenario.nodes, scenario.seed)
        .map_err(|source| RunError::Partition {
            nodes: scenario.nodes,
            source,
        })?;

    // Each node's rows, split into training and held-out parts.
    let mut locals = Vec::with_capacity(parts.len());
    for (i, rows) in parts.iter().enumerate() {
        let subset = data.subset(rows).map_err(|source| RunError::Data {
            path: path.clone(),
            source,
        })?;
        let local =
            local_data(&subset, scenario.holdout, scenario.seed + i as u64).map_err(|e| {
                RunError::Node {
                    node: node_id(i),
                    message: format!("{e:#}"),
                }
            })?;
        locals.push(local);
    }

    let workdir = tempfile::tempdir().map_err(RunError::Workdir)?;
    let federation_id = format!("sim-{name}");
    let provisioned = Provisioned::new(&workdir.path().join("pki"), &federation_id)?;
    let plan = FederationPlan {
        federation_id: federation_id.clone(),
        model: scenario.model_config(data.num_features() as u32, classes as u32),
        rounds: scenario.rounds_config(),
        training: scenario.training.clone(),
        privacy: scenario.privacy.clone(),
        secure_aggregation: scenario.secure_aggregation.clone(),
        strategy: scenario.strategy.clone(),
        poll_timeout_ms: 5_000,
    };
    let config = plan.coordinator_config(
        &provisioned,
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        workdir.path().join("state"),
    );
    config.validate()?;
    let mut coordinator = Coordinator::start(config).await?;
    let events = coordinator.events();
    let address = coordinator.local_addr();

    let mut plans = scenario
        .faults
        .plans(locals.len(), scenario.seed)
        .into_iter();
    let mut nodes = Vec::with_capacity(locals.len());
    for (i, local) in locals.into_iter().enumerate() {
        let node = node_id(i);
        let faults = plans.next();
        match spawn_node(&provisioned, &node, &federation_id, address, local, faults) {
            Ok(handle) => nodes.push((node, handle)),
            Err(e) => {
                coordinator.shutdown().await;
                return Err(RunError::Node {
                    node,
                    message: format!("{e:#}"),
                });
            }
        }
    }

    let Followed {
        head,
        rounds,
        stop_reason,
    } = progress::follow(&mut coordinator, events, on).await?;
    let mut failure = None;
    for (node, handle) in nodes {
        let outcome = match handle.await {
            Ok(Ok(_)) => continue,
            Ok(Err(source)) => RunError::NodeFailed { node, source },
            Err(join) => RunError::Node {
                node,
                message: join.to_string(),
            },
        };
        failure.get_or_insert(outcome);
    }
    coordinator.shutdown().await;
    if let Some(failure) = failure {
        return Err(failure);
    }

    let last = rounds.last();
    let summary = RunSummary {
        scenario: name.to_owned(),
        data: scenario.data.name(),
        partitioner: scenario.partition.describe(),
        strategy: match scenario.privacy {
            Some(_) => "dp-fedavg".into(),
            None => scenario.strategy.name().into(),
        },
        malicious_nodes: scenario
            .faults
            .malicious_nodes(scenario.nodes, scenario.seed),
        seed: scenario.seed,
        nodes: scenario.nodes,
        rows: data.len(),
        features: data.num_features(),
        classes,
        rows_per_node: parts.iter().map(Vec::len).collect(),
        class_counts_per_node: label_histogram(data.labels(), &parts),
        rounds_planned: scenario.rounds.count,
        rounds_completed: head.completed_rounds,
        final_accuracy: last.and_then(|r| r.accuracy),
        final_loss: last.and_then(|r| r.loss),
        best_accuracy: rounds
            .iter()
            .filter_map(|r| r.accuracy)
            .max_by(f64::total_cmp),
        epsilon_spent: rounds.iter().rev().find_map(|r| r.epsilon),
        stop_reason,
        model_version: head.model_version,
        seconds: started.elapsed().as_secs_f64(),
    };
    report::write(out, scenario, &rounds, &summary)?;
    Ok(RunOutcome { rounds, summary })
}

fn node_id(i: usize) -> String {
    format!("node-{i:03}")
}
