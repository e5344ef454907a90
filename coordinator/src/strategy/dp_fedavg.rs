//! DP-FedAvg with central noise (McMahan, Ramage, Talwar, Zhang, ICLR 2018,
//! "Learning Differentially Private Recurrent Language Models", Algorithm 1 with
//! the fixed-denominator estimator).
//!
//! Each node's model *change* Δ_k = w_k − w is clipped to L2 norm C, so one
//! node moves the sum by at most C; the coordinator adds Gaussian noise of
//! standard deviation σ·C to every coordinate of the sum and divides by the
//! expected number of participants q·N (not the realized count, which would
//! leak participation). Nodes weigh equally: weighting by example counts would
//! let one node's weight exceed the sensitivity the accounting assumes.
//!
//! The noise is exact: the clipped changes are rounded onto a fine grid and
//! summed as integers, and the noise is the discrete Gaussian on that grid
//! ([`GridGaussian`], Canonne, Kamath, Steinke 2020), so no floating-point
//! sampler's gaps (Mironov, CCS 2012) carry information about the sum. The
//! round is accounted as `DpEvent::PoissonSampledDiscreteGaussian` (see
//! `dp_mechanism.rs`). Under adaptive clipping the unclipped count is exact
//! too (`AdaptiveClipper::noisy_unclipped_fraction`). The randomness is
//! the thread's CSPRNG seeded by the operating system (`rand::rng()`), never
//! a configured seed.

use cohort_privacy::{
    AdaptiveClipConfig, AdaptiveClipper, GridGaussian, clip_l2, update_noise_multiplier,
};
use ndarray::Array1;

use super::{
    FitResult, RoundContext, SecureSum, Strategy, StrategyError, StrategyState, check_lengths,
    check_secure_length, take_buffer,
};
use crate::config::{AdaptiveClippingConfig, NoisePlacement};

/// DP-FedAvg: clips each node's change to the clip norm, adds Gaussian noise to
/// their sum (centrally, or by the nodes under distributed placement) and
/// divides by the expected number of participants.
#[derive(Debug, Clone)]
pub struct DpFedAvg {
    clip_norm: f64,
    noise_multiplier: f64,
    sampling_rate: f64,
    placement: NoisePlacement,
    adaptive: Option<AdaptiveClippingConfig>,
    /// The clip norm's state under adaptive clipping, from the first round on
    /// (its expected-clients count is that round's q·N).
    clipper: Option<AdaptiveClipper>,
}

const CLIP_NORM: &str = "clip_norm";
const EXPECTED_CLIENTS: &str = "expected_clients";

impl DpFedAvg {
    /// DP-FedAvg with noise of standard deviation σ·C (σ = `noise_multiplier`,
    /// C = `clip_norm`), dividing by `sampling_rate` · available nodes, the
    /// noise placed as `placement` says. Fails if σ or C is not positive and
    /// finite.
    pub fn new(
        noise_multiplier: f64,
        clip_norm: f64,
        sampling_rate: f64,
        placement: NoisePlacement,
    ) -> Result<Self, StrategyError> {
        GridGaussian::new(noise_multiplier, clip_norm, 1).map_err(privacy)?;
        Ok(Self {
            clip_norm,
            noise_multiplier,
            sampling_rate,
            placement,
            adaptive: None,
            clipper: None,
        })
    }

    /// Clips to a tracked quantile of the update norms, starting from the
    /// configured clip norm (Andrew et al. 2021; central placement).
    pub fn with_adaptive_clipping(
        mut self,
        adaptive: AdaptiveClippingConfig,
    ) -> Result<Self, StrategyError> {
        update_noise_multiplier(self.noise_multiplier, adaptive.count_noise_stddev)
            .map_err(|e| StrategyError::Privacy(e.to_string()))?;
        self.adaptive = Some(adaptive);
        Ok(self)
    }

    fn clipper(
        &mut self,
        adaptive: AdaptiveClippingConfig,
        expected_clients: f64,
        clip_norm: f64,
    ) -> Result<AdaptiveClipper, StrategyError> {
        AdaptiveClipper::new(AdaptiveClipConfig {
            initial_clip_norm: clip_norm,
            target_quantile: adaptive.target_quantile,
            learning_rate: adaptive.learning_rate,
            count_noise_stddev: adaptive.count_noise_stddev,
            expected_clients,
        })
        .map_err(|e| StrategyError::Privacy(e.to_string()))
    }

