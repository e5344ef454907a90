//! A coordinator that grinds the neighbour graph, against the commit-then-reveal
//! of the graph seed.
//!
//! SecAgg+ hides a node's input from a coordinator with c colluding nodes only
//! while fewer than t of the node's k neighbours collude: t shares of the node's
//! self-mask seed and t of its mask key rebuild both secrets. The graph is
//! random, so a target rarely has t colluding neighbours; a coordinator that
//! may pick the seed tries seeds until it does.
//! [`a_coordinator_that_picks_the_seed_surrounds_a_target_with_colluders`]
//! shows that it finds one quickly: the test has teeth. Since the seed comes
//! from nonces the nodes committed to before any was revealed, the coordinator
//! (with its colluders) has nothing left to try within an attempt: the next
//! tests make each move it has and show the honest nodes refuse it, naming
//! the rule. Across attempts it can still abort and retry until a draw wins
//! ([`retrying_without_a_budget_hands_the_target_to_colluders`]); a node's
//! attempt ledger bounds that
//! ([`the_attempt_budget_stops_the_retries`], [`crate::secagg::attempts`]).

use std::collections::{BTreeMap, BTreeSet};

use super::harness::{Federation, Staged, staged};
use crate::secagg::graph::NeighbourGraph;
use crate::secagg::graph_seed::{commitment, seed_from_reveals};
use crate::secagg::{
    AdvertiseKeys, AttemptBudget, AttemptLedger, GraphCommitments, GraphReveals, GraphSeedRule,
    NodeId, NodePolicy, Participant, RoundId, SecAggConfig, SecAggError, Stage,
};

/// 20 nodes, each masking with k = 6 of them, t = 4.
fn config() -> SecAggConfig {
    SecAggConfig {
        neighbours: 6,
        threshold: 4,
        ..SecAggConfig::for_participants(20)
    }
}

fn federation() -> Federation {
    Federation::new(20, 8, config(), RoundId(50))
}

#[test]
fn a_coordinator_that_picks_the_seed_surrounds_a_target_with_colluders() {
    // Five colluders among 19 others: a random graph gives the target t = 4 or
    // more of them as neighbours with probability (5·C(14,2) + C(14,1)) /
    // C(19,6) ≈ 1.7 %, so a few hundred seeds find one.
    let federation = federation();
    let target = federation.ids[0];
    let colluders: BTreeSet<NodeId> = federation.ids[1..6].iter().copied().collect();
    let ground = (0u64..5_000).find_map(|i| {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&i.to_be_bytes());
        let graph = NeighbourGraph::harary(&config(), &federation.ids, federation.round, &seed)
            .expect("the shape is valid");
        let held = graph
            .neighbours(target)
            .iter()
            .filter(|v| colluders.contains(v))
            .count();
        (held >= config().threshold).then_some((i, held))
    });
    let (tries, held) = ground.expect("grinding finds a graph that hands the target to colluders");
    assert!(held >= 4 && tries < 5_000);
}

/// A round whose nodes have advertised (with their commitments) and revealed
/// their nonces to the coordinator, who holds the honest reveal list.
fn revealed() -> (Staged, GraphCommitments, GraphReveals) {
    let mut round = staged(federation(), Stage::GraphSeed);
    let commitments = round.aggregator.graph_commitments();
    for node in round.nodes.values_mut() {
        let reveal = node.reveal_graph_nonce(&commitments).unwrap();
        round.aggregator.receive_graph_reveal(reveal).unwrap();
    }
    let reveals = round.aggregator.graph_reveals();
    (round, commitments, reveals)
}

fn refusal(result: Result<impl std::fmt::Debug, SecAggError>) -> GraphSeedRule {
    match result {
        Err(SecAggError::GraphSeedRefused { rule, .. }) => rule,
        other => panic!("expected a graph-seed refusal, got {other:?}"),
    }
}

