//! Who masks with whom: SecAgg+'s sparse neighbourhood graph.
//!
//! The participants' ids, sorted, are shuffled by a permutation drawn from the
//! round's graph seed, and placed on a ring; each node's neighbours are the k/2 nodes on either
//! side (plus the diametrically opposite node when k is odd, which needs n even): the
//! Harary graph H(k, n), k-regular and k-connected. With k ≥ n − 1 it is the complete
//! graph of the 2017 protocol. Every party derives the same graph from the same
//! public inputs: the permutation comes from the graph seed, which the nodes
//! draw together by commit-then-reveal ([`super::graph_seed`]), so the
//! coordinator cannot choose the graph.

use std::collections::HashMap;

use ring::hkdf;

use super::config::SecAggConfig;
use super::error::SecAggError;
use super::messages::{NodeId, RoundId};
use super::prg::{Prg, PrgSeed, SEED_LEN};

/// A round's neighbourhood graph.
#[derive(Debug, Clone)]
pub struct NeighbourGraph {
    /// The participants in ring order.
    ring: Vec<NodeId>,
    position: HashMap<NodeId, usize>,
    /// k, already reduced to n − 1 at most.
    degree: usize,
}

struct SeedLen;

impl hkdf::KeyType for SeedLen {
    fn len(&self) -> usize {
        SEED_LEN
    }
}

/// Expands the graph seed into the permutation's PRG seed, bound to the round.
fn permutation_seed(round: RoundId, graph_seed: &[u8; 32]) -> Result<PrgSeed, SecAggError> {
    let round_bytes = round.0.to_be_bytes();
    let info: [&[u8]; 2] = [b"cohort-secagg/v1/neighbour-graph", &round_bytes];
    let mut seed = PrgSeed::from_bytes([0; SEED_LEN]);
    hkdf::Salt::new(hkdf::HKDF_SHA256, b"cohort-secagg/v1")
        .extract(graph_seed)
        .expand(&info, SeedLen)
        .and_then(|okm| okm.fill(seed.as_mut_bytes()))
        .map_err(|_| SecAggError::Crypto("HKDF expand of the graph seed"))?;
    Ok(seed)
}

impl NeighbourGraph {
    /// The graph before its seed is known: nobody is anybody's neighbour.
    pub(crate) fn empty() -> Self {
        Self {
            ring: Vec::new(),
            position: HashMap::new(),
            degree: 0,
        }
    }

    /// Checks that a Harary graph over `participants` exists for `config`:
    /// no repeated node, and k and n not both odd. Returns the ids sorted.
    pub fn check_shape(
        config: &SecAggConfig,
        participants: &[NodeId],
        round: RoundId,
    ) -> Result<Vec<NodeId>, SecAggError> {
        let mut ring = participants.to_vec();
        ring.sort_unstable();
        ring.dedup();
        if ring.len() != participants.len() {
            return Err(SecAggError::InvalidConfig(format!(
                "round {round}: the participant list repeats a node"
            )));
        }
        let n = ring.len();
        let degree = config.neighbourhood_size(n);
        if degree % 2 == 1 && n % 2 == 1 {
            return Err(SecAggError::InvalidConfig(format!(
                "no graph on {n} nodes gives every node {degree} neighbours"
            )));
        }
        Ok(ring)
    }

    /// The Harary graph of degree `config.neighbourhood_size(n)` over `participants`
    /// (any order; duplicates are an error), shuffled by `graph_seed`.
    pub fn harary(
        config: &SecAggConfig,
        participants: &[NodeId],
        round: RoundId,
        graph_seed: &[u8; 32],
    ) -> Result<Self, SecAggError> {
        let mut ring = Self::check_shape(config, participants, round)?;
        let n = ring.len();
        let degree = config.neighbourhood_size(n);
        // Fisher–Yates over the sorted ids.
        let mut prg = Prg::new(&permutation_seed(round, graph_seed)?);
        for i in (1..n).rev() {
            let j = prg.below(i as u64 + 1)? as usize;
            ring.swap(i, j);
        }
        let position = ring.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        Ok(Self {
            ring,
            position,
            degree,
        })
    }

