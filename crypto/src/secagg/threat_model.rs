//! k and t from what a federation assumes, instead of fixed defaults.
//!
//! SecAgg+ (Bell et al., CCS 2020, §3–4) picks the neighbourhood size k and the
//! threshold t so that, over the random neighbour graph, two bad events are rare:
//!
//! - **leak**: some node has more than c colluding neighbours, where the secrets
//!   argument (crate README, threat model) needs 2t > k + c. Each node's k
//!   neighbours are a uniformly random k-subset of the other n − 1 nodes (the
//!   graph is a Harary graph under a uniform permutation), so the number of
//!   colluders among them is hypergeometric; over n nodes, by the union bound,
//!   P(leak) ≤ n · P[Hyp(n − 1, ⌊ρn⌋, k) > c] ≤ 2^−σ.
//! - **abort**: some secret the unmasking needs has fewer than t answering
//!   holders. With each node dropping independently with probability γ, a node's
//!   answering neighbours are Binomial(k, 1 − γ); over n nodes,
//!   P(abort) ≤ n · P[Bin(k, 1 − γ) < t] ≤ 2^−η.
//!
//! [`ThreatModel::derive`] takes the smallest k (the cheapest round) for which
//! some t meets both, and the smallest such t. The bounds assume the colluders
//! are fixed before the graph is drawn and the graph seed is not ground by the
//! coordinator (see the README); `tests` checks the abort bound by Monte Carlo
//! over the real graph.

use serde::{Deserialize, Serialize};

use super::config::SecAggConfig;
use super::error::SecAggError;

/// What a federation assumes about a round, from which k and t follow.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreatModel {
    /// γ: the fraction of a round's nodes expected to drop out before
    /// unmasking ends, in [0, 1).
    pub dropout_rate: f64,
    /// ρ: the fraction of nodes that may collude with the coordinator, in [0, 1).
    pub colluding_fraction: f64,
    /// σ: a node's input leaks with probability at most 2^−σ per round.
    #[serde(default = "default_security_bits")]
    pub security_bits: u32,
    /// η: a round aborts for too few shares with probability at most 2^−η.
    #[serde(default = "default_reliability_bits")]
    pub reliability_bits: u32,
}

fn default_security_bits() -> u32 {
    40
}

fn default_reliability_bits() -> u32 {
    20
}

/// k and t derived for one round size, with the bounds they meet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DerivedParameters {
    /// k.
    pub neighbours: usize,
    /// t.
    pub threshold: usize,
    /// c: the most colluding neighbours any node has, except with probability
    /// `leak_bound`; 2t > k + c.
    pub colluding_neighbours: usize,
    /// The union bound on the chance that some node has more than c colluding
    /// neighbours.
    pub leak_bound: f64,
    /// The union bound on the chance that the round aborts for too few shares.
    pub abort_bound: f64,
}

impl ThreatModel {
    /// Checks the assumptions' ranges, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), SecAggError> {
        let fraction = |name: &str, value: f64| {
            if (0.0..1.0).contains(&value) {
                Ok(())
            } else {
                Err(SecAggError::InvalidConfig(format!(
                    "{name} must be in [0, 1), got {value}"
                )))
            }
        };
        fraction("dropout_rate", self.dropout_rate)?;
        fraction("colluding_fraction", self.colluding_fraction)?;
        for (name, bits) in [
            ("security_bits", self.security_bits),
            ("reliability_bits", self.reliability_bits),
        ] {
            if !(1..=128).contains(&bits) {
                return Err(SecAggError::InvalidConfig(format!(
                    "{name} must be in 1..=128, got {bits}"
                )));
            }
        }
        Ok(())
    }

    /// The cheapest k and t for a round of `n` nodes under these assumptions:
    /// the smallest k (even, or n − 1 for the complete graph) with a t meeting
    /// both bounds, and the smallest such t.
    pub fn derive(&self, n: usize) -> Result<DerivedParameters, SecAggError> {
        self.validate()?;
        if n < 2 {
            return Err(SecAggError::InvalidConfig(format!(
                "a round needs at least 2 participants, got {n}"
            )));
        }
        let tails = Tails::new(n);
        let leak_target = (-f64::from(self.security_bits)).exp2();
        let abort_target = (-f64::from(self.reliability_bits)).exp2();
        let colluders = (self.colluding_fraction * n as f64).floor() as usize;
        let candidates = (2..n - 1).step_by(2).chain(std::iter::once(n - 1));
        for k in candidates {
            let Some((c, leak_bound)) = (0..=k).find_map(|c| {
                let bound = n as f64 * tails.hypergeometric_above(colluders, k, c);
                (bound <= leak_target).then_some((c, bound))
            }) else {
                continue;
            };
            let t = (k + c) / 2 + 1;
            if t > k {
                continue;
            }
            let abort_bound = n as f64 * tails.binomial_below(k, 1.0 - self.dropout_rate, t);
            if abort_bound <= abort_target {
                return Ok(DerivedParameters {
                    neighbours: k,
                    threshold: t,
                    colluding_neighbours: c,
                    leak_bound,
                    abort_bound,
                });
            }
        }
        Err(SecAggError::InvalidConfig(format!(
            "no k and t meet the threat model for {n} nodes (dropout {}, colluding {}, 2^-{} leak, 2^-{} abort): allow more dropout aborts, fewer colluders or more nodes",
            self.dropout_rate, self.colluding_fraction, self.security_bits, self.reliability_bits
        )))
    }
}

