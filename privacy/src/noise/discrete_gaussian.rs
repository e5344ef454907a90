//! Exact sampling from the discrete Gaussian N_ℤ(0, σ²).
//!
//! Promise: [`DiscreteGaussian::sample`] returns x ∈ ℤ with probability
//! exactly proportional to exp(−x²/(2σ²)), given a uniformly random source —
//! no floating point touches the sampling decisions. This is the noise each
//! node adds in the integer (quantized) domain before secure-aggregation
//! masking in the distributed discrete Gaussian mechanism (Kairouz, Liu,
//! Steinke, ICML 2021); its accounting lives in [`crate::ddg`].
//!
//! Algorithm: Canonne, Kamath, Steinke, "The Discrete Gaussian for
//! Differential Privacy" (NeurIPS 2020, arXiv:2004.00010), Algorithm 1
//! (Bernoulli(e^{−γ}) for rational γ), Algorithm 2 (discrete Laplace) and
//! Algorithm 3 (discrete Gaussian by rejection from a discrete Laplace of
//! scale t = ⌊σ⌋ + 1). The f64 σ given by the caller is converted exactly to
//! a rational (every f64 is m·2^e), so σ² and the rejection bias are exact
//! big-integer rationals.
//!
//! The variance of N_ℤ(0, σ²) is slightly below σ² for small σ;
//! [`DiscreteGaussian::variance`] computes it by summing the pmf.

use num_bigint::BigUint;
use rand::CryptoRng;

use crate::error::{PrivacyError, Result};

/// Largest σ accepted: t = ⌊σ⌋ + 1 and the Laplace draws then stay far from
/// i64 overflow.
const MAX_SIGMA: f64 = 1_099_511_627_776.0; // 2^40

/// The discrete Gaussian distribution N_ℤ(0, σ²) with an exact sampler.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscreteGaussian {
    sigma: f64,
    /// σ² = sigma_sq_num / sigma_sq_den exactly.
    sigma_sq_num: BigUint,
    sigma_sq_den: BigUint,
    /// Scale of the discrete Laplace proposal, ⌊σ⌋ + 1.
    laplace_scale: u64,
}

impl DiscreteGaussian {
    /// The discrete Gaussian with parameter σ (positive, finite, ≤ 2^40).
    pub fn new(sigma: f64) -> Result<Self> {
        if !(sigma.is_finite() && sigma > 0.0 && sigma <= MAX_SIGMA) {
            return Err(PrivacyError::InvalidParameter {
                parameter: "sigma",
                value: sigma,
                requirement: "positive, finite and at most 2^40",
            });
        }
        let (mantissa, exponent) = exact_parts(sigma);
        let m_sq = BigUint::from(mantissa) * BigUint::from(mantissa);
        let two_e = 2 * i64::from(exponent);
        let (sigma_sq_num, sigma_sq_den) = if two_e >= 0 {
            (m_sq << two_e as u64, BigUint::from(1u8))
        } else {
            (m_sq, BigUint::from(1u8) << two_e.unsigned_abs())
        };
        Ok(Self {
            sigma,
            sigma_sq_num,
            sigma_sq_den,
            laplace_scale: sigma.floor() as u64 + 1,
        })
    }

    /// The parameter σ.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// Exact variance Σ x²·p(x). For σ > 64 the difference from σ² is below
    /// σ²·e^{−2π²σ²}·(4π²σ²) (CKS20, Corollary 9), far below f64 resolution,
    /// so σ² itself is returned.
    pub fn variance(&self) -> f64 {
        let s = self.sigma;
        if s > 64.0 {
            return s * s;
        }
        let limit = (40.0 * s).ceil() as i64 + 2;
        let (mut norm, mut second) = (1.0_f64, 0.0_f64);
        for x in 1..=limit {
            let xf = x as f64;
            let w = (-xf * xf / (2.0 * s * s)).exp();
            norm += 2.0 * w;
            second += 2.0 * xf * xf * w;
        }
        second / norm
    }

    /// P[X = x] (computed in floating point; for tests and diagnostics).
    pub fn probability(&self, x: i64) -> f64 {
        let s = self.sigma;
        let limit = (40.0 * s).ceil() as i64 + 2;
        let norm: f64 = 1.0
            + 2.0
                * (1..=limit)
                    .map(|k| (-(k as f64).powi(2) / (2.0 * s * s)).exp())
                    .sum::<f64>();
        (-(x as f64).powi(2) / (2.0 * s * s)).exp() / norm
    }

    /// One exact draw (CKS20, Algorithm 3).
    pub fn sample<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> i64 {
        let t = self.laplace_scale;
        let t_big = BigUint::from(t);
        // γ = (|Y| − σ²/t)² / (2σ²) = (|Y|·b·t − a)² / (2·a·b·t²) with σ² = a/b.
        let bt = &self.sigma_sq_den * &t_big;
        let denominator = BigUint::from(2u8) * &self.sigma_sq_num * &bt * &t_big;
        loop {
            let y = sample_discrete_laplace(t, rng);
            let lhs = BigUint::from(y.unsigned_abs()) * &bt;
            let diff = if lhs >= self.sigma_sq_num {
                lhs - &self.sigma_sq_num
            } else {
                &self.sigma_sq_num - lhs
            };
            let numerator = &diff * &diff;
            if bernoulli_exp_big(&numerator, &denominator, rng) {
                return y;
            }
        }
    }

