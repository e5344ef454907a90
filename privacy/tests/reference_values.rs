//! Accountants against published reference values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cohort_privacy::{Accountant, Conversion, DpEvent, PldAccountant, RdpAccountant};

/// TensorFlow Privacy, `tutorials/README.md` (MNIST DP-SGD): n = 60000,
/// batch 256, δ = 1e-5; (σ, epochs, ε). Steps as in TF Privacy's
/// `compute_dp_sgd_privacy`: ceil(epochs · n / batch).
const MNIST_TABLE: [(f64, u64, f64); 3] = [(1.12, 60, 2.92), (0.6, 30, 9.74), (1.2, 10, 1.20)];
const N: u64 = 60_000;
const BATCH: u64 = 256;
const DELTA: f64 = 1e-5;

fn mnist_event(sigma: f64, epochs: u64) -> DpEvent {
    let q = BATCH as f64 / N as f64;
    let steps = (epochs * N).div_ceil(BATCH);
    DpEvent::poisson_sampled_gaussian(q, sigma, steps).unwrap()
}

#[test]
fn rdp_classic_reproduces_tf_privacy_mnist_table() {
    let rdp = RdpAccountant::new(Conversion::Classic);
    for (sigma, epochs, expected) in MNIST_TABLE {
        let eps = rdp.epsilon(&[mnist_event(sigma, epochs)], DELTA).unwrap();
        println!("σ = {sigma}, {epochs} epochs: ε = {eps:.4} (TF Privacy: {expected})");
        assert!(
            (eps / expected - 1.0).abs() < 0.01,
            "σ = {sigma}, {epochs} epochs: ε = {eps}, expected {expected}"
        );
    }
}

#[test]
fn improved_conversion_is_strictly_tighter() {
    let classic = RdpAccountant::new(Conversion::Classic);
    let improved = RdpAccountant::new(Conversion::Improved);
    for (sigma, epochs, _) in MNIST_TABLE {
        let events = [mnist_event(sigma, epochs)];
        let c = classic.epsilon(&events, DELTA).unwrap();
        let i = improved.epsilon(&events, DELTA).unwrap();
        println!("σ = {sigma}: classic {c:.4}, improved {i:.4}");
        assert!(i < c, "improved {i} not below classic {c}");
    }
}

#[test]
fn pld_is_no_looser_than_rdp() {
    let rdp = RdpAccountant::new(Conversion::Improved);
    let pld = PldAccountant::new();
    for (sigma, epochs, _) in MNIST_TABLE {
        let events = [mnist_event(sigma, epochs)];
        let r = rdp.epsilon(&events, DELTA).unwrap();
        let p = pld.epsilon(&events, DELTA).unwrap();
        println!("σ = {sigma}: RDP {r:.4}, PLD {p:.4}");
        assert!(p <= r, "PLD {p} above RDP {r}");
        assert!(p > 0.5 * r, "PLD {p} implausibly far below RDP {r}");
    }
}

/// Exact δ(ε) of the Gaussian mechanism with sensitivity/σ = μ (Balle &
/// Wang, ICML 2018, Theorem 8): Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2), with the
/// second term formed in log space so that huge ε do not overflow.
fn analytic_gaussian_delta(mu: f64, eps: f64) -> f64 {
    let ln_phi = |x: f64| (0.5f64).ln() + ln_erfc_by_quadrature(-x / std::f64::consts::SQRT_2);
    ln_phi(-eps / mu + mu / 2.0).exp() - (eps + ln_phi(-eps / mu - mu / 2.0)).exp()
}

/// ln erfc(x) by Simpson quadrature — slow but independent of the numerics
/// under test. For x ≥ 0, erfc(x) = (2/√π)·e^{−x²}·∫₀^∞ e^{−2xu−u²} du, and
/// the integral is taken over [0, 12].
fn ln_erfc_by_quadrature(x: f64) -> f64 {
    if x < 0.0 {
        return (2.0 - ln_erfc_by_quadrature(-x).exp()).ln();
    }
    let (n, width) = (200_000, 12.0);
    let h = width / n as f64;
    let f = |u: f64| (-2.0 * x * u - u * u).exp();
    let mut s = f(0.0) + f(width);
    for i in 1..n {
        s += if i % 2 == 1 { 4.0 } else { 2.0 } * f(i as f64 * h);
    }
    -x * x + (s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()).ln()
}

