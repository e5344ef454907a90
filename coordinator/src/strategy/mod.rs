//! How a round's results become the next global model.
//!
//! One trait, one file per implementation. The round engine hands a strategy the
//! current global parameters and the accepted fit results; the strategy returns
//! the next global parameters.

mod dp_fedavg;
mod fedavg;

pub use dp_fedavg::DpFedAvg;
pub use fedavg::FedAvg;
use ndarray::Array1;

/// One node's accepted training result.
#[derive(Debug, Clone)]
pub struct FitResult {
    pub node_id: String,
    pub parameters: Array1<f32>,
    pub num_examples: u64,
    pub train_loss: f64,
}

/// What secure aggregation reveals of a round: the sum of the contributors'
/// encoded changes (weight · clipped change, plus noise under distributed DP) and
/// the sum of their weights.
#[derive(Debug, Clone, PartialEq)]
pub struct SecureSum {
    pub sum: Array1<f64>,
    pub total_weight: f64,
}

/// What a strategy knows of the round beyond its results.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundContext {
    pub round: u64,
    /// Nodes available for sampling when the round started.
    pub available: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StrategyError {
    #[error("no fit results to aggregate")]
    NoResults,
    #[error("the results carry no training examples")]
    NoExamples,
    #[error(
        "strategy {0} needs each node's update, which secure aggregation hides; only the mean change is known"
    )]
    NeedsIndividualUpdates(&'static str),
    #[error("differential privacy: {0}")]
    Privacy(String),
    #[error("node {node_id} sent {actual} parameters, the model has {expected}")]
    WrongLength {
        node_id: String,
        expected: usize,
        actual: usize,
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

/// The strategy a federation's config asks for.
pub fn for_config(
    config: &crate::config::FederationConfig,
) -> Result<Box<dyn Strategy>, StrategyError> {
    Ok(match &config.privacy {
        Some(privacy) => Box::new(DpFedAvg::new(
            privacy.noise_multiplier,
            privacy.clip_norm,
            config.rounds.fraction,
            privacy.placement,
        )?),
        None => Box::new(FedAvg),
    })
}

pub trait Strategy: Send + Sync + std::fmt::Debug {
    /// A stable name for round records and logs.
    fn name(&self) -> &'static str;

    /// The next global parameters from the current ones and the round's results.
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
}
