//! FedAvg with server momentum, FedAvgM (Hsu, Qi & Brown, 2019, "Measuring the
//! Effects of Non-Identical Data Distribution for Federated Visual
//! Classification", arXiv:1909.06335).
//!
//! The server treats the round's averaged change Δ = Σ_k (n_k/n)·w_k − w as a
//! (negative) gradient and applies heavy-ball momentum to it:
//!
//! ```text
//! v ← β·v + Δ
//! w ← w + η·v
//! ```
//!
//! With β = 0 and η = 1 this is FedAvg. Momentum smooths the direction across
//! rounds, which helps when each round's sample of non-IID nodes pulls the
//! model somewhere else. The velocity v is the strategy's state.

use super::ServerOptimizer;

/// FedAvgM's update rule: heavy-ball momentum on the pseudo-gradient, run by
/// [`FedOpt`](super::FedOpt).
#[derive(Debug, Clone)]
pub struct FedAvgM {
    /// η: server learning rate.
    server_learning_rate: f64,
    /// β: momentum.
    momentum: f64,
}

impl FedAvgM {
    /// Server learning rate η and momentum β (validated by the config).
    pub fn new(server_learning_rate: f64, momentum: f64) -> Self {
        Self {
            server_learning_rate,
            momentum,
        }
    }
}

impl ServerOptimizer<1> for FedAvgM {
    fn name(&self) -> &'static str {
        "fedavgm"
    }

    fn moment_names(&self) -> [&'static str; 1] {
        ["velocity"]
    }

    fn initial_moments(&self) -> [f32; 1] {
        [0.0]
    }

    fn step(&self, w: f32, [v]: &mut [f32; 1], change: f64) -> f32 {
        let updated = self.momentum * f64::from(*v) + change;
        *v = updated as f32;
        (f64::from(w) + self.server_learning_rate * updated) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{CONTEXT, assert_close, result};
    use crate::strategy::{FedAvg, FedOpt, SecureSum, Strategy};
    use ndarray::array;

    fn fedavgm(server_learning_rate: f64, momentum: f64) -> FedOpt<FedAvgM, 1> {
        FedOpt::new(FedAvgM::new(server_learning_rate, momentum))
    }

    #[test]
    fn momentum_accumulates_the_averaged_change() {
        // η = 1, β = 0.5. Both rounds the nodes move the model by (+1, −2) on
        // average. Round 1: v = (1, −2), w = (1, −2).
        // Round 2: v = 0.5·(1, −2) + (1, −2) = (1.5, −3), w = (2.5, −5).
        let mut strategy = fedavgm(1.0, 0.5);
        let global = array![0.0, 0.0];
        let round1 = [
            result("a", array![0.0, -1.0], 1),
            result("b", array![2.0, -3.0], 1),
        ];
        let w1 = strategy.aggregate_fit(&global, &round1, &CONTEXT).unwrap();
        assert_close(&w1, &[1.0, -2.0], 1e-6);
        let round2 = [result("a", &w1 + &array![1.0, -2.0], 5)];
        let w2 = strategy.aggregate_fit(&w1, &round2, &CONTEXT).unwrap();
        assert_close(&w2, &[2.5, -5.0], 1e-6);
    }

    #[test]
    fn a_secure_sum_takes_the_same_step_as_the_updates() {
        // Changes (0, −1) and (2, −3) at weight 1 each: their sum and weight
        // give the mean change (1, −2), as the individual updates do.
        let global = array![0.0, 0.0];
        let sum = SecureSum {
            sum: array![2.0, -4.0],
            total_weight: 2.0,
        };
        let secure = fedavgm(1.0, 0.5)
            .aggregate_secure_sum(&global, &sum, &CONTEXT)
            .unwrap();
        assert_close(&secure, &[1.0, -2.0], 1e-6);
    }

    #[test]
    fn without_momentum_and_unit_rate_it_is_fedavg() {
        let global = array![1.0, 1.0];
        let results = [
            result("a", array![2.0, 4.0], 1),
            result("b", array![-2.0, 0.0], 3),
        ];
        let momentum = fedavgm(1.0, 0.0)
            .aggregate_fit(&global, &results, &CONTEXT)
            .unwrap();
        let plain = FedAvg.aggregate_fit(&global, &results, &CONTEXT).unwrap();
        assert_close(&momentum, plain.as_slice().unwrap(), 1e-6);
    }

    #[test]
    fn velocity_survives_a_restore() {
        let global = array![0.0];
        let results = [result("a", array![1.0], 1)];
        let mut before = fedavgm(1.0, 0.9);
        before.aggregate_fit(&global, &results, &CONTEXT).unwrap();
        let mut after = fedavgm(1.0, 0.9);
        after.restore(before.state().unwrap()).unwrap();
        let next = array![1.0];
        let results = [result("a", array![2.0], 1)];
        let resumed = after.aggregate_fit(&next, &results, &CONTEXT).unwrap();
        // v = 0.9·1 + 1 = 1.9, w = 1 + 1.9: the restored velocity carried over.
        assert_close(&resumed, &[2.9], 1e-6);
        assert_eq!(
            before.aggregate_fit(&next, &results, &CONTEXT).unwrap(),
            resumed
        );
    }
}
