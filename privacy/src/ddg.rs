//! The distributed discrete Gaussian (DDG) placement and its accounting.
//!
//! Kairouz, Liu, Steinke, "The Distributed Discrete Gaussian Mechanism for
//! Federated Learning with Secure Aggregation" (ICML 2021, arXiv:2102.06387).
//! Each of n clients clips its update to L2 norm c, scales it by 1/γ
//! (granularity γ), rounds it to integers with conditional randomized
//! rounding, adds N_ℤ(0, σ²) noise per coordinate
//! ([`crate::noise::discrete_gaussian::DiscreteGaussian`]) and masks it for
//! secure aggregation mod 2^b. The server only sees the sum mod 2^b.
//!
//! What this module promises, and from where:
//! - Sensitivity after rounding ([`DistributedDiscreteGaussian::l2_sensitivity`]):
//!   conditional randomized rounding keeps ‖x̃‖₂ ≤ min(c/γ + √d,
//!   √(c²/γ² + d/4 + √(2 ln(1/β))·(c/γ + √d/2))) — the bound of the paper's
//!   conditional-rounding proposition (Proposition 22 in the arXiv version,
//!   cited as such by the authors' reference implementation
//!   `google-research/federated/distributed_dp/accounting_utils.py`,
//!   `rounded_l2_norm_bound`). [`DistributedDiscreteGaussian::quantize`]
//!   enforces it by re-rounding. The L1 sensitivity is Δ₂·min(√d, Δ₂).
//! - Sum of n discrete Gaussians ([`DistributedDiscreteGaussian::tau`]):
//!   Theorem 1 — the sum is close to N_ℤ(0, nσ²), with the gap measured by
//!   τ = 10·Σ_{k=1}^{n−1} exp(−2π²σ²·k/(k+1)) (σ ≥ 1/2).
//! - Rényi DP ([`DistributedDiscreteGaussian::rdp`]): Proposition 14
//!   (Eq. 17): with s₂ = Δ₂/(√n σ), s₁ = Δ₁/(√n σ),
//!   ε(α) = min{ α s₂²/2 + τd, α/2·(s₂² + 2 s₁ τ + τ² d), α/2·(s₂ + τ√d)² }.
//! - Poisson subsampling ([`DistributedDiscreteGaussian::rdp_sampled`]): the
//!   general upper bound of Zhu & Wang, "Poisson Subsampled Rényi
//!   Differential Privacy" (ICML 2019), Theorem 5, for integer orders, and
//!   the minimum with the unsampled bound — as the paper's experiments do.
//! - Discretization's extra variance
//!   ([`DistributedDiscreteGaussian::error_variance_per_coordinate`]): each
//!   client's randomized rounding adds at most γ²/4 variance per coordinate
//!   on top of its γ²·Var(N_ℤ(0, σ²)) ≤ γ²σ² noise.
//! - Modular wrap-around ([`DistributedDiscreteGaussian::wraparound_probability`],
//!   [`DistributedDiscreteGaussian::modulus_bits`]): following the paper's
//!   Section 4 (random rotation makes each coordinate subgaussian with
//!   variance proxy ρ‖Σx‖²/d; rounding errors are 1/4-subgaussian; N_ℤ(0, σ²)
//!   is σ²-subgaussian), a coordinate of the integer sum has variance proxy
//!   v = ρ(nc/γ)²/d + n(σ² + 1/4), and wraps mod m = 2^b with probability at
//!   most 2·exp(−(m/2)²/(2v)). Wrap-around costs accuracy, not privacy: the
//!   modular reduction is post-processing of the noisy integer sum.

use rand::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::error::{PrivacyError, Result, check_finite, check_positive, check_sampling_rate};
use crate::math::log_add;

/// One round of the distributed discrete Gaussian mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DistributedDiscreteGaussian {
    /// c: L2 clip norm of one client's update, in model units.
    pub clip_norm: f64,
    /// γ: quantization granularity; the integer domain holds x/γ.
    pub granularity: f64,
    /// σ of each client's N_ℤ(0, σ²) share, in integer units (≥ 1/2).
    pub local_stddev: f64,
    /// n: number of clients whose shares are summed.
    pub clients: u64,
    /// d: dimension of the (padded, rotated) vector.
    pub dimension: u64,
    /// β ∈ [0, 1) of conditional randomized rounding; 0 disables the
    /// conditioning and uses the deterministic bound c/γ + √d.
    pub rounding_beta: f64,
}

