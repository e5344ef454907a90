//! Norm bounding: every node's model change is clipped to an L2 norm before
//! aggregation (Sun, Kairouz, Suresh & McMahan, 2019, "Can You Really Backdoor
//! Federated Learning?", arXiv:1911.07963).
//!
//! A node's influence on the round is bounded by the bound, whatever it sends:
//! a scaled or boosted update (the usual model-replacement attack) is cut back
//! to the size of an honest one. Unlike the robust aggregators it needs no
//! view of the individual updates: the bound is also sent to the nodes
//! (`TrainingConfig.max_update_norm`), which clip their own change before
//! uploading, so it keeps working when secure aggregation hides the updates
//! (where only that node-side clip applies). When the coordinator does see the
//! updates, it clips them again here, so a node that ignores the bound gains
//! nothing. It wraps any other strategy; with FedAvg it is the classic
//! norm-bounded FedAvg.

use cohort_privacy::clip_l2;
use cohort_proto::v1;
use ndarray::Array1;

use super::{
    FitResult, RoundContext, SecureSum, Strategy, StrategyError, StrategyState, check_lengths,
};

/// Wraps a strategy so that every node's model change is clipped to an L2 norm
/// bound, by the nodes and again by the coordinator when it sees the updates.
#[derive(Debug)]
pub struct NormBounded {
    inner: Box<dyn Strategy>,
    max_update_norm: f64,
}

impl NormBounded {
    /// `inner` with each node's change clipped to L2 norm `max_update_norm`.
    pub fn new(inner: Box<dyn Strategy>, max_update_norm: f64) -> Self {
        Self {
            inner,
            max_update_norm,
        }
    }
}

impl Strategy for NormBounded {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn configure_fit(&self, training: &mut v1::TrainingConfig) {
        self.inner.configure_fit(training);
        training.max_update_norm = self.max_update_norm;
    }

    fn aggregate_fit(
        &mut self,
        global: &Array1<f32>,
        results: &[FitResult],
        context: &RoundContext,
    ) -> Result<Array1<f32>, StrategyError> {
        check_lengths(global, results)?;
        let bounded = results
            .iter()
            .map(|result| {
                let mut change = (&result.parameters - global).to_vec();
                clip_l2(&mut change, self.max_update_norm).map_err(|e| {
                    StrategyError::NormBound {
                        node_id: result.node_id.clone(),
                        reason: e.to_string(),
                    }
                })?;
                Ok(FitResult {
                    parameters: global + &Array1::from(change),
                    ..result.clone()
                })
            })
            .collect::<Result<Vec<_>, StrategyError>>()?;
        self.inner.aggregate_fit(global, &bounded, context)
    }

    /// Under secure aggregation the nodes bound their own changes (the bound
    /// travels in their training config); the sum goes to the inner strategy.
    fn aggregate_secure_sum(
        &mut self,
        global: &Array1<f32>,
        sum: &SecureSum,
        context: &RoundContext,
    ) -> Result<Array1<f32>, StrategyError> {
        self.inner.aggregate_secure_sum(global, sum, context)
    }

    fn needs_individual_updates(&self) -> bool {
        self.inner.needs_individual_updates()
    }

    fn state(&self) -> Option<StrategyState> {
        self.inner.state()
    }

    fn restore(&mut self, state: StrategyState) -> Result<(), StrategyError> {
        self.inner.restore(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::FedAvg;
    use crate::strategy::test_support::{CONTEXT, assert_close, result};
    use ndarray::array;

    #[test]
    fn a_boosted_update_is_cut_to_the_bound_before_averaging() {
        // Bound 1. a moves by (3, 4) (norm 5) → (0.6, 0.8); b by (0, 0.5) stays.
        // Equal weights: global + ((0.6, 0.8) + (0, 0.5))/2 = (1.3, 1.65).
        let mut strategy = NormBounded::new(Box::new(FedAvg), 1.0);
        let global = array![1.0, 1.0];
        let results = [
            result("a", array![4.0, 5.0], 10),
            result("b", array![1.0, 1.5], 10),
        ];
        let next = strategy.aggregate_fit(&global, &results, &CONTEXT).unwrap();
        assert_close(&next, &[1.3, 1.65], 1e-6);

        let mut training = v1::TrainingConfig::default();
        strategy.configure_fit(&mut training);
        assert_eq!(training.max_update_norm, 1.0);
        assert_eq!(strategy.name(), "fedavg");
        assert!(!strategy.needs_individual_updates());
    }
}