#[test]
fn a_nonce_cannot_be_changed_after_the_others_are_seen() {
    // The coordinator has seen every honest nonce and now picks the
    // colluder's to grind the seed: the colluder's signed commitment binds it.
    let (mut round, _, honest) = revealed();
    let colluder = round.federation.ids[1];
    let asked = round.federation.ids[0];
    let mut ground = honest.clone();
    for (node, nonce) in &mut ground.nonces {
        if *node == colluder {
            nonce[0] ^= 1;
        }
    }
    let adverts = round.adverts.values().cloned().collect::<Vec<_>>();
    let verifier = round.federation.verifier.clone();
    let node = round.nodes.get_mut(&asked).unwrap();
    assert_eq!(
        refusal(node.share_keys(&ground, &adverts, &verifier)),
        GraphSeedRule::WrongNonce { node: colluder }
    );
    // Nor does an aggregator take a nonce that does not open its commitment.
    let mut fresh = staged(federation(), Stage::GraphSeed);
    let commitments = fresh.aggregator.graph_commitments();
    let mut reveal = fresh
        .nodes
        .get_mut(&colluder)
        .unwrap()
        .reveal_graph_nonce(&commitments)
        .unwrap();
    reveal.nonce[0] ^= 1;
    assert!(matches!(
        fresh.aggregator.receive_graph_reveal(reveal),
        Err(SecAggError::Malformed { node, .. }) if node == colluder
    ));
}

#[test]
fn a_nonce_cannot_be_left_out_after_the_others_are_seen() {
    // Leaving out one committed nonce is a choice among seeds: refused by the
    // nodes, and the aggregator will not draw a graph without it.
    let (mut round, _, honest) = revealed();
    let left_out = round.federation.ids[5];
    let mut partial = honest.clone();
    partial.nonces.retain(|(node, _)| *node != left_out);
    let asked = round.federation.ids[0];
    let verifier = round.federation.verifier.clone();
    let node = round.nodes.get_mut(&asked).unwrap();
    assert_eq!(
        refusal(node.share_keys(&partial, &[], &verifier)),
        GraphSeedRule::Unrevealed { node: left_out }
    );

    let mut short = staged(federation(), Stage::GraphSeed);
    let commitments = short.aggregator.graph_commitments();
    for (&id, node) in short.nodes.iter_mut() {
        let reveal = node.reveal_graph_nonce(&commitments).unwrap();
        if id != left_out {
            short.aggregator.receive_graph_reveal(reveal).unwrap();
        }
    }
    assert_eq!(
        short.aggregator.close_graph_seed(),
        Err(SecAggError::GraphNonceMissing {
            round: RoundId(50),
            node: left_out
        })
    );
    // The coordinator learns who aborted the attempt (and leaves it out of
    // the round's next attempt).
    assert_eq!(short.aggregator.unrevealed(), vec![left_out]);
}

#[test]
fn the_commitment_list_must_hold_the_node_and_only_participants() {
    let mut round = staged(federation(), Stage::GraphSeed);
    let honest = round.aggregator.graph_commitments();
    let asked = round.federation.ids[0];
    let stranger = NodeId(9_999);
    let without_self = GraphCommitments {
        commitments: honest
            .commitments
            .iter()
            .copied()
            .filter(|(node, _)| *node != asked)
            .collect(),
        ..honest.clone()
    };
    let mut altered = honest.clone();
    altered.commitments[0].1[0] ^= 1;
    let mut with_stranger = honest.clone();
    with_stranger.commitments.push((stranger, [1; 32]));
    let too_few = GraphCommitments {
        commitments: honest.commitments[..3].to_vec(),
        ..honest.clone()
    };
    let mut unsorted = honest.clone();
    unsorted.commitments.swap(0, 1);
    let node = round.nodes.get_mut(&asked).unwrap();
    assert_eq!(
        refusal(node.reveal_graph_nonce(&without_self)),
        GraphSeedRule::OwnCommitmentAltered
    );
    assert_eq!(
        refusal(node.reveal_graph_nonce(&altered)),
        GraphSeedRule::OwnCommitmentAltered
    );
    assert_eq!(
        refusal(node.reveal_graph_nonce(&with_stranger)),
        GraphSeedRule::NotAParticipant { node: stranger }
    );
    assert_eq!(
        refusal(node.reveal_graph_nonce(&too_few)),
        GraphSeedRule::TooFewCommitments { got: 3, needed: 4 }
    );
    assert!(matches!(
        refusal(node.reveal_graph_nonce(&unsorted)),
        GraphSeedRule::MalformedList { .. }
    ));
    // Refusals leave the node where it was: the honest list still works.
    node.reveal_graph_nonce(&honest).unwrap();
}

