//! Coordinate-wise trimmed mean (Yin, Chen, Ramchandran & Bartlett, ICML 2018,
//! "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates",
//! Option II).
//!
//! For each parameter, the ⌊β·n⌋ largest and ⌊β·n⌋ smallest of the n values
//! are dropped and the rest averaged. With at most a β fraction of Byzantine
//! nodes, every extreme value they send is trimmed or bracketed by honest ones.
//! β must be below ½ so something is left; nodes weigh equally. The aggregator
//! must see every update, so it cannot run under secure aggregation.

use ndarray::Array1;

use super::{FitResult, RoundContext, Strategy, StrategyError, coordinatewise};

/// Coordinate-wise trimmed mean of the round's results.
#[derive(Debug, Clone, Copy)]
pub struct TrimmedMean {
    /// β ∈ [0, ½): fraction trimmed from each end.
    trim_fraction: f64,
}

impl TrimmedMean {
    /// Drops ⌊β·n⌋ of the n values at each end, β = `trim_fraction`, but never
    /// more than (n − 1)/2 (the configuration keeps β below ½).
    pub fn new(trim_fraction: f64) -> Self {
        Self { trim_fraction }
    }
}

impl Strategy for TrimmedMean {
    fn name(&self) -> &'static str {
        "trimmed_mean"
    }

    fn aggregate_fit(
        &mut self,
        global: &Array1<f32>,
        results: &[FitResult],
        _context: &RoundContext,
    ) -> Result<Array1<f32>, StrategyError> {
        // At most (n − 1)/2 from each end, so at least one value is left even
        // for a fraction the config would refuse.
        let n = results.len();
        let trim = ((self.trim_fraction * n as f64).floor() as usize).min(n.saturating_sub(1) / 2);
        coordinatewise(global, results, |sorted| {
            let kept = &sorted[trim..sorted.len() - trim];
            (kept.iter().map(|&v| f64::from(v)).sum::<f64>() / kept.len() as f64) as f32
        })
    }

    fn needs_individual_updates(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{CONTEXT, assert_close, result};
    use ndarray::array;

    #[test]
    fn trims_the_extremes_of_each_coordinate() {
        // β = 0.2, n = 5: one value off each end.
        // {−100, 1, 2, 3, 100} → mean(1, 2, 3) = 2; {0, 0, 6, 9, 1e9} → mean(0, 6, 9) = 5.
        let values = [
            [-100.0, 0.0],
            [1.0, 6.0],
            [2.0, 1e9],
            [3.0, 0.0],
            [100.0, 9.0],
        ];
        let results = values.map(|[a, b]| result("n", array![a, b], 1));
        let next = TrimmedMean::new(0.2)
            .aggregate_fit(&array![0.0, 0.0], &results, &CONTEXT)
            .unwrap();
        assert_close(&next, &[2.0, 5.0], 1e-6);
    }

    #[test]
    fn an_oversized_fraction_still_leaves_the_middle() {
        // β = 0.9 of n = 3 would trim everything; at most 1 per end is: median 2.
        let results = [1.0, 2.0, 30.0].map(|v| result("n", array![v], 1));
        let next = TrimmedMean::new(0.9)
            .aggregate_fit(&array![0.0], &results, &CONTEXT)
            .unwrap();
        assert_close(&next, &[2.0], 1e-6);
    }

    #[test]
    fn too_few_results_to_trim_leave_the_plain_mean() {
        // β = 0.2, n = 4: ⌊0.8⌋ = 0 trimmed; mean(1, 2, 3, 6) = 3.
        let results = [1.0, 2.0, 3.0, 6.0].map(|v| result("n", array![v], 1));
        let next = TrimmedMean::new(0.2)
            .aggregate_fit(&array![0.0], &results, &CONTEXT)
            .unwrap();
        assert_close(&next, &[3.0], 1e-6);
    }
}
