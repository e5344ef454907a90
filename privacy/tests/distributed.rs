//! The distributed discrete Gaussian through the accountants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cohort_privacy::{
    Accountant, DiscreteGaussian, DistributedDiscreteGaussian, DpEvent, PldAccountant,
    PrivacyError, RdpAccountant,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn mechanism(local_stddev: f64) -> DistributedDiscreteGaussian {
    DistributedDiscreteGaussian {
        clip_norm: 1.0,
        granularity: 1e-4,
        local_stddev,
        clients: 100,
        dimension: 1 << 12,
        rounding_beta: (-0.5f64).exp(),
    }
}

#[test]
fn ddg_costs_about_what_the_central_gaussian_costs_with_enough_noise() {
    // Central σ·c = √n·local_stddev·γ; with τ ≈ 0 and Δ₂ ≈ c/γ the DDG's
    // ε is close to (and, because of rounding, above) the Gaussian's.
    let ddg = mechanism(1000.0);
    let central_sigma = (100f64).sqrt() * 1000.0 * 1e-4 / 1.0; // = 1.0
    let (q, rounds, delta) = (0.01, 1000, 1e-5);
    let rdp = RdpAccountant::default();
    let gaussian = rdp
        .epsilon(
            &[DpEvent::poisson_sampled_gaussian(q, central_sigma, rounds).unwrap()],
            delta,
        )
        .unwrap();
    let distributed = rdp
        .epsilon(
            &[DpEvent::distributed_discrete_gaussian(q, ddg, rounds).unwrap()],
            delta,
        )
        .unwrap();
    println!("Gaussian ε = {gaussian:.4}, DDG ε = {distributed:.4}");
    assert!(distributed >= gaussian * 0.999);
    assert!(distributed < gaussian * 1.25);
}

#[test]
fn pld_refuses_ddg_events() {
    let event = DpEvent::distributed_discrete_gaussian(0.01, mechanism(1000.0), 10).unwrap();
    assert!(matches!(
        PldAccountant::new().epsilon(&[event], 1e-5).unwrap_err(),
        PrivacyError::UnsupportedEvent { .. }
    ));
}

#[test]
fn too_little_local_noise_is_rejected() {
    let err = DpEvent::distributed_discrete_gaussian(0.01, mechanism(0.2), 10).unwrap_err();
    assert!(matches!(
        err,
        PrivacyError::InvalidParameter {
            parameter: "local_stddev",
            ..
        }
    ));
}

#[test]
fn a_node_quantizes_and_noises_its_update() {
    let ddg = DistributedDiscreteGaussian {
        dimension: 256,
        granularity: 1e-2,
        ..mechanism(10.0)
    };
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let update: Vec<f32> = (0..256)
        .map(|i| if i % 2 == 0 { 0.05 } else { -0.05 })
        .collect();
    let mut integers = ddg.quantize(&update, &mut rng).unwrap();
    DiscreteGaussian::new(ddg.local_stddev)
        .unwrap()
        .add_to(&mut integers, &mut rng);
    let mean_abs = integers
        .iter()
        .map(|v| v.unsigned_abs() as f64)
        .sum::<f64>()
        / 256.0;
    // |5 ± N_ℤ(0, 100)| averages ≈ 8–9.
    assert!(mean_abs > 5.0 && mean_abs < 13.0, "{mean_abs}");
}
