//! Standardizing a node's features with the federation's scaling.
//!
//! The arithmetic of combining statistics lives in [`cohort_proto::scaling`],
//! shared with the coordinator; this file adds what needs a [`Dataset`]: a node's
//! own sums, and applying a scaling to its rows.

pub use cohort_proto::scaling::{FeatureScaling, FeatureStats, ScalingError};

use super::{DataError, Dataset};

/// The per-feature sums over every row of `data`: what a node shares.
pub fn feature_stats(data: &Dataset) -> FeatureStats {
    let width = data.num_features();
    let mut sum = vec![0.0; width];
    let mut sum_of_squares = vec![0.0; width];
    for (row, _) in data.rows() {
        for (feature, &x) in row.iter().enumerate() {
            let x = f64::from(x);
            sum[feature] += x;
            sum_of_squares[feature] += x * x;
        }
    }
    FeatureStats {
        count: data.len() as u64,
        sum,
        sum_of_squares,
    }
}

/// A standardized copy of `data`.
///
/// Refuses a scaling of another width than `data`, one with a non-finite mean or
/// a standard deviation that is not finite and positive (a scaling may arrive
/// from the network), and a result that overflows `f32`.
pub fn standardized(scaling: &FeatureScaling, data: &Dataset) -> Result<Dataset, DataError> {
    let width = data.num_features();
    scaling.validate(width)?;
    let mut features = Vec::with_capacity(data.features().len());
    for (row, _) in data.rows() {
        for ((&x, &mean), &std) in row.iter().zip(&scaling.mean).zip(&scaling.std) {
            features.push(((f64::from(x) - mean) / std) as f32);
        }
    }
    Dataset::new(width, features, data.labels().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{CsvOptions, load_csv};

    fn breast_cancer() -> Dataset {
        let options = CsvOptions {
            header_lines: 1,
            ..CsvOptions::default()
        };
        load_csv(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../data/breast_cancer.csv"),
            &options,
        )
        .unwrap()
        .dataset
    }

    /// Mean and population std computed directly, two-pass.
    fn direct(data: &Dataset) -> (Vec<f64>, Vec<f64>) {
        let n = data.len() as f64;
        let width = data.num_features();
        let mut mean = vec![0.0; width];
        for (row, _) in data.rows() {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += f64::from(x) / n;
            }
        }
        let mut var = vec![0.0; width];
        for (row, _) in data.rows() {
            for ((v, &m), &x) in var.iter_mut().zip(&mean).zip(row) {
                *v += (f64::from(x) - m).powi(2) / n;
            }
        }
        (mean, var.into_iter().map(f64::sqrt).collect())
    }

    #[test]
    fn two_clear_text_statistics_rounds_around_an_erasure_reveal_the_erased_row() {
        // The attack that makes secure aggregation and DP require a declared
        // scaling (`FederationConfig::scaling`): a coordinator that collects a
        // node's statistics before and after it erases one row reads that row
        // off the difference of the sums, exactly.
        let data = breast_cancer();
        let erased = 17;
        let kept: Vec<usize> = (0..data.len()).filter(|&i| i != erased).collect();
        let before = feature_stats(&data);
        let after = feature_stats(&data.subset(&kept).unwrap());
        assert_eq!(before.count - after.count, 1);
        let (row, _) = data.rows().nth(erased).unwrap();
        for (feature, &x) in row.iter().enumerate() {
            let recovered = before.sum[feature] - after.sum[feature];
            assert!(
                (recovered - f64::from(x)).abs() <= 1e-9 * f64::from(x).abs().max(1.0),
                "feature {feature}: recovered {recovered}, erased {x}"
            );
        }
    }

    #[test]
    fn combined_halves_equal_the_whole() {
        let data = breast_cancer();
        let (first, second): (Vec<usize>, Vec<usize>) = (0..data.len()).partition(|i| i % 3 == 0);
        let parts = [
            feature_stats(&data.subset(&first).unwrap()),
            feature_stats(&data.subset(&second).unwrap()),
        ];
        let combined = FeatureStats::combine(&parts).unwrap();
        let whole = FeatureStats::combine(&[feature_stats(&data)]).unwrap();
        let (mean, std) = direct(&data);
        for feature in 0..data.num_features() {
            for (a, b) in [
                (combined.mean[feature], whole.mean[feature]),
                (combined.std[feature], whole.std[feature]),
                (combined.mean[feature], mean[feature]),
                (combined.std[feature], std[feature]),
            ] {
                assert!(
                    (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                    "feature {feature}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn standardized_data_has_zero_mean_and_unit_std() {
        let data = breast_cancer();
        let scaling = FeatureStats::combine(&[feature_stats(&data)]).unwrap();
        let scaled = standardized(&scaling, &data).unwrap();
        assert_eq!(scaled.labels(), data.labels());
        let (mean, std) = direct(&scaled);
        for feature in 0..data.num_features() {
            assert!(mean[feature].abs() < 1e-5, "mean {}", mean[feature]);
            assert!((std[feature] - 1.0).abs() < 1e-5, "std {}", std[feature]);
        }
    }

    #[test]
    fn a_constant_feature_gets_unit_std() {
        let data = Dataset::new(2, vec![3.7, 1.0, 3.7, 2.0, 3.7, 3.0], vec![0, 1, 0]).unwrap();
        let scaling = FeatureStats::combine(&[feature_stats(&data)]).unwrap();
        assert_eq!(scaling.std[0], 1.0);
        assert!((scaling.mean[0] - f64::from(3.7f32)).abs() < 1e-12);
        assert!((scaling.std[1] - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        let scaled = standardized(&scaling, &data).unwrap();
        assert!(scaled.rows().all(|(row, _)| row[0].abs() < 1e-6));
    }

    #[test]
    fn mismatched_or_empty_statistics_are_refused() {
        let narrow = feature_stats(&Dataset::new(1, vec![1.0], vec![0]).unwrap());
        let wide = feature_stats(&Dataset::new(2, vec![1.0, 2.0], vec![0]).unwrap());
        assert!(matches!(
            FeatureStats::combine(&[narrow.clone(), wide]),
            Err(ScalingError::WidthMismatch {
                expected: 1,
                actual: 2,
                ..
            })
        ));
        assert!(matches!(
            FeatureStats::combine(&[]),
            Err(ScalingError::NoStatistics)
        ));
        let nothing = feature_stats(&Dataset::new(1, vec![], vec![]).unwrap());
        assert!(matches!(
            FeatureStats::combine(&[nothing]),
            Err(ScalingError::NoExamples)
        ));
        let huge = FeatureStats {
            count: u64::MAX,
            ..narrow.clone()
        };
        assert!(matches!(
            FeatureStats::combine(&[huge, narrow.clone()]),
            Err(ScalingError::CountOverflow)
        ));
        let broken = FeatureStats {
            sum: vec![f64::NAN],
            ..narrow
        };
        assert!(matches!(
            FeatureStats::combine(&[broken]),
            Err(ScalingError::InvalidStatistic { what: "sum", .. })
        ));
    }

    #[test]
    fn standardizing_checks_the_width_and_the_values() {
        let data = Dataset::new(2, vec![1.0, 2.0], vec![0]).unwrap();
        let narrow = FeatureScaling {
            mean: vec![0.0],
            std: vec![1.0],
        };
        assert!(matches!(
            standardized(&narrow, &data),
            Err(DataError::Scaling(ScalingError::WidthMismatch {
                expected: 2,
                actual: 1,
                what: "mean"
            }))
        ));
        let zero_std = FeatureScaling {
            mean: vec![0.0, 0.0],
            std: vec![1.0, 0.0],
        };
        assert!(matches!(
            standardized(&zero_std, &data),
            Err(DataError::Scaling(ScalingError::InvalidStatistic {
                feature: 1,
                ..
            }))
        ));
    }
}