impl DerivedParameters {
    /// A round's configuration with these k and t.
    pub fn apply(&self, base: SecAggConfig) -> SecAggConfig {
        SecAggConfig {
            neighbours: self.neighbours,
            threshold: self.threshold,
            ..base
        }
    }
}

/// Tail probabilities for one round size, from a table of ln(i!).
struct Tails {
    /// The other nodes, n − 1.
    others: usize,
    ln_factorial: Vec<f64>,
}

impl Tails {
    fn new(n: usize) -> Self {
        let mut ln_factorial = Vec::with_capacity(n + 1);
        let mut sum = 0.0;
        ln_factorial.push(0.0);
        for i in 1..=n {
            sum += (i as f64).ln();
            ln_factorial.push(sum);
        }
        Self {
            others: n - 1,
            ln_factorial,
        }
    }

    fn ln_choose(&self, n: usize, k: usize) -> f64 {
        self.ln_factorial[n] - self.ln_factorial[k] - self.ln_factorial[n - k]
    }

    /// P[X > c] for X ~ Hyp(n − 1 others, `marked` of them marked, k drawn).
    fn hypergeometric_above(&self, marked: usize, k: usize, c: usize) -> f64 {
        let marked = marked.min(self.others);
        let total = self.ln_choose(self.others, k);
        let lowest = (c + 1).max(k.saturating_sub(self.others - marked));
        (lowest..=k.min(marked))
            .map(|i| {
                (self.ln_choose(marked, i) + self.ln_choose(self.others - marked, k - i) - total)
                    .exp()
            })
            .fold(0.0, |sum, p| sum + p)
            .min(1.0)
    }

    /// P[X < t] for X ~ Bin(k, p).
    fn binomial_below(&self, k: usize, p: f64, t: usize) -> f64 {
        if p >= 1.0 {
            return 0.0;
        }
        (0..t.min(k + 1))
            .map(|i| {
                (self.ln_choose(k, i) + i as f64 * p.ln() + (k - i) as f64 * (1.0 - p).ln()).exp()
            })
            .sum::<f64>()
            .min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secagg::graph::NeighbourGraph;
    use crate::secagg::prg::{Prg, PrgSeed};
    use crate::secagg::{NodeId, RoundId};

    fn model(dropout_rate: f64, colluding_fraction: f64) -> ThreatModel {
        ThreatModel {
            dropout_rate,
            colluding_fraction,
            security_bits: 40,
            reliability_bits: 20,
        }
    }

    /// Rounds of `n` nodes over the real graph with k, t, each node dropping
    /// with probability γ: how many abort, because some secret the unmasking
    /// needs (a survivor's b_u, or the sk_v of a dropped node with a surviving
    /// neighbour) has fewer than t surviving holders.
    fn monte_carlo_aborts(n: usize, k: usize, t: usize, dropout: f64, trials: u64) -> u64 {
        let ids: Vec<NodeId> = (0..n as u32).map(NodeId).collect();
        let config = SecAggConfig {
            neighbours: k,
            threshold: t,
            ..SecAggConfig::default()
        };
        let mut rng = Prg::new(&PrgSeed::from_bytes([20; 32]));
        let cut = (dropout * 2f64.powi(64)) as u64;
        let mut aborts = 0;
        for trial in 0..trials {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed).unwrap();
            let graph = NeighbourGraph::harary(&config, &ids, RoundId(trial), &seed).unwrap();
            let alive: Vec<bool> = (0..n).map(|_| rng.next_u64().unwrap() >= cut).collect();
            let aborted = ids.iter().any(|&u| {
                let surviving = graph
                    .neighbours(u)
                    .iter()
                    .filter(|v| alive[v.0 as usize])
                    .count();
                let needed = alive[u.0 as usize] || surviving > 0;
                needed && surviving < t
            });
            aborts += u64::from(aborted);
        }
        aborts
    }

