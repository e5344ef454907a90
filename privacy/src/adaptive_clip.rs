//! Adaptive clipping by private quantile tracking.
//!
//! Andrew, Thakkar, McMahan, Ramaswamy, "Differentially Private Learning
//! with Adaptive Clipping" (NeurIPS 2021). Each round every sampled client
//! has a bit b_i = 1 if its update norm is at most the current clip norm C.
//! The server releases the noisy *centred* count Σ(b_i − ½) + N(0, σ_b²)
//! (here exactly, as Σ(2b_i − 1) + N_ℤ(0, (2σ_b)²) halved),
//! forms the fraction b̃ = that / m + ½ (m the expected number of clients,
//! clamped to [0, 1]) and updates C ← C·exp(−η(b̃ − γ)) — the geometric
//! rule — so C tracks the γ-quantile of update norms (γ = 0.5, η = 0.2 by
//! default).
//!
//! Privacy: the count is a second Gaussian query. Adding or removing one
//! client moves the centred count by ½ (the uncentred Σ b_i would move by
//! 1), so its noise multiplier is 2σ_b. Together with the update sum's σ_Δ
//! the round is one Gaussian query on the stacked vector with multiplier z
//! when 1/z² = 1/σ_Δ² + 1/(2σ_b)², i.e. σ_Δ = (z⁻² − (2σ_b)⁻²)^{−1/2}
//! ([`update_noise_multiplier`]): the paper's split (Section 3), which is
//! only valid for the centred count. TensorFlow Privacy's
//! `QuantileEstimatorQuery` (used by `QuantileAdaptiveClipSumQuery`) centres
//! the same way: each record contributes ±½ to a Gaussian sum of
//! sensitivity ½, then adds ½ back and clamps to [0, 1]. Centring is chosen
//! over keeping the uncentred count and splitting with (z⁻² − σ_b⁻²)^{−1/2}:
//! for the same σ_b the centred count costs a quarter of the privacy, so
//! the update sum keeps more of z (and σ_b ≤ z stays allowed). Account the
//! round with z; noise the updates with σ_Δ·C.
//!
//! Adversary: anyone who sees the released clip norms and models (the
//! coordinator itself is trusted under the central placement this serves).

use rand::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::error::{PrivacyError, Result, check_noise_multiplier, check_positive};
use crate::noise::discrete_gaussian::DiscreteGaussian;

/// Settings of the quantile-tracking clip norm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveClipConfig {
    /// C at round 0.
    pub initial_clip_norm: f64,
    /// γ: the quantile of update norms to track (paper default 0.5).
    pub target_quantile: f64,
    /// η: geometric learning rate (paper default 0.2).
    pub learning_rate: f64,
    /// σ_b: std of the Gaussian noise on the unclipped count.
    pub count_noise_stddev: f64,
    /// m: expected number of clients per round (q·N).
    pub expected_clients: f64,
}

impl AdaptiveClipConfig {
    /// The paper's defaults γ = 0.5, η = 0.2 with the given C₀, σ_b and m.
    pub fn new(initial_clip_norm: f64, count_noise_stddev: f64, expected_clients: f64) -> Self {
        Self {
            initial_clip_norm,
            target_quantile: 0.5,
            learning_rate: 0.2,
            count_noise_stddev,
            expected_clients,
        }
    }

    fn validate(&self) -> Result<()> {
        check_positive("initial_clip_norm", self.initial_clip_norm)?;
        check_positive("learning_rate", self.learning_rate)?;
        check_positive("count_noise_stddev", self.count_noise_stddev)?;
        check_positive("expected_clients", self.expected_clients)?;
        if !(self.target_quantile > 0.0 && self.target_quantile < 1.0) {
            return Err(PrivacyError::InvalidParameter {
                parameter: "target_quantile",
                value: self.target_quantile,
                requirement: "in (0, 1)",
            });
        }
        Ok(())
    }
}

/// The clip norm's state across rounds (serde, so the coordinator can keep it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveClipper {
    config: AdaptiveClipConfig,
    clip_norm: f64,
}

