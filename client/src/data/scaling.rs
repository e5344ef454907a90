//! Standardizing features (zero mean, unit variance) with statistics that can be
//! pooled across nodes.
//!
//! A node summarizes its rows as [`FeatureStats`] (count, per-feature sums and sums
//! of squares); sums add, so [`FeatureStats::combine`] over every node's summary
//! gives exactly the global mean and standard deviation, as if all rows were in one
//! place. The coordinator uses the same function, which is why this file depends
//! on nothing but [`Dataset`].

use super::{DataError, Dataset};

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
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureScaling {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// A feature whose standard deviation is below this fraction of its root mean
/// square is constant up to rounding; it gets `std = 1` instead of amplifying noise.
const CONSTANT_FEATURE_RELATIVE_STD: f64 = 1e-6;

impl FeatureStats {
    /// The sums over every row of `data`.
    pub fn of(data: &Dataset) -> Self {
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
        Self {
            count: data.len() as u64,
            sum,
            sum_of_squares,
        }
    }

    /// Number of features summarized.
    pub fn num_features(&self) -> usize {
        self.sum.len()
    }

    /// The global scaling of all the rows the `parts` summarize.
    ///
    /// Refuses an empty list, parts of different widths, non-finite sums and a
    /// total of zero rows. A constant feature gets `std = 1`, so scaling never
    /// divides by zero.
    pub fn combine(parts: &[FeatureStats]) -> Result<FeatureScaling, DataError> {
        let first = parts.first().ok_or(DataError::NoStatistics)?;
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
                    return Err(DataError::WidthMismatch {
                        expected: width,
                        actual,
                        what,
                    });
                }
            }
            count = count
                .checked_add(part.count)
                .ok_or(DataError::CountOverflow)?;
            for feature in 0..width {
                sum[feature] += part.sum[feature];
                sum_of_squares[feature] += part.sum_of_squares[feature];
            }
        }
        if count == 0 {
            return Err(DataError::NoExamples);
        }

        let n = count as f64;
        let mut mean = Vec::with_capacity(width);
        let mut std = Vec::with_capacity(width);
        for feature in 0..width {
            let mean_of_squares = sum_of_squares[feature] / n;
            if !sum[feature].is_finite() {
                return Err(DataError::InvalidStatistic {
                    what: "sum",
                    feature,
                    value: sum[feature],
                });
            }
            if !(mean_of_squares.is_finite() && mean_of_squares >= 0.0) {
                return Err(DataError::InvalidStatistic {
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

    /// Standardizes `data` in place; see [`standardized`](Self::standardized).
    pub fn apply(&self, data: &mut Dataset) -> Result<(), DataError> {
        *data = self.standardized(data)?;
        Ok(())
    }

    /// A standardized copy of `data`.
    ///
    /// Refuses a scaling of another width than `data`, one with a non-finite mean
    /// or a standard deviation that is not finite and positive (a scaling may
    /// arrive from the network), and a result that overflows `f32`.
    pub fn standardized(&self, data: &Dataset) -> Result<Dataset, DataError> {
        let width = data.num_features();
        self.validate(width)?;
        let mut features = Vec::with_capacity(data.features().len());
        for (row, _) in data.rows() {
            for ((&x, &mean), &std) in row.iter().zip(&self.mean).zip(&self.std) {
                features.push(((f64::from(x) - mean) / std) as f32);
            }
        }
        Dataset::new(width, features, data.labels().to_vec())
    }

    fn validate(&self, width: usize) -> Result<(), DataError> {
        for (what, actual) in [("mean", self.mean.len()), ("std", self.std.len())] {
            if actual != width {
                return Err(DataError::WidthMismatch {
                    expected: width,
                    actual,
                    what,
                });
            }
        }
        for (feature, (&mean, &std)) in self.mean.iter().zip(&self.std).enumerate() {
            if !mean.is_finite() {
                return Err(DataError::InvalidStatistic {
                    what: "mean",
                    feature,
                    value: mean,
                });
            }
            if !(std.is_finite() && std > 0.0) {
                return Err(DataError::InvalidStatistic {
                    what: "standard deviation",
                    feature,
                    value: std,
                });
            }
        }
        Ok(())
    }
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
    fn combined_halves_equal_the_whole() {
        let data = breast_cancer();
        let (first, second): (Vec<usize>, Vec<usize>) = (0..data.len()).partition(|i| i % 3 == 0);
        let parts = [
            FeatureStats::of(&data.subset(&first).unwrap()),
            FeatureStats::of(&data.subset(&second).unwrap()),
        ];
        let combined = FeatureStats::combine(&parts).unwrap();
        let whole = FeatureStats::combine(&[FeatureStats::of(&data)]).unwrap();
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
        let scaling = FeatureStats::combine(&[FeatureStats::of(&data)]).unwrap();
        let scaled = scaling.standardized(&data).unwrap();
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
        let scaling = FeatureStats::combine(&[FeatureStats::of(&data)]).unwrap();
        assert_eq!(scaling.std[0], 1.0);
        assert!((scaling.mean[0] - f64::from(3.7f32)).abs() < 1e-12);
        assert!((scaling.std[1] - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        let scaled = scaling.standardized(&data).unwrap();
        assert!(scaled.rows().all(|(row, _)| row[0].abs() < 1e-6));
    }

    #[test]
    fn mismatched_or_empty_statistics_are_refused() {
        let narrow = FeatureStats::of(&Dataset::new(1, vec![1.0], vec![0]).unwrap());
        let wide = FeatureStats::of(&Dataset::new(2, vec![1.0, 2.0], vec![0]).unwrap());
        assert!(matches!(
            FeatureStats::combine(&[narrow.clone(), wide]),
            Err(DataError::WidthMismatch {
                expected: 1,
                actual: 2,
                ..
            })
        ));
        assert!(matches!(
            FeatureStats::combine(&[]),
            Err(DataError::NoStatistics)
        ));
        let nothing = FeatureStats::of(&Dataset::new(1, vec![], vec![]).unwrap());
        assert!(matches!(
            FeatureStats::combine(&[nothing]),
            Err(DataError::NoExamples)
        ));
        let huge = FeatureStats {
            count: u64::MAX,
            ..narrow.clone()
        };
        assert!(matches!(
            FeatureStats::combine(&[huge, narrow.clone()]),
            Err(DataError::CountOverflow)
        ));
        let broken = FeatureStats {
            sum: vec![f64::NAN],
            ..narrow
        };
        assert!(matches!(
            FeatureStats::combine(&[broken]),
            Err(DataError::InvalidStatistic { what: "sum", .. })
        ));
    }

    #[test]
    fn apply_checks_the_width_and_the_values() {
        let mut data = Dataset::new(2, vec![1.0, 2.0], vec![0]).unwrap();
        let narrow = FeatureScaling {
            mean: vec![0.0],
            std: vec![1.0],
        };
        assert!(matches!(
            narrow.apply(&mut data),
            Err(DataError::WidthMismatch {
                expected: 2,
                actual: 1,
                what: "mean"
            })
        ));
        let zero_std = FeatureScaling {
            mean: vec![0.0, 0.0],
            std: vec![1.0, 0.0],
        };
        assert!(matches!(
            zero_std.apply(&mut data),
            Err(DataError::InvalidStatistic { feature: 1, .. })
        ));
        assert_eq!(data.features(), &[1.0, 2.0]);
    }
}