    /// The clip norm of the current round.
    pub fn current_clip_norm(&self) -> f64 {
        self.clipper.map_or(self.clip_norm, |c| c.clip_norm())
    }

    /// σ of the update sum: z itself, or under adaptive clipping what the
    /// count's σ_b leaves of it.
    fn update_noise_multiplier(&self) -> Result<f64, StrategyError> {
        match self.adaptive {
            Some(adaptive) => {
                update_noise_multiplier(self.noise_multiplier, adaptive.count_noise_stddev)
                    .map_err(privacy)
            }
            None => Ok(self.noise_multiplier),
        }
    }

    /// Under adaptive clipping, releases the noisy unclipped count and moves
    /// the clip norm for the next round.
    fn track_clip_norm(
        &mut self,
        unclipped: u64,
        participants: u64,
        context: &RoundContext,
    ) -> Result<(), StrategyError> {
        let Some(clipper) = &mut self.clipper else {
            return Ok(());
        };
        let clip_norm = clipper.clip_norm();
        let fraction = clipper
            .noisy_unclipped_fraction(unclipped, participants, &mut rand::rng())
            .map_err(privacy)?;
        let next = clipper.update(fraction).map_err(privacy)?;
        tracing::info!(
            round = context.round,
            clip_norm,
            next_clip_norm = next,
            "adaptive clipping"
        );
        Ok(())
    }

    /// q·N: the fixed denominator.
    fn expected_participants(&self, context: &RoundContext) -> f64 {
        (self.sampling_rate * context.available as f64).max(1.0)
    }
}

/// Each node's change clipped to `clip_norm` and rounded onto the grid, summed
/// in integers; and how many changes were within the clip norm already.
fn clipped_sum(
    grid: &GridGaussian,
    global: &Array1<f32>,
    results: &[FitResult],
    clip_norm: f64,
) -> Result<(Vec<i64>, u64), StrategyError> {
    let mut sum = vec![0_i64; global.len()];
    let mut unclipped = 0u64;
    for result in results {
        let mut delta: Vec<f32> = (&result.parameters - global).to_vec();
        let node = |e: cohort_privacy::PrivacyError| {
            StrategyError::Privacy(format!("node {}: {e}", result.node_id))
        };
        let outcome = clip_l2(&mut delta, clip_norm).map_err(node)?;
        unclipped += u64::from(outcome.original_norm <= clip_norm);
        grid.accumulate(&mut sum, &delta).map_err(node)?;
    }
    Ok((sum, unclipped))
}

