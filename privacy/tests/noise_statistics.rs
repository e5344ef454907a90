//! Statistical checks of the samplers (fixed seeds, 5-standard-error bands).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cohort_privacy::{DiscreteGaussian, GaussianNoise};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// Sample variance and its standard error, from raw draws.
fn variance_with_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let m2 = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let m4 = xs.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n;
    // Var(s²) ≈ (μ₄ − σ⁴)/n.
    (m2, ((m4 - m2 * m2) / n).sqrt())
}

#[test]
fn gaussian_noise_std_is_sigma_times_clip_norm() {
    let (sigma, clip) = (1.3, 0.7);
    let noise = GaussianNoise::for_clipped_sum(sigma, clip).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(2024);
    let mut values = vec![0.0_f32; 200_000];
    noise.add_to(&mut values, &mut rng);
    let n = values.len() as f64;
    let std = (values.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n).sqrt();
    let target = sigma * clip;
    // SE of the sample std of a normal ≈ s/√(2n).
    let se = target / (2.0 * n).sqrt();
    assert!(
        (std - target).abs() < 5.0 * se,
        "std {std} vs {target} (SE {se})"
    );
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    assert!(mean.abs() < 5.0 * target / n.sqrt(), "mean {mean}");
}

#[test]
fn discrete_gaussian_variance_matches_the_exact_pmf_sum() {
    for (sigma, seed) in [(0.5, 1_u64), (0.8, 2), (1.5, 3), (7.0, 4)] {
        let dg = DiscreteGaussian::new(sigma).unwrap();
        let theory = dg.variance();
        // Narrower than σ² — by ≈7% at σ = 1/2 (CKS20, Corollary 9), by
        // ≈1e-4 relative at σ = 0.8, and by nothing f64 can see beyond.
        if sigma <= 0.8 {
            assert!(theory < sigma * sigma, "σ = {sigma}: {theory}");
        }
        if sigma == 0.5 {
            assert!(theory < 0.95 * sigma * sigma, "σ = {sigma}: {theory}");
        }
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let xs: Vec<f64> = (0..100_000).map(|_| dg.sample(&mut rng) as f64).collect();
        let (var, se) = variance_with_se(&xs);
        assert!(
            (var - theory).abs() < 5.0 * se,
            "σ = {sigma}: empirical {var} vs exact {theory} (SE {se})"
        );
    }
}

#[test]
fn discrete_gaussian_frequencies_match_the_pmf() {
    let dg = DiscreteGaussian::new(1.0).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let n = 200_000;
    let mut counts = std::collections::HashMap::<i64, u64>::new();
    for _ in 0..n {
        *counts.entry(dg.sample(&mut rng)).or_default() += 1;
    }
    for x in -3..=3 {
        let p = dg.probability(x);
        let observed = *counts.get(&x).unwrap_or(&0) as f64 / n as f64;
        let se = (p * (1.0 - p) / n as f64).sqrt();
        assert!(
            (observed - p).abs() < 5.0 * se,
            "x = {x}: {observed} vs {p}"
        );
    }
    // Symmetry of the mean.
    let mean: f64 = counts
        .iter()
        .map(|(&x, &c)| x as f64 * c as f64)
        .sum::<f64>()
        / n as f64;
    assert!(mean.abs() < 5.0 / (n as f64).sqrt());
}

#[test]
fn discrete_gaussian_handles_large_sigma() {
    // The DDG regime: σ in integer units of quantized updates.
    let dg = DiscreteGaussian::new(1000.5).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let xs: Vec<f64> = (0..20_000).map(|_| dg.sample(&mut rng) as f64).collect();
    let (var, se) = variance_with_se(&xs);
    assert!(
        (var - dg.variance()).abs() < 5.0 * se,
        "{var} vs {}",
        dg.variance()
    );
}
