//! Numerics shared by the accountants: log-space sums and Gaussian tails.
//!
//! `erfc` comes from `libm` (a port of musl's, accurate to about one ulp);
//! beyond x = 25 it underflows, so `log_erfc` switches to the asymptotic
//! series there, which at that point is accurate to far below f64 precision.

use std::f64::consts::{LN_2, PI, SQRT_2};

/// ln(e^a + e^b) without overflow.
pub(crate) fn log_add(a: f64, b: f64) -> f64 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    (lo - hi).exp().ln_1p() + hi
}

/// ln(e^a − e^b) for a ≥ b; −∞ when equal.
pub(crate) fn log_sub(a: f64, b: f64) -> f64 {
    if b == f64::NEG_INFINITY {
        return a;
    }
    if a <= b {
        return f64::NEG_INFINITY;
    }
    let d = a - b;
    // For large d, e^{a} dominates and expm1 would overflow.
    if d > 700.0 {
        return a;
    }
    d.exp_m1().ln() + b
}

/// ln(erfc(x)), accurate in the far right tail where erfc underflows.
pub(crate) fn log_erfc(x: f64) -> f64 {
    if x < 25.0 {
        return libm::erfc(x).ln();
    }
    // erfc(x) = e^{-x²}/(x√π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) + 105/(16x⁸) − …)
    let inv2 = 1.0 / (x * x);
    let series =
        1.0 - 0.5 * inv2 + 0.75 * inv2 * inv2 - 1.875 * inv2.powi(3) + 6.5625 * inv2.powi(4);
    -x * x - x.ln() - 0.5 * PI.ln() + series.ln()
}

/// Upper tail of the standard normal, P[Z > z].
#[cfg(test)]
pub(crate) fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / SQRT_2)
}

/// ln P[Z > z] for the standard normal.
pub(crate) fn log_normal_sf(z: f64) -> f64 {
    log_erfc(z / SQRT_2) - LN_2
}

/// P[Z ≤ z] for the standard normal.
#[cfg(test)]
pub(crate) fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / SQRT_2)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn log_add_and_sub_invert() {
        let (a, b) = (-3.0_f64, -5.0_f64);
        let s = log_add(a, b);
        assert!((s - (a.exp() + b.exp()).ln()).abs() < 1e-14);
        assert!((log_sub(s, b) - a).abs() < 1e-13);
        assert_eq!(log_sub(1.0, 1.0), f64::NEG_INFINITY);
        assert_eq!(log_add(f64::NEG_INFINITY, 2.0), 2.0);
    }

    #[test]
    fn log_erfc_is_continuous_at_the_switch() {
        let below = libm::erfc(24.999_999).ln();
        let above = log_erfc(25.000_001);
        // d/dx ln erfc(x) ≈ −2x, so 2e-6 apart differ by ≈ 1e-4.
        assert!((below - above).abs() < 2e-4, "{below} vs {above}");
        // Two terms of the asymptotic series already pin ln erfc(30) to ~1e-6.
        let expected = -900.0 - 30f64.ln() - 0.5 * PI.ln() + (1.0 - 1.0 / 1800.0_f64).ln();
        assert!((log_erfc(30.0) - expected).abs() < 1e-5);
    }

    #[test]
    fn log_normal_sf_is_accurate_in_the_tail() {
        // P[Z > 10] = 7.619853024160527e-24.
        let p = log_normal_sf(10.0).exp();
        assert!((p / 7.619_853_024_160_527e-24 - 1.0).abs() < 1e-12, "{p}");
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-16);
        assert!((normal_cdf(1.0) - 0.841_344_746_068_542_9).abs() < 1e-15);
    }
}
