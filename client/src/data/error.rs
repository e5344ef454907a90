//! Why a data set could not be loaded, built, split or scaled.

use std::path::PathBuf;

use super::csv::BadRowReason;

/// Everything that can go wrong in [`crate::data`].
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The data file could not be opened.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The CSV reader failed (I/O, bad UTF-8, or a malformed record).
    #[error("cannot read {} near line {line}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The line it failed near.
        line: u64,
        /// The reader's error.
        #[source]
        source: csv::Error,
    },

    /// A malformed row under
    /// [`BadRowPolicy::Reject`](super::BadRowPolicy::Reject).
    #[error("{}, line {line}: {reason}", path.display())]
    BadRow {
        /// The file.
        path: PathBuf,
        /// The row's 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: BadRowReason,
    },

    /// Every row of the file was malformed or there were none.
    #[error("{} has no usable rows ({skipped} rows skipped as malformed)", path.display())]
    NoUsableRows {
        /// The file.
        path: PathBuf,
        /// Malformed rows skipped.
        skipped: usize,
    },

    /// The rows have no feature columns.
    #[error("a data set needs at least one feature")]
    NoFeatures,

    #[error(
        "{num_features} features per row and {labels} labels need {expected} feature values, got {actual}"
    )]
    /// The feature values do not fill `labels` rows of `num_features` each.
    ShapeMismatch {
        /// Features per row.
        num_features: usize,
        /// Rows (one label each).
        labels: usize,
        /// Feature values the rows need.
        expected: usize,
        /// Feature values given.
        actual: usize,
    },

    /// A feature value is NaN or infinite.
    #[error("feature {feature} of row {row} is NaN or infinite")]
    NonFiniteFeature {
        /// The row (0-based).
        row: usize,
        /// The feature (0-based).
        feature: usize,
    },

    /// A row index beyond the data set's end.
    #[error("row index {index} is out of range for a data set of {len} rows")]
    RowOutOfRange {
        /// The index.
        index: usize,
        /// The data set's row count.
        len: usize,
    },

    /// A holdout fraction outside [0, 1).
    #[error("holdout fraction must be in [0, 1), got {0}")]
    HoldoutFraction(f64),

    /// The feature scaling could not be computed or applied.
    #[error("feature scaling: {0}")]
    Scaling(#[from] cohort_proto::scaling::ScalingError),
}
