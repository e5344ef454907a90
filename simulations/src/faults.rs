//! A scenario's `[faults]`: which simulated nodes drop out, straggle or attack,
//! turned into one [`FaultPlan`] per node that the node acts out itself (see
//! `cohort_client::fault`). Nothing is faked on the coordinator's side: a
//! dropped node does not upload, a straggler uploads late and is refused past
//! the deadline, a malicious node uploads a tampered model through the same
//! mutual-TLS gRPC as everyone.
//!
//! ```toml
//! [faults]
//! dropout = { probability = 0.1, stage = "after_training" }   # every node, each fit task
//! stragglers = { fraction = 0.2, latency = { distribution = "exponential", mean_secs = 3.0 } }
//! malicious = { fraction = 0.2, attack = { kind = "sign_flip" } }
//! # attack = { kind = "scale", factor = -4.0 } or { kind = "gaussian_noise", std = 1.0 }
//! ```
//!
//! Which nodes straggle and which attack is a seeded choice of
//! round(fraction · nodes) nodes; each node's own draws (drop or not, how
//! late) come from its plan's seed, derived from the scenario's seed and the
//! node's index. The same scenario and seed replay the same faults.

use cohort_client::fault::{Attack, Dropout, FaultError, FaultPlan, Latency};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::scenario::ScenarioError;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
/// A scenario's `[faults]` table; each kind of fault is off unless set.
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Every node drops out of each fit task with this probability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<Dropout>,
    /// Nodes that upload late, and how late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stragglers: Option<Stragglers>,
    /// Nodes that upload a tampered model, and how they tamper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malicious: Option<Malicious>,
}

/// A fraction of the nodes uploads late.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Stragglers {
    /// Share of the nodes that straggle, in [0, 1]; rounded to a node count.
    pub fraction: f64,
    /// How long a straggler waits before uploading, drawn per fit task.
    pub latency: Latency,
}

/// A fraction of the nodes attacks in every round it is sampled for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Malicious {
    /// Share of the nodes that attack, in [0, 1]; rounded to a node count.
    pub fraction: f64,
    /// How they tamper with their update.
    pub attack: Attack,
}

/// Stream of the seeded choice of stragglers, and of malicious nodes.
const STRAGGLER_STREAM: u64 = 1;
const MALICIOUS_STREAM: u64 = 2;

fn named(prefix: &str, error: FaultError) -> ScenarioError {
    ScenarioError::Invalid {
        key: format!("{prefix}.{}", error.field),
        problem: error.problem,
    }
}

fn fraction(key: &str, value: f64) -> Result<(), ScenarioError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ScenarioError::Invalid {
            key: key.to_owned(),
            problem: format!("must be in [0, 1], got {value}"),
        })
    }
}

impl Faults {
    /// Refuses impossible settings, naming the key (`faults.malicious.fraction`, …).
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if let Some(dropout) = &self.dropout {
            dropout.validate().map_err(|e| named("faults.dropout", e))?;
        }
        if let Some(stragglers) = &self.stragglers {
            fraction("faults.stragglers.fraction", stragglers.fraction)?;
            stragglers
                .latency
                .validate()
                .map_err(|e| named("faults.stragglers.latency", e))?;
        }
        if let Some(malicious) = &self.malicious {
            fraction("faults.malicious.fraction", malicious.fraction)?;
            malicious
                .attack
                .validate()
                .map_err(|e| named("faults.malicious.attack", e))?;
        }
        Ok(())
    }

    /// Node indices of the malicious nodes, ascending.
    pub fn malicious_nodes(&self, nodes: usize, seed: u64) -> Vec<usize> {
        self.malicious.map_or_else(Vec::new, |m| {
            choose(nodes, m.fraction, seed, MALICIOUS_STREAM)
        })
    }

    /// One plan per node, in node order: each with the scenario's dropout and
    /// its own seed, plus latency for stragglers and an attack for malicious
    /// nodes.
    pub fn plans(&self, nodes: usize, seed: u64) -> Vec<FaultPlan> {
        let stragglers = self.stragglers.map_or_else(Vec::new, |s| {
            choose(nodes, s.fraction, seed, STRAGGLER_STREAM)
        });
        let malicious = self.malicious_nodes(nodes, seed);
        (0..nodes)
            .map(|i| FaultPlan {
                // Distinct per node, fixed by the scenario's seed.
                seed: seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                dropout: self.dropout,
                latency: self
                    .stragglers
                    .filter(|_| stragglers.contains(&i))
                    .map(|s| s.latency),
                attack: self
                    .malicious
                    .filter(|_| malicious.contains(&i))
                    .map(|m| m.attack),
            })
            .collect()
    }
}

/// A seeded choice of round(fraction · nodes) node indices, ascending.
fn choose(nodes: usize, fraction: f64, seed: u64, stream: u64) -> Vec<usize> {
    let count = ((fraction * nodes as f64).round() as usize).min(nodes);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut all: Vec<usize> = (0..nodes).collect();
    all.shuffle(&mut rng);
    let mut chosen = all[..count].to_vec();
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use cohort_client::fault::DropoutStage;

    #[test]
    fn fractions_pick_that_many_nodes_reproducibly() {
        let faults = Faults {
            dropout: Some(Dropout {
                probability: 0.1,
                stage: DropoutStage::BeforeTraining,
            }),
            stragglers: Some(Stragglers {
                fraction: 0.3,
                latency: Latency::Fixed { secs: 1.0 },
            }),
            malicious: Some(Malicious {
                fraction: 0.2,
                attack: Attack::SignFlip,
            }),
        };
        let plans = faults.plans(10, 7);
        assert_eq!(plans.len(), 10);
        assert_eq!(plans.iter().filter(|p| p.latency.is_some()).count(), 3);
        assert_eq!(plans.iter().filter(|p| p.attack.is_some()).count(), 2);
        assert!(plans.iter().all(|p| p.dropout == faults.dropout));
        assert_eq!(plans, faults.plans(10, 7));
        assert_eq!(faults.malicious_nodes(10, 7).len(), 2);
        let seeds: std::collections::BTreeSet<u64> = plans.iter().map(|p| p.seed).collect();
        assert_eq!(seeds.len(), 10, "each node draws its own faults");
        assert!(Faults::default().plans(4, 1).iter().all(|p| *p
            == FaultPlan {
                seed: p.seed,
                ..FaultPlan::default()
            }));
    }
}
