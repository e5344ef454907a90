//! How a round's results become the next global model.
//!
//! One trait, one file per concept. The round engine asks a strategy what to
//! send the nodes ([`Strategy::configure_fit`]) and hands it the current global
//! parameters and the accepted fit results ([`Strategy::aggregate_fit`]); the
//! strategy returns the next global parameters. [`for_config`] (`from_config.rs`)
//! builds the one a federation's `[strategy]` section (a
//! [`StrategyConfig`](crate::config::StrategyConfig)) asks for.
//!
//! | name | file | paper |
//! |---|---|---|
//! | `fedavg` | `fedavg.rs` | McMahan et al., AISTATS 2017 |
//! | `fedavgm` | `fedavgm.rs` (run by `fedopt.rs`) | Hsu, Qi & Brown, 2019 (server momentum) |
//! | `fedprox` | `fedprox.rs` | Li et al., MLSys 2020 |
//! | `fedadam`, `fedyogi`, `fedadagrad` | `adaptive.rs` (run by `fedopt.rs`) | Reddi et al., ICLR 2021 |
//! | `median`, `trimmed_mean` | `median.rs`, `trimmed_mean.rs` | Yin et al., ICML 2018 |
//! | `krum`, `multi_krum` | `krum.rs` | Blanchard et al., NeurIPS 2017 |
//! | any of the above with `max_update_norm` | `norm_bound.rs` | Sun et al., 2019 |
//! | DP-FedAvg (under `[privacy]`) | `dp_fedavg.rs`, its mechanism and accounted event `dp_mechanism.rs` | McMahan et al., ICLR 2018; Kairouz et al., ICML 2021 |
//!
//! **Server optimizers.** FedAvgM and the adaptive optimizers share one
//! strategy, [`FedOpt`] (`fedopt.rs`): it computes the round's pseudo-gradient
//! and keeps the per-parameter moments; each optimizer is a [`ServerOptimizer`],
//! only its update rule.
//!
//! **State.** The server optimizers' moments (FedAvgM's velocity, the adaptive
//! optimizers' m and v) and adaptive clipping's clip norm are the only state. [`Strategy::state`] snapshots it as a [`StrategyState`]; the
//! round engine writes that snapshot in the same sled transaction as the
//! round's model and head (`Store::commit_round`), and the coordinator restores
//! it at start-up ([`Strategy::restore`]). A round that crashed before its
//! commit is rerun from the state of the last committed round, so the state and
//! the global model never disagree.
//!
//! **Secure aggregation.** The robust aggregators (median, trimmed mean, Krum)
//! must see every node's update; under secure aggregation the coordinator only
//! ever sees their sum. [`Strategy::needs_individual_updates`] (and
//! [`StrategyConfig::needs_individual_updates`](crate::config::StrategyConfig::needs_individual_updates)
//! at configuration time) says so;
//! [`StrategyConfig::check_secure_aggregation`](crate::config::StrategyConfig::check_secure_aggregation)
//! is the refusal the secure-aggregation configuration calls. Norm bounding is the defence that
//! remains under secure aggregation: the bound is sent to the nodes, which clip
//! their own change before uploading (see `max_update_norm` in the protocol's
//! `TrainingConfig`).

mod adaptive;
mod dp_fedavg;
pub mod dp_mechanism;
mod fedavg;
mod fedavgm;
mod fedopt;
mod fedprox;
mod from_config;
mod krum;
mod median;
mod norm_bound;
mod trimmed_mean;

use std::collections::BTreeMap;

pub use adaptive::{Adaptive, SecondMoment};
pub use dp_fedavg::DpFedAvg;
pub use fedavg::FedAvg;
pub use fedavgm::FedAvgM;
pub use fedopt::{FedOpt, ServerOptimizer};
pub use fedprox::FedProx;
pub use from_config::for_config;
pub use krum::Krum;
pub use median::Median;
pub use norm_bound::NormBounded;
pub use trimmed_mean::TrimmedMean;

use cohort_proto::v1;
use ndarray::Array1;
use serde::{Deserialize, Serialize};

/// One node's accepted training result.
#[derive(Debug, Clone)]
pub struct FitResult {
    /// The node that trained.
    pub node_id: String,
    /// The node's trained model parameters (the full model, in the wire
    /// layout).
    pub parameters: Array1<f32>,
    /// Training examples the node used, its weight under FedAvg.
    pub num_examples: u64,
    /// The node's mean training loss over its last local epoch.
    pub train_loss: f64,
}

/// What secure aggregation reveals of a round: the sum of the contributors'
/// encoded changes (weight · clipped change, plus noise under distributed DP) and
/// the sum of their weights.
#[derive(Debug, Clone, PartialEq)]
pub struct SecureSum {
    /// Σ of the contributors' encoded changes, per parameter.
    pub sum: Array1<f64>,
    /// Σ of the contributors' weights.
    pub total_weight: f64,
}