#[test]
fn a_commitment_listed_for_a_neighbour_must_be_the_one_it_signed() {
    // The coordinator lists its own commitment (with a nonce it knows) for
    // honest nodes. That is harmless to the seed (the list was fixed before
    // the asked node's nonce was known), and a node relayed such a
    // neighbour's real advert sees it disagree with the list and refuses it.
    // (A coordinator that relays no advert for it just makes it absent, as
    // a dropout.)
    let mut round = staged(federation(), Stage::GraphSeed);
    let mut list = round.aggregator.graph_commitments();
    let asked = round.federation.ids[0];
    let impostor_nonce = [7u8; 32];
    // Replace every entry but the asked node's with the coordinator's own.
    for (node, committed) in &mut list.commitments {
        if *node != asked {
            *committed = crate::secagg::graph_seed::commitment(list.round, *node, &impostor_nonce);
        }
    }
    let verifier = round.federation.verifier.clone();
    let adverts = round.adverts.clone();
    let node = round.nodes.get_mut(&asked).unwrap();
    let own = node.reveal_graph_nonce(&list).unwrap();
    let nonces = list
        .commitments
        .iter()
        .map(|&(id, _)| {
            (
                id,
                if id == asked {
                    own.nonce
                } else {
                    impostor_nonce
                },
            )
        })
        .collect();
    let reveals = GraphReveals {
        round: list.round,
        nonces,
    };
    // The graph draws; the neighbours' real adverts then disagree with the list.
    let committed = list.commitments.iter().copied().collect();
    let seed =
        crate::secagg::graph_seed::seed_from_reveals(list.round, asked, &committed, &reveals)
            .unwrap();
    let ids = round.federation.ids.clone();
    let graph = NeighbourGraph::harary(&config(), &ids, list.round, &seed).unwrap();
    let neighbours: Vec<_> = graph
        .neighbours(asked)
        .iter()
        .map(|id| adverts[id].clone())
        .collect();
    let rule = refusal(node.share_keys(&reveals, &neighbours, &verifier));
    assert!(
        matches!(rule, GraphSeedRule::AdvertDisagrees { .. }),
        "{rule:?}"
    );
}

#[test]
fn honest_nodes_and_the_coordinator_draw_the_same_graph() {
    let (mut round, _, reveals) = revealed();
    round.aggregator.close_graph_seed().unwrap();
    let graph = round.aggregator.graph().clone();
    assert_eq!(graph.participants(), 20);
    let verifier = round.federation.verifier.clone();
    for (&id, node) in round.nodes.iter_mut() {
        let adverts = round.aggregator.advertisements_for(id);
        node.share_keys(&reveals, &adverts, &verifier).unwrap();
        assert_eq!(node.neighbours().collect::<Vec<_>>(), graph.neighbours(id));
    }
}

