//! What every loader reports: the rows that loaded, and each malformed row (or
//! image file) by where it is and why it was refused.
//!
//! The rules are the same for every format: a malformed row is either skipped and
//! listed, or rejects the whole load, as [`BadRowPolicy`] says; nothing is
//! silently repaired.

use std::fmt;
use std::path::PathBuf;

use super::Dataset;

/// What to do with a malformed row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRowPolicy {
    /// Leave it out and list it in [`LoadedData::skipped`].
    Skip,
    /// Fail the whole load on the first one.
    Reject,
}

/// Where a malformed row is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// A 1-based line of a (decompressed) CSV file.
    Line(u64),
    /// A 1-based row of a Parquet file, counted across its row groups.
    Row(u64),
    /// One image file of an image folder.
    File(PathBuf),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(line) => write!(f, "line {line}"),
            Self::Row(row) => write!(f, "row {row}"),
            Self::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// A column, as the file's format names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// A 1-based column of a header-less CSV file.
    Number(usize),
    /// A named column (Parquet).
    Named(String),
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(number) => write!(f, "column {number}"),
            Self::Named(name) => write!(f, "column {name:?}"),
        }
    }
}

/// Why one row (or image) was not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRowReason {
    /// The row has another number of columns than the first well-formed row.
    ColumnCount {
        /// The column count of the first well-formed row.
        expected: usize,
        /// This row's column count.
        found: usize,
    },
    /// The label column is beyond the end of the row.
    NoLabelColumn {
        /// The label column (0-based).
        index: usize,
        /// This row's column count.
        columns: usize,
    },
    /// A feature column holds something that is not a number.
    NotANumber {
        /// The column.
        column: Column,
        /// What it holds.
        text: String,
    },
    /// A feature column holds NaN or an infinity (or, from a wider type, a value
    /// beyond `f32`'s range).
    NotFinite {
        /// The column.
        column: Column,
        /// What it holds.
        text: String,
    },
    /// A column holds no value (a Parquet null).
    Missing {
        /// The column.
        column: Column,
    },
    /// The label is not a non-negative integer that fits in 32 bits.
    BadLabel {
        /// What the label column holds.
        text: String,
    },
    /// The row has only a label.
    NoFeatures,
    /// An image file that the image decoder refused (not PNG/JPEG, truncated).
    Undecodable {
        /// The decoder's explanation.
        detail: String,
    },
    /// An image whose samples are not 8-bit (a 16-bit or float image).
    SampleDepth {
        /// Its colour type as the decoder names it (`L16`, `Rgb32F`, …).
        color: String,
    },
    /// An image of another size than the folder's.
    ImageSize {
        /// The expected (width, height).
        expected: (u32, u32),
        /// This image's (width, height).
        found: (u32, u32),
    },
}

impl fmt::Display for BadRowReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ColumnCount { expected, found } => {
                write!(f, "{found} columns, expected {expected}")
            }
            Self::NoLabelColumn { index, columns } => write!(
                f,
                "label column {} does not exist in a row of {columns} columns",
                index + 1
            ),
            Self::NotANumber { column, text } => write!(f, "{column} is not a number: {text:?}"),
            Self::NotFinite { column, text } => write!(f, "{column} is not finite: {text:?}"),
            Self::Missing { column } => write!(f, "{column} has no value (null)"),
            Self::BadLabel { text } => {
                write!(f, "label {text:?} is not a non-negative 32-bit integer")
            }
            Self::NoFeatures => f.write_str("the row has a label but no features"),
            Self::Undecodable { detail } => write!(f, "not a readable PNG or JPEG image: {detail}"),
            Self::SampleDepth { color } => write!(
                f,
                "the image's samples are {color}, not 8-bit; convert it to 8-bit gray or RGB"
            ),
            Self::ImageSize { expected, found } => write!(
                f,
                "the image is {}x{}, expected {}x{}",
                found.0, found.1, expected.0, expected.1
            ),
        }
    }
}

/// A malformed row that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// Where it is.
    pub at: Position,
    /// What is wrong with it.
    pub reason: BadRowReason,
}

/// The rows that loaded, and those that were skipped.
#[derive(Debug, Clone)]
pub struct LoadedData {
    /// The usable rows.
    pub dataset: Dataset,
    /// The malformed rows skipped under [`BadRowPolicy::Skip`].
    pub skipped: Vec<BadRow>,
}

/// Collects the good rows' features and labels and applies the [`BadRowPolicy`]
/// to the bad ones: the one place every loader decides "skip or refuse".
#[derive(Debug)]
pub(crate) struct RowSink {
    policy: BadRowPolicy,
    source: PathBuf,
    pub(crate) features: Vec<f32>,
    pub(crate) labels: Vec<u32>,
    pub(crate) skipped: Vec<BadRow>,
}

impl RowSink {
    /// An empty sink for the rows of `source`.
    pub(crate) fn new(source: PathBuf, policy: BadRowPolicy) -> Self {
        Self {
            policy,
            source,
            features: Vec::new(),
            labels: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// Records a malformed row: listed under `Skip`, an error under `Reject`.
    pub(crate) fn bad(
        &mut self,
        at: Position,
        reason: BadRowReason,
    ) -> Result<(), super::DataError> {
        match self.policy {
            BadRowPolicy::Skip => {
                self.skipped.push(BadRow { at, reason });
                Ok(())
            }
            BadRowPolicy::Reject => Err(super::DataError::BadRow {
                path: self.source.clone(),
                row: Box::new(BadRow { at, reason }),
            }),
        }
    }

    /// The data set of the good rows, `num_features` each; refused when there
    /// are none.
    pub(crate) fn finish(self, num_features: usize) -> Result<LoadedData, super::DataError> {
        if self.labels.is_empty() {
            return Err(super::DataError::NoUsableRows {
                path: self.source,
                skipped: self.skipped.len(),
            });
        }
        let dataset = Dataset::new(num_features, self.features, self.labels)?;
        Ok(LoadedData {
            dataset,
            skipped: self.skipped,
        })
    }
}
