//! FedProx (Li, Sahu, Zaheer, Sanjabi, Talwalkar & Smith, MLSys 2020,
//! "Federated Optimization in Heterogeneous Networks").
//!
//! Each node minimizes its loss plus a proximal term that keeps it near the
//! round's global model w_g:
//!
//! ```text
//! h_k(w) = F_k(w) + μ/2 · ‖w − w_g‖²
//! ```
//!
//! which bounds client drift on non-IID data. The term lives in the node's
//! training loop (`cohort_client::training`); the coordinator's part is to send
//! μ in every fit task's `TrainingConfig.proximal_mu` and to aggregate as FedAvg
//! does. μ = 0 is FedAvg.

use cohort_proto::v1;
use ndarray::Array1;

use super::{FedAvg, FitResult, RoundContext, SecureSum, Strategy, StrategyError};

/// FedProx: sends μ to the nodes for their proximal term and aggregates as
/// FedAvg.
#[derive(Debug, Clone, Copy)]
pub struct FedProx {
    /// μ: weight of the proximal term.
    proximal_mu: f64,
}

impl FedProx {
    /// FedProx with proximal weight μ = `proximal_mu`.
    pub fn new(proximal_mu: f64) -> Self {
        Self { proximal_mu }
    }
}

impl Strategy for FedProx {
    fn name(&self) -> &'static str {
        "fedprox"
    }

    fn configure_fit(&self, training: &mut v1::TrainingConfig) {
        training.proximal_mu = self.proximal_mu;
    }

    fn aggregate_fit(
        &mut self,
        global: &Array1<f32>,
        results: &[FitResult],
        context: &RoundContext,
    ) -> Result<Array1<f32>, StrategyError> {
        FedAvg.aggregate_fit(global, results, context)
    }

    fn aggregate_secure_sum(
        &mut self,
        global: &Array1<f32>,
        sum: &SecureSum,
        context: &RoundContext,
    ) -> Result<Array1<f32>, StrategyError> {
        FedAvg.aggregate_secure_sum(global, sum, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{CONTEXT, result};
    use ndarray::array;

    #[test]
    fn sends_mu_and_averages_like_fedavg() {
        let mut training = v1::TrainingConfig::default();
        let mut strategy = FedProx::new(0.01);
        strategy.configure_fit(&mut training);
        assert_eq!(training.proximal_mu, 0.01);

        // (1·[1, 2] + 3·[5, 6]) / 4 = [4, 5]
        let results = [
            result("a", array![1.0, 2.0], 1),
            result("b", array![5.0, 6.0], 3),
        ];
        let next = strategy
            .aggregate_fit(&array![0.0, 0.0], &results, &CONTEXT)
            .unwrap();
        assert_eq!(next, array![4.0, 5.0]);
    }
}
