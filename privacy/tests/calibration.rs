//! Calibration returns the smallest σ meeting the target, to its tolerance.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cohort_privacy::{
    Accountant, Conversion, DpEvent, PldAccountant, PrivacyBudget, RdpAccountant,
    calibrate_noise_multiplier, calibrate_noise_multiplier_with_tolerance,
};

fn epsilon(accountant: &dyn Accountant, q: f64, sigma: f64, steps: u64, delta: f64) -> f64 {
    let event = DpEvent::poisson_sampled_gaussian(q, sigma, steps).unwrap();
    accountant.epsilon(&[event], delta).unwrap()
}

#[test]
fn rdp_calibration_meets_the_target_and_is_minimal() {
    let rdp = RdpAccountant::new(Conversion::Improved);
    let tol = 1e-3;
    for (eps, delta, q, steps) in [
        (1.0, 1e-5, 0.01, 1000),
        (3.0, 1e-6, 256.0 / 60000.0, 14063),
        (8.0, 1e-5, 1.0, 50),
    ] {
        let target = PrivacyBudget::new(eps, delta).unwrap();
        let sigma = calibrate_noise_multiplier_with_tolerance(target, q, steps, &rdp, tol).unwrap();
        let at = epsilon(&rdp, q, sigma, steps, delta);
        let below = epsilon(&rdp, q, sigma * (1.0 - tol), steps, delta);
        println!(
            "ε = {eps}, δ = {delta}, q = {q}, T = {steps}: σ = {sigma:.5} (ε {at:.5}; at σ(1−tol): {below:.5})"
        );
        assert!(at <= eps, "σ = {sigma} gives ε = {at} > {eps}");
        assert!(
            below > eps,
            "σ(1−tol) = {} still meets the target ({below})",
            sigma * (1.0 - tol)
        );
    }
}

#[test]
fn pld_calibration_needs_less_noise_than_rdp() {
    let target = PrivacyBudget::new(2.0, 1e-5).unwrap();
    let (q, steps) = (0.01, 2000);
    let rdp = calibrate_noise_multiplier(target, q, steps, &RdpAccountant::default()).unwrap();
    let pld_accountant = PldAccountant::new();
    let pld = calibrate_noise_multiplier(target, q, steps, &pld_accountant).unwrap();
    assert!(pld <= rdp, "PLD σ {pld} above RDP σ {rdp}");
    assert!(epsilon(&pld_accountant, q, pld, steps, 1e-5) <= 2.0);
}
