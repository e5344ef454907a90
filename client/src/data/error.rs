//! Why a data set could not be loaded, built, split or scaled.

use std::path::PathBuf;

use super::csv::BadRowReason;

/// Everything that can go wrong in [`crate::data`].
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot read {} near line {line}: {source}", path.display())]
    Read {
        path: PathBuf,
        line: u64,
        #[source]
        source: csv::Error,
    },

    #[error("{}, line {line}: {reason}", path.display())]
    BadRow {
        path: PathBuf,
        line: u64,
        reason: BadRowReason,
    },

    #[error("{} has no usable rows ({skipped} rows skipped as malformed)", path.display())]
    NoUsableRows { path: PathBuf, skipped: usize },

    #[error("a data set needs at least one feature")]
    NoFeatures,

    #[error(
        "{num_features} features per row and {labels} labels need {expected} feature values, got {actual}"
    )]
    ShapeMismatch {
        num_features: usize,
        labels: usize,
        expected: usize,
        actual: usize,
    },

    #[error("feature {feature} of row {row} is NaN or infinite")]
    NonFiniteFeature { row: usize, feature: usize },

    #[error("row index {index} is out of range for a data set of {len} rows")]
    RowOutOfRange { index: usize, len: usize },

    #[error("holdout fraction must be in [0, 1), got {0}")]
    HoldoutFraction(f64),

    #[error("feature scaling: {0}")]
    Scaling(#[from] cohort_proto::scaling::ScalingError),
}
