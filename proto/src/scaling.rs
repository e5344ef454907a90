//! Global feature standardization without pooling data.
//!
//! A node summarizes its training rows as [`FeatureStats`] (count, per-feature
//! sums and sums of squares). Sums add, so [`FeatureStats::combine`] over every
//! node's summary gives exactly the global mean and (population) standard
//! deviation, as if all rows were in one place. The coordinator combines; every
//! node then applies the same [`FeatureScaling`]. Both sides use this file, so
//! they cannot disagree on the arithmetic.

use serde::{Deserialize, Serialize};

/// Why statistics or a scaling were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScalingError {
    /// [`FeatureStats::combine`] got no statistics.
    #[error("no feature statistics to combine")]
    NoStatistics,
    /// The parts' row counts sum past `u64::MAX`.
    #[error("the row counts of the feature statistics overflow u64")]
    CountOverflow,
    /// The parts summarize zero rows in all.
    #[error("feature statistics cover no examples")]
    NoExamples,
    #[error("feature width mismatch: expected {expected} features, got {actual} ({what})")]
    /// A vector (named by `what`) has another number of features.
    WidthMismatch {
        /// Features expected.
        expected: usize,
        /// Features found.
        actual: usize,
        /// Which vector: `sum`, `sum of squares`, `mean` or `std`.
        what: &'static str,
    },
    #[error("{what} of feature {feature} is {value}")]
    /// A statistic that is not finite (or a standard deviation not positive).
    InvalidStatistic {
        /// Which statistic.
        what: &'static str,
        /// The feature's index.
        feature: usize,
        /// The value refused.
        value: f64,
    },
}

/// A feature whose standard deviation is below this fraction of its root mean
/// square is constant up to rounding; it gets `std = 1` instead of amplifying noise.
const CONSTANT_FEATURE_RELATIVE_STD: f64 = 1e-6;

/// A data set's per-feature sums: what a node shares so the federation can agree
/// on one scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStats {
    /// Rows summarized.
    pub count: u64,
    /// Per feature: the sum of its values.
    pub sum: Vec<f64>,
    /// Per feature: the sum of its squared values.
    pub sum_of_squares: Vec<f64>,
}

/// Per-feature mean and (population) standard deviation: `x ↦ (x − mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureScaling {
    /// Per feature: the global mean.
    pub mean: Vec<f64>,
    /// Per feature: the global standard deviation (1 for a constant feature).
    pub std: Vec<f64>,
}

impl FeatureStats {
    /// Number of features summarized.
    pub fn num_features(&self) -> usize {
        self.sum.len()
    }

    /// The global scaling of all the rows the `parts` summarize.
    ///
    /// Refuses an empty list, parts of different widths, non-finite sums and a
    /// total of zero rows. A constant feature gets `std = 1`, so scaling never
    /// divides by zero.
    pub fn combine(parts: &[FeatureStats]) -> Result<FeatureScaling, ScalingError> {
        let first = parts.first().ok_or(ScalingError::NoStatistics)?;
        let width = first.num_features();
        let mut count = 0u64;
        let mut sum = vec![0.0; width];
        let mut sum_of_squares = vec![0.0; width];
        for part in parts {
            for (what, actual) in [
                ("sum", part.sum.len()),
                ("sum of squares", part.sum_of_squares.len()),
            ] {
                if actual != width {
                    return Err(ScalingError::WidthMismatch {
                        expected: width,
                        actual,
                        what,
                    });
                }
            }
            count = count
                .checked_add(part.count)
                .ok_or(ScalingError::CountOverflow)?;
            for feature in 0..width {
                sum[feature] += part.sum[feature];
                sum_of_squares[feature] += part.sum_of_squares[feature];
            }
        }
        if count == 0 {
            return Err(ScalingError::NoExamples);
        }

        let n = count as f64;
        let mut mean = Vec::with_capacity(width);
        let mut std = Vec::with_capacity(width);
        for feature in 0..width {
            let mean_of_squares = sum_of_squares[feature] / n;
            if !sum[feature].is_finite() {
                return Err(ScalingError::InvalidStatistic {
                    what: "sum",
                    feature,
                    value: sum[feature],
                });
            }
            if !(mean_of_squares.is_finite() && mean_of_squares >= 0.0) {
                return Err(ScalingError::InvalidStatistic {
                    what: "sum of squares",
                    feature,
                    value: sum_of_squares[feature],
                });
            }
            let m = sum[feature] / n;
            // E[x²] − E[x]² can dip below zero by rounding.
            let variance = (mean_of_squares - m * m).max(0.0);
            let constant = variance
                <= mean_of_squares * CONSTANT_FEATURE_RELATIVE_STD * CONSTANT_FEATURE_RELATIVE_STD;
            mean.push(m);
            std.push(if constant { 1.0 } else { variance.sqrt() });
        }
        Ok(FeatureScaling { mean, std })
    }
}

impl FeatureScaling {
    /// Number of features scaled.
    pub fn num_features(&self) -> usize {
        self.mean.len()
    }

    /// Refuses another width than `width`, a non-finite mean, or a standard
    /// deviation that is not finite and positive (a scaling may come from the network).
    ///
    /// # Errors
    /// [`ScalingError::WidthMismatch`] or [`ScalingError::InvalidStatistic`].
    pub fn validate(&self, width: usize) -> Result<(), ScalingError> {
        for (what, actual) in [("mean", self.mean.len()), ("std", self.std.len())] {
            if actual != width {
                return Err(ScalingError::WidthMismatch {
                    expected: width,
                    actual,
                    what,
                });
            }
        }
        for (feature, (&mean, &std)) in self.mean.iter().zip(&self.std).enumerate() {
            if !mean.is_finite() {
                return Err(ScalingError::InvalidStatistic {
                    what: "mean",
                    feature,
                    value: mean,
                });
            }
            if !(std.is_finite() && std > 0.0) {
                return Err(ScalingError::InvalidStatistic {
                    what: "standard deviation",
                    feature,
                    value: std,
                });
            }
        }
        Ok(())
    }
}
