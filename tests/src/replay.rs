//! An auditor's replay of a model: the rounds on its verified lineage rerun
//! from the data alone, outside the coordinator and the nodes, each round's
//! model hash compared with the one the log committed.
//!
//! What the replay takes: the federation's configuration (its model, seeds,
//! `[training]`, `[strategy]` and `[scaling]`), the verified audit log, and the
//! training rows of every data set version on the model's path. It rebuilds
//! the initial model from `model.init_seed`, the feature scaling from the
//! logged contributors' statistics (or the declared one), and then, round by
//! round, trains every logged contributor on the version the log says it
//! trained on, with the round's seed
//! ([`cohort_coordinator::rounds::sampling::round_training`]), and aggregates
//! with the configured strategy. It uses the node's own training code and
//! the coordinator's own strategy, but nothing the coordinator or a node
//! computed at run time: a model that learned from rows the auditor was not
//! given cannot replay to the same hash.
//!
//! Federations under differential privacy cannot be replayed, by design:
//! their noise, sample and training seeds are drawn from the operating system
//! and never recorded.

use cohort_client::data::{Dataset, FeatureStats, content_sha256, feature_stats, standardized};
use cohort_client::training::{LocalTrainingConfig, train_local};
use cohort_coordinator::audit::lineage::{Lineage, RoundStep};
use cohort_coordinator::audit::{AuditEntry, ContributorDataset};
use cohort_coordinator::config::FederationConfig;
use cohort_coordinator::rounds::sampling::round_training;
use cohort_coordinator::strategy::{FitResult, RoundContext, Strategy, for_config};
use cohort_proto::model::{ParameterLayout, encode_f32, initial_parameters, model_version};
use cohort_proto::scaling::FeatureScaling;
use ndarray::Array1;

/// Why a replay did not reproduce the model.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReplayError {
    /// The federation cannot be replayed, or its log does not describe the model.
    #[error("cannot replay: {0}")]
    Unreplayable(String),
    /// The auditor does not hold the training rows of a version on the path.
    #[error("no training rows of data set version {0} were given")]
    MissingData(String),
    /// Training or aggregating a round failed.
    #[error("round {round}: {reason}")]
    Failed {
        /// The round.
        round: u64,
        /// Why.
        reason: String,
    },
    /// A replayed model is not the one the log committed.
    #[error("round {round} replays to {replayed}, the log committed {logged}")]
    Diverged {
        /// The first round that differs (0: the initial model).
        round: u64,
        /// The version the log names.
        logged: String,
        /// The version the replay computed.
        replayed: String,
    },
}

/// Replays `model`'s rounds from `entries` (a verified log) under `config`
/// with the training rows in `data` (any number of data set versions, found
/// by content hash). Returns the replayed final model's version, equal to
/// `model`; every round's model is checked on the way.
pub fn replay(
    config: &FederationConfig,
    entries: &[AuditEntry],
    model: &str,
    data: &[Dataset],
) -> Result<String, ReplayError> {
    if config.privacy.is_some() {
        return Err(ReplayError::Unreplayable(
            "differential privacy draws its noise and seeds from the operating system".into(),
        ));
    }
    let lineage = Lineage::from_entries(entries)
        .model(model)
        .map_err(|e| ReplayError::Unreplayable(format!("lineage of {model}: {e}")))?;
    let spec = (config.dense_spec()).ok_or_else(|| {
        ReplayError::Unreplayable("replay covers the built-in dense models".into())
    })?;
    let layout =
        ParameterLayout::of(&spec).map_err(|e| ReplayError::Unreplayable(e.to_string()))?;
    let mut parameters = initial_parameters(&layout, config.model.init_seed);
    check(&layout, 0, &lineage.initial_model, &parameters)?;
    let scaling = match (&config.scaling, &lineage.scaling) {
        (Some(declared), _) => declared.clone(),
        (None, Some(agreed)) => agreed_scaling(&agreed.datasets, data)?,
        (None, None) => {
            return Err(ReplayError::Unreplayable(
                "the log records no feature scaling and none is declared".into(),
            ));
        }
    };
    let mut strategy = for_config(config).map_err(|e| ReplayError::Unreplayable(e.to_string()))?;
    for step in &lineage.rounds {
        let next = replay_round(
            config,
            strategy.as_mut(),
            &layout,
            &scaling,
            step,
            &parameters,
            data,
        )?;
        check(&layout, step.round, &step.model_out, &next)?;
        parameters = next;
    }
    Ok(version(&layout, &parameters))
}

