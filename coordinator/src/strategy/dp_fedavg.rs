//! DP-FedAvg with central noise (McMahan, Ramage, Talwar, Zhang, ICLR 2018,
//! "Learning Differentially Private Recurrent Language Models", Algorithm 1 with
//! the fixed-denominator estimator).
//!
//! Each node's model *change* Δ_k = w_k − w is clipped to L2 norm C, so one
//! node moves the sum by at most C; the coordinator adds N(0, (σ·C)²) to every
//! coordinate of the sum and divides by the expected number of participants
//! q·N (not the realized count, which would leak participation). Nodes weigh
//! equally: weighting by example counts would let one node's weight exceed the
//! sensitivity the accounting assumes. The noise comes from the operating
//! system's CSPRNG, never from a seed.

use cohort_privacy::{GaussianNoise, clip_l2};
use ndarray::Array1;

use super::{
    FitResult, RoundContext, SecureSum, Strategy, StrategyError, check_lengths, check_secure_length,
};
use crate::config::NoisePlacement;

#[derive(Debug, Clone)]
pub struct DpFedAvg {
    clip_norm: f64,
    noise: GaussianNoise,
    sampling_rate: f64,
    placement: NoisePlacement,
}

impl DpFedAvg {
    pub fn new(
        noise_multiplier: f64,
        clip_norm: f64,
        sampling_rate: f64,
        placement: NoisePlacement,
    ) -> Result<Self, StrategyError> {
        let noise = GaussianNoise::for_clipped_sum(noise_multiplier, clip_norm)
            .map_err(|e| StrategyError::Privacy(e.to_string()))?;
        Ok(Self {
            clip_norm,
            noise,
            sampling_rate,
            placement,
        })
    }

    /// q·N: the fixed denominator.
    fn expected_participants(&self, context: &RoundContext) -> f64 {
        (self.sampling_rate * context.available as f64).max(1.0)
    }
}

impl Strategy for DpFedAvg {
    fn name(&self) -> &'static str {
        match self.placement {
            NoisePlacement::Central => "dp-fedavg",
            NoisePlacement::Distributed => "dp-fedavg-distributed",
        }
    }

    /// Distributed placement: the nodes clipped their changes and the sum
    /// already carries the noise of their shares; only the fixed denominator
    /// is left to apply.
    fn aggregate_secure_sum(
        &mut self,
        global: &Array1<f32>,
        sum: &SecureSum,
        context: &RoundContext,
    ) -> Result<Array1<f32>, StrategyError> {
        if self.placement != NoisePlacement::Distributed {
            return Err(StrategyError::Privacy(
                "central noise cannot be added to a secure sum without the coordinator seeing it noise-free".into(),
            ));
        }
        check_secure_length(global, sum)?;
        let expected = self.expected_participants(context);
        Ok(global + &sum.sum.mapv(|v| (v / expected) as f32))
    }

    fn aggregate_fit(
        &mut self,
        global: &Array1<f32>,
        results: &[FitResult],
        context: &RoundContext,
    ) -> Result<Array1<f32>, StrategyError> {
        check_lengths(global, results)?;
        let mut sum = vec![0.0f32; global.len()];
        for result in results {
            let mut delta: Vec<f32> = (&result.parameters - global).to_vec();
            clip_l2(&mut delta, self.clip_norm)
                .map_err(|e| StrategyError::Privacy(format!("node {}: {e}", result.node_id)))?;
            for (acc, d) in sum.iter_mut().zip(&delta) {
                *acc += d;
            }
        }
        if self.placement != NoisePlacement::Central {
            return Err(StrategyError::Privacy(
                "distributed noise needs secure aggregation; these updates came in the clear"
                    .into(),
            ));
        }
        self.noise.add_to(&mut sum, &mut rand::rng());
        let expected = self.expected_participants(context) as f32;
        Ok(global + &Array1::from(sum).mapv(|v| v / expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn changes_are_clipped_and_averaged_over_the_expected_count() {
        // σ tiny: the result is the mean of the clipped changes, to 1e-4.
        let mut strategy = DpFedAvg::new(1e-6, 1.0, 1.0, NoisePlacement::Central).unwrap();
        let global = array![1.0, 1.0];
        let results = [
            FitResult {
                node_id: "a".into(),
                parameters: array![4.0, 5.0], // change (3, 4), norm 5 → (0.6, 0.8)
                num_examples: 1000,
                train_loss: 0.0,
            },
            FitResult {
                node_id: "b".into(),
                parameters: array![1.0, 1.5], // change (0, 0.5), inside the clip
                num_examples: 1,
                train_loss: 0.0,
            },
        ];
        let context = RoundContext {
            round: 1,
            available: 2,
        };
        let next = strategy.aggregate_fit(&global, &results, &context).unwrap();
        let expected = [1.0 + 0.6 / 2.0, 1.0 + (0.8 + 0.5) / 2.0];
        for (got, want) in next.iter().zip(expected) {
            assert!((got - want).abs() < 1e-4, "{next} vs {expected:?}");
        }
    }

    #[test]
    fn noise_reaches_the_model() {
        let mut strategy = DpFedAvg::new(1.0, 1.0, 1.0, NoisePlacement::Central).unwrap();
        let global = Array1::zeros(10_000);
        let context = RoundContext {
            round: 1,
            available: 1,
        };
        let next = strategy.aggregate_fit(&global, &[], &context).unwrap();
        // No participants: the released model is pure N(0, 1) noise.
        let var = next.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / next.len() as f64;
        assert!((var - 1.0).abs() < 0.06, "variance {var}");
    }
}
