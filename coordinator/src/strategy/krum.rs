//! Krum and Multi-Krum (Blanchard, El Mhamdi, Guerraoui & Stainer, NeurIPS
//! 2017, "Machine Learning with Adversaries: Byzantine Tolerant Gradient
//! Descent").
//!
//! With n results of which at most f are Byzantine (n ≥ 2f + 3), each result
//! i is scored by the sum of squared distances to its n − f − 2 nearest other
//! results. Honest updates sit close together, so the lowest score belongs to
//! one surrounded by honest neighbours. Krum takes that one result as the next
//! model; Multi-Krum takes the m lowest-scored ones and averages them
//! uniformly (scores computed once over all n, as in the paper's Multi-Krum
//! experiments), trading some robustness for less variance. Krum is Multi-Krum
//! with m = 1. Nodes weigh equally. The aggregator must see every update, so
//! it cannot run under secure aggregation.

use ndarray::Array1;

use super::{FitResult, RoundContext, Strategy, StrategyError, check_lengths};

/// Krum or Multi-Krum: the next model is the mean of the best-scored results
/// (the single best for Krum).
#[derive(Debug, Clone, Copy)]
pub struct Krum {
    /// f: Byzantine results tolerated.
    byzantine: usize,
    /// m: results averaged; 1 is Krum, `None` means n − f.
    select: Option<usize>,
}

impl Krum {
    /// Krum: the single best-scored result.
    pub fn single(byzantine: usize) -> Self {
        Self {
            byzantine,
            select: Some(1),
        }
    }

    /// Multi-Krum: the mean of the `select` best-scored results (n − f if `None`).
    pub fn multi(byzantine: usize, select: Option<usize>) -> Self {
        Self { byzantine, select }
    }

    /// Results needed for `byzantine` to be tolerated: 2f + 3.
    pub fn min_results(byzantine: usize) -> usize {
        byzantine.saturating_mul(2).saturating_add(3)
    }

    /// Each result's Krum score: the sum of squared distances to its
    /// n − f − 2 nearest other results.
    fn scores(&self, results: &[FitResult]) -> Vec<f64> {
        let n = results.len();
        let neighbours = n - self.byzantine - 2;
        let mut distances = vec![vec![0.0f64; n]; n];
        for i in 0..n {
            for j in i + 1..n {
                let d: f64 = results[i]
                    .parameters
                    .iter()
                    .zip(&results[j].parameters)
                    .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                    .sum();
                distances[i][j] = d;
                distances[j][i] = d;
            }
        }
        distances
            .into_iter()
            .enumerate()
            .map(|(i, mut row)| {
                row.remove(i);
                row.sort_unstable_by(f64::total_cmp);
                row[..neighbours].iter().sum()
            })
            .collect()
    }
}

impl Strategy for Krum {
    fn name(&self) -> &'static str {
        match self.select {
            Some(1) => "krum",
            _ => "multi_krum",
        }
    }

    fn aggregate_fit(
        &mut self,
        global: &Array1<f32>,
        results: &[FitResult],
        _context: &RoundContext,
    ) -> Result<Array1<f32>, StrategyError> {
        check_lengths(global, results)?;
        let n = results.len();
        let needed = Self::min_results(self.byzantine);
        if n < needed {
            return Err(StrategyError::TooFewResults {
                strategy: self.name(),
                needed,
                got: n,
            });
        }
        let select = self.select.unwrap_or(n - self.byzantine).clamp(1, n);
        let scores = self.scores(results);
        let mut ranked: Vec<usize> = (0..n).collect();
        ranked.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        let mut sum = Array1::<f64>::zeros(global.len());
        for &i in &ranked[..select] {
            sum.zip_mut_with(&results[i].parameters, |acc, &p| *acc += f64::from(p));
        }
        Ok(sum.mapv(|v| (v / select as f64) as f32))
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

    /// Five honest results around (1, 1) and two Byzantine ones far away.
    /// With f = 2, each score sums the 3 nearest squared distances:
    /// a (1, 1): 0.01 + 0.01 + 0.04 = 0.06; b (1.1, 1): 0.01 + 0.04 + 0.05 = 0.10;
    /// c (0.9, 1): 0.10; d (1, 1.2): 0.04 + 0.05 + 0.05 = 0.14; e (1, 0.7): 0.29;
    /// the Byzantine ones score in the thousands.
    fn cluster_and_attackers() -> Vec<FitResult> {
        vec![
            result("byz-1", array![100.0, -100.0], 1),
            result("a", array![1.0, 1.0], 1),
            result("b", array![1.1, 1.0], 1),
            result("c", array![0.9, 1.0], 1),
            result("byz-2", array![-50.0, 80.0], 1000),
            result("d", array![1.0, 1.2], 1),
            result("e", array![1.0, 0.7], 1),
        ]
    }

    #[test]
    fn krum_picks_the_centre_of_the_honest_cluster() {
        let next = Krum::single(2)
            .aggregate_fit(&array![0.0, 0.0], &cluster_and_attackers(), &CONTEXT)
            .unwrap();
        assert_eq!(next, array![1.0, 1.0]);
    }

    #[test]
    fn multi_krum_averages_the_best_scored() {
        // m = 4: a, b, c, d → ((1 + 1.1 + 0.9 + 1)/4, (1 + 1 + 1 + 1.2)/4) = (1, 1.05)
        let next = Krum::multi(2, Some(4))
            .aggregate_fit(&array![0.0, 0.0], &cluster_and_attackers(), &CONTEXT)
            .unwrap();
        assert_close(&next, &[1.0, 1.05], 1e-6);
        // Default m = n − f = 5: the honest five, (1, 0.98).
        let next = Krum::multi(2, None)
            .aggregate_fit(&array![0.0, 0.0], &cluster_and_attackers(), &CONTEXT)
            .unwrap();
        assert_close(&next, &[1.0, 0.98], 1e-6);
    }

    #[test]
    fn refuses_fewer_than_2f_plus_3_results() {
        let results = &cluster_and_attackers()[..6];
        assert_eq!(
            Krum::single(2).aggregate_fit(&array![0.0, 0.0], results, &CONTEXT),
            Err(StrategyError::TooFewResults {
                strategy: "krum",
                needed: 7,
                got: 6
            })
        );
    }
}
