//! A round's secure-aggregation parameters, checked against the round's size before
//! anything is sent.

use serde::{Deserialize, Serialize};

use super::error::SecAggError;

/// The longest model (in coordinates) a round may aggregate. It keeps every mask
/// (≤ 8 bytes of AES-256 counter-mode keystream per coordinate: at most 2^29 blocks per key,
/// where AES's distance from a random function, about q²/2^129, is negligible) and
/// every size computation inside `u64`.
pub const MAX_VECTOR_LEN: usize = 1 << 30;

/// The finest quantization used: 2^40 levels per clip range. The scaling is done in
/// f64 (53-bit mantissa); capped here, its rounding stays below 2^-11 of a step, and
/// no model needs a resolution finer than 2^-40 of its clip range.
const MAX_SCALE: u64 = 1 << 40;

/// SecAgg+ defaults (Bell et al. 2020): about 40 neighbours suffice for hundreds to
/// thousands of nodes at the failure and leakage probabilities studied there.
const DEFAULT_NEIGHBOURS: usize = 40;

/// Parameters of a secure-aggregation round. Every party of a round must use the same.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SecAggConfig {
    /// k: how many neighbours each node masks with and shares its secrets among. With
    /// k ≥ n − 1 every node is everyone's neighbour: the 2017 protocol.
    pub neighbours: usize,
    /// t: how many of a node's neighbours must answer in the unmasking stage to
    /// rebuild one of its secrets. Must exceed half the neighbourhood (see
    /// [`SecAggConfig::validate`]).
    pub threshold: usize,
    /// Each update coordinate is clipped to ±clip_range before quantization.
    pub clip_range: f64,
    /// b: arithmetic is in Z_M with M = 2^b, and a masked value travels in b bits.
    pub bits: u32,
}

impl Default for SecAggConfig {
    /// k = 40, t = 21, clip 1.0, 32 bits: for rounds of at least 41 nodes (smaller
    /// rounds: [`SecAggConfig::for_participants`]).
    fn default() -> Self {
        Self {
            neighbours: DEFAULT_NEIGHBOURS,
            threshold: DEFAULT_NEIGHBOURS / 2 + 1,
            clip_range: 1.0,
            bits: 32,
        }
    }
}

impl SecAggConfig {
    /// The defaults, with the neighbourhood shrunk to everyone (k = n − 1) when the
    /// round has at most 41 nodes, and the threshold a bare majority of it.
    pub fn for_participants(n_participants: usize) -> Self {
        let neighbours = DEFAULT_NEIGHBOURS.min(n_participants.saturating_sub(1));
        Self {
            neighbours,
            threshold: neighbours / 2 + 1,
            ..Self::default()
        }
    }

    /// The neighbourhood size actually used with `n_participants`: min(k, n − 1).
    pub fn neighbourhood_size(&self, n_participants: usize) -> usize {
        self.neighbours.min(n_participants.saturating_sub(1))
    }

    /// The largest quantized magnitude one node may contribute per coordinate, chosen
    /// so that a sum of `n_participants` of them cannot wrap modulo 2^b (and at most
    /// 2^40).
    pub(crate) fn levels(&self, n_participants: usize) -> u64 {
        // Signed sums must stay within ±(2^(b−1) − 1): there the residue mod 2^b
        // determines the sum, so the server reads it back exactly. If n values of
        // magnitude q could add to 2^(b−1) or more, a large positive sum would be
        // indistinguishable from a negative one. Hence n · q ≤ 2^(b−1) − 1.
        let half = if self.bits == 0 || self.bits > 64 {
            0
        } else {
            (1u64 << (self.bits - 1)) - 1
        };
        (half / (n_participants.max(1) as u64)).min(MAX_SCALE)
    }

    /// Checks the parameters for a round of `n_participants` nodes aggregating models
    /// of `vector_len` coordinates.
    pub fn validate(&self, n_participants: usize, vector_len: usize) -> Result<(), SecAggError> {
        let invalid = |why: String| Err(SecAggError::InvalidConfig(why));
        if n_participants < 2 {
            return invalid(format!(
                "a round needs at least 2 participants, got {n_participants}"
            ));
        }
        if !(2..=64).contains(&self.bits) {
            return invalid(format!("bits must be in 2..=64, got {}", self.bits));
        }
        if !(self.clip_range.is_finite() && self.clip_range > 0.0) {
            return invalid(format!(
                "clip_range must be positive and finite, got {}",
                self.clip_range
            ));
        }
        if vector_len == 0 || vector_len > MAX_VECTOR_LEN {
            return invalid(format!(
                "the model must have 1 to {MAX_VECTOR_LEN} coordinates, got {vector_len}"
            ));
        }
        if self.neighbours == 0 {
            return invalid("neighbours must be at least 1".to_owned());
        }
        let k = self.neighbourhood_size(n_participants);
        if k % 2 == 1 && n_participants % 2 == 1 {
            // n · k would be odd, and a graph's degrees always sum to an even number.
            return invalid(format!(
                "no graph on {n_participants} nodes gives every node {k} neighbours; use an even number of neighbours"
            ));
        }
        if self.threshold < 1 || self.threshold > k {
            return invalid(format!(
                "threshold must be in 1..={k} (the neighbourhood size for {n_participants} participants), got {}",
                self.threshold
            ));
        }
        if 2 * self.threshold <= k {
            // With t ≤ k/2, two disjoint groups of t neighbours exist: a coordinator
            // claiming to one that u survived and to the other that u dropped would
            // collect both b_u and sk_u, and so u's update, despite every node's
            // refusal to reveal both.
            return invalid(format!(
                "threshold must exceed half the neighbourhood ({k}), got {}",
                self.threshold
            ));
        }
        if self.levels(n_participants) < 1 {
            return invalid(format!(
                "{} bits cannot hold a sum of {n_participants} inputs without wrapping",
                self.bits
            ));
        }
        Ok(())
    }
}