/// One round: every contributor trains from `global` on its logged version,
/// the strategy aggregates (in node-id order, as the coordinator does).
fn replay_round(
    config: &FederationConfig,
    strategy: &mut dyn Strategy,
    layout: &ParameterLayout,
    scaling: &FeatureScaling,
    step: &RoundStep,
    global: &[f32],
    data: &[Dataset],
) -> Result<Vec<f32>, ReplayError> {
    let failed = |reason: String| ReplayError::Failed {
        round: step.round,
        reason,
    };
    let training = LocalTrainingConfig::from(&round_training(config, strategy, step.round));
    let mut results = Vec::with_capacity(step.contributors.len());
    for node_id in &step.contributors {
        let version = (step.datasets.iter())
            .find(|d| &d.node_id == node_id)
            .map(|d| d.dataset.version.clone())
            .ok_or_else(|| failed(format!("the log names no data set version for {node_id}")))?;
        let rows = standardized(scaling, rows_of(&version, data)?)
            .map_err(|e| failed(format!("{node_id}: {e}")))?;
        let outcome = train_local(layout, global, &rows, &training)
            .map_err(|e| failed(format!("{node_id}: {e}")))?;
        results.push(FitResult {
            node_id: node_id.clone(),
            parameters: Array1::from(outcome.parameters),
            num_examples: outcome.num_examples,
            train_loss: outcome.mean_loss,
        });
    }
    results.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    let context = RoundContext {
        round: step.round,
        available: results.len(),
    };
    let next = strategy
        .aggregate_fit(&Array1::from(global.to_vec()), &results, &context)
        .map_err(|e| failed(e.to_string()))?;
    Ok(next.to_vec())
}

/// The scaling the logged contributors' statistics combine to, in the
/// logged order (the order the coordinator combined them in).
fn agreed_scaling(
    contributors: &[ContributorDataset],
    data: &[Dataset],
) -> Result<FeatureScaling, ReplayError> {
    let stats = contributors
        .iter()
        .map(|c| rows_of(&c.dataset.version, data).map(feature_stats))
        .collect::<Result<Vec<_>, _>>()?;
    FeatureStats::combine(&stats).map_err(|e| ReplayError::Failed {
        round: 0,
        reason: e.to_string(),
    })
}

/// The rows in `data` whose content hash is data set version `version`.
fn rows_of<'a>(version: &str, data: &'a [Dataset]) -> Result<&'a Dataset, ReplayError> {
    data.iter()
        .find(|rows| !version.is_empty() && content_sha256(rows).starts_with(version))
        .ok_or_else(|| ReplayError::MissingData(version.to_owned()))
}

/// The content address of `parameters`, as the coordinator names models.
fn version(layout: &ParameterLayout, parameters: &[f32]) -> String {
    model_version(&layout.fingerprint(), &encode_f32(parameters))
}

/// Fails unless `parameters` are the model the log calls `logged`.
fn check(
    layout: &ParameterLayout,
    round: u64,
    logged: &str,
    parameters: &[f32],
) -> Result<(), ReplayError> {
    let replayed = version(layout, parameters);
    if replayed == logged {
        return Ok(());
    }
    Err(ReplayError::Diverged {
        round,
        logged: logged.to_owned(),
        replayed,
    })
}
