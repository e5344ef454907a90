//! Splitting one data set among simulated nodes.
//!
//! Every partitioner promises an exact cover: each row index goes to exactly one
//! node, and the same inputs and seed always give the same [`Partition`]. Each
//! node's rows are sorted, except under [`iid`], which keeps its shuffled order.
//!
//! - [`iid`]: a seeded shuffle dealt round-robin (equal sizes ±1, same label mix).
//! - [`dirichlet`]: label skew by Dirichlet shares (Hsu, Qi & Brown 2019).
//! - [`shards`]: pathological label skew, k label-sorted shards per node
//!   (McMahan et al. 2017).
//! - [`quantity_skew`]: IID rows, power-law node sizes.

mod dirichlet;
mod quantity;
mod shards;

pub use dirichlet::dirichlet;
pub use quantity::{quantity_skew, quantity_skew_sizes};
pub use shards::shards;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Why a data set could not be split as asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PartitionError {
    /// There are no nodes, or too few rows to give each node its minimum.
    #[error("cannot split {rows} rows among {nodes} nodes with at least {min_rows} rows each")]
    TooFewRows {
        /// Rows in the data set.
        rows: usize,
        /// Nodes asked for.
        nodes: usize,
        /// Rows each node must get.
        min_rows: usize,
    },
    /// The Dirichlet concentration α is not positive and finite, or the
    /// distribution refused it.
    #[error("Dirichlet concentration must be positive and finite, got {0}")]
    Concentration(f64),
    /// Every Dirichlet redraw left some node with too few rows.
    #[error("no Dirichlet draw gave every node at least {min_rows} rows in {attempts} attempts")]
    Unbalanced {
        /// Rows each node had to get.
        min_rows: usize,
        /// Draws tried.
        attempts: usize,
    },
    /// Shards were asked for with zero classes per node.
    #[error("classes_per_node must be at least 1")]
    NoClassesPerNode,
    /// There are fewer shards than classes, so some class would have no shard.
    #[error(
        "{nodes} nodes × {classes_per_node} shards cannot cover {classes} classes \
         without giving some node more than {classes_per_node} classes"
    )]
    TooFewShards {
        /// Nodes asked for.
        nodes: usize,
        /// Shards (classes) per node.
        classes_per_node: usize,
        /// Distinct labels in the data.
        classes: usize,
    },
    /// A class has fewer rows than the shards it is cut into.
    #[error("class {class} has {rows} rows, too few for its {shards} shards")]
    SmallClass {
        /// The class's label.
        class: u32,
        /// Its rows.
        rows: usize,
        /// The shards it was to be cut into.
        shards: usize,
    },
    /// The quantity-skew exponent is negative or not finite.
    #[error("the quantity-skew exponent must be finite and non-negative, got {0}")]
    Exponent(f64),
}

/// Every row index exactly once, dealt out to `nodes` nodes.
pub type Partition = Vec<Vec<usize>>;

/// IID: a seeded shuffle dealt round-robin.
pub fn iid(rows: usize, nodes: usize, seed: u64) -> Result<Partition, PartitionError> {
    if nodes == 0 || rows < nodes {
        return Err(PartitionError::TooFewRows {
            rows,
            nodes,
            min_rows: 1,
        });
    }
    let mut order: Vec<usize> = (0..rows).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut parts = vec![Vec::new(); nodes];
    for (i, row) in order.into_iter().enumerate() {
        parts[i % nodes].push(row);
    }
    Ok(parts)
}

/// Per node, the number of rows of each class.
pub fn label_histogram(labels: &[u32], partition: &Partition) -> Vec<Vec<usize>> {
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    partition
        .iter()
        .map(|rows| {
            let mut counts = vec![0; classes];
            for &row in rows {
                counts[labels[row] as usize] += 1;
            }
            counts
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 600 rows, 3 balanced classes.
    pub(crate) fn labels() -> Vec<u32> {
        (0..600).map(|i| (i % 3) as u32).collect()
    }

    pub(crate) fn assert_exact_cover(partition: &Partition, rows: usize) {
        let mut all: Vec<usize> = partition.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..rows).collect::<Vec<_>>());
    }

    #[test]
    fn iid_assigns_every_row_exactly_once() {
        let p = iid(600, 7, 1).unwrap();
        assert_exact_cover(&p, 600);
        assert!(p.iter().all(|rows| rows.len() == 85 || rows.len() == 86));
        assert!(iid(3, 4, 1).is_err());
    }
}
