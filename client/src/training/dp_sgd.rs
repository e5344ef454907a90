//! Record-level differential privacy on the node: DP-SGD (Abadi et al., CCS
//! 2016, "Deep Learning with Differential Privacy", Algorithm 1).
//!
//! Each step Poisson-samples the node's rows with rate q = batch_size / rows,
//! computes every sampled row's own gradient, clips it to L2 norm C, sums,
//! adds N(0, (σC)²) per coordinate and divides by the expected batch q·rows:
//! one row moves a step by at most C/(q·rows) plus noise, whatever the row.
//! A round of `epochs` passes is `epochs · ⌈rows / batch_size⌉` such steps: the
//! Poisson-subsampled Gaussian mechanism that [`DpSgdConfig::round_event`]
//! hands the node's own accountant. Sampling and noise draw from the caller's
//! CSPRNG (the operating system's, on a node), never from the round's seed.

use burn::nn::loss::CrossEntropyLossConfig;
use cohort_privacy::dp_sgd::{accumulate_clipped_gradient, noisy_mean_gradient};
use cohort_privacy::{DpEvent, PrivacyError};
use cohort_proto::model::ParameterLayout;
use rand::CryptoRng;

use super::batch::{batch, check_fits};
use super::local::TrainOutcome;
use super::{LocalTrainingConfig, TrainingError};
use crate::data::Dataset;
use crate::model::{DenseNetwork, ModelError, cpu_device, read_values};

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
        (config.batch_size as f64 / rows.max(1) as f64).min(1.0)
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

/// Trains like [`super::train_local`] (without FedProx or norm bounding), but
/// every step is a DP-SGD step. Same errors.
pub fn train_dp_sgd<R: CryptoRng + ?Sized>(
    layout: &ParameterLayout,
    initial_parameters: &[f32],
    train: &Dataset,
    config: &LocalTrainingConfig,
    dp: &DpSgdConfig,
    rng: &mut R,
) -> Result<TrainOutcome, TrainingError> {
    config.validate()?;
    check_fits(layout, train, "train")?;
    let device = cpu_device().autodiff();
    let loss_function = CrossEntropyLossConfig::new().init(&device);
    let rows = train.len();
    let rate = DpSgdConfig::sampling_rate(config, rows);
    let expected_batch = rate * rows as f64;
    let steps_per_epoch = rows.div_ceil(config.batch_size.max(1));
    let mut parameters = initial_parameters.to_vec();
    let mut mean_loss = f64::NAN;
    for epoch in 1..=config.epochs {
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        for _ in 0..steps_per_epoch {
            let model = DenseNetwork::from_parameters(layout, &parameters, &device)?;
            let mut sum = vec![0.0f32; parameters.len()];
            for row in 0..rows {
                if unit(rng) >= rate {
                    continue;
                }
                let (features, labels) = batch(train, &[row], &device);
                let loss = loss_function.forward(model.forward(features), labels);
                loss_sum += read_values(loss.clone(), "loss")?
                    .first()
                    .map_or(f64::NAN, |&v| f64::from(v));
                seen += 1;
                let gradient = model.gradients(&loss.backward())?;
                accumulate_clipped_gradient(&mut sum, &gradient, dp.clip_norm).map_err(privacy)?;
            }
            noisy_mean_gradient(
                &mut sum,
                expected_batch,
                dp.noise_multiplier,
                dp.clip_norm,
                rng,
            )
            .map_err(privacy)?;
            for (p, g) in parameters.iter_mut().zip(&sum) {
                *p -= (config.learning_rate * f64::from(*g)) as f32;
            }
        }
        mean_loss = loss_sum / seen.max(1) as f64;
        if !mean_loss.is_finite() && seen > 0 {
            return Err(TrainingError::Diverged {
                epoch,
                loss: mean_loss,
            });
        }
    }
    if let Some(index) = parameters.iter().position(|p| !p.is_finite()) {
        return Err(ModelError::NotFinite { index }.into());
    }
    Ok(TrainOutcome {
        parameters,
        num_examples: rows as u64,
        mean_loss,
    })
}

/// Uniform in [0, 1) with 53 random bits.
fn unit<R: CryptoRng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}
