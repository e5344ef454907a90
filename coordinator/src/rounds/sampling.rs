//! Which nodes take part in a round: a seeded sample of the available nodes.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Samples `max(min_clients, ceil(fraction · n))` of the `available` node ids (at
/// most all of them). `available` must be sorted so that the same seed, round and
/// set of nodes always give the same sample. The result is sorted.
pub fn sample_nodes(
    available: &[String],
    fraction: f64,
    min_clients: usize,
    seed: u64,
    round: u64,
) -> Vec<String> {
    let n = available.len();
    let wanted = ((fraction * n as f64).ceil() as usize)
        .max(min_clients)
        .min(n);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // One ChaCha stream per round: rounds are independent, yet reproducible.
    rng.set_stream(round);
    let mut chosen: Vec<String> = rand::seq::index::sample(&mut rng, n, wanted)
        .into_iter()
        .map(|i| available[i].clone())
        .collect();
    chosen.sort();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i:02}")).collect()
    }

    #[test]
    fn sample_size_follows_fraction_and_minimum() {
        assert_eq!(sample_nodes(&nodes(10), 0.3, 2, 1, 1).len(), 3);
        assert_eq!(sample_nodes(&nodes(10), 0.1, 4, 1, 1).len(), 4);
        assert_eq!(sample_nodes(&nodes(3), 0.5, 5, 1, 1).len(), 3);
        assert_eq!(sample_nodes(&nodes(10), 1.0, 1, 1, 1), nodes(10));
    }

    #[test]
    fn seeded_and_varies_by_round() {
        let a = sample_nodes(&nodes(50), 0.2, 1, 7, 3);
        assert_eq!(a, sample_nodes(&nodes(50), 0.2, 1, 7, 3));
        let rounds: Vec<_> = (1..6)
            .map(|r| sample_nodes(&nodes(50), 0.2, 1, 7, r))
            .collect();
        assert!(rounds.windows(2).any(|w| w[0] != w[1]));
    }
}