    /// Adds an independent draw to each integer coordinate. Addition wraps
    /// (mod 2^64), which is consistent with any later reduction mod 2^b for
    /// secure aggregation.
    pub fn add_to<R: CryptoRng + ?Sized>(&self, values: &mut [i64], rng: &mut R) {
        for v in values.iter_mut() {
            *v = v.wrapping_add(self.sample(rng));
        }
    }
}

/// Splits a positive finite f64 into (m, e) with x = m·2^e exactly.
fn exact_parts(x: f64) -> (u64, i32) {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1_u64 << 52) - 1);
    if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1_u64 << 52), biased - 1075)
    }
}

/// Discrete Laplace with integer scale t: P[x] ∝ e^{−|x|/t} (CKS20, Alg. 2).
fn sample_discrete_laplace<R: CryptoRng + ?Sized>(t: u64, rng: &mut R) -> i64 {
    let t128 = u128::from(t);
    loop {
        let u = uniform_below_u128(t128, rng);
        if !bernoulli_exp_small(u, t128, rng) {
            continue;
        }
        let mut v: u128 = 0;
        while bernoulli_exp_small(1, 1, rng) {
            v += 1;
        }
        let magnitude = u + t128 * v;
        let negative = rng.next_u32() & 1 == 1;
        if negative && magnitude == 0 {
            continue;
        }
        // Magnitudes beyond i64 have probability below e^{−2^23}; resample.
        let Ok(m) = i64::try_from(magnitude) else {
            continue;
        };
        return if negative { -m } else { m };
    }
}

/// Bernoulli(e^{−n/d}) for small integers, 0 ≤ n ≤ d (CKS20, Alg. 1).
fn bernoulli_exp_small<R: CryptoRng + ?Sized>(n: u128, d: u128, rng: &mut R) -> bool {
    let mut k: u128 = 1;
    // Continue while Bernoulli(n/(d·k)) succeeds; the parity of the stopping
    // k decides.
    while uniform_below_u128(d * k, rng) < n {
        k += 1;
    }
    k % 2 == 1
}

/// Bernoulli(e^{−n/d}) for any non-negative big rational n/d.
fn bernoulli_exp_big<R: CryptoRng + ?Sized>(n: &BigUint, d: &BigUint, rng: &mut R) -> bool {
    let whole = n / d;
    let remainder = n % d;
    // e^{−γ} = e^{−⌊γ⌋}·e^{−(γ−⌊γ⌋)}: ⌊γ⌋ independent Bernoulli(e^{−1}) first.
    let Some(whole) = u64::try_from(&whole).ok() else {
        // γ ≥ 2^64: the acceptance probability is below e^{−2^64}.
        return false;
    };
    for _ in 0..whole {
        if !bernoulli_exp_small(1, 1, rng) {
            return false;
        }
    }
    let mut k = BigUint::from(1u8);
    while uniform_below_big(&(d * &k), rng) < remainder {
        k += 1u8;
    }
    k.bit(0)
}

/// Uniform integer in [0, n) for n ≥ 1, by rejection on the next power of two.
fn uniform_below_u128<R: CryptoRng + ?Sized>(n: u128, rng: &mut R) -> u128 {
    if n <= 1 {
        return 0;
    }
    let bits = 128 - (n - 1).leading_zeros();
    let mask = if bits == 128 {
        u128::MAX
    } else {
        (1_u128 << bits) - 1
    };
    loop {
        let raw = if bits <= 64 {
            u128::from(rng.next_u64())
        } else {
            (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())
        };
        let x = raw & mask;
        if x < n {
            return x;
        }
    }
}

/// Uniform big integer in [0, n) for n ≥ 1.
fn uniform_below_big<R: CryptoRng + ?Sized>(n: &BigUint, rng: &mut R) -> BigUint {
    let bits = n.bits();
    if bits <= 1 {
        return BigUint::default();
    }
    let bytes = bits.div_ceil(8) as usize;
    let top_bits = (bits % 8) as u32;
    let mut buffer = vec![0_u8; bytes];
    loop {
        rng.fill_bytes(&mut buffer);
        if top_bits != 0
            && let Some(last) = buffer.last_mut()
        {
            *last &= (1_u8 << top_bits) - 1;
        }
        let x = BigUint::from_bytes_le(&buffer);
        if &x < n {
            return x;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn exact_parts_round_trip() {
        for x in [1.0, 0.5, 3.75, 1e-300, 123456.789, 5e-324] {
            let (m, e) = exact_parts(x);
            assert_eq!(m as f64 * 2f64.powi(e), x);
        }
    }

    #[test]
    fn bernoulli_exp_matches_its_probability() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let n = 200_000;
        let hits = (0..n)
            .filter(|_| bernoulli_exp_big(&BigUint::from(3u8), &BigUint::from(2u8), &mut rng))
            .count();
        let p = (-1.5_f64).exp();
        let se = (p * (1.0 - p) / n as f64).sqrt();
        assert!(((hits as f64 / n as f64) - p).abs() < 5.0 * se);
    }

    #[test]
    fn uniform_below_covers_its_range() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut seen = [0_u32; 5];
        for _ in 0..5000 {
            seen[uniform_below_u128(5, &mut rng) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
    }

    #[test]
    fn variance_is_below_sigma_squared_for_small_sigma() {
        let dg = DiscreteGaussian::new(0.5).unwrap();
        assert!(dg.variance() < 0.25);
        let big = DiscreteGaussian::new(10.0).unwrap();
        assert!((big.variance() - 100.0).abs() < 1e-9);
    }
}
