//! The randomness that draws the neighbour graph, from the nodes, by
//! commit-then-reveal.
//!
//! SecAgg+'s security (Bell et al., CCS 2020, §3–4) rests on the graph being
//! random: a coordinator that may choose it can put a target's neighbourhood
//! where its colluders are. So the permutation seed is no party's choice:
//!
//! ```text
//! advertise-keys  node u draws a 32-byte nonce r_u and signs, in its advert,
//!                 c_u = SHA-256(domain ‖ round ‖ u ‖ r_u)
//! graph-seed      the coordinator sends every advertiser the list of (v, c_v) of U1;
//!                 u checks its own entry, then reveals r_u
//! share-keys      the coordinator relays every r_v; each node checks each against
//!                 c_v and computes seed = SHA-256(domain ‖ round ‖ (v, c_v, r_v)…)
//! ```
//!
//! The coordinator fixes the list before it sees any nonce, and once fixed the
//! list decides the seed: an honest node's nonce is uniform and hidden until
//! then, so whatever the coordinator (with any colluding nodes, who also commit
//! before the reveals) puts in the list, the seed is uniform to it. A committed
//! node that does not reveal aborts the attempt (the coordinator may not leave
//! a nonce out after seeing the others: that would be a choice among seeds).
//! What is left to a lying coordinator is to abort an attempt whose graph it
//! dislikes and start another, each a fresh uniform draw: within an attempt it
//! cannot choose a graph, but retried without end it would eventually draw
//! one it likes. Each node therefore bounds the attempts it lets abort
//! ([`super::attempts`]), which caps the draws at a constant per round.
//!
//! Every statement a node signs after the reveal is bound to the seed
//! ([`bind_graph_seed`]), so nodes that were given different lists never count
//! each other's statements.

use std::collections::BTreeMap;

use super::error::{GraphSeedRule, SecAggError};
use super::messages::{GraphCommitments, GraphReveals, NodeId, RoundId};
use subtle::ConstantTimeEq;

const COMMITMENT_DOMAIN: &[u8] = b"cohort-secagg/v3/graph-commitment\0";
const SEED_DOMAIN: &[u8] = b"cohort-secagg/v3/graph-seed\0";
const BINDING_DOMAIN: &[u8] = b"cohort-secagg/v3/graph-bound-setup\0";

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// c = SHA-256(domain ‖ round ‖ node ‖ nonce): binding (SHA-256 is collision
/// resistant) and hiding (the nonce is 256 uniform bits). Round and node are in
/// it so no node can copy another's commitment.
pub fn commitment(round: RoundId, node: NodeId, nonce: &[u8; 32]) -> [u8; 32] {
    sha256(&[
        COMMITMENT_DOMAIN,
        &round.0.to_be_bytes(),
        &node.0.to_be_bytes(),
        nonce,
    ])
}

/// Whether `nonce` opens `committed` for `node` in `round`.
pub fn opens(round: RoundId, node: NodeId, nonce: &[u8; 32], committed: &[u8; 32]) -> bool {
    commitment(round, node, nonce).ct_eq(committed).into()
}

/// The commitment list as a map, if it is ascending without repeats.
pub(crate) fn commitments_by_node(
    list: &GraphCommitments,
    node: NodeId,
) -> Result<BTreeMap<NodeId, [u8; 32]>, SecAggError> {
    let map: BTreeMap<NodeId, [u8; 32]> = list.commitments.iter().copied().collect();
    let ascending = list
        .commitments
        .windows(2)
        .all(|pair| pair[0].0 < pair[1].0);
    if !ascending {
        return Err(refused(
            list.round,
            node,
            GraphSeedRule::MalformedList {
                detail: "the commitments are not ascending by node without repeats".into(),
            },
        ));
    }
    Ok(map)
}

