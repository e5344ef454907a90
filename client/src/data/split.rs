//! Reproducible train/holdout splits.
//!
//! The split is stratified: each class sends the same fraction of its rows
//! (rounded) to the holdout, so a small or imbalanced node still evaluates on
//! every class it has. Rows are picked by a ChaCha shuffle of the seed, so the
//! same data, fraction and seed always give the same split.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{DataError, Dataset};

/// Splits `data` into `(train, holdout)`, the holdout taking `holdout_fraction`
/// of each class's rows (rounded to the nearest row).
///
/// `holdout_fraction` must be in `[0, 1)`; `0` gives an empty holdout.
pub fn train_holdout_split(
    data: &Dataset,
    holdout_fraction: f64,
    seed: u64,
) -> Result<(Dataset, Dataset), DataError> {
    if !(0.0..1.0).contains(&holdout_fraction) {
        return Err(DataError::HoldoutFraction(holdout_fraction));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    // A map, not a vector indexed by label: labels come from files and may be huge.
    let mut rows_by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (index, &label) in data.labels().iter().enumerate() {
        rows_by_class.entry(label).or_default().push(index);
    }

    let mut train = Vec::with_capacity(data.len());
    let mut holdout = Vec::new();
    for mut rows in rows_by_class.into_values() {
        rows.shuffle(&mut rng);
        let held = (rows.len() as f64 * holdout_fraction).round() as usize;
        holdout.extend_from_slice(&rows[..held]);
        train.extend_from_slice(&rows[held..]);
    }
    // Interleave the classes again so neither part is sorted by label.
    train.shuffle(&mut rng);
    holdout.shuffle(&mut rng);

    Ok((data.subset(&train)?, data.subset(&holdout)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Labels far apart must not cost memory in proportion to their value.
    #[test]
    fn huge_labels_split_like_small_ones() {
        let data = Dataset::new(
            1,
            vec![0.0; 8],
            vec![0, u32::MAX, 0, u32::MAX, 0, u32::MAX, 0, u32::MAX],
        )
        .unwrap();
        let (train, holdout) = train_holdout_split(&data, 0.5, 3).unwrap();
        assert_eq!(
            holdout.class_counts(),
            BTreeMap::from([(0, 2), (u32::MAX, 2)])
        );
        assert_eq!(train.len(), 4);
    }

    /// 100 rows: 70 of class 0, 30 of class 1; the feature is the row index.
    fn imbalanced() -> Dataset {
        let labels: Vec<u32> = (0..100).map(|i| u32::from(i >= 70)).collect();
        let features: Vec<f32> = (0..100).map(|i| i as f32).collect();
        Dataset::new(1, features, labels).unwrap()
    }

    #[test]
    fn sizes_follow_the_fraction_per_class() {
        let data = imbalanced();
        let (train, holdout) = train_holdout_split(&data, 0.25, 7).unwrap();
        // round(70 · 0.25) = 18 (17.5 rounds away from zero), round(30 · 0.25) = 8.
        assert_eq!(holdout.class_counts(), BTreeMap::from([(0, 18), (1, 8)]));
        assert_eq!(train.class_counts(), BTreeMap::from([(0, 52), (1, 22)]));

        // Together the parts are exactly the original rows.
        let mut ids: Vec<f32> = train
            .features()
            .iter()
            .chain(holdout.features())
            .copied()
            .collect();
        ids.sort_by(f32::total_cmp);
        assert_eq!(ids, data.features());
    }

    #[test]
    fn the_seed_decides_the_split() {
        let data = imbalanced();
        let first = train_holdout_split(&data, 0.2, 42).unwrap();
        let again = train_holdout_split(&data, 0.2, 42).unwrap();
        let other = train_holdout_split(&data, 0.2, 43).unwrap();
        assert_eq!(first, again);
        assert_ne!(first.1, other.1);
    }

    #[test]
    fn zero_fraction_keeps_everything_for_training() {
        let data = imbalanced();
        let (train, holdout) = train_holdout_split(&data, 0.0, 1).unwrap();
        assert_eq!(train.len(), 100);
        assert!(holdout.is_empty());
    }

    #[test]
    fn fractions_outside_zero_to_one_are_refused() {
        let data = imbalanced();
        for fraction in [-0.1, 1.0, 1.5, f64::NAN] {
            assert!(matches!(
                train_holdout_split(&data, fraction, 0),
                Err(DataError::HoldoutFraction(_))
            ));
        }
    }
}