impl AdaptiveClipper {
    /// Starts at the configured initial clip norm.
    pub fn new(config: AdaptiveClipConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            clip_norm: config.initial_clip_norm,
        })
    }

    /// The clip norm C for the current round.
    pub fn clip_norm(&self) -> f64 {
        self.clip_norm
    }

    /// The configuration.
    pub fn config(&self) -> &AdaptiveClipConfig {
        &self.config
    }

    /// A client's bit b_i: whether its update norm is within C.
    pub fn is_unclipped(&self, update_norm: f64) -> bool {
        update_norm <= self.clip_norm
    }

    /// b̃ = clamp((Σ(b_i − ½) + noise) / m + ½, 0, 1) for a round in which
    /// `unclipped_count` of `participants` clients had b_i = 1.
    ///
    /// The released quantity is the centred count, of sensitivity ½ (see the
    /// module docs), computed exactly on integers: Σ(2b_i − 1) +
    /// N_ℤ(0, (2σ_b)²), halved — the same sensitivity-to-noise ratio, with
    /// every random decision on integers ([`DiscreteGaussian`], CKS20), so
    /// the floating-point attack on textbook samplers (Mironov 2012) has
    /// nothing to read. The clamp is post-processing. Errors if more
    /// clients are unclipped than took part.
    pub fn noisy_unclipped_fraction<R: CryptoRng + ?Sized>(
        &self,
        unclipped_count: u64,
        participants: u64,
        rng: &mut R,
    ) -> Result<f64> {
        if unclipped_count > participants {
            return Err(PrivacyError::InvalidParameter {
                parameter: "unclipped_count",
                value: unclipped_count as f64,
                requirement: "at most the number of participants",
            });
        }
        let doubled = 2 * i128::from(unclipped_count) - i128::from(participants);
        let noise = DiscreteGaussian::new(2.0 * self.config.count_noise_stddev)?.sample(rng);
        let centred = (doubled + i128::from(noise)) as f64 / 2.0;
        let fraction = centred / self.config.expected_clients + 0.5;
        Ok(fraction.clamp(0.0, 1.0))
    }

    /// C ← C·exp(−η(b̃ − γ)); returns the new C.
    pub fn update(&mut self, noisy_unclipped_fraction: f64) -> Result<f64> {
        if !noisy_unclipped_fraction.is_finite() {
            return Err(PrivacyError::InvalidParameter {
                parameter: "noisy_unclipped_fraction",
                value: noisy_unclipped_fraction,
                requirement: "finite",
            });
        }
        let step = noisy_unclipped_fraction - self.config.target_quantile;
        self.clip_norm *= (-self.config.learning_rate * step).exp();
        Ok(self.clip_norm)
    }
}

/// σ_Δ = (z⁻² − (2σ_b)⁻²)^{−1/2}: the noise multiplier left for the update
/// sum when the centred count (sensitivity ½) takes noise σ_b out of a total
/// multiplier z (Andrew et al. 2021, Section 3). Errors unless z and σ_b are
/// positive and σ_b > z/2.
pub fn update_noise_multiplier(noise_multiplier: f64, count_noise_stddev: f64) -> Result<f64> {
    let z = check_noise_multiplier(noise_multiplier)?;
    let sigma_b = check_positive("count_noise_stddev", count_noise_stddev)?;
    let remaining = z.powi(-2) - (2.0 * sigma_b).powi(-2);
    if remaining <= 0.0 {
        return Err(PrivacyError::InvalidParameter {
            parameter: "count_noise_stddev",
            value: sigma_b,
            requirement: "greater than noise_multiplier / 2 so the update sum keeps some budget",
        });
    }
    Ok(remaining.powf(-0.5))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn noise_split_matches_the_paper() {
        // Paper example: z = 1, σ_b = m/20 with m = 100 ⇒ σ_b = 5 ⇒
        // σ_Δ = (1 − 1/100)^{−1/2} ≈ 1.00504.
        let s = update_noise_multiplier(1.0, 5.0).unwrap();
        assert!((s - (1.0_f64 - 0.01).powf(-0.5)).abs() < 1e-12);
        assert!(update_noise_multiplier(1.0, 0.5).is_err());
    }

    #[test]
    fn clip_norm_moves_towards_the_quantile() {
        let mut clipper = AdaptiveClipper::new(AdaptiveClipConfig::new(1.0, 1e-9, 100.0)).unwrap();
        // Everyone unclipped: C shrinks by e^{−0.2·0.5}.
        let c = clipper.update(1.0).unwrap();
        assert!((c - (-0.1_f64).exp()).abs() < 1e-12);
        // Nobody unclipped: C grows back.
        let c = clipper.update(0.0).unwrap();
        assert!((c - 1.0).abs() < 1e-12);
    }

    #[test]
    fn tracks_the_median_of_a_fixed_population() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let norms: Vec<f64> = (1..=100).map(|i| f64::from(i) / 10.0).collect(); // median ≈ 5.05
        let mut clipper = AdaptiveClipper::new(AdaptiveClipConfig::new(0.1, 1.0, 100.0)).unwrap();
        for _ in 0..300 {
            let count = norms.iter().filter(|&&n| clipper.is_unclipped(n)).count() as u64;
            let b = clipper
                .noisy_unclipped_fraction(count, 100, &mut rng)
                .unwrap();
            clipper.update(b).unwrap();
        }
        assert!(
            (clipper.clip_norm() - 5.05).abs() < 0.6,
            "{}",
            clipper.clip_norm()
        );
    }
}
