//! Noise calibration: the smallest noise multiplier that meets a budget.
//!
//! Promise: [`calibrate_noise_multiplier_with_tolerance`] returns σ such that
//! `steps` runs of the Poisson-sampled Gaussian with rate q and noise σ cost
//! at most the target ε at the target δ on the given accountant, while
//! σ·(1 − tolerance) does not — provided ε is non-increasing in σ, which
//! holds for the RDP and PLD accountants. [`calibrate_mechanism`] does the
//! same for any mechanism with one noise multiplier (the discrete Gaussian a
//! coordinator charges, say), given the events it runs at a σ. Bisection is
//! geometric, on a bracket found by doubling/halving from σ = 1.

use crate::accountant::{Accountant, DpEvent};
use crate::error::{PrivacyError, Result, check_positive, check_sampling_rate};
use crate::ledger::PrivacyBudget;

/// Relative tolerance of [`calibrate_noise_multiplier`].
pub const DEFAULT_TOLERANCE: f64 = 1e-3;
/// Search range for σ.
const MIN_NOISE_MULTIPLIER: f64 = 1e-4;
const MAX_NOISE_MULTIPLIER: f64 = 1e6;

/// [`calibrate_noise_multiplier_with_tolerance`] with [`DEFAULT_TOLERANCE`].
pub fn calibrate_noise_multiplier(
    target: PrivacyBudget,
    sampling_rate: f64,
    steps: u64,
    accountant: &dyn Accountant,
) -> Result<f64> {
    calibrate_noise_multiplier_with_tolerance(
        target,
        sampling_rate,
        steps,
        accountant,
        DEFAULT_TOLERANCE,
    )
}

/// The smallest σ (to a relative `tolerance` in (0, 1)) meeting `target`.
pub fn calibrate_noise_multiplier_with_tolerance(
    target: PrivacyBudget,
    sampling_rate: f64,
    steps: u64,
    accountant: &dyn Accountant,
    tolerance: f64,
) -> Result<f64> {
    check_sampling_rate(sampling_rate)?;
    if steps == 0 {
        return Err(PrivacyError::InvalidParameter {
            parameter: "steps",
            value: 0.0,
            requirement: "at least 1",
        });
    }
    calibrate_mechanism(target, accountant, tolerance, |sigma| {
        Ok(vec![DpEvent::poisson_sampled_gaussian(
            sampling_rate,
            sigma,
            steps,
        )?])
    })
}

/// The smallest σ (to a relative `tolerance` in (0, 1)) such that the events
/// `events_at(σ)` cost at most `target` on `accountant`. `events_at` must
/// cost less for larger σ. Errors as [`calibrate_noise_multiplier_with_tolerance`].
pub fn calibrate_mechanism(
    target: PrivacyBudget,
    accountant: &dyn Accountant,
    tolerance: f64,
    events_at: impl Fn(f64) -> Result<Vec<DpEvent>>,
) -> Result<f64> {
    target.validate()?;
    check_positive("tolerance", tolerance)?;
    if tolerance >= 1.0 {
        return Err(PrivacyError::InvalidParameter {
            parameter: "tolerance",
            value: tolerance,
            requirement: "in (0, 1)",
        });
    }
    let meets = |sigma: f64| -> Result<bool> {
        Ok(accountant.epsilon(&events_at(sigma)?, target.delta)? <= target.epsilon)
    };

    // Bracket: `low` fails, `high` meets.
    let mut high = 1.0;
    while !meets(high)? {
        high *= 2.0;
        if high > MAX_NOISE_MULTIPLIER {
            return Err(PrivacyError::CalibrationFailed {
                epsilon: target.epsilon,
                delta: target.delta,
                max_noise_multiplier: MAX_NOISE_MULTIPLIER,
            });
        }
    }
    let mut low = high / 2.0;
    while meets(low)? {
        high = low;
        low /= 2.0;
        if low < MIN_NOISE_MULTIPLIER {
            // Even negligible noise meets the target.
            return Ok(high);
        }
    }
    // Stop once high·(1 − tol) ≤ low, so high·(1 − tol) is known to fail.
    while high * (1.0 - tolerance) > low {
        let mid = (low * high).sqrt();
        if meets(mid)? {
            high = mid;
        } else {
            low = mid;
        }
    }
    Ok(high)
}