/// One attempt of the retry attack against `target`, alone among honest
/// nodes: the coordinator makes up every other non-colluder's commitment,
/// lets its colluders commit and reveal like anyone, and learns the graph
/// once the target reveals. When the target has t or more colluding
/// neighbours, it relays only their adverts, and the target seals its shares
/// of b_u and sk_u to colluders alone: the shares that unmask its input.
/// Returns whether this attempt handed the target over.
fn retry_attack_attempt(federation: &Federation, colluders: &BTreeSet<NodeId>) -> bool {
    const ANY: NodePolicy = NodePolicy {
        min_participants: 2,
        min_threshold: 1,
    };
    let (round, ids) = (federation.round, &federation.ids);
    let target = ids[0];
    let made_up = [0xAB; 32];
    let join = |id| Participant::new(&config(), &ANY, round, id, ids, federation.vector_len);
    let mut node = join(target).unwrap();
    let own = node.advertise(&federation.signers[&target]).unwrap();
    let mut colluding: BTreeMap<NodeId, (Participant, AdvertiseKeys)> = colluders
        .iter()
        .map(|&c| {
            let mut p = join(c).unwrap();
            let advert = p.advertise(&federation.signers[&c]).unwrap();
            (c, (p, advert))
        })
        .collect();
    let committed = |id: NodeId| match colluding.get(&id) {
        _ if id == target => own.graph_commitment,
        Some((_, advert)) => advert.graph_commitment,
        None => commitment(round, id, &made_up),
    };
    let list = GraphCommitments {
        round,
        commitments: ids.iter().map(|&id| (id, committed(id))).collect(),
    };
    let mut nonces: BTreeMap<NodeId, [u8; 32]> = ids.iter().map(|&id| (id, made_up)).collect();
    nonces.insert(target, node.reveal_graph_nonce(&list).unwrap().nonce);
    for (&c, (p, _)) in colluding.iter_mut() {
        nonces.insert(c, p.reveal_graph_nonce(&list).unwrap().nonce);
    }
    let reveals = GraphReveals {
        round,
        nonces: nonces.into_iter().collect(),
    };
    let by_node = list.commitments.iter().copied().collect();
    let seed = seed_from_reveals(round, target, &by_node, &reveals).unwrap();
    let graph = NeighbourGraph::harary(&config(), ids, round, &seed).unwrap();
    let held: Vec<NodeId> = graph
        .neighbours(target)
        .into_iter()
        .filter(|v| colluders.contains(v))
        .collect();
    if held.len() < config().threshold {
        return false; // abort; the coordinator starts another attempt
    }
    let adverts: Vec<_> = held.iter().map(|c| colluding[c].1.clone()).collect();
    let shares = node
        .share_keys(&reveals, &adverts, &federation.verifier)
        .expect("the target shares with the colluders alone");
    let to: BTreeSet<NodeId> = shares.shares.iter().map(|s| s.to).collect();
    to.is_subset(colluders) && to.len() >= config().threshold
}

#[test]
fn retrying_without_a_budget_hands_the_target_to_colluders() {
    // Each attempt is a fair draw, but a coordinator that may abort and
    // retry without end keeps drawing: about one attempt in 60 wins here.
    let federation = federation();
    let colluders: BTreeSet<NodeId> = federation.ids[1..6].iter().copied().collect();
    let won = (1..=3_000).find(|_| retry_attack_attempt(&federation, &colluders));
    assert!(won.is_some(), "no attempt handed the target over");
}

#[test]
fn the_attempt_budget_stops_the_retries() {
    // The same attack against a node that keeps an attempt ledger: every
    // attempt aborts before the node's masked input, so after the allowance
    // the node joins no more, and the coordinator got four draws, not
    // thousands.
    let federation = federation();
    let colluders: BTreeSet<NodeId> = federation.ids[1..6].iter().copied().collect();
    let mut ledger = AttemptLedger::new(AttemptBudget::default());
    let mut draws = 0;
    for attempt in 1..=3_000u64 {
        let id = RoundId(attempt);
        if let Err(refusal) = ledger.check(id) {
            assert!(matches!(
                refusal,
                SecAggError::AttemptBudgetSpent { completed: 0, .. }
            ));
            break;
        }
        ledger.joined(id);
        draws += 1;
        // Whether or not this draw won, the coordinator must abort the
        // others to keep drawing.
        let _ = retry_attack_attempt(&federation, &colluders);
    }
    assert_eq!(draws, AttemptBudget::default().allowance + 1);
}
