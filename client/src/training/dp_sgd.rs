//! Record-level differential privacy on the node: DP-SGD (Abadi et al., CCS
//! 2016, "Deep Learning with Differential Privacy", Algorithm 1), as the step
//! of the one training loop (`super::local`).
//!
//! Each step Poisson-samples the node's rows with rate q = batch_size / rows,
//! computes every sampled row's own gradient, clips it to L2 norm C, sums,
//! adds N(0, (σC)²) per coordinate and divides by the expected batch q·rows:
//! one row moves a step by at most C/(q·rows) plus noise, whatever the row.
//! A round of `epochs` passes is `epochs · ⌈rows / batch_size⌉` such steps: the
//! Poisson-subsampled Gaussian mechanism that [`DpSgdConfig::round_event`]
//! hands the node's own accountant. Sampling and noise draw from the caller's
//! CSPRNG (the operating system's, on a node), never from the round's seed.

use cohort_privacy::dp_sgd::{accumulate_clipped_gradient, noisy_mean_gradient};
use cohort_privacy::{DpEvent, PrivacyError};
use rand::CryptoRng;

use super::batch::batch;
use super::local::{EpochLoss, Run, Step, TrainOutcome, batch_loss, train_with};
use super::{Architecture, LocalTrainingConfig, TrainingError};
use crate::data::Dataset;
use crate::model::{FederatedModel, flatten, gradients};

/// DP-SGD's two knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpSgdConfig {
    /// σ: noise standard deviation in units of the clip norm.
    pub noise_multiplier: f64,
    /// C: bound on one row's gradient norm.
    pub clip_norm: f64,
}

fn privacy(error: PrivacyError) -> TrainingError {
    TrainingError::Config {
        field: "dp_sgd",
        problem: error.to_string(),
    }
}

impl DpSgdConfig {
    /// q: each row's chance of being in a step.
    fn sampling_rate(config: &LocalTrainingConfig, rows: usize) -> f64 {
        lot_rate(config.batch_size, rows)
    }

    fn steps(config: &LocalTrainingConfig, rows: usize) -> u64 {
        u64::from(config.epochs) * rows.div_ceil(config.batch_size.max(1)) as u64
    }

    /// What one round of [`train_dp_sgd`] on `rows` rows costs in privacy.
    pub fn round_event(
        &self,
        config: &LocalTrainingConfig,
        rows: usize,
    ) -> Result<DpEvent, PrivacyError> {
        DpEvent::poisson_sampled_gaussian(
            Self::sampling_rate(config, rows),
            self.noise_multiplier,
            Self::steps(config, rows),
        )
    }
}

/// Trains like [`super::train_local`] — the same loop, FedProx's term and
/// norm bounding included — but every step is a DP-SGD step. Same errors.
///
/// FedProx's gradient μ(w − w_g) depends on no row, so it is added after
/// the noise; norm bounding clips the trained change, post-processing.
pub fn train_dp_sgd<A: Architecture, R: CryptoRng + ?Sized>(
    architecture: &A,
    initial_parameters: &[f32],
    train: &Dataset,
    config: &LocalTrainingConfig,
    dp: &DpSgdConfig,
    rng: &mut R,
) -> Result<TrainOutcome, TrainingError> {
    let mut step = DpSgdStep { dp: *dp, rng };
    train_with(architecture, initial_parameters, train, config, &mut step)
}

/// One DP-SGD step: a Poisson lot, per-row clipped gradients, noise.
struct DpSgdStep<'r, R: ?Sized> {
    dp: DpSgdConfig,
    rng: &'r mut R,
}

impl<A: Architecture, R: CryptoRng + ?Sized> Step<A> for DpSgdStep<'_, R> {
    /// ⌈rows / batch_size⌉ lots, each row in each lot with probability q.
    fn epoch(&mut self, rows: usize, batch_size: usize) -> Vec<Vec<usize>> {
        let rate = lot_rate(batch_size, rows);
        (0..rows.div_ceil(batch_size.max(1)))
            .map(|_| (0..rows).filter(|_| unit(self.rng) < rate).collect())
            .collect()
    }

    fn apply(
        &mut self,
        model: A::Model,
        rows: &[usize],
        run: &Run<'_, A>,
        epoch_loss: &mut EpochLoss,
    ) -> Result<A::Model, TrainingError> {
        let mut parameters = flatten(&model)?;
        let mut sum = vec![0.0f32; parameters.len()];
        for &row in rows {
            let (features, labels) = batch(run.train, &[row], &run.device);
            let loss = run.loss_function.forward(model.forward(features), labels);
            epoch_loss.add(batch_loss(&loss)?, 1);
            let gradient = gradients(&model, &loss.backward())?;
            accumulate_clipped_gradient(&mut sum, &gradient, self.dp.clip_norm).map_err(privacy)?;
        }
        let all_rows = run.train.len();
        let expected_lot = DpSgdConfig::sampling_rate(run.config, all_rows) * all_rows as f64;
        noisy_mean_gradient(
            &mut sum,
            expected_lot,
            self.dp.noise_multiplier,
            self.dp.clip_norm,
            self.rng,
        )
        .map_err(privacy)?;
        let (rate, mu) = (run.config.learning_rate, run.config.proximal_mu);
        for ((p, g), w_g) in parameters.iter_mut().zip(&sum).zip(run.start) {
            let gradient = f64::from(*g) + mu * f64::from(*p - w_g);
            *p -= (rate * gradient) as f32;
        }
        Ok(run.architecture.build(&parameters, &run.device)?)
    }
}

/// q = batch_size / rows (at most 1): each row's chance of being in a lot.
fn lot_rate(batch_size: usize, rows: usize) -> f64 {
    (batch_size as f64 / rows.max(1) as f64).min(1.0)
}

/// Uniform in [0, 1) with 53 random bits.
fn unit<R: CryptoRng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}
