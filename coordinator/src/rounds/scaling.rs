//! Global feature standardization without pooling data: nodes report per-feature
//! count, sum and sum of squares; the coordinator combines them into the global
//! mean and standard deviation (population form), which every node then applies.

use crate::store::FeatureScaling;

use super::stage::NodeFeatureStats;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScalingError {
    #[error("no feature statistics to combine")]
    Empty,
    #[error("statistics cover no rows")]
    NoRows,
}

/// Combines nodes' statistics (already validated to the model's width).
pub fn combine(stats: &[&NodeFeatureStats]) -> Result<FeatureScaling, ScalingError> {
    let first = stats.first().ok_or(ScalingError::Empty)?;
    let width = first.sum.len();
    let count: u64 = stats.iter().map(|s| s.count).sum();
    if count == 0 {
        return Err(ScalingError::NoRows);
    }
    let n = count as f64;
    let mut mean = vec![0.0; width];
    let mut std = vec![0.0; width];
    for i in 0..width {
        let sum: f64 = stats.iter().map(|s| s.sum[i]).sum();
        let sum_sq: f64 = stats.iter().map(|s| s.sum_of_squares[i]).sum();
        mean[i] = sum / n;
        let variance = (sum_sq / n - mean[i] * mean[i]).max(0.0);
        // A constant feature keeps its values centred instead of dividing by zero.
        std[i] = if variance > 1e-12 {
            variance.sqrt()
        } else {
            1.0
        };
    }
    Ok(FeatureScaling { mean, std })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_of(rows: &[[f64; 2]]) -> NodeFeatureStats {
        let mut s = NodeFeatureStats {
            count: rows.len() as u64,
            sum: vec![0.0; 2],
            sum_of_squares: vec![0.0; 2],
        };
        for row in rows {
            for (i, x) in row.iter().enumerate() {
                s.sum[i] += x;
                s.sum_of_squares[i] += x * x;
            }
        }
        s
    }

    #[test]
    fn combined_equals_pooled() {
        let a = stats_of(&[[1.0, 5.0], [3.0, 5.0]]);
        let b = stats_of(&[[5.0, 5.0], [7.0, 5.0], [9.0, 5.0]]);
        let scaling = combine(&[&a, &b]).unwrap();
        // Pooled: 1,3,5,7,9 → mean 5, population variance 8; the constant column gets std 1.
        assert!((scaling.mean[0] - 5.0).abs() < 1e-12);
        assert!((scaling.std[0] - 8f64.sqrt()).abs() < 1e-12);
        assert_eq!((scaling.mean[1], scaling.std[1]), (5.0, 1.0));
        assert_eq!(combine(&[]), Err(ScalingError::Empty));
    }
}