    #[test]
    fn derived_parameters_meet_both_bounds_and_the_secrets_inequality() {
        for (n, dropout, colluding) in [(100, 0.1, 0.0), (1000, 0.3, 0.0), (1000, 0.1, 0.05)] {
            let derived = model(dropout, colluding).derive(n).unwrap();
            eprintln!("n {n}, γ {dropout}, ρ {colluding}: {derived:?}");
            let (k, t, c) = (
                derived.neighbours,
                derived.threshold,
                derived.colluding_neighbours,
            );
            assert!(2 * t > k + c, "{derived:?}");
            assert!(derived.leak_bound <= 2f64.powi(-40), "{derived:?}");
            assert!(derived.abort_bound <= 2f64.powi(-20), "{derived:?}");
            derived
                .apply(SecAggConfig::default())
                .validate(n, 10)
                .unwrap();
        }
    }

    #[test]
    fn the_old_fixed_k_aborts_where_the_derived_one_does_not() {
        // n = 1000, 30% dropout: k = 40, t = 21 aborts most rounds...
        let old = monte_carlo_aborts(1000, 40, 21, 0.3, 40);
        eprintln!("k = 40, t = 21 at n = 1000, 30% dropout: {old} of 40 rounds aborted");
        assert!(old >= 20, "k = 40 aborted {old} of 40 rounds");
        // ...the derived k and t none in 200 (the bound is 2^-20 per round).
        let derived = model(0.3, 0.0).derive(1000).unwrap();
        let aborts = monte_carlo_aborts(1000, derived.neighbours, derived.threshold, 0.3, 200);
        assert_eq!(aborts, 0, "{derived:?}");
        // n = 100, 10% dropout likewise.
        let derived = model(0.1, 0.0).derive(100).unwrap();
        let aborts = monte_carlo_aborts(100, derived.neighbours, derived.threshold, 0.1, 2000);
        assert_eq!(aborts, 0, "{derived:?}");
    }

    #[test]
    fn the_abort_bound_matches_monte_carlo_where_it_is_large() {
        // A small k where aborts are common enough to count: the union bound is
        // an upper bound, and not a loose one at this size.
        let (n, k, t, dropout) = (200, 8, 5, 0.3);
        let tails = Tails::new(n);
        let bound = n as f64 * tails.binomial_below(k, 1.0 - dropout, t);
        let rate = monte_carlo_aborts(n, k, t, dropout, 400) as f64 / 400.0;
        assert!(rate <= bound.min(1.0) + 0.05, "rate {rate}, bound {bound}");
        assert!(
            rate > 0.2,
            "rate {rate}: the test needs a visible abort rate"
        );
    }

    #[test]
    fn tails_agree_with_direct_sums() {
        let tails = Tails::new(11);
        // Bin(4, 0.5) < 2: (1 + 4) / 16.
        assert!((tails.binomial_below(4, 0.5, 2) - 5.0 / 16.0).abs() < 1e-12);
        // Hyp(10 others, 3 marked, 4 drawn) > 1: P[2] + P[3] = (3·21 + 1·7)/210.
        let expected = (3.0 * 21.0 + 7.0) / 210.0;
        assert!((tails.hypergeometric_above(3, 4, 1) - expected).abs() < 1e-12);
    }

    #[test]
    fn impossible_assumptions_are_refused_by_name() {
        let error = model(0.9, 0.4).derive(20).unwrap_err();
        assert!(error.to_string().contains("no k and t"), "{error}");
        assert!(
            model(1.0, 0.0)
                .derive(100)
                .unwrap_err()
                .to_string()
                .contains("dropout_rate")
        );
    }
}
