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
    InvalidNoiseMultiplier { value: f64 },

    /// q must lie in (0, 1].
    #[error("invalid sampling rate q = {value}: it must lie in (0, 1]")]
    InvalidSamplingRate { value: f64 },

    /// δ must lie in the open interval (0, 1).
    #[error("invalid delta δ = {value}: it must lie in (0, 1)")]
    InvalidDelta { value: f64 },

    /// ε must be positive and finite.
    #[error("invalid epsilon ε = {value}: it must be positive and finite")]
    InvalidEpsilon { value: f64 },

    /// Any other numeric parameter outside its domain.
    #[error("invalid {parameter} = {value}: it must be {requirement}")]
    InvalidParameter {
        parameter: &'static str,
        value: f64,
        requirement: &'static str,
    },

    /// A vector handed in for clipping or noising holds NaN or ±∞.
    #[error("{parameter}[{index}] is not finite; refusing to clip or noise it")]
    NonFinite {
        parameter: &'static str,
        index: usize,
    },

    /// The ledger had already spent more than its budget before this check.
    #[error(
        "privacy budget already exceeded: spent ε = {epsilon_spent} of budget ε = {epsilon_budget} (at δ = {delta})"
    )]
    BudgetAlreadyExceeded {
        epsilon_spent: f64,
        epsilon_budget: f64,
        delta: f64,
    },

    /// Recording these events would overshoot the budget.
    #[error(
        "privacy budget would be exceeded: ε would reach {epsilon_after} against budget ε = {epsilon_budget} (over by {excess}, at δ = {delta})"
    )]
    BudgetExceeded {
        epsilon_after: f64,
        epsilon_budget: f64,
        excess: f64,
        delta: f64,
    },

    /// The accountant has no analysis for this kind of event.
    #[error("the {accountant} accountant cannot account for {event} events")]
    UnsupportedEvent {
        accountant: &'static str,
        event: &'static str,
    },

    /// Calibration found no σ in its search range that meets the target.
    #[error(
        "no noise multiplier up to {max_noise_multiplier} reaches ε ≤ {epsilon} at δ = {delta}"
    )]
    CalibrationFailed {
        epsilon: f64,
        delta: f64,
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

/// All entries finite.
pub(crate) fn check_finite(parameter: &'static str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(PrivacyError::NonFinite { parameter, index }),
        None => Ok(()),
    }
}
