//! Sampling: who takes part in the round, on which data, with which settings.

use std::time::SystemTime;

use cohort_proto::v1;

use super::super::engine::EngineError;
use super::super::sampling::{poisson_sample, round_training, sample_nodes};
use crate::audit::{AuditEvent, ContributorDataset};
use crate::federation::Federation;
use crate::store::records::{FederationHead, RoundOutcome, RoundRecord, SCHEMA_VERSION, unix_ms};
use crate::strategy::{RoundContext, Strategy};

/// What sampling fixes for the rest of the round.
#[derive(Debug, Clone)]
pub(crate) struct RoundPlan {
    /// The round's number.
    pub round: u64,
    /// 1 for the first attempt at it.
    pub attempt: u32,
    /// The head's model, which the round trains from.
    pub model_in: String,
    /// The sampled nodes, sorted.
    pub sampled: Vec<String>,
    /// How many nodes were available to sample from.
    pub available: usize,
    /// The data set version each sampled node had registered as the round
    /// started: what its contribution is trained on.
    pub datasets: Vec<ContributorDataset>,
    /// What the nodes are told to train with.
    pub training: v1::TrainingConfig,
    /// When sampling was done.
    pub started: SystemTime,
}

impl RoundPlan {
    /// What the strategy knows of the round beyond its results.
    pub fn context(&self) -> RoundContext {
        RoundContext {
            round: self.round,
            available: self.available,
        }
    }

    /// The round's record as it ends with `outcome`, now.
    pub fn record(&self, strategy: &str, outcome: RoundOutcome) -> RoundRecord {
        RoundRecord {
            schema: SCHEMA_VERSION,
            round: self.round,
            attempt: self.attempt,
            strategy: strategy.to_owned(),
            model_in: self.model_in.clone(),
            sampled: self.sampled.clone(),
            started_ms: unix_ms(self.started),
            finished_ms: unix_ms(SystemTime::now()),
            outcome,
            epsilon_spent: None,
            epsilon_against_coordinator: None,
        }
    }
}

/// Sampling: waits for `rounds.min_clients` available nodes and samples them
/// (Poisson from the OS's randomness under differential privacy, which its
/// accounting assumes, else a fixed-size seeded sample), fixes the training settings with the
/// strategy's additions, and logs `RoundStarted`.
pub(crate) async fn sample(
    federation: &Federation,
    strategy: &dyn Strategy,
    head: &FederationHead,
    round: u64,
    attempt: u32,
) -> Result<RoundPlan, EngineError> {
    let config = &federation.config;
    federation.nodes.wait_for(config.rounds.min_clients).await;
    let started = SystemTime::now();
    let available = federation.nodes.available_for_round(round);
    let sampled = if config.privacy.is_some() {
        poisson_sample(&available, config.rounds.fraction, &mut rand::rng())
    } else {
        sample_nodes(
            &available,
            config.rounds.fraction,
            config.rounds.min_clients,
            config.rounds.seed,
            round,
        )
    };
    let datasets = registered_datasets(federation, &sampled).await?;
    let training = if config.privacy.is_some() {
        // Under DP the seed is drawn from the OS, so it tells a node nothing
        // about who else was sampled.
        let mut training = round_training(config, strategy, round);
        training.seed = rand::RngExt::random(&mut rand::rng());
        training
    } else {
        round_training(config, strategy, round)
    };
    tracing::info!(round, attempt, sampled = sampled.len(), "round started");
    let started_event = AuditEvent::RoundStarted {
        round,
        attempt,
        model_in: head.model_version.clone(),
        sampled: sampled.clone(),
    };
    federation
        .audit_log
        .append(&federation.store, vec![started_event])
        .await?;
    Ok(RoundPlan {
        round,
        attempt,
        model_in: head.model_version.clone(),
        datasets,
        sampled,
        available: available.len(),
        training,
        started,
    })
}

/// The data set version each of `nodes` has registered now (their records
/// read in one go: one query on PostgreSQL, not one per node).
pub(super) async fn registered_datasets(
    federation: &Federation,
    nodes: &[String],
) -> Result<Vec<ContributorDataset>, EngineError> {
    let records = federation.store.node_records(nodes).await?;
    let datasets = nodes
        .iter()
        .filter_map(|node_id| {
            let dataset = records.get(node_id)?.dataset.as_ref()?;
            Some(ContributorDataset {
                node_id: node_id.clone(),
                dataset: dataset.reference(),
            })
        })
        .collect();
    Ok(datasets)
}
