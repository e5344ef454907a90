//! DP-SGD primitives over flat f32 gradients.
//!
//! Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar, Zhang, "Deep Learning
//! with Differential Privacy" (CCS 2016), Algorithm 1: clip each example's
//! gradient to L2 norm C, sum the clipped gradients of the (Poisson-sampled)
//! lot, add N(0, σ²C²) to the sum, divide by the expected lot size. The
//! training loop (burn, in the client crate) calls these on flat slices; the
//! privacy cost of `steps` such steps is
//! [`crate::accountant::DpEvent::PoissonSampledGaussian`] with q = lot/N.

use rand::CryptoRng;

use crate::clip::{ClipOutcome, clip_l2, l2_norm};
use crate::error::{Result, check_finite, check_length, check_positive};
use crate::noise::gaussian::GaussianNoise;

/// Clips one example's gradient in place to L2 norm `clip_norm`.
pub fn clip_per_example_gradient(gradient: &mut [f32], clip_norm: f64) -> Result<ClipOutcome> {
    clip_l2(gradient, clip_norm)
}

/// Adds `gradient`, clipped to `clip_norm`, into `sum` without modifying
/// `gradient`.
pub fn accumulate_clipped_gradient(
    sum: &mut [f32],
    gradient: &[f32],
    clip_norm: f64,
) -> Result<ClipOutcome> {
    check_positive("clip_norm", clip_norm)?;
    check_finite("gradient", gradient)?;
    check_length("gradient.len()", gradient.len(), sum.len())?;
    let mut clipped = gradient.to_vec();
    let outcome = clip_l2(&mut clipped, clip_norm)?;
    for (s, g) in sum.iter_mut().zip(&clipped) {
        *s += *g;
    }
    debug_assert!(l2_norm(&clipped) <= clip_norm);
    Ok(outcome)
}

/// Turns the sum of clipped gradients into the noisy mean gradient:
/// (sum + N(0, σ²C²)) / expected_batch_size, in place.
pub fn noisy_mean_gradient<R: CryptoRng + ?Sized>(
    sum: &mut [f32],
    expected_batch_size: f64,
    noise_multiplier: f64,
    clip_norm: f64,
    rng: &mut R,
) -> Result<()> {
    check_positive("expected_batch_size", expected_batch_size)?;
    GaussianNoise::for_clipped_sum(noise_multiplier, clip_norm)?.add_to(sum, rng);
    let inv = 1.0 / expected_batch_size;
    for s in sum.iter_mut() {
        *s = (f64::from(*s) * inv) as f32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn accumulation_clips_each_example() {
        let mut sum = vec![0.0_f32; 2];
        accumulate_clipped_gradient(&mut sum, &[3.0, 4.0], 1.0).unwrap();
        accumulate_clipped_gradient(&mut sum, &[0.1, 0.0], 1.0).unwrap();
        assert!((sum[0] - 0.7).abs() < 1e-6 && (sum[1] - 0.8).abs() < 1e-6);
        assert!(accumulate_clipped_gradient(&mut sum, &[1.0], 1.0).is_err());
    }

    #[test]
    fn noisy_mean_divides_by_the_expected_batch() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let mut sum = vec![100.0_f32; 4];
        noisy_mean_gradient(&mut sum, 100.0, 1e-6, 1.0, &mut rng).unwrap();
        assert!(sum.iter().all(|v| (v - 1.0).abs() < 1e-4));
    }
}
