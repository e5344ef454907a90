//! Training statistics a record-level-DP node may report, noised and charged.
//!
//! A DP-SGD node's model change is differentially private, but the example
//! count and mean loss it reports beside it would be exact: the count
//! reveals whether a row is in the training set, and the loss moves with any
//! one row. [`TrainingStatsRelease`] releases them as two exact
//! discrete-Gaussian sums ([`GridGaussian`], one coordinate each): the
//! number of rows (each row contributes 1) and the sum of per-row losses
//! clamped to [0, L] (each row contributes at most L), both with noise
//! multiplier σ. Together they are one Gaussian query with multiplier σ/√2
//! over all rows ([`TrainingStatsRelease::event`]), which the node charges to
//! its own ledger in the same round as its DP-SGD steps.
//!
//! Adversary: whoever receives the report (the coordinator, and through it
//! anyone it shares round records with). The alternative with no cost is to
//! report nothing: a node that cannot afford the charge leaves the fields
//! empty.

use rand::CryptoRng;

use crate::accountant::DpEvent;
use crate::error::{PrivacyError, Result, check_positive};
use crate::noise::grid_gaussian::GridGaussian;

/// How a node noises its reported example count and mean loss.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingStatsRelease {
    noise_multiplier: f64,
    loss_bound: f64,
    count: GridGaussian,
    loss_sum: GridGaussian,
}

/// The noisy statistics to report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoisyTrainingStats {
    /// The noisy number of rows, rounded and at least 0.
    pub num_examples: u64,
    /// The noisy sum of clamped losses over the noisy count (at least 1).
    pub mean_loss: f64,
}

impl TrainingStatsRelease {
    /// Noise multiplier σ for each of the two sums, and the bound L each
    /// row's loss is clamped to. Errors name a non-positive σ or L.
    pub fn new(noise_multiplier: f64, loss_bound: f64) -> Result<Self> {
        check_positive("loss_bound", loss_bound)?;
        Ok(Self {
            noise_multiplier,
            loss_bound,
            count: GridGaussian::new(noise_multiplier, 1.0, 1)?,
            loss_sum: GridGaussian::new(noise_multiplier, loss_bound, 1)?,
        })
    }

    /// Releases the count and mean of `losses`, one entry per training row
    /// (each row exactly once). Errors if a loss is NaN.
    pub fn release<R: CryptoRng + ?Sized>(
        &self,
        losses: &[f64],
        rng: &mut R,
    ) -> Result<NoisyTrainingStats> {
        let (mut count, mut sum) = ([0_i64], [0_i64]);
        for (index, &loss) in losses.iter().enumerate() {
            if loss.is_nan() {
                return Err(PrivacyError::NonFinite {
                    parameter: "losses",
                    index,
                });
            }
            self.count.accumulate(&mut count, &[1.0])?;
            let mut clamped = loss.clamp(0.0, self.loss_bound) as f32;
            // f32 rounding may land just above L.
            if f64::from(clamped) > self.loss_bound {
                clamped = clamped.next_down();
            }
            self.loss_sum.accumulate(&mut sum, &[clamped])?;
        }
        let noisy_count = f64::from(self.count.release(&count, rng)[0]);
        let noisy_sum = f64::from(self.loss_sum.release(&sum, rng)[0]);
        Ok(NoisyTrainingStats {
            num_examples: noisy_count.round().max(0.0) as u64,
            mean_loss: (noisy_sum / noisy_count.max(1.0)).clamp(0.0, self.loss_bound),
        })
    }

    /// One release's privacy cost: the two sums as one Gaussian query with
    /// multiplier σ/√2, over every row (q = 1).
    pub fn event(&self) -> Result<DpEvent> {
        DpEvent::poisson_sampled_discrete_gaussian(
            1.0,
            self.noise_multiplier / std::f64::consts::SQRT_2,
            1,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn reports_are_near_the_truth_and_charged_as_one_query() {
        let release = TrainingStatsRelease::new(2.0, 5.0).unwrap();
        let losses: Vec<f64> = (0..1000).map(|i| f64::from(i % 10) / 10.0).collect();
        let stats = release
            .release(&losses, &mut ChaCha20Rng::seed_from_u64(3))
            .unwrap();
        // Noise std 2 on the count, 10 on the loss sum.
        assert!(
            (stats.num_examples as f64 - 1000.0).abs() < 10.0,
            "{stats:?}"
        );
        assert!((stats.mean_loss - 0.45).abs() < 0.05, "{stats:?}");
        let DpEvent::PoissonSampledDiscreteGaussian {
            noise_multiplier, ..
        } = release.event().unwrap()
        else {
            panic!("a discrete Gaussian event");
        };
        assert!((noise_multiplier - 2.0 / 2f64.sqrt()).abs() < 1e-12);
        assert!(release.release(&[f64::NAN], &mut rand::rng()).is_err());
    }

    #[test]
    fn an_outlier_loss_moves_the_report_by_at_most_the_bound() {
        let release = TrainingStatsRelease::new(1e-3, 1.0).unwrap();
        let rng = || ChaCha20Rng::seed_from_u64(9);
        let base = release.release(&[0.5; 100], &mut rng()).unwrap();
        let mut with_outlier = vec![0.5; 100];
        with_outlier[0] = 1e9;
        let outlier = release.release(&with_outlier, &mut rng()).unwrap();
        assert!((outlier.mean_loss - base.mean_loss - 0.5 / 100.0).abs() < 1e-3);
    }
}
