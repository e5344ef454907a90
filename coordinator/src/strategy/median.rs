//! Coordinate-wise median (Yin, Chen, Ramchandran & Bartlett, ICML 2018,
//! "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates",
//! Option I).
//!
//! Each parameter of the next model is the median of that parameter over the
//! round's results (the mean of the two middle values for an even count). A
//! minority of arbitrary (Byzantine) updates cannot move a coordinate outside
//! the range of the honest values. Nodes weigh equally, whatever their example
//! counts: weights would let one node claim a majority. The aggregator must
//! see every update, so it cannot run under secure aggregation.

use ndarray::Array1;

use super::{FitResult, RoundContext, Strategy, StrategyError, coordinatewise};

/// Coordinate-wise median of the round's results.
#[derive(Debug, Default, Clone, Copy)]
pub struct Median;

/// Median of values sorted ascending; `sorted` is not empty.
fn median_of_sorted(sorted: &[f32]) -> f32 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        ((f64::from(sorted[n / 2 - 1]) + f64::from(sorted[n / 2])) / 2.0) as f32
    }
}

impl Strategy for Median {
    fn name(&self) -> &'static str {
        "median"
    }

    fn aggregate_fit(
        &mut self,
        global: &Array1<f32>,
        results: &[FitResult],
        _context: &RoundContext,
    ) -> Result<Array1<f32>, StrategyError> {
        coordinatewise(global, results, median_of_sorted)
    }

    fn needs_individual_updates(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{CONTEXT, result};
    use ndarray::array;

    #[test]
    fn median_of_known_vectors() {
        // Per coordinate: {1, 3, 100} → 3; {−5, 0, 2} → 0; {7, 7, −1e6} → 7.
        let results = [
            result("a", array![1.0, 0.0, 7.0], 1),
            result("b", array![100.0, -5.0, 7.0], 1000),
            result("c", array![3.0, 2.0, -1e6], 1),
        ];
        let next = Median
            .aggregate_fit(&array![0.0, 0.0, 0.0], &results, &CONTEXT)
            .unwrap();
        assert_eq!(next, array![3.0, 0.0, 7.0]);
    }

    #[test]
    fn even_count_takes_the_middle_mean() {
        // {1, 2, 4, 50} → (2 + 4)/2 = 3
        let results = [1.0, 50.0, 4.0, 2.0].map(|v| result("n", array![v], 1));
        let next = Median
            .aggregate_fit(&array![0.0], &results, &CONTEXT)
            .unwrap();
        assert_eq!(next, array![3.0]);
        assert!(Median.needs_individual_updates());
        assert_eq!(
            Median.aggregate_fit(&array![0.0], &[], &CONTEXT),
            Err(StrategyError::NoResults)
        );
    }
}
