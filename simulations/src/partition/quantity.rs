//! Quantity skew: nodes hold very different amounts of data, all drawn IID.
//! Node sizes follow a power law (Zipf) over the nodes' ranks — the node of rank
//! r (1-based) gets a share ∝ r^(−exponent) of the rows beyond everyone's
//! `min_rows` — the usual "quantity-based label-agnostic" skew of Li et al.
//! (2022, "Federated Learning on Non-IID Data Silos: An Experimental Study",
//! ICDE), with a power law in place of their Dirichlet draw of sizes. Exponent 0
//! is IID with equal sizes; the largest/smallest ratio grows with the exponent.
//! Ranks are dealt to nodes in a seeded order; rows are a seeded shuffle.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{Partition, PartitionError};

/// IID rows, power-law node sizes, each node at least `min_rows` (and at least 1).
pub fn quantity_skew(
    rows: usize,
    nodes: usize,
    exponent: f64,
    min_rows: usize,
    seed: u64,
) -> Result<Partition, PartitionError> {
    let sizes = quantity_skew_sizes(rows, nodes, exponent, min_rows)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ranks: Vec<usize> = (0..nodes).collect();
    ranks.shuffle(&mut rng);
    let mut order: Vec<usize> = (0..rows).collect();
    order.shuffle(&mut rng);
    let mut rest = order.as_slice();
    let mut parts: Partition = vec![Vec::new(); nodes];
    for (node, &rank) in ranks.iter().enumerate() {
        let (mine, others) = rest.split_at(sizes[rank]);
        parts[node] = mine.to_vec();
        parts[node].sort_unstable();
        rest = others;
    }
    Ok(parts)
}

/// The node sizes [`quantity_skew`] uses, largest first; they sum to `rows`.
pub fn quantity_skew_sizes(
    rows: usize,
    nodes: usize,
    exponent: f64,
    min_rows: usize,
) -> Result<Vec<usize>, PartitionError> {
    if !(exponent.is_finite() && exponent >= 0.0) {
        return Err(PartitionError::Exponent(exponent));
    }
    let min_rows = min_rows.max(1);
    if nodes == 0 || rows < nodes.saturating_mul(min_rows) {
        return Err(PartitionError::TooFewRows {
            rows,
            nodes,
            min_rows,
        });
    }
    let weights: Vec<f64> = (1..=nodes).map(|r| (r as f64).powf(-exponent)).collect();
    let sum: f64 = weights.iter().sum();
    let extra = rows - nodes * min_rows;
    // Largest remainder: floors first, then one more row to the largest fractions.
    let quotas: Vec<f64> = weights.iter().map(|w| w / sum * extra as f64).collect();
    let mut sizes: Vec<usize> = quotas
        .iter()
        .map(|q| min_rows + q.floor() as usize)
        .collect();
    let mut by_fraction: Vec<usize> = (0..nodes).collect();
    by_fraction.sort_by(|&a, &b| {
        let fraction = |i: usize| quotas[i] - quotas[i].floor();
        fraction(b).total_cmp(&fraction(a)).then(a.cmp(&b))
    });
    let short = rows - sizes.iter().sum::<usize>();
    for &i in by_fraction.iter().cycle().take(short) {
        sizes[i] += 1;
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::super::tests::assert_exact_cover;
    use super::*;

    #[test]
    fn every_row_is_assigned_exactly_once() {
        for exponent in [0.0, 0.5, 1.0, 2.0, 5.0] {
            let p = quantity_skew(600, 10, exponent, 5, 1).unwrap();
            assert_exact_cover(&p, 600);
            assert!(p.iter().all(|rows| rows.len() >= 5), "{exponent}");
        }
    }

    #[test]
    fn skew_grows_with_the_exponent_and_respects_min_rows() {
        let ratio = |exponent| {
            let sizes = quantity_skew_sizes(600, 10, exponent, 5).unwrap();
            assert_eq!(sizes.iter().sum::<usize>(), 600);
            assert!(sizes.iter().all(|&n| n >= 5));
            let (max, min) = (sizes.iter().max().unwrap(), sizes.iter().min().unwrap());
            *max as f64 / *min as f64
        };
        let ratios: Vec<f64> = [0.0, 0.5, 1.0, 1.5, 2.0].into_iter().map(ratio).collect();
        assert!(ratios[0] <= 1.02, "{ratios:?}");
        assert!(ratios.windows(2).all(|w| w[1] > w[0]), "{ratios:?}");
        assert!(ratios[4] > 20.0, "{ratios:?}");
        // Very steep: the smallest nodes sit exactly at min_rows.
        let steep = quantity_skew_sizes(600, 10, 8.0, 5).unwrap();
        assert_eq!(*steep.iter().min().unwrap(), 5);
    }

    #[test]
    fn impossible_requests_are_refused() {
        assert_eq!(
            quantity_skew(600, 10, -1.0, 5, 1),
            Err(PartitionError::Exponent(-1.0))
        );
        assert!(quantity_skew(600, 10, f64::NAN, 5, 1).is_err());
        assert!(quantity_skew(49, 10, 1.0, 5, 1).is_err());
        assert!(quantity_skew(600, 0, 1.0, 5, 1).is_err());
    }

    #[test]
    fn seeded() {
        assert_eq!(
            quantity_skew(600, 10, 1.0, 5, 3),
            quantity_skew(600, 10, 1.0, 5, 3)
        );
    }
}