/// The graph's seed from the committed nodes' revealed nonces, after checking
/// that `reveals` opens every commitment in `commitments` and names no other
/// node. `checker` is the node doing the check (for the error).
pub fn seed_from_reveals(
    round: RoundId,
    checker: NodeId,
    commitments: &BTreeMap<NodeId, [u8; 32]>,
    reveals: &GraphReveals,
) -> Result<[u8; 32], SecAggError> {
    if reveals.round != round {
        return Err(SecAggError::RoundMismatch {
            round,
            node: checker,
            what: super::messages::MessageKind::GraphReveals,
            got: reveals.round,
        });
    }
    let nonces: BTreeMap<NodeId, [u8; 32]> = reveals.nonces.iter().copied().collect();
    if !reveals.nonces.windows(2).all(|pair| pair[0].0 < pair[1].0) {
        return Err(refused(
            round,
            checker,
            GraphSeedRule::MalformedList {
                detail: "the nonces are not ascending by node without repeats".into(),
            },
        ));
    }
    if let Some(extra) = nonces.keys().find(|node| !commitments.contains_key(node)) {
        return Err(refused(
            round,
            checker,
            GraphSeedRule::Uncommitted { node: *extra },
        ));
    }
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(SEED_DOMAIN);
    context.update(&round.0.to_be_bytes());
    context.update(&(commitments.len() as u64).to_be_bytes());
    for (&node, committed) in commitments {
        let Some(nonce) = nonces.get(&node) else {
            return Err(refused(round, checker, GraphSeedRule::Unrevealed { node }));
        };
        if !opens(round, node, nonce, committed) {
            return Err(refused(round, checker, GraphSeedRule::WrongNonce { node }));
        }
        context.update(&node.0.to_be_bytes());
        context.update(committed);
        context.update(nonce);
    }
    let mut seed = [0u8; 32];
    seed.copy_from_slice(context.finish().as_ref());
    Ok(seed)
}

/// A setup digest extended with the graph seed: what a node's statements after
/// the reveal are bound to.
pub fn bind_graph_seed(setup_digest: &[u8; 32], graph_seed: &[u8; 32]) -> [u8; 32] {
    sha256(&[BINDING_DOMAIN, setup_digest, graph_seed])
}

pub(crate) fn refused(round: RoundId, node: NodeId, rule: GraphSeedRule) -> SecAggError {
    SecAggError::GraphSeedRefused { round, node, rule }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reveals(round: RoundId, nonces: &[(u32, u8)]) -> GraphReveals {
        GraphReveals {
            round,
            nonces: nonces.iter().map(|&(n, b)| (NodeId(n), [b; 32])).collect(),
        }
    }

    fn committed(round: RoundId, nonces: &[(u32, u8)]) -> BTreeMap<NodeId, [u8; 32]> {
        nonces
            .iter()
            .map(|&(n, b)| (NodeId(n), commitment(round, NodeId(n), &[b; 32])))
            .collect()
    }

    #[test]
    fn the_seed_needs_every_committed_nonce_and_no_other() {
        let round = RoundId(7);
        let all = [(1, 10), (4, 11), (9, 12)];
        let commitments = committed(round, &all);
        let seed =
            seed_from_reveals(round, NodeId(1), &commitments, &reveals(round, &all)).unwrap();
        // Any other nonce gives another seed: no party's nonce is ignored.
        let other = seed_from_reveals(
            round,
            NodeId(1),
            &committed(round, &[(1, 10), (4, 11), (9, 13)]),
            &reveals(round, &[(1, 10), (4, 11), (9, 13)]),
        )
        .unwrap();
        assert_ne!(seed, other);

        let rule = |r: Result<[u8; 32], SecAggError>| match r {
            Err(SecAggError::GraphSeedRefused { rule, .. }) => rule,
            other => panic!("expected a graph-seed refusal, got {other:?}"),
        };
        assert_eq!(
            rule(seed_from_reveals(
                round,
                NodeId(1),
                &commitments,
                &reveals(round, &all[..2])
            )),
            GraphSeedRule::Unrevealed { node: NodeId(9) }
        );
        assert_eq!(
            rule(seed_from_reveals(
                round,
                NodeId(1),
                &commitments,
                &reveals(round, &[(1, 10), (4, 99), (9, 12)])
            )),
            GraphSeedRule::WrongNonce { node: NodeId(4) }
        );
        assert_eq!(
            rule(seed_from_reveals(
                round,
                NodeId(1),
                &commitments,
                &reveals(round, &[(1, 10), (4, 11), (5, 1), (9, 12)])
            )),
            GraphSeedRule::Uncommitted { node: NodeId(5) }
        );
        // A nonce from another round, or for another node, opens nothing.
        assert!(!opens(
            RoundId(8),
            NodeId(1),
            &[10; 32],
            &commitments[&NodeId(1)]
        ));
        assert!(!opens(
            round,
            NodeId(4),
            &[10; 32],
            &commitments[&NodeId(1)]
        ));
    }
}
