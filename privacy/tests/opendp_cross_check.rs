//! A live cross-check against OpenDP (opendp 0.16, Harvard's library, an
//! independent implementation): the discrete Gaussian's privacy map and the
//! zCDP → (ε, δ) conversion.
//!
//! For integer vectors at L2 distance Δ with N_ℤ(0, s²) noise, OpenDP's
//! `make_gaussian` maps Δ to ρ = Δ²/(2s²) (CKS20); `make_zCDP_to_approxDP`
//! turns ρ into its privacy profile. The crate's RDP accountant must give
//! the same ε for the [`DpEvent::PoissonSampledDiscreteGaussian`] event with
//! q = 1 — the central [`GridGaussian`] release — composed T times.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cohort_privacy::{Accountant, Conversion, DpEvent, GridGaussian, RdpAccountant};
use opendp::combinators::make_zCDP_to_approxDP;
use opendp::domains::{AtomDomain, VectorDomain};
use opendp::measurements::make_gaussian;
use opendp::measures::ZeroConcentratedDivergence;
use opendp::metrics::L2Distance;

/// OpenDP's ε at δ for `rounds` releases with noise scale `scale` at
/// distance `distance` (composing zCDP adds ρ: scale/√T once is the same ρ).
fn opendp_epsilon(scale: f64, distance: f64, rounds: f64, delta: f64) -> f64 {
    let measurement = make_gaussian::<_, _, ZeroConcentratedDivergence>(
        VectorDomain::new(AtomDomain::<i64>::default()),
        L2Distance::<f64>::default(),
        scale / rounds.sqrt(),
        None,
    )
    .unwrap();
    make_zCDP_to_approxDP(measurement)
        .unwrap()
        .map(&distance)
        .unwrap()
        .epsilon(delta)
        .unwrap()
}

#[test]
fn grid_gaussian_epsilon_matches_opendp() {
    let accountant = RdpAccountant::new(Conversion::Improved);
    for (sigma, clip, dimension, rounds, delta) in [
        (1.0, 1.0, 31, 1_u64, 1e-5),
        (0.8, 2.0, 1000, 20, 1e-6),
        (4.0, 0.5, 10, 100, 1e-5),
        (10.0, 1.0, 62, 1000, 1e-8),
    ] {
        let grid = GridGaussian::new(sigma, clip, dimension).unwrap();
        let scale = grid.noise_stddev() / grid.granularity();
        let theirs = opendp_epsilon(scale, grid.sensitivity(), rounds as f64, delta);
        let ours = accountant
            .epsilon(&[grid.event(1.0, rounds).unwrap()], delta)
            .unwrap();
        println!("σ = {sigma}, T = {rounds}, δ = {delta}: ours {ours:.6}, opendp {theirs:.6}");
        assert!(
            (ours / theirs - 1.0).abs() < 1e-4,
            "σ = {sigma}, T = {rounds}: ours {ours}, opendp {theirs}"
        );
    }
}

#[test]
fn full_participation_gaussian_matches_opendp() {
    // The continuous Gaussian with q = 1 is ρ-zCDP with ρ = T/(2σ²), as the
    // discrete one: OpenDP's map at distance 1 and scale σ gives the same ρ.
    let accountant = RdpAccountant::new(Conversion::Improved);
    for (sigma, rounds, delta) in [(1.0, 1_u64, 1e-5), (2.5, 50, 1e-6), (0.7, 10, 1e-3)] {
        let event = DpEvent::poisson_sampled_gaussian(1.0, sigma, rounds).unwrap();
        let ours = accountant.epsilon(&[event], delta).unwrap();
        let theirs = opendp_epsilon(sigma, 1.0, rounds as f64, delta);
        assert!(
            (ours / theirs - 1.0).abs() < 1e-4,
            "σ = {sigma}, T = {rounds}: ours {ours}, opendp {theirs}"
        );
    }
}
