//! Why a data set could not be loaded, built, split or scaled.

use std::path::PathBuf;

use super::rows::BadRow;

/// What a column was asked to hold, and so which types it may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    /// A feature: numeric (integer, float, decimal) or boolean.
    Feature,
    /// The label: an integer or boolean.
    Label,
}

impl std::fmt::Display for ColumnRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Feature => "a feature must be numeric (integer, float, decimal) or boolean",
            Self::Label => "a label must be an integer or boolean column",
        })
    }
}

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
    #[error("{}, {}: {}", path.display(), row.at, row.reason)]
    BadRow {
        /// The file (or image folder).
        path: PathBuf,
        /// Where the row is and what is wrong with it (boxed: errors stay small).
        row: Box<BadRow>,
    },

    /// The Parquet reader failed (not a Parquet file, a corrupt page, an
    /// unsupported encoding).
    #[cfg(feature = "parquet")]
    #[error("cannot read {} as Parquet: {source}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// A column named in the options is not in the file.
    #[error("{} has no column {column:?} (its columns: {})", path.display(), available.join(", "))]
    NoSuchColumn {
        /// The file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The file's columns.
        available: Vec<String>,
    },

    /// A column asked for twice: the label also as a feature, or a feature
    /// listed twice.
    #[error("{}: column {column:?} is used twice (as the label and a feature, or as two features)", path.display())]
    ColumnTwice {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
    },

    /// A column's type cannot be used where it was asked for.
    #[error("{}: column {column:?} is {found}, but {role}", path.display())]
    ColumnType {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// Its type in the file.
        found: String,
        /// What the column was asked to be.
        role: ColumnRole,
    },

    /// A folder could not be listed.
    #[error("cannot list {}: {source}", path.display())]
    ListFolder {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// An image folder without class sub-folders.
    #[error("{} has no class sub-folders (expected one folder of images per class)", path.display())]
    NoClasses {
        /// The folder.
        path: PathBuf,
    },

    /// An image folder's sub-folder that is not one of the named classes.
    #[error("{} has a sub-folder {class:?} that is not a class (the classes: {})", path.display(), classes.join(", "))]
    UnknownClass {
        /// The image folder.
        path: PathBuf,
        /// The sub-folder's name.
        class: String,
        /// The named classes.
        classes: Vec<String>,
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
