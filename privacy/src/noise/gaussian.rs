//! Continuous Gaussian noise for clipped sums.
//!
//! Promise: [`GaussianNoise::add_to`] adds independent N(0, s²) draws to each
//! coordinate, with s = σ·C for a sum of vectors clipped to norm C — the
//! Gaussian mechanism whose privacy the accountants in
//! [`crate::accountant`] measure. Used for DP-SGD's per-step noise on a node
//! (Abadi et al., CCS 2016) and the adaptive-clipping count.
//!
//! Draws are made in f64 (Ziggurat method from `rand_distr`) and rounded to
//! f32 when added. Not hardened: like every floating-point Gaussian, the
//! low-order bits of a noisy float can leak information about the
//! noiseless value (Mironov, CCS 2012, showed this for Laplace). Releases
//! that leave the trusted party — the coordinator's central noise — use
//! [`super::grid_gaussian::GridGaussian`], which is exact.

use rand::CryptoRng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Result, check_noise_multiplier, check_positive};

/// Gaussian noise with a fixed standard deviation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaussianNoise {
    stddev: f64,
}

impl GaussianNoise {
    /// Noise of the given standard deviation (positive, finite).
    pub fn new(stddev: f64) -> Result<Self> {
        check_positive("stddev", stddev)?;
        Ok(Self { stddev })
    }

    /// Noise for a sum of vectors each clipped to L2 norm `clip_norm`: the
    /// standard deviation is `noise_multiplier · clip_norm`.
    pub fn for_clipped_sum(noise_multiplier: f64, clip_norm: f64) -> Result<Self> {
        check_noise_multiplier(noise_multiplier)?;
        check_positive("clip_norm", clip_norm)?;
        Self::new(noise_multiplier * clip_norm)
    }

    /// The standard deviation s.
    pub fn stddev(&self) -> f64 {
        self.stddev
    }

    /// One draw from N(0, s²).
    pub fn sample<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> f64 {
        let z: f64 = StandardNormal.sample(rng);
        z * self.stddev
    }

    /// Adds an independent draw to every coordinate of `values`.
    pub fn add_to<R: CryptoRng + ?Sized>(&self, values: &mut [f32], rng: &mut R) {
        for v in values.iter_mut() {
            *v = (f64::from(*v) + self.sample(rng)) as f32;
        }
    }
}
