//! `cohort-sim run`: a [`Scenario`] run on this machine over the real protocol.
//!
//! The data is loaded and split by the scenario's partitioner; a fresh PKI and a
//! coordinator are started through [`crate::harness`], and one node per part
//! through [`crate::launch`] — a task of this process, or (`mode = "processes"`)
//! a `cohort-node run` process reading its part from a CSV file, its log in
//! `node-logs/` of the run folder — all talking mutual-TLS gRPC on loopback; [`crate::progress::follow`] records each
//! round; [`crate::report`] writes the run folder. The same scenario and seed give
//! the same per-round participants, accuracy and loss (without DP, whose noise is
//! drawn fresh); only the wall times differ.

use std::path::Path;
use std::time::Instant;

use cohort_client::fault::FaultPlan;
use cohort_coordinator::config::{ConfigError, FederationConfig};
use cohort_coordinator::store::records::FederationHead;
use cohort_coordinator::{Coordinator, CoordinatorError};
use cohort_crypto::pki::PkiError;

use crate::harness::{FederationPlan, Provisioned};
use crate::launch::{LaunchError, Launcher, NodeShare, Prepared, ProcessPlaces, Running, node_id};
use crate::node_process::{NODE_BINARY, NodeProcessError, sibling_binary};
use crate::open_files::{self, TooFewFiles};
use crate::partition::label_histogram;
use crate::progress::{self, Followed, Progress, RoundRow};
use crate::report::{self, ReportError, RunSummary};
use crate::scenario::{FIRST_MODEL_FILE, Mode, Scenario, ScenarioError};
use crate::scrape::{Scraper, Scrapes};
use crate::shares::{Shares, SharesError};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The data could not be loaded or split, or a node's rows taken from it.
    #[error(transparent)]
    Shares(#[from] SharesError),
    /// The coordinator's config, with the data's sizes, failed validation.
    #[error("the scenario's federation config: {0}")]
    Config(#[from] ConfigError),
    /// A working folder (PKI and state, node CSV files, node logs) could not be made.
    #[error("a temporary folder for the PKI and state: {0}")]
    Workdir(std::io::Error),
    /// The zoo model's first parameters could not be drawn.
    #[error("the zoo model's first parameters: {0}")]
    FirstModel(cohort_client::sdk::SdkError),
    /// The PKI or the coordinator's certificate could not be made.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The coordinator failed to start or to finish its rounds.
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    /// A node could not be prepared or started, or did not finish well.
    #[error(transparent)]
    Node(#[from] LaunchError),
    /// The `cohort-node` binary was not found next to this program.
    #[error(transparent)]
    NodeProcess(#[from] NodeProcessError),
    /// The scenario cannot run as node processes (it has faults).
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The run needs more open files than this process may open.
    #[error(transparent)]
    OpenFiles(#[from] TooFewFiles),
    /// The run folder or a report could not be written.
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// A finished run: its rounds and summary, also written to its folder.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Every completed round, in order.
    pub rounds: Vec<RoundRow>,
    /// What the run reached.
    pub summary: RunSummary,
    /// With `[observe]`: what the scraper read from each target.
    pub scrapes: Option<Vec<Scrapes>>,
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
    let shares = Shares::of(scenario)?;
    shares.check_holdouts(scenario)?;
    // A socket per node on each side of its connection when both are here.
    match scenario.mode {
        Mode::Tasks => open_files::check(scenario.nodes, 2, "tasks")?,
        Mode::Processes => open_files::check(scenario.nodes, 1, "processes")?,
    }
    let workdir = tempfile::tempdir().map_err(RunError::Workdir)?;
    let federation_id = format!("sim-{name}");
    let provisioned = Provisioned::new(&workdir.path().join("pki"), &federation_id)?;
    let launcher = Launcher {
        provisioned: &provisioned,
        federation_id: &federation_id,
        holdout: scenario.holdout,
        processes: process_places(scenario, workdir.path(), out)?,
        model: scenario.model.zoo(),
    };

    // Each node's rows: split into training and held-out parts for a task,
    // written to its CSV file for a process.
    let prepared = prepare_nodes(&launcher, scenario, &shares)?;

    let plan = shares.plan(scenario, &federation_id)?;
    let config = coordinator_config(scenario, &plan, &provisioned, workdir.path())?;
    let mut coordinator = Coordinator::start(config).await?;
    let events = coordinator.events();
    let address = coordinator.local_addr();
    let scraper = start_scraper(scenario, &coordinator);

    let plans = scenario.faults.plans(prepared.len(), scenario.seed);
    let nodes = match start_nodes(&launcher, prepared, address, plans) {
        Ok(nodes) => nodes,
        Err(e) => {
            coordinator.shutdown().await;
            return Err(e.into());
        }
    };

    let Followed {
        head,
        rounds,
        stop_reason,
    } = progress::follow(&mut coordinator, events, on).await?;
    let scrapes = match scraper {
        Some(scraper) => Some(scraper.stop().await),
        None => None,
    };
    let finished = finish_nodes(nodes).await;
    coordinator.shutdown().await;
    finished?;

    let summary = summarize(scenario, name, &shares, &rounds, head, stop_reason, started);
    report::write(out, scenario, &rounds, &summary)?;
    Ok(RunOutcome {
        rounds,
        summary,
        scrapes,
    })
}

/// The coordinator's config on loopback, its state in `workdir` (or the
/// scenario's PostgreSQL database), with the operator endpoints on under
/// `[observe]`.
fn coordinator_config(
    scenario: &Scenario,
    plan: &FederationPlan,
    provisioned: &Provisioned,
    workdir: &Path,
) -> Result<FederationConfig, RunError> {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = plan.coordinator_config(provisioned, loopback, workdir.join("state"));
    config.server.store = scenario.postgres.clone();
    if let Some(zoo) = scenario.model.zoo() {
        let path = workdir.join(FIRST_MODEL_FILE);
        let first = zoo
            .first_model(scenario.seed)
            .map_err(RunError::FirstModel)?;
        let bytes =
            (first.to_safetensors(Vec::new())).map_err(|e| RunError::FirstModel(e.into()))?;
        std::fs::write(&path, bytes).map_err(RunError::Workdir)?;
        config.model.initial_parameters = Some(path);
    }
    if scenario.observe.is_some() {
        config.server.observability_listen = Some(loopback);
        config.server.console_listen = Some(loopback);
    }
    config.validate()?;
    Ok(config)
}

/// Waits for every node to end; the first failure, if any.
async fn finish_nodes(nodes: Vec<Running>) -> Result<(), LaunchError> {
    let mut failure = None;
    for node in nodes {
        if let Err(e) = node.finish().await {
            failure.get_or_insert(e);
        }
    }
    failure.map_or(Ok(()), Err)
}

/// With `[observe]`: a scraper of the coordinator's `/metrics` and of its
/// console's operator page and rounds (as an open page re-fetches them).
fn start_scraper(scenario: &Scenario, coordinator: &Coordinator) -> Option<Scraper> {
    let observe = scenario.observe?;
    let metrics = coordinator.observability_addr()?;
    let console = coordinator.console_addr()?;
    let targets = vec![
        (metrics, "/metrics".to_owned()),
        (console, "/".to_owned()),
        (console, "/fragment/rounds".to_owned()),
    ];
    let interval = std::time::Duration::from_millis(observe.scrape_interval_ms);
    Some(Scraper::start(targets, interval))
}

/// What the run reached, for its reports.
fn summarize(
    scenario: &Scenario,
    name: &str,
    shares: &Shares,
    rounds: &[RoundRow],
    head: FederationHead,
    stop_reason: Option<String>,
    started: Instant,
) -> RunSummary {
    let Shares {
        data,
        classes,
        parts,
        ..
    } = shares;
    let classes = *classes;
    let last = rounds.last();
    RunSummary {
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
        class_counts_per_node: label_histogram(data.labels(), parts),
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
        peak_memory_bytes: crate::memory::peak_resident_bytes(),
    }
}

/// Where process nodes' binary, CSV files and logs are (`None` for tasks).
fn process_places(
    scenario: &Scenario,
    workdir: &Path,
    out: &Path,
) -> Result<Option<ProcessPlaces>, RunError> {
    if scenario.mode == Mode::Tasks {
        return Ok(None);
    }
    scenario.check_processes()?;
    let places = ProcessPlaces {
        binary: sibling_binary(NODE_BINARY)?,
        data_dir: workdir.join("nodes"),
        log_dir: out.join("node-logs"),
    };
    for dir in [&places.data_dir, &places.log_dir] {
        std::fs::create_dir_all(dir).map_err(RunError::Workdir)?;
    }
    Ok(Some(places))
}

/// Every node's share, prepared before the coordinator starts.
fn prepare_nodes(
    launcher: &Launcher<'_>,
    scenario: &Scenario,
    shares: &Shares,
) -> Result<Vec<Prepared>, RunError> {
    (0..shares.parts.len())
        .map(|i| {
            Ok(launcher.prepare(NodeShare {
                node: node_id(i),
                data: shares.node_data(i)?,
                split_seed: Shares::split_seed(scenario, i),
            })?)
        })
        .collect()
}

/// Starts every prepared node against the coordinator at `address`, each
/// with its fault plan.
fn start_nodes(
    launcher: &Launcher<'_>,
    prepared: Vec<Prepared>,
    address: std::net::SocketAddr,
    plans: Vec<FaultPlan>,
) -> Result<Vec<Running>, LaunchError> {
    let mut plans = plans.into_iter();
    prepared
        .into_iter()
        .map(|node| launcher.start(node, address, plans.next()))
        .collect()
}