/// A node's own lower bounds on a round. The coordinator chooses each round's
/// participants, k and t; a node that trusted them could be put in a round of two,
/// or given t = 1, where "only the sum" means its own update. So each node
/// refuses a round below its own policy, whatever the coordinator says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePolicy {
    /// The fewest participants a round may have.
    pub min_participants: usize,
    /// The lowest threshold t a round may use. Any sum that a coordinator can
    /// unmask with this node's input in it also holds the inputs of at least
    /// t − c of its neighbours, c being how many of them collude (see the crate
    /// README's threat model).
    pub min_threshold: usize,
}

impl Default for NodePolicy {
    /// At least 3 participants and t ≥ 2: never a sum of this node's input alone
    /// or with a single other.
    fn default() -> Self {
        Self {
            min_participants: 3,
            min_threshold: 2,
        }
    }
}

impl NodePolicy {
    /// Refuses a round of `n_participants` with `config` that falls below this
    /// policy, naming the bound.
    pub fn check(&self, config: &SecAggConfig, n_participants: usize) -> Result<(), SecAggError> {
        let refuse = |limit, got, needed| Err(SecAggError::BelowNodePolicy { limit, got, needed });
        if n_participants < self.min_participants {
            return refuse(
                PolicyLimit::Participants,
                n_participants,
                self.min_participants,
            );
        }
        if config.threshold < self.min_threshold {
            return refuse(PolicyLimit::Threshold, config.threshold, self.min_threshold);
        }
        Ok(())
    }
}

/// Which of a node's own bounds a round fell below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyLimit {
    /// [`NodePolicy::min_participants`].
    Participants,
    /// [`NodePolicy::min_threshold`].
    Threshold,
}

impl std::fmt::Display for PolicyLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PolicyLimit::Participants => "participants",
            PolicyLimit::Threshold => "threshold t",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_refuses_rounds_below_its_own_policy() {
        let policy = NodePolicy {
            min_participants: 5,
            min_threshold: 3,
        };
        let config = SecAggConfig::for_participants(10);
        policy.check(&config, 10).unwrap();
        assert_eq!(
            policy.check(&config, 4),
            Err(SecAggError::BelowNodePolicy {
                limit: PolicyLimit::Participants,
                got: 4,
                needed: 5
            })
        );
        let low = SecAggConfig {
            neighbours: 3,
            threshold: 2,
            ..config
        };
        low.validate(10, 5).unwrap();
        let error = policy.check(&low, 10).unwrap_err();
        assert_eq!(
            error,
            SecAggError::BelowNodePolicy {
                limit: PolicyLimit::Threshold,
                got: 2,
                needed: 3
            }
        );
        assert!(error.to_string().contains("threshold t"), "{error}");
        // The default refuses a round of two.
        assert!(
            NodePolicy::default()
                .check(&SecAggConfig::for_participants(2), 2)
                .is_err()
        );
    }

    #[test]
    fn defaults_fit_small_and_large_rounds() {
        SecAggConfig::default().validate(1000, 1_000_000).unwrap();
        SecAggConfig::default().validate(41, 10).unwrap();
        for n in 2..60 {
            SecAggConfig::for_participants(n).validate(n, 10).unwrap();
        }
        assert_eq!(SecAggConfig::for_participants(10).neighbours, 9);
        assert_eq!(SecAggConfig::for_participants(10).threshold, 5);
    }

    #[test]
    fn refuses_bad_parameters() {
        let ok = SecAggConfig::for_participants(10);
        let bad = [
            SecAggConfig { threshold: 0, ..ok },
            SecAggConfig {
                threshold: 10,
                ..ok
            },
            SecAggConfig { threshold: 4, ..ok },
            SecAggConfig {
                neighbours: 0,
                ..ok
            },
            SecAggConfig { bits: 1, ..ok },
            SecAggConfig { bits: 65, ..ok },
            SecAggConfig {
                clip_range: f64::NAN,
                ..ok
            },
            SecAggConfig {
                clip_range: 0.0,
                ..ok
            },
        ];
        for config in bad {
            assert!(
                matches!(config.validate(10, 5), Err(SecAggError::InvalidConfig(_))),
                "{config:?}"
            );
        }
        // Exactly half is not a majority: two disjoint groups of 4 exist among 8.
        let half = SecAggConfig {
            neighbours: 8,
            threshold: 4,
            ..ok
        };
        assert!(half.validate(9, 5).is_err());
        assert!(
            SecAggConfig {
                threshold: 5,
                ..half
            }
            .validate(9, 5)
            .is_ok()
        );
        assert!(ok.validate(10, 0).is_err());
        assert!(ok.validate(1, 5).is_err());
        // Odd degree on an odd number of nodes is impossible.
        let odd = SecAggConfig {
            neighbours: 5,
            threshold: 3,
            ..ok
        };
        assert!(odd.validate(11, 5).is_err());
        assert!(odd.validate(12, 5).is_ok());
        // 4 bits hold sums in ±7: 8 nodes of magnitude ≥ 1 could wrap.
        let narrow = SecAggConfig { bits: 4, ..ok };
        assert!(narrow.validate(7, 5).is_ok());
        assert!(narrow.validate(8, 5).is_err());
    }
}
