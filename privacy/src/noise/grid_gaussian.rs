//! Exact central noise: the discrete Gaussian on a grid.
//!
//! Promise: [`GridGaussian::release`] returns γ·(Σ k_j + z) where each
//! contribution k_j = round(x_j/γ) is an integer vector of L2 norm at most
//! Δ = √B (checked exactly, in integers) and z has independent exact
//! N_ℤ(0, σ²Δ²) coordinates ([`DiscreteGaussian`], CKS20). Every random
//! decision is made on integers, so the floating-point attack on
//! textbook samplers (Mironov, CCS 2012: the set of floats a noisy value can
//! take depends on the noiseless value) has nothing to read: the f32 output
//! is a deterministic function of an exactly distributed integer vector,
//! i.e. post-processing.
//!
//! Privacy: against an observer of the release, adding or removing one
//! contribution moves the integer sum by a vector of norm ≤ Δ, and
//! N_ℤ(0, σ²Δ²) noise then gives Rényi DP α/(2σ²) at every order — the
//! continuous Gaussian's (Canonne, Kamath, Steinke, NeurIPS 2020,
//! Theorem 14 for the multivariate case). With Poisson sampling the round is
//! [`DpEvent::PoissonSampledDiscreteGaussian`], which the RDP accountant
//! bounds with Zhu & Wang's general subsampling theorem (the continuous
//! Gaussian's tighter analysis is not claimed for it; see `README.md` for
//! what that costs in ε).
//!
//! Rounding to the grid: nearest-integer rounding moves each coordinate by
//! at most ½, so ‖k‖ ≤ C/γ + √d/2. The grid is fine enough that this adds
//! [`ROUNDING_SLACK`] of the clip norm: γ = 2·slack·C/√d. The slack is paid
//! in noise (the noise scale is σ·Δ, about 0.1% above σ·C/γ), never in ε.

use rand::CryptoRng;

use super::discrete_gaussian::DiscreteGaussian;
use crate::accountant::DpEvent;
use crate::clip::l2_norm;
use crate::error::{
    PrivacyError, Result, check_finite, check_length, check_noise_multiplier, check_positive,
};

/// Rounding's share of the sensitivity: ‖k‖ ≤ (1 + slack)·C/γ.
pub const ROUNDING_SLACK: f64 = 1e-3;

/// The discrete Gaussian mechanism on a grid, for sums of clipped vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct GridGaussian {
    noise_multiplier: f64,
    clip_norm: f64,
    granularity: f64,
    /// B: the exact bound on ‖k‖² of one contribution, in grid units.
    squared_sensitivity: u128,
    noise: DiscreteGaussian,
}

impl GridGaussian {
    /// The mechanism for sums of `dimension`-long vectors clipped to
    /// `clip_norm`, with noise multiplier σ. Errors name a non-positive or
    /// non-finite σ or C, a zero dimension, or a noise scale beyond the
    /// sampler's range.
    pub fn new(noise_multiplier: f64, clip_norm: f64, dimension: usize) -> Result<Self> {
        check_noise_multiplier(noise_multiplier)?;
        check_positive("clip_norm", clip_norm)?;
        if dimension == 0 {
            return Err(PrivacyError::InvalidParameter {
                parameter: "dimension",
                value: 0.0,
                requirement: "at least 1",
            });
        }
        let root_d = (dimension as f64).sqrt();
        let granularity = 2.0 * ROUNDING_SLACK * clip_norm / root_d;
        let bound = clip_norm / granularity + root_d / 2.0;
        let squared_sensitivity = (bound * bound).ceil() as u128;
        let sensitivity = (squared_sensitivity as f64).sqrt();
        Ok(Self {
            noise_multiplier,
            clip_norm,
            granularity,
            squared_sensitivity,
            noise: DiscreteGaussian::new(noise_multiplier * sensitivity)?,
        })
    }

    /// γ: the grid's spacing, in model units.
    pub fn granularity(&self) -> f64 {
        self.granularity
    }

    /// Δ: the L2 bound of one contribution, in grid units.
    pub fn sensitivity(&self) -> f64 {
        (self.squared_sensitivity as f64).sqrt()
    }

