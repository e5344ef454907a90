//! Which nodes take part in a round, and what they train with.
//!
//! Without differential privacy, a seeded fixed-size sample: the same config
//! samples the same nodes, so runs repeat. Under differential privacy, a
//! Poisson sample drawn from the operating system's randomness: amplification
//! by subsampling holds only against an observer who does not know the
//! sample, and a seeded sample can be recomputed by anyone who learns the seed
//! (the nodes used to, from their training seed). Who still knows it: the
//! coordinator, readers of the audit log, and under secure aggregation every
//! sampled node (the protocol gives each the round's participant list).

use cohort_proto::v1;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::FederationConfig;
use crate::strategy::Strategy;

/// The seed the nodes shuffle their rows with in round `round` of a
/// federation without differential privacy: `rounds.seed ^ round`, a function
/// of the configuration and the round alone (not of the attempt, the clock or
/// the operating system), so a rerun of the round, a retraining after an
/// erasure and an auditor's replay all use the same one. Under differential
/// privacy the round engine draws it from the operating system instead.
pub fn training_seed(rounds_seed: u64, round: u64) -> u64 {
    rounds_seed ^ round
}

/// What the nodes are told to train with in round `round`: the `[training]`
/// settings, [`training_seed`] and the strategy's additions (FedProx's μ,
/// norm bounding's bound). Without differential privacy, exactly what the
/// round engine sends.
pub fn round_training(
    config: &FederationConfig,
    strategy: &dyn Strategy,
    round: u64,
) -> v1::TrainingConfig {
    let mut training = v1::TrainingConfig {
        local_epochs: config.training.local_epochs,
        batch_size: config.training.batch_size,
        learning_rate: config.training.learning_rate,
        seed: training_seed(config.rounds.seed, round),
        ..Default::default()
    };
    strategy.configure_fit(&mut training);
    training
}

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

/// Poisson sampling: each available node independently with probability
/// `rate`, as the subsampled-Gaussian accounting assumes. May be empty. The
/// caller passes a CSPRNG seeded by the OS (`rand::rng()`), never a seeded
/// one: the sample must be secret from the nodes.
pub fn poisson_sample(available: &[String], rate: f64, rng: &mut impl Rng) -> Vec<String> {
    available
        .iter()
        .filter(|_| rng.random_bool(rate.clamp(0.0, 1.0)))
        .cloned()
        .collect()
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
    fn poisson_sampling_includes_each_node_with_the_rate() {
        let all = nodes(50);
        let mut rng = rand::rng();
        assert_eq!(poisson_sample(&all, 1.0, &mut rng), all);
        let total: usize = (0..200)
            .map(|_| poisson_sample(&all, 0.2, &mut rng).len())
            .sum();
        // 10 000 Bernoulli(0.2) draws: mean 2000, sd 40.
        assert!((1800..2200).contains(&total), "{total}");
    }

    #[test]
    fn a_poisson_sample_is_not_a_function_of_anything_a_node_sees() {
        // Same nodes, same rate, same round: two draws agree on all 64 nodes
        // with probability 2^-64 when nothing but the OS decides.
        let all = nodes(64);
        let draws: Vec<_> = (0..2)
            .map(|_| poisson_sample(&all, 0.5, &mut rand::rng()))
            .collect();
        assert_ne!(draws[0], draws[1]);
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