/// What a strategy knows of the round beyond its results.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundContext {
    /// The round's number.
    pub round: u64,
    /// Nodes available for sampling when the round started.
    pub available: usize,
}

/// A stateful strategy's state after a round: named vectors, one value per
/// model parameter. Stored with the round's commit so a restart resumes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyState {
    /// [`Strategy::name`] of the strategy that wrote it.
    pub strategy: String,
    /// The state's vectors by name (moments, clip norm, …).
    pub buffers: BTreeMap<String, Vec<f32>>,
}

/// Why a strategy could not aggregate a round or restore its state.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StrategyError {
    /// The round has no accepted results.
    #[error("no fit results to aggregate")]
    NoResults,
    /// The results' example counts sum to zero, or a secure sum's total weight
    /// is not positive.
    #[error("the results carry no training examples")]
    NoExamples,
    #[error(
        "strategy {0} needs each node's update, which secure aggregation hides; only the mean change is known"
    )]
    /// The named strategy cannot run on a secure sum.
    NeedsIndividualUpdates(&'static str),
    /// A differential-privacy parameter is invalid, or noise could not be
    /// applied.
    #[error("differential privacy: {0}")]
    Privacy(String),
    /// A node's parameter vector does not match the global model's length.
    #[error("node {node_id} sent {actual} parameters, the model has {expected}")]
    WrongLength {
        /// The node (`(secure sum)` for a secure sum).
        node_id: String,
        /// The global model's length.
        expected: usize,
        /// The length sent.
        actual: usize,
    },
    /// The strategy needs more results than the round has.
    #[error("{strategy} needs at least {needed} results, got {got}")]
    TooFewResults {
        /// The strategy.
        strategy: &'static str,
        /// Results it needs.
        needed: usize,
        /// Results the round has.
        got: usize,
    },
    /// A node's update could not be clipped to the norm bound.
    #[error("norm bounding node {node_id}'s update: {reason}")]
    NormBound {
        /// The node.
        node_id: String,
        /// Why.
        reason: String,
    },
    /// The stored state does not fit the strategy.
    #[error("stored {strategy} state: {problem}")]
    State {
        /// The strategy.
        strategy: &'static str,
        /// What is wrong with the state.
        problem: String,
    },
}

/// Refuses a result whose parameter count is not the global model's.
fn check_lengths(global: &Array1<f32>, results: &[FitResult]) -> Result<(), StrategyError> {
    match results.iter().find(|r| r.parameters.len() != global.len()) {
        Some(result) => Err(StrategyError::WrongLength {
            node_id: result.node_id.clone(),
            expected: global.len(),
            actual: result.parameters.len(),
        }),
        None => Ok(()),
    }
}

/// Refuses a secure sum whose length is not the global model's.
fn check_secure_length(global: &Array1<f32>, sum: &SecureSum) -> Result<(), StrategyError> {
    if sum.sum.len() != global.len() {
        return Err(StrategyError::WrongLength {
            node_id: "(secure sum)".into(),
            expected: global.len(),
            actual: sum.sum.len(),
        });
    }
    Ok(())
}

/// The weighted mean change Σ w·Δ / Σ w that a secure sum reveals: the same
/// pseudo-gradient as [`mean_change`] computes from individual updates.
fn secure_mean_change(global: &Array1<f32>, sum: &SecureSum) -> Result<Array1<f64>, StrategyError> {
    check_secure_length(global, sum)?;
    if sum.total_weight.is_nan() || sum.total_weight <= 0.0 {
        return Err(StrategyError::NoExamples);
    }
    Ok(sum.sum.mapv(|v| v / sum.total_weight))
}

/// Gives a stateful strategy `stored`, the state committed with the head's
/// round. State written by another strategy (the config changed between
/// starts) is set aside with a warning: its moments mean nothing to the new one.
pub fn resume(
    strategy: &mut dyn Strategy,
    stored: Option<StrategyState>,
) -> Result<(), StrategyError> {
    let Some(state) = stored else {
        return Ok(());
    };
    if state.strategy != strategy.name() {
        tracing::warn!(
            stored = %state.strategy,
            configured = strategy.name(),
            "the stored strategy state belongs to another strategy; starting the configured one fresh"
        );
        return Ok(());
    }
    strategy.restore(state)?;
    tracing::info!(strategy = strategy.name(), "strategy state resumed");
    Ok(())
}

/// An aggregation rule: turns the current global model and a round's results
/// (or their secure sum) into the next global model, keeping any state it needs
/// between rounds.
pub trait Strategy: Send + Sync + std::fmt::Debug {
    /// A stable name for round records and logs.
    fn name(&self) -> &'static str;

