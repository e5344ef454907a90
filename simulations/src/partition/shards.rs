//! Pathological label skew: the non-IID split of McMahan et al. (2017,
//! "Communication-Efficient Learning of Deep Networks from Decentralized Data",
//! AISTATS) — sort the rows by label, cut them into `nodes · k` shards, give each
//! node `k` shards, so each node sees at most `k` classes.
//!
//! One refinement keeps the promise exact on data whose class sizes do not divide
//! evenly: shards never straddle two classes. Each class gets at least one shard,
//! and the remaining shards go, one at a time, to the class whose shards are
//! currently largest (so shard sizes stay as even as the classes allow), capped
//! at `nodes` shards per class. Shards are then laid out class after class (in a
//! seeded order of classes) and dealt round-robin to the nodes (in a seeded
//! order of nodes): a class's shards form a run no longer than `nodes`, so no node
//! gets two shards of one class, and each node holds exactly `k` classes. That is
//! possible whenever `nodes · k ≤ Σ_c min(nodes, rows of c)`; otherwise the cap is
//! lifted and some nodes hold fewer than `k` classes, never more.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{Partition, PartitionError};

/// Gives each of `nodes` nodes `classes_per_node` single-class shards of the
/// label-sorted rows.
pub fn shards(
    labels: &[u32],
    nodes: usize,
    classes_per_node: usize,
    seed: u64,
) -> Result<Partition, PartitionError> {
    if classes_per_node == 0 {
        return Err(PartitionError::NoClassesPerNode);
    }
    let total = nodes.saturating_mul(classes_per_node);
    if nodes == 0 || labels.len() < total {
        return Err(PartitionError::TooFewRows {
            rows: labels.len(),
            nodes,
            min_rows: classes_per_node,
        });
    }
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (row, &label) in labels.iter().enumerate() {
        by_class.entry(label).or_default().push(row);
    }
    if total < by_class.len() {
        return Err(PartitionError::TooFewShards {
            nodes,
            classes_per_node,
            classes: by_class.len(),
        });
    }
    let sizes: Vec<usize> = by_class.values().map(Vec::len).collect();
    let counts = shard_counts(&sizes, total, nodes);

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut classes: Vec<(Vec<usize>, usize)> = by_class.into_values().zip(counts).collect();
    for (rows, _) in &mut classes {
        rows.shuffle(&mut rng);
    }
    classes.shuffle(&mut rng);
    let mut slots: Vec<usize> = (0..nodes).collect();
    slots.shuffle(&mut rng);

    let mut parts: Partition = vec![Vec::new(); nodes];
    let mut position = 0;
    for (rows, count) in &classes {
        for i in 0..*count {
            let piece = &rows[i * rows.len() / count..(i + 1) * rows.len() / count];
            parts[slots[position % nodes]].extend_from_slice(piece);
            position += 1;
        }
    }
    for part in &mut parts {
        part.sort_unstable();
    }
    Ok(parts)
}

/// Shards per class: one each, then each further shard to the class with the
/// largest shards that is under its cap (`nodes`, then the class size).
/// `total` is at least the number of classes and at most the number of rows.
fn shard_counts(sizes: &[usize], total: usize, nodes: usize) -> Vec<usize> {
    let mut counts = vec![1; sizes.len()];
    for _ in sizes.len()..total {
        let pick = |cap: &dyn Fn(usize) -> usize| {
            (0..sizes.len())
                .filter(|&c| counts[c] < cap(sizes[c]))
                // Largest shard size sizes[c] / counts[c], compared exactly; first class wins ties.
                .max_by(|&a, &b| {
                    (sizes[a] * counts[b])
                        .cmp(&(sizes[b] * counts[a]))
                        .then(b.cmp(&a))
                })
        };
        let class = pick(&|size| size.min(nodes)).or_else(|| pick(&|size| size));
        match class {
            Some(class) => counts[class] += 1,
            None => break, // unreachable: total ≤ rows
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::super::label_histogram;
    use super::super::tests::{assert_exact_cover, labels};
    use super::*;

    fn classes_per_node(labels: &[u32], partition: &Partition) -> Vec<usize> {
        label_histogram(labels, partition)
            .iter()
            .map(|counts| counts.iter().filter(|&&n| n > 0).count())
            .collect()
    }

    /// Like the digits: 10 classes of uneven sizes (174–183 rows).
    fn digits_like() -> Vec<u32> {
        (0..10u32)
            .flat_map(|c| std::iter::repeat_n(c, 174 + c as usize))
            .collect()
    }

    #[test]
    fn every_row_is_assigned_exactly_once() {
        for (labels, nodes, k) in [
            (labels(), 10, 1),
            (labels(), 10, 2),
            (labels(), 7, 3),
            (digits_like(), 10, 2),
            (digits_like(), 20, 1),
            (digits_like(), 3, 5),
        ] {
            let p = shards(&labels, nodes, k, 4).unwrap();
            assert_eq!(p.len(), nodes);
            assert_exact_cover(&p, labels.len());
        }
    }

    #[test]
    fn each_node_holds_exactly_k_classes_when_possible() {
        for (labels, nodes, k) in [
            (labels(), 10, 1),
            (labels(), 10, 2),
            (labels(), 2, 3),
            (digits_like(), 10, 2),
            (digits_like(), 100, 2),
            (digits_like(), 4, 3),
        ] {
            let p = shards(&labels, nodes, k, 5).unwrap();
            assert!(
                classes_per_node(&labels, &p).iter().all(|&n| n == k),
                "{nodes} nodes, k = {k}: {:?}",
                classes_per_node(&labels, &p)
            );
        }
    }

    #[test]
    fn never_more_than_k_classes() {
        // 3 classes, 2 nodes, 4 shards each: some node must repeat a class.
        let labels = labels();
        let p = shards(&labels, 2, 4, 6).unwrap();
        assert_exact_cover(&p, labels.len());
        assert!(classes_per_node(&labels, &p).iter().all(|&n| n <= 4));
        // One class dominates: its shards are capped at `nodes`, still exact.
        let skewed: Vec<u32> = (0..400).map(|i| u32::from(i >= 380)).collect();
        let p = shards(&skewed, 5, 2, 6).unwrap();
        assert!(classes_per_node(&skewed, &p).iter().all(|&n| n == 2));
    }

    #[test]
    fn shard_sizes_are_even_within_a_class() {
        let labels = digits_like();
        let p = shards(&labels, 10, 2, 7).unwrap();
        let sizes: Vec<usize> = p.iter().map(Vec::len).collect();
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(max - min <= 20, "{sizes:?}");
    }

    #[test]
    fn impossible_requests_are_refused() {
        let labels = digits_like();
        assert_eq!(
            shards(&labels, 4, 2, 1),
            Err(PartitionError::TooFewShards {
                nodes: 4,
                classes_per_node: 2,
                classes: 10
            })
        );
        assert_eq!(
            shards(&labels, 10, 0, 1),
            Err(PartitionError::NoClassesPerNode)
        );
        assert!(shards(&labels[..5], 3, 2, 1).is_err());
    }

    #[test]
    fn seeded() {
        let labels = digits_like();
        assert_eq!(shards(&labels, 10, 2, 9), shards(&labels, 10, 2, 9));
        assert_ne!(shards(&labels, 10, 2, 9), shards(&labels, 10, 2, 10));
    }
}