fn privacy(error: cohort_privacy::PrivacyError) -> StrategyError {
    StrategyError::Privacy(error.to_string())
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
        if self.placement != NoisePlacement::Central {
            return Err(StrategyError::Privacy(
                "distributed noise needs secure aggregation; these updates came in the clear"
                    .into(),
            ));
        }
        let expected = self.expected_participants(context);
        if let (Some(adaptive), None) = (self.adaptive, self.clipper) {
            self.clipper = Some(self.clipper(adaptive, expected, self.clip_norm)?);
        }
        let clip_norm = self.current_clip_norm();
        let grid = GridGaussian::new(self.update_noise_multiplier()?, clip_norm, global.len())
            .map_err(privacy)?;
        let (sum, unclipped) = clipped_sum(&grid, global, results, clip_norm)?;
        let noisy = grid.release(&sum, &mut rand::rng());
        self.track_clip_norm(unclipped, results.len() as u64, context)?;
        let expected = expected as f32;
        Ok(global + &Array1::from(noisy).mapv(|v| v / expected))
    }

    fn state(&self) -> Option<StrategyState> {
        let clipper = self.clipper?;
        Some(StrategyState {
            strategy: self.name().into(),
            buffers: [
                (CLIP_NORM.to_owned(), vec![clipper.clip_norm() as f32]),
                (
                    EXPECTED_CLIENTS.to_owned(),
                    vec![clipper.config().expected_clients as f32],
                ),
            ]
            .into(),
        })
    }

    fn restore(&mut self, mut state: StrategyState) -> Result<(), StrategyError> {
        let name = self.name();
        let Some(adaptive) = self.adaptive else {
            return Err(StrategyError::State {
                strategy: name,
                problem: "adaptive clipping is off, but a clip-norm state was stored".into(),
            });
        };
        let mut scalar = |key: &str| -> Result<f64, StrategyError> {
            take_buffer(name, &mut state, key)?
                .first()
                .map(|&v| f64::from(v))
                .ok_or_else(|| StrategyError::State {
                    strategy: name,
                    problem: format!("`{key}` is empty"),
                })
        };
        let (clip_norm, expected) = (scalar(CLIP_NORM)?, scalar(EXPECTED_CLIENTS)?);
        self.clipper = Some(self.clipper(adaptive, expected, clip_norm)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn changes_are_clipped_and_averaged_over_the_expected_count() {
        // σ tiny: the result is the mean of the clipped changes, up to the
        // grid's rounding (γ = 2·10⁻³·C/√d ≈ 1.4·10⁻³ here, half a step each).
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
            assert!((got - want).abs() < 1.5e-3, "{next} vs {expected:?}");
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

    #[test]
    fn the_release_lies_on_the_grid_so_the_noise_was_drawn_on_integers() {
        // Floating-point noise (f64 Ziggurat cast to f32) would leave values
        // off the grid; the exact mechanism releases γ·(integer sum + noise).
        let (sigma, clip, d) = (1.0, 1.0, 64);
        let mut strategy = DpFedAvg::new(sigma, clip, 1.0, NoisePlacement::Central).unwrap();
        let global = Array1::zeros(d);
        let results: Vec<FitResult> = (0..3)
            .map(|i| FitResult {
                node_id: format!("n{i}"),
                parameters: Array1::from_elem(d, 0.01 * (i + 1) as f32),
                num_examples: 1,
                train_loss: 0.0,
            })
            .collect();
        let context = RoundContext {
            round: 1,
            available: 1,
        };
        let next = strategy.aggregate_fit(&global, &results, &context).unwrap();
        let gamma = GridGaussian::new(sigma, clip, d).unwrap().granularity();
        for value in &next {
            let units = f64::from(*value) / gamma;
            assert!(
                (units - units.round()).abs() < 1e-3,
                "{value} is off the grid"
            );
        }
    }

    #[test]
    fn adaptive_clipping_tracks_the_median_norm_and_survives_a_restart() {
        let adaptive = AdaptiveClippingConfig {
            target_quantile: 0.5,
            learning_rate: 0.2,
            count_noise_stddev: 1.0,
        };
        let new = || {
            DpFedAvg::new(1.0, 1.0, 1.0, NoisePlacement::Central)
                .unwrap()
                .with_adaptive_clipping(adaptive)
                .unwrap()
        };
        let context = RoundContext {
            round: 1,
            available: 10,
        };
        let global = array![0.0, 0.0];
        let with_norm = |norm: f32| -> Vec<FitResult> {
            (0..10)
                .map(|i| FitResult {
                    node_id: format!("n{i}"),
                    parameters: array![norm, 0.0],
                    num_examples: 1,
                    train_loss: 0.0,
                })
                .collect()
        };
        // Every change (norm 0.1) is within C = 1: C shrinks by about e^-0.1 a round.
        let mut strategy = new();
        for _ in 0..15 {
            strategy
                .aggregate_fit(&global, &with_norm(0.1), &context)
                .unwrap();
        }
        let shrunk = strategy.current_clip_norm();
        assert!(shrunk < 0.4 && shrunk > 0.1, "C = {shrunk}");
        // A restarted coordinator resumes from the stored clip norm.
        let mut restarted = new();
        restarted.restore(strategy.state().unwrap()).unwrap();
        assert!((restarted.current_clip_norm() - shrunk).abs() < 1e-6);
        // Every change (norm 10) is clipped: C grows again.
        for _ in 0..15 {
            restarted
                .aggregate_fit(&global, &with_norm(10.0), &context)
                .unwrap();
        }
        assert!(restarted.current_clip_norm() > shrunk * 2.0);
        // σ_b too small to leave the updates any noise is refused.
        let greedy = AdaptiveClippingConfig {
            count_noise_stddev: 0.1,
            ..adaptive
        };
        assert!(
            DpFedAvg::new(1.0, 1.0, 1.0, NoisePlacement::Central)
                .unwrap()
                .with_adaptive_clipping(greedy)
                .is_err()
        );
    }
}
