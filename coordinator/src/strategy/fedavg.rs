//! Federated Averaging (McMahan et al., AISTATS 2017, "Communication-Efficient
//! Learning of Deep Networks from Decentralized Data"): the next global model is
//! the mean of the nodes' models weighted by their number of training examples.

use ndarray::Array1;

use super::{
    FitResult, RoundContext, SecureSum, Strategy, StrategyError, secure_mean_change, weighted_mean,
};

/// Federated Averaging: the mean of the nodes' models weighted by their example
/// counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct FedAvg;

impl Strategy for FedAvg {
    fn name(&self) -> &'static str {
        "fedavg"
    }

    fn aggregate_fit(
        &mut self,
        global: &Array1<f32>,
        results: &[FitResult],
        _context: &RoundContext,
    ) -> Result<Array1<f32>, StrategyError> {
        Ok(weighted_mean(global, results)?.mapv(|v| v as f32))
    }

    /// The weighted mean of the models is the global model plus the weighted
    /// mean of the changes: Σ w·Δ / Σ w.
    fn aggregate_secure_sum(
        &mut self,
        global: &Array1<f32>,
        sum: &SecureSum,
        _context: &RoundContext,
    ) -> Result<Array1<f32>, StrategyError> {
        let change = secure_mean_change(global, sum)?;
        Ok(global + &change.mapv(|v| v as f32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{CONTEXT, result};
    use ndarray::array;

    #[test]
    fn weights_by_example_count() {
        // (1·[1, 2, 3] + 3·[5, 6, 7]) / 4 = [4, 5, 6]
        let global = array![0.0, 0.0, 0.0];
        let results = [
            result("a", array![1.0, 2.0, 3.0], 1),
            result("b", array![5.0, 6.0, 7.0], 3),
        ];
        let next = FedAvg.aggregate_fit(&global, &results, &CONTEXT).unwrap();
        assert_eq!(next, array![4.0, 5.0, 6.0]);
    }

    #[test]
    fn three_nodes_hand_computed() {
        // weights 10/40, 10/40, 20/40: 0.25·2 + 0.25·(-2) + 0.5·1 = 0.5; 0.25·4 + 0.25·0 + 0.5·8 = 5
        let global = array![9.0, 9.0];
        let results = [
            result("a", array![2.0, 4.0], 10),
            result("b", array![-2.0, 0.0], 10),
            result("c", array![1.0, 8.0], 20),
        ];
        let next = FedAvg.aggregate_fit(&global, &results, &CONTEXT).unwrap();
        assert!(
            (next[0] - 0.5).abs() < 1e-6 && (next[1] - 5.0).abs() < 1e-6,
            "{next}"
        );
    }

    #[test]
    fn refuses_empty_and_mismatched_input() {
        let global = array![0.0, 0.0];
        assert_eq!(
            FedAvg.aggregate_fit(&global, &[], &CONTEXT),
            Err(StrategyError::NoResults)
        );
        assert_eq!(
            FedAvg.aggregate_fit(&global, &[result("a", array![1.0, 1.0], 0)], &CONTEXT),
            Err(StrategyError::NoExamples)
        );
        assert!(matches!(
            FedAvg.aggregate_fit(&global, &[result("a", array![1.0], 1)], &CONTEXT),
            Err(StrategyError::WrongLength { .. })
        ));
    }
}
