//! The crate's one error type.
//!
//! Every rejected input names the parameter and the value it got, so a
//! coordinator log line or a CLI message says exactly what to change.

use thiserror::Error;

/// Result alias used throughout the crate.
pub type Result<T, E = PrivacyError> = std::result::Result<T, E>;

/// Everything that can go wrong in clipping, noise, accounting and budgeting.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum PrivacyError {
    /// σ must be a positive, finite number.
    #[error("invalid noise multiplier σ = {value}: it must be positive and finite")]
    InvalidNoiseMultiplier {
        /// The σ given.
        value: f64,
    },

    /// q must lie in (0, 1].
    #[error("invalid sampling rate q = {value}: it must lie in (0, 1]")]
    InvalidSamplingRate {
        /// The q given.
        value: f64,
    },

    /// δ must lie in the open interval (0, 1).
    #[error("invalid delta δ = {value}: it must lie in (0, 1)")]
    InvalidDelta {
        /// The δ given.
        value: f64,
    },

    /// ε must be positive and finite.
    #[error("invalid epsilon ε = {value}: it must be positive and finite")]
    InvalidEpsilon {
        /// The ε given.
        value: f64,
    },

    /// Any other numeric parameter outside its domain.
    #[error("invalid {parameter} = {value}: it must be {requirement}")]
    InvalidParameter {
        /// The parameter's name.
        parameter: &'static str,
        /// The value given.
        value: f64,
        /// What the value must be.
        requirement: &'static str,
    },

    /// A vector handed in for clipping or noising holds NaN or ±∞.
    #[error("{parameter}[{index}] is not finite; refusing to clip or noise it")]
    NonFinite {
        /// The vector's name.
        parameter: &'static str,
        /// The first non-finite entry.
        index: usize,
    },

    /// The ledger had already spent more than its budget before this check.
    #[error(
        "privacy budget already exceeded: spent ε = {epsilon_spent} of budget ε = {epsilon_budget} (at δ = {delta})"
    )]
    BudgetAlreadyExceeded {
        /// ε spent so far.
        epsilon_spent: f64,
        /// The budget's ε.
        epsilon_budget: f64,
        /// The budget's δ.
        delta: f64,
    },

    /// Recording these events would overshoot the budget.
    #[error(
        "privacy budget would be exceeded: ε would reach {epsilon_after} against budget ε = {epsilon_budget} (over by {excess}, at δ = {delta})"
    )]
    BudgetExceeded {
        /// ε after the refused events.
        epsilon_after: f64,
        /// The budget's ε.
        epsilon_budget: f64,
        /// By how much ε would overshoot.
        excess: f64,
        /// The budget's δ.
        delta: f64,
    },

    /// The accountant has no analysis for this kind of event.
    #[error("the {accountant} accountant cannot account for {event} events")]
    UnsupportedEvent {
        /// The accountant asked.
        accountant: &'static str,
        /// The kind of event it cannot analyse.
        event: &'static str,
    },

    /// A composition built by another kind of accountant (or over other
    /// RDP orders) was handed to this one.
    #[error("the {accountant} accountant was handed a composition it did not build")]
    ForeignComposition {
        /// The accountant asked.
        accountant: &'static str,
    },

    /// The fractional-order RDP series did not fall below its cut-off.
    #[error(
        "the RDP series at order α = {order} (q = {sampling_rate}, σ = {noise_multiplier}) did not converge within {terms} terms"
    )]
    SeriesDidNotConverge {
        /// α.
        order: f64,
        /// q.
        sampling_rate: f64,
        /// σ.
        noise_multiplier: f64,
        /// Terms summed before giving up.
        terms: u32,
    },

    /// Calibration found no σ in its search range that meets the target.
    #[error(
        "no noise multiplier up to {max_noise_multiplier} reaches ε ≤ {epsilon} at δ = {delta}"
    )]
    CalibrationFailed {
        /// The target ε.
        epsilon: f64,
        /// The target δ.
        delta: f64,
        /// The largest σ tried.
        max_noise_multiplier: f64,
    },
}

/// σ > 0 and finite.
pub(crate) fn check_noise_multiplier(value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(PrivacyError::InvalidNoiseMultiplier { value })
    }
}

/// q ∈ (0, 1].
pub(crate) fn check_sampling_rate(value: f64) -> Result<f64> {
    if value > 0.0 && value <= 1.0 {
        Ok(value)
    } else {
        Err(PrivacyError::InvalidSamplingRate { value })
    }
}

/// δ ∈ (0, 1).
pub(crate) fn check_delta(value: f64) -> Result<f64> {
    if value > 0.0 && value < 1.0 {
        Ok(value)
    } else {
        Err(PrivacyError::InvalidDelta { value })
    }
}

/// ε > 0 and finite.
pub(crate) fn check_epsilon(value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(PrivacyError::InvalidEpsilon { value })
    }
}

/// A generic "positive and finite" check for the remaining parameters.
pub(crate) fn check_positive(parameter: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(PrivacyError::InvalidParameter {
            parameter,
            value,
            requirement: "positive and finite",
        })
    }
}

/// `parameter` has the `expected` length.
pub(crate) fn check_length(parameter: &'static str, len: usize, expected: usize) -> Result<()> {
    if len == expected {
        Ok(())
    } else {
        Err(PrivacyError::InvalidParameter {
            parameter,
            value: len as f64,
            requirement: "of the same length as the sum",
        })
    }
}

/// All entries finite.
pub(crate) fn check_finite(parameter: &'static str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(PrivacyError::NonFinite { parameter, index }),
        None => Ok(()),
    }
}