    /// Adjusts the training config sent to the round's nodes (FedProx's μ,
    /// norm bounding's bound). The default sends it unchanged.
    fn configure_fit(&self, _training: &mut v1::TrainingConfig) {}

    /// The next global parameters from the current ones and the round's results.
    /// On error the strategy's state is unchanged.
    fn aggregate_fit(
        &mut self,
        global: &Array1<f32>,
        results: &[FitResult],
        context: &RoundContext,
    ) -> Result<Array1<f32>, StrategyError>;

    /// The next global parameters when only the sum of the nodes' changes is
    /// known (under secure aggregation). Strategies that need each update refuse.
    fn aggregate_secure_sum(
        &mut self,
        global: &Array1<f32>,
        sum: &SecureSum,
        context: &RoundContext,
    ) -> Result<Array1<f32>, StrategyError> {
        let _ = (global, sum, context);
        Err(StrategyError::NeedsIndividualUpdates(self.name()))
    }

    /// Whether aggregation must see each node's update (robust aggregators):
    /// such a strategy cannot run under secure aggregation, which only reveals
    /// the sum.
    fn needs_individual_updates(&self) -> bool {
        false
    }

    /// The state to persist with the round's commit; `None` when stateless.
    fn state(&self) -> Option<StrategyState> {
        None
    }

    /// Resumes from a state written by [`Strategy::state`] of a strategy with
    /// the same name.
    fn restore(&mut self, state: StrategyState) -> Result<(), StrategyError> {
        Err(StrategyError::State {
            strategy: self.name(),
            problem: format!(
                "this strategy keeps no state, but {} state was stored",
                state.strategy
            ),
        })
    }
}

/// The example-weighted mean of the results' parameters (FedAvg's step), in f64.
fn weighted_mean(
    global: &Array1<f32>,
    results: &[FitResult],
) -> Result<Array1<f64>, StrategyError> {
    if results.is_empty() {
        return Err(StrategyError::NoResults);
    }
    check_lengths(global, results)?;
    let total: u64 = results.iter().map(|r| r.num_examples).sum();
    if total == 0 {
        return Err(StrategyError::NoExamples);
    }
    // Accumulate in f64: thousands of f32 updates summed in f32 lose digits.
    let mut sum = Array1::<f64>::zeros(global.len());
    for result in results {
        let weight = result.num_examples as f64 / total as f64;
        sum.zip_mut_with(&result.parameters, |acc, &p| *acc += weight * f64::from(p));
    }
    Ok(sum)
}

/// The pseudo-gradient Δ = (weighted mean of the nodes' models) − global, the
/// "update" the server optimizers of FedAvgM and Reddi et al. step along.
fn mean_change(global: &Array1<f32>, results: &[FitResult]) -> Result<Array1<f64>, StrategyError> {
    let mut mean = weighted_mean(global, results)?;
    mean.zip_mut_with(global, |m, &g| *m -= f64::from(g));
    Ok(mean)
}

/// Applies `reduce` to each coordinate's values across the results, sorted
/// ascending (robust aggregators: median, trimmed mean).
fn coordinatewise(
    global: &Array1<f32>,
    results: &[FitResult],
    reduce: impl Fn(&[f32]) -> f32,
) -> Result<Array1<f32>, StrategyError> {
    if results.is_empty() {
        return Err(StrategyError::NoResults);
    }
    check_lengths(global, results)?;
    let mut column = vec![0.0f32; results.len()];
    Ok(Array1::from_shape_fn(global.len(), |i| {
        for (value, result) in column.iter_mut().zip(results) {
            *value = result.parameters[i];
        }
        column.sort_unstable_by(f32::total_cmp);
        reduce(&column)
    }))
}

/// A stored buffer by name, of the model's length.
fn take_buffer(
    strategy: &'static str,
    state: &mut StrategyState,
    name: &str,
) -> Result<Vec<f32>, StrategyError> {
    state
        .buffers
        .remove(name)
        .ok_or_else(|| StrategyError::State {
            strategy,
            problem: format!("no `{name}` buffer"),
        })
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub const CONTEXT: RoundContext = RoundContext {
        round: 1,
        available: 3,
    };

    pub fn result(node: &str, params: Array1<f32>, n: u64) -> FitResult {
        FitResult {
            node_id: node.into(),
            parameters: params,
            num_examples: n,
            train_loss: 0.0,
        }
    }

    /// Asserts `got` equals `want` to `tolerance` coordinate-wise.
    pub fn assert_close(got: &Array1<f32>, want: &[f32], tolerance: f32) {
        assert_eq!(got.len(), want.len(), "{got} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tolerance, "{got} vs {want:?}");
        }
    }
}
