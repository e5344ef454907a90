//! Bad inputs each give their own error naming the parameter and value.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cohort_privacy::{
    Accountant, DpEvent, PldAccountant, PrivacyBudget, PrivacyError, RdpAccountant,
    calibrate_noise_multiplier,
};

fn good() -> DpEvent {
    DpEvent::poisson_sampled_gaussian(0.01, 1.0, 10).unwrap()
}

#[test]
fn noise_multiplier_must_be_positive() {
    for sigma in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = DpEvent::poisson_sampled_gaussian(0.01, sigma, 10).unwrap_err();
        assert!(
            matches!(err, PrivacyError::InvalidNoiseMultiplier { value } if value.to_bits() == sigma.to_bits())
        );
    }
    let msg = DpEvent::poisson_sampled_gaussian(0.01, -1.0, 10)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("noise multiplier") && msg.contains("-1"),
        "{msg}"
    );
}

#[test]
fn sampling_rate_must_lie_in_unit_interval() {
    for q in [0.0, -0.1, 1.5, f64::NAN] {
        let err = DpEvent::poisson_sampled_gaussian(q, 1.0, 10).unwrap_err();
        assert!(
            matches!(err, PrivacyError::InvalidSamplingRate { .. }),
            "{err}"
        );
    }
    assert!(DpEvent::poisson_sampled_gaussian(1.0, 1.0, 10).is_ok());
    let msg = DpEvent::poisson_sampled_gaussian(1.5, 1.0, 1)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("sampling rate") && msg.contains("1.5"),
        "{msg}"
    );
}

#[test]
fn delta_must_lie_in_open_unit_interval() {
    for accountant in [
        &RdpAccountant::default() as &dyn Accountant,
        &PldAccountant::new(),
    ] {
        for delta in [0.0, 1.0, -1e-5, 2.0] {
            let err = accountant.epsilon(&[good()], delta).unwrap_err();
            assert_eq!(err, PrivacyError::InvalidDelta { value: delta });
        }
    }
    assert!(
        PrivacyBudget::new(1.0, 0.0)
            .unwrap_err()
            .to_string()
            .contains("delta")
    );
}

#[test]
fn epsilon_must_be_positive() {
    for eps in [0.0, -2.0] {
        assert_eq!(
            RdpAccountant::default().delta(&[good()], eps).unwrap_err(),
            PrivacyError::InvalidEpsilon { value: eps }
        );
        assert_eq!(
            PrivacyBudget::new(eps, 1e-5).unwrap_err(),
            PrivacyError::InvalidEpsilon { value: eps }
        );
    }
}

#[test]
fn deserialized_bad_events_are_caught_by_the_accountants() {
    let bad = DpEvent::PoissonSampledGaussian {
        sampling_rate: 0.1,
        noise_multiplier: -3.0,
        count: 5,
    };
    for accountant in [
        &RdpAccountant::default() as &dyn Accountant,
        &PldAccountant::new(),
    ] {
        assert_eq!(
            accountant.epsilon(&[good(), bad], 1e-5).unwrap_err(),
            PrivacyError::InvalidNoiseMultiplier { value: -3.0 }
        );
    }
}

#[test]
fn calibration_rejects_bad_targets() {
    let rdp = RdpAccountant::default();
    let bad_budget = PrivacyBudget {
        epsilon: -1.0,
        delta: 1e-5,
    };
    assert_eq!(
        calibrate_noise_multiplier(bad_budget, 0.01, 100, &rdp).unwrap_err(),
        PrivacyError::InvalidEpsilon { value: -1.0 }
    );
    let budget = PrivacyBudget::new(1.0, 1e-5).unwrap();
    assert_eq!(
        calibrate_noise_multiplier(budget, 0.0, 100, &rdp).unwrap_err(),
        PrivacyError::InvalidSamplingRate { value: 0.0 }
    );
    assert!(matches!(
        calibrate_noise_multiplier(budget, 0.01, 0, &rdp).unwrap_err(),
        PrivacyError::InvalidParameter {
            parameter: "steps",
            ..
        }
    ));
}