    /// Each node's number of neighbours.
    pub fn degree(&self) -> usize {
        self.degree
    }

    /// How many nodes take part in the round.
    pub fn participants(&self) -> usize {
        self.ring.len()
    }

    /// Whether `node` is one of the round's participants.
    pub fn contains(&self, node: NodeId) -> bool {
        self.position.contains_key(&node)
    }

    /// Whether `a` and `b` mask with each other (a node is not its own neighbour).
    pub fn are_neighbours(&self, a: NodeId, b: NodeId) -> bool {
        let (Some(&pa), Some(&pb)) = (self.position.get(&a), self.position.get(&b)) else {
            return false;
        };
        let n = self.ring.len();
        let gap = (pa + n - pb) % n;
        let distance = gap.min(n - gap);
        if distance == 0 {
            return false;
        }
        distance <= self.degree / 2 || (self.degree % 2 == 1 && 2 * distance == n)
    }

    /// The neighbours of `node`, sorted by id; empty if it is not a participant.
    pub fn neighbours(&self, node: NodeId) -> Vec<NodeId> {
        let Some(&p) = self.position.get(&node) else {
            return Vec::new();
        };
        let n = self.ring.len();
        let mut out: Vec<NodeId> = if self.degree >= n - 1 {
            self.ring.iter().copied().filter(|&id| id != node).collect()
        } else {
            let half = self.degree / 2;
            let mut around: Vec<NodeId> = (1..=half)
                .flat_map(|d| [self.ring[(p + d) % n], self.ring[(p + n - d) % n]])
                .collect();
            if self.degree % 2 == 1 {
                around.push(self.ring[(p + n / 2) % n]);
            }
            around
        };
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32) -> Vec<NodeId> {
        (0..n).map(|i| NodeId(i * 3 + 1)).collect()
    }

    fn config(neighbours: usize) -> SecAggConfig {
        SecAggConfig {
            neighbours,
            threshold: neighbours / 2 + 1,
            ..SecAggConfig::default()
        }
    }

    #[test]
    fn regular_symmetric_and_consistent() {
        for (n, k) in [
            (10, 4),
            (10, 9),
            (10, 3),
            (50, 40),
            (101, 40),
            (12, 5),
            (7, 20),
        ] {
            let graph = NeighbourGraph::harary(&config(k), &ids(n), RoundId(3), &[5; 32]).unwrap();
            let degree = k.min(n as usize - 1);
            for &a in &ids(n) {
                let neighbours = graph.neighbours(a);
                assert_eq!(neighbours.len(), degree, "n {n} k {k}");
                assert!(!neighbours.contains(&a));
                for &b in &ids(n) {
                    assert_eq!(graph.are_neighbours(a, b), neighbours.contains(&b));
                    assert_eq!(graph.are_neighbours(a, b), graph.are_neighbours(b, a));
                }
            }
        }
    }

    #[test]
    fn the_graph_seed_picks_the_graph() {
        let participants = ids(100);
        let a = NeighbourGraph::harary(&config(4), &participants, RoundId(1), &[1; 32]).unwrap();
        let same = NeighbourGraph::harary(&config(4), &participants, RoundId(1), &[1; 32]).unwrap();
        let other_seed =
            NeighbourGraph::harary(&config(4), &participants, RoundId(1), &[2; 32]).unwrap();
        let other_round =
            NeighbourGraph::harary(&config(4), &participants, RoundId(2), &[1; 32]).unwrap();
        assert_eq!(a.ring, same.ring);
        assert_ne!(a.ring, other_seed.ring);
        assert_ne!(a.ring, other_round.ring);
        // Not the identity: neighbours are not simply adjacent ids.
        assert_ne!(a.neighbours(NodeId(1)), vec![NodeId(4), NodeId(7)]);
    }

    #[test]
    fn refuses_duplicates_and_impossible_degrees() {
        let mut participants = ids(5);
        participants.push(NodeId(1));
        assert!(NeighbourGraph::harary(&config(2), &participants, RoundId(1), &[0; 32]).is_err());
        assert!(NeighbourGraph::harary(&config(3), &ids(11), RoundId(1), &[0; 32]).is_err());
    }
}