    /// The noise's standard deviation per coordinate in model units,
    /// γ·σ·Δ ≈ σ·C·(1 + [`ROUNDING_SLACK`]).
    pub fn noise_stddev(&self) -> f64 {
        self.granularity * self.noise.sigma()
    }

    /// Rounds a clipped `contribution` to the grid and adds it to the
    /// integer `sum`. Errors if the lengths differ, an entry is not finite,
    /// the contribution is longer than the clip norm (clip it first), or its
    /// rounded norm exceeds Δ; `sum` is unchanged on error.
    pub fn accumulate(&self, sum: &mut [i64], contribution: &[f32]) -> Result<()> {
        check_finite("contribution", contribution)?;
        check_length("contribution.len()", contribution.len(), sum.len())?;
        let norm = l2_norm(contribution);
        if norm > self.clip_norm {
            return Err(PrivacyError::InvalidParameter {
                parameter: "contribution_norm",
                value: norm,
                requirement: "at most clip_norm (clip the contribution first)",
            });
        }
        let rounded: Vec<i64> = contribution
            .iter()
            .map(|&x| (f64::from(x) / self.granularity).round() as i64)
            .collect();
        let squared: u128 = rounded
            .iter()
            .map(|&k| u128::from(k.unsigned_abs()).pow(2))
            .sum();
        if squared > self.squared_sensitivity {
            return Err(PrivacyError::InvalidParameter {
                parameter: "rounded_norm",
                value: (squared as f64).sqrt(),
                requirement: "at most the grid sensitivity Δ",
            });
        }
        for (s, k) in sum.iter_mut().zip(rounded) {
            *s = s.wrapping_add(k);
        }
        Ok(())
    }

    /// Adds exact N_ℤ(0, σ²Δ²) noise to every coordinate of the integer
    /// `sum` and returns it in model units (γ·(sum + noise)).
    pub fn release<R: CryptoRng + ?Sized>(&self, sum: &[i64], rng: &mut R) -> Vec<f32> {
        let mut noisy = sum.to_vec();
        self.noise.add_to(&mut noisy, rng);
        noisy
            .iter()
            .map(|&k| (k as f64 * self.granularity) as f32)
            .collect()
    }

    /// The DP event of `count` releases on a Poisson sample with rate q.
    pub fn event(&self, sampling_rate: f64, count: u64) -> Result<DpEvent> {
        DpEvent::poisson_sampled_discrete_gaussian(sampling_rate, self.noise_multiplier, count)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn the_grid_costs_a_tenth_of_a_percent_of_noise() {
        let grid = GridGaussian::new(1.5, 2.0, 31).unwrap();
        assert!((grid.noise_stddev() / (1.5 * 2.0) - 1.0 - ROUNDING_SLACK).abs() < 1e-4);
        assert!(GridGaussian::new(1.0, 1.0, 0).is_err());
        assert!(GridGaussian::new(0.0, 1.0, 3).is_err());
    }

    #[test]
    fn contributions_round_to_the_grid_within_the_bound() {
        let grid = GridGaussian::new(1.0, 1.0, 4).unwrap();
        let mut sum = vec![0_i64; 4];
        // Norm exactly at the clip: the worst case for rounding.
        grid.accumulate(&mut sum, &[0.5, -0.5, 0.5, -0.5]).unwrap();
        let per = 0.5 / grid.granularity();
        assert!(sum.iter().all(|&k| ((k.abs() as f64) - per).abs() <= 0.5));
        let too_long = grid.accumulate(&mut sum, &[1.0, 1.0, 0.0, 0.0]);
        assert!(matches!(
            too_long,
            Err(PrivacyError::InvalidParameter {
                parameter: "contribution_norm",
                ..
            })
        ));
        assert!(grid.accumulate(&mut sum, &[0.1]).is_err());
    }

    #[test]
    fn the_release_decodes_the_sum_plus_noise() {
        let grid = GridGaussian::new(1e-3, 1.0, 2).unwrap();
        let mut sum = vec![0_i64; 2];
        grid.accumulate(&mut sum, &[0.6, 0.7]).unwrap();
        grid.accumulate(&mut sum, &[0.0, -0.5]).unwrap();
        let released = grid.release(&sum, &mut ChaCha20Rng::seed_from_u64(1));
        assert!((released[0] - 0.6).abs() < 0.01 && (released[1] - 0.2).abs() < 0.01);
    }
}