/// Maximum re-rounding attempts in [`DistributedDiscreteGaussian::quantize`];
/// each succeeds with probability ≥ 1 − β.
const MAX_ROUNDING_ATTEMPTS: usize = 10_000;

impl DistributedDiscreteGaussian {
    /// Checks every field against the domain the paper's bounds need.
    pub fn validate(&self) -> Result<()> {
        check_positive("clip_norm", self.clip_norm)?;
        check_positive("granularity", self.granularity)?;
        if !(self.local_stddev.is_finite() && self.local_stddev >= 0.5) {
            return Err(PrivacyError::InvalidParameter {
                parameter: "local_stddev",
                value: self.local_stddev,
                requirement: "finite and at least 1/2 (Theorem 1 of Kairouz et al. 2021)",
            });
        }
        if self.clients == 0 {
            return Err(PrivacyError::InvalidParameter {
                parameter: "clients",
                value: 0.0,
                requirement: "at least 1",
            });
        }
        if self.dimension == 0 {
            return Err(PrivacyError::InvalidParameter {
                parameter: "dimension",
                value: 0.0,
                requirement: "at least 1",
            });
        }
        if !(0.0..1.0).contains(&self.rounding_beta) {
            return Err(PrivacyError::InvalidParameter {
                parameter: "rounding_beta",
                value: self.rounding_beta,
                requirement: "in [0, 1)",
            });
        }
        Ok(())
    }

    fn scaled_clip(&self) -> f64 {
        self.clip_norm / self.granularity
    }

    /// Δ₂: L2 norm bound of one client's rounded integer vector.
    pub fn l2_sensitivity(&self) -> f64 {
        let c = self.scaled_clip();
        let d = self.dimension as f64;
        let deterministic = c + d.sqrt();
        if self.rounding_beta == 0.0 {
            return deterministic;
        }
        let conditional = (c * c
            + 0.25 * d
            + (2.0 * (1.0 / self.rounding_beta).ln()).sqrt() * (c + 0.5 * d.sqrt()))
        .sqrt();
        deterministic.min(conditional)
    }

    /// Δ₁: L1 norm bound of one client's rounded integer vector.
    pub fn l1_sensitivity(&self) -> f64 {
        let l2 = self.l2_sensitivity();
        l2 * (self.dimension as f64).sqrt().min(l2)
    }

    /// τ of Theorem 1: how far the sum of n discrete Gaussians is from one.
    pub fn tau(&self) -> f64 {
        let s2 = self.local_stddev * self.local_stddev;
        let two_pi_sq = 2.0 * std::f64::consts::PI * std::f64::consts::PI;
        let mut sum = 0.0;
        for k in 1..self.clients {
            let kf = k as f64;
            let term = (-two_pi_sq * s2 * kf / (kf + 1.0)).exp();
            sum += term;
            // Terms decrease in k, so once one underflows the rest do too.
            if term == 0.0 {
                break;
            }
        }
        10.0 * sum
    }

    /// Rényi DP of one round without sampling, Proposition 14 (Eq. 17).
    pub fn rdp(&self, order: f64) -> f64 {
        self.rdp_terms().at(order)
    }

    /// Rényi DP of one round with Poisson sampling rate q. For q < 1 only
    /// integer orders ≥ 2 are covered by Zhu & Wang's Theorem 5; other
    /// orders get the unsampled bound.
    pub fn rdp_sampled(&self, sampling_rate: f64, order: f64) -> Result<f64> {
        let q = check_sampling_rate(sampling_rate)?;
        let terms = self.rdp_terms();
        let base = terms.at(order);
        if q == 1.0 || order.fract() != 0.0 || order < 2.0 {
            return Ok(base);
        }
        Ok(zhu_wang_subsampled_rdp(order as u64, q, |l| terms.at(l as f64)).min(base))
    }

    /// The order-independent quantities of Proposition 14, computed once
    /// (τ alone is a sum over n clients).
    fn rdp_terms(&self) -> RdpTerms {
        let root_n_sigma = (self.clients as f64).sqrt() * self.local_stddev;
        RdpTerms {
            s2: self.l2_sensitivity() / root_n_sigma,
            s1: self.l1_sensitivity() / root_n_sigma,
            tau: self.tau(),
            d: self.dimension as f64,
        }
    }

    /// Upper bound on the variance, per coordinate and in model units, that
    /// noise and rounding add to the decoded sum: n·γ²·(Var N_ℤ(0,σ²) + 1/4).
    pub fn error_variance_per_coordinate(&self) -> f64 {
        let g2 = self.granularity * self.granularity;
        self.clients as f64 * g2 * (self.local_stddev * self.local_stddev + 0.25)
    }

