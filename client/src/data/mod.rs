//! A node's labelled examples and what it does to them before training.
//!
//! A [`Dataset`] is always well-formed: every row has the same number of finite
//! features and one class label. It is built from a CSV file ([`load_csv`]), a
//! Parquet file (`load_parquet`, feature `parquet`), an image folder
//! (`load_image_folder`, feature `images`), from
//! memory ([`Dataset::new`]), or as a subset of another data set
//! ([`Dataset::subset`], how a simulation partitions one file among nodes).
//! [`train_holdout_split`] divides it reproducibly; [`FeatureStats`] and
//! [`standardized`] applies the federation's [`FeatureScaling`], agreed from every
//! node's [`feature_stats`].

use std::collections::BTreeMap;

mod csv;
mod error;
#[cfg(feature = "images")]
mod images;
#[cfg(feature = "parquet")]
mod parquet;
mod rows;
mod scaling;
mod split;
pub mod version;

pub use self::csv::{CsvOptions, LabelColumn, load_csv};
#[cfg(feature = "images")]
pub use self::images::{Channels, ImageFolder, ImageFolderOptions, load_image_folder};
#[cfg(feature = "parquet")]
pub use self::parquet::{ParquetOptions, load_parquet};
pub use self::rows::{BadRow, BadRowPolicy, BadRowReason, Column, LoadedData, Position};
pub use error::{ColumnRole, DataError};
pub use scaling::{FeatureScaling, FeatureStats, ScalingError, feature_stats, standardized};
pub use split::train_holdout_split;
pub use version::{DatasetDescriptor, LegalBasis, content_sha256};

/// Labelled examples: row-major features and one class label per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    num_features: usize,
    features: Vec<f32>,
    labels: Vec<u32>,
}

impl Dataset {
    /// A data set of `labels.len()` rows whose features are `features`, row-major.
    ///
    /// Refuses zero features, a feature count that is not `num_features` per label,
    /// and NaN or infinite features.
    pub fn new(
        num_features: usize,
        features: Vec<f32>,
        labels: Vec<u32>,
    ) -> Result<Self, DataError> {
        if num_features == 0 {
            return Err(DataError::NoFeatures);
        }
        let expected = labels.len().checked_mul(num_features);
        if expected != Some(features.len()) {
            return Err(DataError::ShapeMismatch {
                num_features,
                labels: labels.len(),
                expected: expected.unwrap_or(usize::MAX),
                actual: features.len(),
            });
        }
        if let Some(index) = features.iter().position(|x| !x.is_finite()) {
            return Err(DataError::NonFiniteFeature {
                row: index / num_features,
                feature: index % num_features,
            });
        }
        Ok(Self {
            num_features,
            features,
            labels,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the data set has no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of features in every row.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// All features, row-major: row `i` is `features()[i * num_features()..][..num_features()]`.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// The label of every row.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The features and label of row `index`, if it exists.
    pub fn row(&self, index: usize) -> Option<(&[f32], u32)> {
        let label = *self.labels.get(index)?;
        let start = index * self.num_features;
        Some((&self.features[start..start + self.num_features], label))
    }

    /// Every row's features and label, in order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = (&[f32], u32)> + '_ {
        self.features
            .chunks_exact(self.num_features)
            .zip(self.labels.iter().copied())
    }

    /// The number of rows of each label present.
    pub fn class_counts(&self) -> BTreeMap<u32, usize> {
        let mut counts = BTreeMap::new();
        for &label in &self.labels {
            *counts.entry(label).or_insert(0) += 1;
        }
        counts
    }

    /// The rows at `indices`, in that order (an index may repeat).
    pub fn subset(&self, indices: &[usize]) -> Result<Self, DataError> {
        let mut features = Vec::with_capacity(indices.len() * self.num_features);
        let mut labels = Vec::with_capacity(indices.len());
        for &index in indices {
            let (row, label) = self.row(index).ok_or(DataError::RowOutOfRange {
                index,
                len: self.len(),
            })?;
            features.extend_from_slice(row);
            labels.push(label);
        }
        Ok(Self {
            num_features: self.num_features,
            features,
            labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_rows() -> Dataset {
        Dataset::new(2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![0, 1, 1]).unwrap()
    }

    #[test]
    fn rows_are_slices_of_the_row_major_features() {
        let data = three_rows();
        assert_eq!(data.len(), 3);
        assert_eq!(data.row(1), Some((&[3.0, 4.0][..], 1)));
        assert_eq!(data.row(3), None);
        let rows: Vec<_> = data.rows().collect();
        assert_eq!(rows[2], (&[5.0, 6.0][..], 1));
        assert_eq!(data.class_counts(), BTreeMap::from([(0, 1), (1, 2)]));
    }

    #[test]
    fn new_refuses_malformed_data() {
        assert!(matches!(
            Dataset::new(0, vec![], vec![]),
            Err(DataError::NoFeatures)
        ));
        assert!(matches!(
            Dataset::new(2, vec![1.0, 2.0, 3.0], vec![0, 1]),
            Err(DataError::ShapeMismatch {
                expected: 4,
                actual: 3,
                ..
            })
        ));
        assert!(matches!(
            Dataset::new(2, vec![1.0, 2.0, 3.0, f32::NAN], vec![0, 1]),
            Err(DataError::NonFiniteFeature { row: 1, feature: 1 })
        ));
    }

    #[test]
    fn subset_picks_rows_in_order_and_refuses_unknown_rows() {
        let data = three_rows();
        let picked = data.subset(&[2, 0]).unwrap();
        assert_eq!(picked.features(), &[5.0, 6.0, 1.0, 2.0]);
        assert_eq!(picked.labels(), &[1, 0]);
        assert!(data.subset(&[]).unwrap().is_empty());
        assert!(matches!(
            data.subset(&[0, 3]),
            Err(DataError::RowOutOfRange { index: 3, len: 3 })
        ));
    }
}
