//! Label skew by Dirichlet shares: the partitioner of Hsu, Qi & Brown (2019,
//! "Measuring the Effects of Non-Identical Data Distribution for Federated Visual
//! Classification", arXiv:1909.06335). For each class, the share of its rows that
//! goes to each node is drawn from Dir(α·1). Small α gives each node few classes;
//! large α approaches IID.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::Distribution;
use rand_distr::multi::Dirichlet;

use super::{Partition, PartitionError};

/// Label skew: per class, node shares ~ Dir(α). Redraws (up to 1000 times) until
/// every node holds at least `min_rows` rows, as is usual, so that each node can
/// train and hold out something.
pub fn dirichlet(
    labels: &[u32],
    nodes: usize,
    alpha: f64,
    min_rows: usize,
    seed: u64,
) -> Result<Partition, PartitionError> {
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(PartitionError::Concentration(alpha));
    }
    if nodes == 0 || labels.len() < nodes * min_rows {
        return Err(PartitionError::TooFewRows {
            rows: labels.len(),
            nodes,
            min_rows,
        });
    }
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (row, &label) in labels.iter().enumerate() {
        by_class[label as usize].push(row);
    }
    let shares =
        Dirichlet::new(&vec![alpha; nodes]).map_err(|_| PartitionError::Concentration(alpha))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    const ATTEMPTS: usize = 1000;
    for _ in 0..ATTEMPTS {
        let mut parts: Partition = vec![Vec::new(); nodes];
        for rows in &by_class {
            let mut rows = rows.clone();
            rows.shuffle(&mut rng);
            let p: Vec<f64> = shares.sample(&mut rng);
            // Cut points at the cumulative shares; the last node takes the rest.
            let mut start = 0;
            let mut cumulative = 0.0;
            for (node, share) in p.iter().enumerate() {
                cumulative += share;
                let end = if node + 1 == nodes {
                    rows.len()
                } else {
                    ((cumulative * rows.len() as f64).round() as usize).clamp(start, rows.len())
                };
                parts[node].extend_from_slice(&rows[start..end]);
                start = end;
            }
        }
        if parts.iter().all(|p| p.len() >= min_rows) {
            for part in &mut parts {
                part.sort_unstable();
            }
            return Ok(parts);
        }
    }
    Err(PartitionError::Unbalanced {
        min_rows,
        attempts: ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use super::super::label_histogram;
    use super::super::tests::{assert_exact_cover, labels};
    use super::*;

    #[test]
    fn every_row_is_assigned_exactly_once() {
        let labels = labels();
        for alpha in [0.1, 0.5, 10.0] {
            let p = dirichlet(&labels, 10, alpha, 5, 2).unwrap();
            assert_exact_cover(&p, labels.len());
            assert!(p.iter().all(|rows| rows.len() >= 5));
        }
    }

    #[test]
    fn skew_grows_as_alpha_shrinks() {
        let labels = labels();
        // Mean over nodes of the largest class share: 1/3 for IID, → 1 for strong skew.
        let skew = |alpha| {
            let h = label_histogram(&labels, &dirichlet(&labels, 10, alpha, 5, 3).unwrap());
            h.iter()
                .map(|c| *c.iter().max().unwrap() as f64 / c.iter().sum::<usize>() as f64)
                .sum::<f64>()
                / h.len() as f64
        };
        let (strong, mild) = (skew(0.1), skew(100.0));
        assert!(strong > 0.7, "α = 0.1 skew {strong}");
        assert!(mild < 0.45, "α = 100 skew {mild}");
    }

    #[test]
    fn seeded() {
        let labels = labels();
        assert_eq!(
            dirichlet(&labels, 10, 0.5, 5, 9).unwrap(),
            dirichlet(&labels, 10, 0.5, 5, 9).unwrap()
        );
        assert_eq!(
            dirichlet(&labels, 10, 0.0, 5, 9),
            Err(PartitionError::Concentration(0.0))
        );
    }
}