    /// Variance proxy v of one coordinate of the integer sum (see module docs);
    /// `flatness` is ρ of the random rotation (1 for an ideal one).
    fn sum_variance_proxy(&self, flatness: f64) -> f64 {
        let n = self.clients as f64;
        let signal = n * self.scaled_clip();
        flatness * signal * signal / self.dimension as f64
            + n * (self.local_stddev * self.local_stddev + 0.25)
    }

    /// Upper bound on the probability that any of the d coordinates of the
    /// integer sum leaves (−2^{b−1}, 2^{b−1}] and wraps around.
    pub fn wraparound_probability(&self, modulus_bits: u32, flatness: f64) -> f64 {
        let half_modulus = 2f64.powi(modulus_bits as i32 - 1);
        let v = self.sum_variance_proxy(flatness);
        let per_coordinate = 2.0 * (-(half_modulus * half_modulus) / (2.0 * v)).exp();
        (self.dimension as f64 * per_coordinate).min(1.0)
    }

    /// Smallest bit width b with 2^b ≥ 2k·√v, i.e. k standard deviations of
    /// every coordinate of the sum fit in the modulus (the paper's Section 4.4
    /// heuristic for choosing γ against b).
    pub fn modulus_bits(&self, k_stddevs: f64, flatness: f64) -> u32 {
        let width = 2.0 * k_stddevs * self.sum_variance_proxy(flatness).sqrt();
        width.log2().ceil().max(1.0) as u32
    }

    /// Scales an already-clipped update by 1/γ and rounds it to integers by
    /// conditional randomized rounding: unbiased per coordinate, retried until
    /// ‖x̃‖₂ ≤ [`Self::l2_sensitivity`] so the accounting's sensitivity holds.
    /// Rotation (for flatness) is the caller's, before this step.
    pub fn quantize<R: CryptoRng + ?Sized>(&self, update: &[f32], rng: &mut R) -> Result<Vec<i64>> {
        self.validate()?;
        check_finite("update", update)?;
        let norm = crate::clip::l2_norm(update);
        if norm > self.clip_norm {
            return Err(PrivacyError::InvalidParameter {
                parameter: "update_norm",
                value: norm,
                requirement: "at most clip_norm (clip the update first)",
            });
        }
        let bound = self.l2_sensitivity();
        let scaled: Vec<f64> = update
            .iter()
            .map(|&v| f64::from(v) / self.granularity)
            .collect();
        let mut rounded = vec![0_i64; scaled.len()];
        for _ in 0..MAX_ROUNDING_ATTEMPTS {
            let mut sq = 0.0;
            for (out, &x) in rounded.iter_mut().zip(&scaled) {
                let floor = x.floor();
                let up = unit_interval(rng) < x - floor;
                let value = floor + if up { 1.0 } else { 0.0 };
                sq += value * value;
                *out = value as i64;
            }
            if sq.sqrt() <= bound {
                return Ok(rounded);
            }
        }
        Err(PrivacyError::InvalidParameter {
            parameter: "rounding_beta",
            value: self.rounding_beta,
            requirement: "small enough for conditional rounding to succeed",
        })
    }
}

/// s₂ = Δ₂/(√n σ), s₁ = Δ₁/(√n σ), τ and d of Proposition 14.
struct RdpTerms {
    s2: f64,
    s1: f64,
    tau: f64,
    d: f64,
}

impl RdpTerms {
    /// ε(α) = min{ α s₂²/2 + τd, α/2·(s₂² + 2s₁τ + τ²d), α/2·(s₂ + τ√d)² }.
    fn at(&self, a: f64) -> f64 {
        let Self { s2, s1, tau, d } = *self;
        let term_1 = a / 2.0 * s2 * s2 + tau * d;
        let term_2 = a / 2.0 * (s2 * s2 + 2.0 * s1 * tau + tau * tau * d);
        let term_3 = a / 2.0 * (s2 + d.sqrt() * tau).powi(2);
        term_1.min(term_2).min(term_3)
    }
}

/// Uniform in [0, 1) with 53 random bits.
fn unit_interval<R: CryptoRng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1_u64 << 53) as f64)
}