#[test]
fn full_participation_matches_the_exact_gaussian() {
    // T compositions of the Gaussian with σ are one Gaussian with σ/√T.
    let (sigma, steps) = (4.0_f64, 100_u64);
    let mu = (steps as f64).sqrt() / sigma;
    let events = [DpEvent::poisson_sampled_gaussian(1.0, sigma, steps).unwrap()];
    let pld = PldAccountant::new();
    let rdp = RdpAccountant::new(Conversion::Improved);
    for eps in [1.0, 3.0, 5.0] {
        let exact = analytic_gaussian_delta(mu, eps);
        let p = pld.delta(&events, eps).unwrap();
        let r = rdp.delta(&events, eps).unwrap();
        println!("ε = {eps}: exact δ {exact:.6e}, PLD {p:.6e}, RDP {r:.6e}");
        assert!(p >= exact * (1.0 - 1e-6), "PLD δ {p} below exact {exact}");
        assert!(p <= exact * 1.01, "PLD δ {p} too far above exact {exact}");
        assert!(r >= p);
    }
}

/// opendp 0.16 (`make_gaussian` → `make_zCDP_to_approxDP`, run once outside
/// this crate): ε at δ for ρ-zCDP. The RDP accountant's full-participation
/// path (ρ = 1/(2σ²)) must agree.
#[test]
fn full_participation_zcdp_matches_opendp() {
    let cases = [
        (1.0, 1e-5, 4.728_386_984_943),
        (2.0, 1e-6, 2.419_093_176_867),
        (0.5, 1e-5, 10.724_824_112_939),
        (5.0, 1e-8, 1.082_308_443_970),
    ];
    let rdp = RdpAccountant::new(Conversion::Improved);
    for (sigma, delta, expected) in cases {
        let events = [DpEvent::poisson_sampled_gaussian(1.0, sigma, 1).unwrap()];
        let eps = rdp.epsilon(&events, delta).unwrap();
        assert!(
            (eps / expected - 1.0).abs() < 1e-6,
            "σ = {sigma}: {eps} vs opendp {expected}"
        );
    }
}

#[test]
fn composition_of_mixed_events_adds_up() {
    // Two halves equal one whole for both accountants.
    let q = 0.01;
    let whole = [DpEvent::poisson_sampled_gaussian(q, 1.0, 2000).unwrap()];
    let halves = [
        DpEvent::poisson_sampled_gaussian(q, 1.0, 1000).unwrap(),
        DpEvent::poisson_sampled_gaussian(q, 1.0, 1000).unwrap(),
    ];
    let rdp = RdpAccountant::default();
    let a = rdp.epsilon(&whole, DELTA).unwrap();
    let b = rdp.epsilon(&halves, DELTA).unwrap();
    assert!((a - b).abs() < 1e-12);
    let pld = PldAccountant::new();
    assert!(
        (pld.epsilon(&whole, DELTA).unwrap() - pld.epsilon(&halves, DELTA).unwrap()).abs() < 1e-9
    );
    // Different σ and q in one list: more noise on part of it lowers ε.
    let mixed = [
        DpEvent::poisson_sampled_gaussian(q, 1.0, 1000).unwrap(),
        DpEvent::poisson_sampled_gaussian(0.02, 2.0, 1000).unwrap(),
    ];
    let m_rdp = rdp.epsilon(&mixed, DELTA).unwrap();
    let m_pld = pld.epsilon(&mixed, DELTA).unwrap();
    assert!(m_pld <= m_rdp);
    assert!(m_rdp > rdp.epsilon(&halves[..1], DELTA).unwrap());
}

#[test]
fn pld_handles_losses_beyond_the_exp_range() {
    // Full participation with σ = 0.025: one Gaussian with μ = 40, whose
    // privacy losses reach well past ln(f64::MAX) ≈ 709.
    let events = [DpEvent::poisson_sampled_gaussian(1.0, 0.025, 1).unwrap()];
    let pld = PldAccountant::new().epsilon(&events, DELTA).unwrap();
    let rdp = RdpAccountant::default().epsilon(&events, DELTA).unwrap();
    println!("μ = 40: PLD ε = {pld:.3}, RDP ε = {rdp:.3}");
    assert!(pld.is_finite() && pld <= rdp);
    // The exact ε solves δ(ε) = 1e-5; PLD may only be (slightly) above it.
    let exact_delta_at_pld = analytic_gaussian_delta(40.0, pld);
    assert!(
        exact_delta_at_pld <= DELTA * (1.0 + 1e-6),
        "{exact_delta_at_pld}"
    );
    assert!(analytic_gaussian_delta(40.0, pld * 0.99) > DELTA);
}
