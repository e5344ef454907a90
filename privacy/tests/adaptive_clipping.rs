//! Adaptive clipping costs what the ledger records.
//!
//! The ledger charges a round of adaptive clipping as one Gaussian query with
//! the total multiplier z. This test measures, from what the library actually
//! releases, the count's sensitivity and noise, derives the effective
//! multiplier of the (update sum, count) pair independently of the split
//! formula, and checks that its ε — computed here in closed form, not by the
//! crate's accountant — is the ε the accountant charges for z.
//! With the uncentred count (sensitivity 1 against noise σ_b) the effective
//! multiplier for z = 4, σ_b = 3 is about 2.6, and this test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cohort_privacy::{
    Accountant, AdaptiveClipConfig, AdaptiveClipper, Conversion, DpEvent, RdpAccountant,
    update_noise_multiplier,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const Z: f64 = 4.0;
const COUNT_NOISE: f64 = 3.0;
const EXPECTED: f64 = 100.0;

/// The released fraction for `unclipped` of `participants`, with noise from `seed`.
fn released(clipper: &AdaptiveClipper, unclipped: u64, participants: u64, seed: u64) -> f64 {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    clipper
        .noisy_unclipped_fraction(unclipped, participants, &mut rng)
        .unwrap()
}

#[test]
fn adaptive_clipping_epsilon_matches_an_independent_computation() {
    let clipper =
        AdaptiveClipper::new(AdaptiveClipConfig::new(1.0, COUNT_NOISE, EXPECTED)).unwrap();
    // Sensitivity in the released space: one client added, clipped or not,
    // under the same noise draw (seeds shared).
    let sensitivity = (0..20)
        .flat_map(|seed| {
            let base = released(&clipper, 50, 100, seed);
            [
                (released(&clipper, 51, 101, seed) - base).abs(),
                (released(&clipper, 50, 101, seed) - base).abs(),
            ]
        })
        .fold(0.0, f64::max);
    // Noise in the released space: the spread of many draws around the mean.
    let draws: Vec<f64> = (0..40_000)
        .map(|seed| released(&clipper, 50, 100, 1_000 + seed))
        .collect();
    let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    let stddev =
        (draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / draws.len() as f64).sqrt();
    let count_multiplier = stddev / sensitivity;
    let update_multiplier = update_noise_multiplier(Z, COUNT_NOISE).unwrap();
    // The pair is one Gaussian query on the stacked vector.
    let effective = (update_multiplier.powi(-2) + count_multiplier.powi(-2)).powf(-0.5);

    // ε of T full-participation rounds in closed form: ρ = T/(2z²),
    // ε = ρ + 2√(ρ ln(1/δ)) (Bun & Steinke 2016).
    let (rounds, delta): (f64, f64) = (20.0, 1e-5);
    let closed_form = |z: f64| {
        let rho = rounds / (2.0 * z * z);
        rho + 2.0 * (rho * (1.0 / delta).ln()).sqrt()
    };
    let charged = RdpAccountant::new(Conversion::Classic)
        .epsilon(
            &[DpEvent::poisson_sampled_gaussian(1.0, Z, rounds as u64).unwrap()],
            delta,
        )
        .unwrap();
    let actual = closed_form(effective);
    println!(
        "count multiplier {count_multiplier:.3}, effective z {effective:.3}; \
         ε actual {actual:.4}, charged {charged:.4}"
    );
    assert!((charged / closed_form(Z) - 1.0).abs() < 1e-9);
    assert!(
        (effective / Z - 1.0).abs() < 0.02,
        "effective multiplier {effective} while the ledger records {Z}"
    );
    assert!(
        (actual / charged - 1.0).abs() < 0.02,
        "ε actually spent {actual} vs charged {charged}"
    );
}

#[test]
fn more_unclipped_than_participants_is_refused() {
    let clipper =
        AdaptiveClipper::new(AdaptiveClipConfig::new(1.0, COUNT_NOISE, EXPECTED)).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    assert!(clipper.noisy_unclipped_fraction(5, 4, &mut rng).is_err());
}