/// Zhu & Wang (ICML 2019), Theorem 5: RDP at integer order α ≥ 2 of a
/// mechanism with RDP ε(·), Poisson-subsampled at rate q < 1:
/// (1/(α−1))·ln[ (1−q)^{α−1}(αq − q + 1) + C(α,2) q² (1−q)^{α−2} e^{ε(2)}
///               + 3 Σ_{l=3}^{α} C(α,l) (1−q)^{α−l} q^l e^{(l−1)ε(l)} ].
pub(crate) fn zhu_wang_subsampled_rdp(alpha: u64, q: f64, rdp: impl Fn(u64) -> f64) -> f64 {
    let a = alpha as f64;
    let ln_q = q.ln();
    let ln_1mq = (-q).ln_1p();
    let mut log_sum = (a - 1.0) * ln_1mq + (a * q - q + 1.0).ln();
    let mut log_comb = a.ln(); // ln C(α, 1)
    for l in 2..=alpha {
        let lf = l as f64;
        log_comb += (a - lf + 1.0).ln() - lf.ln();
        let weight = if l == 2 { 0.0 } else { 3f64.ln() };
        let term = weight + log_comb + (a - lf) * ln_1mq + lf * ln_q + (lf - 1.0) * rdp(l);
        log_sum = log_add(log_sum, term);
    }
    log_sum / (a - 1.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn example() -> DistributedDiscreteGaussian {
        DistributedDiscreteGaussian {
            clip_norm: 1.0,
            granularity: 1e-3,
            local_stddev: 20.0,
            clients: 100,
            dimension: 1024,
            rounding_beta: (-0.5f64).exp(),
        }
    }

    #[test]
    fn tau_vanishes_for_large_local_noise() {
        let ddg = example();
        assert!(ddg.tau() < 1e-300);
        let noisy = DistributedDiscreteGaussian {
            local_stddev: 0.5,
            ..ddg
        };
        // 2π²·0.25·k/(k+1) ≥ π²/4 ⇒ each term ≤ e^{−2.47}.
        assert!(noisy.tau() > 0.5);
    }

    #[test]
    fn large_noise_rdp_matches_the_gaussian() {
        // With τ ≈ 0 Proposition 14 is the Gaussian bound α·Δ₂²/(2nσ²).
        let ddg = example();
        let l2 = ddg.l2_sensitivity();
        let expected = 8.0 * l2 * l2 / (2.0 * 100.0 * 400.0);
        assert!((ddg.rdp(8.0) - expected).abs() < 1e-12);
        assert!(l2 > 1000.0 && l2 < 1000.0 + 32.0);
    }

    #[test]
    fn sampling_only_helps() {
        let ddg = example();
        for order in [2.0, 3.0, 8.0, 32.0] {
            let sampled = ddg.rdp_sampled(0.01, order).unwrap();
            assert!(sampled <= ddg.rdp(order));
            assert!(sampled > 0.0);
        }
    }

    #[test]
    fn zhu_wang_matches_the_sampled_gaussian_order_two_loosely() {
        // For the Gaussian the exact order-2 RDP of the sampled mechanism is
        // ln(1 + q²(e^{1/σ²} − 1)); Theorem 5 at α = 2 reduces to exactly that.
        let (q, sigma) = (0.1_f64, 1.5_f64);
        let bound = zhu_wang_subsampled_rdp(2, q, |l| l as f64 / (2.0 * sigma * sigma));
        let exact = (q * q * ((1.0 / (sigma * sigma)).exp() - 1.0)).ln_1p();
        assert!((bound - exact).abs() < 1e-12, "{bound} vs {exact}");
    }

    #[test]
    fn quantize_keeps_the_norm_bound() {
        let ddg = DistributedDiscreteGaussian {
            granularity: 0.01,
            dimension: 64,
            ..example()
        };
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let update: Vec<f32> = (0..64).map(|i| ((i as f32) * 0.37).sin() * 0.12).collect();
        let norm = crate::clip::l2_norm(&update);
        let update: Vec<f32> = update.iter().map(|v| v / norm as f32 * 0.999).collect();
        let q = ddg.quantize(&update, &mut rng).unwrap();
        let qn = q.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        assert!(qn <= ddg.l2_sensitivity());
        for (x, r) in update.iter().zip(&q) {
            assert!((f64::from(*x) / 0.01 - *r as f64).abs() < 1.0 + 1e-9);
        }
    }

    #[test]
    fn modulus_sizing_is_consistent_with_the_tail_bound() {
        let ddg = example();
        let bits = ddg.modulus_bits(4.0, 1.0);
        assert!(
            ddg.wraparound_probability(bits, 1.0)
                < ddg.dimension as f64 * 2.0 * (-8.0f64).exp() + 1e-12
        );
        assert!(ddg.wraparound_probability(bits + 4, 1.0) < 1e-100);
    }
}
