//! A coordinator that lies, against the consistency check.
//!
//! The attack (the issue that brought the check): the coordinator tells the
//! holders of a target u's shares that u survived, so they reveal shares of its
//! self-mask seed b_u, and tells them that each of u's partners v dropped, so they
//! reveal shares of every sk_v. With b_u and every sk_v it strips all of u's masks
//! from u's masked input and reads u's update, with no colluding node at all.
//!
//! [`without_the_check_the_attack_reads_one_update`] runs that attack against the
//! protocol without the check and reads u's input exactly: the test has teeth.
//! The other tests run it, and its variants (survivor sets tailored per node, a
//! set split between two groups), against the real nodes: each honest node
//! refuses, naming the rule that was broken, and what the coordinator collected
//! does not rebuild u's input.

use std::collections::BTreeSet;

use super::harness::{Federation, Staged, staged};
use crate::secagg::graph_seed::bind_graph_seed;
use crate::secagg::keys::KeyPair;
use crate::secagg::masking::{MaskTerm, Sign, apply_masks, pairwise_sign, reduce};
use crate::secagg::packing::unpack;
use crate::secagg::participant::setup_digest;
use crate::secagg::prg::PrgSeed;
use crate::secagg::shamir::{self, Share};
use crate::secagg::{
    AttemptBinding, ConsistencyRule, NodeId, RoundId, SecAggConfig, SecAggError, Stage,
    SurvivorList, SurvivorSignature, UnmaskRequest, UnmaskResponse,
};

/// Seven nodes, everyone everyone's neighbour (k = 6), t = 4.
fn federation() -> Federation {
    Federation::new(7, 12, SecAggConfig::for_participants(7), RoundId(40))
}

fn neighbours(round: &Staged, node: NodeId) -> Vec<NodeId> {
    round.aggregator.graph().neighbours(node)
}

/// What the coordinator does with the shares it collected: rebuild b_u and every
/// partner's sk_v, then strip u's masks from its masked input. `None` when a
/// secret cannot be rebuilt from what arrived.
fn strip_masks(round: &Staged, target: NodeId, responses: &[UnmaskResponse]) -> Option<Vec<u64>> {
    let config = round.federation.config;
    let rebuild = |owner: NodeId, seed: bool| {
        let shares: Vec<Share> = responses
            .iter()
            .flat_map(|r| {
                if seed {
                    &r.self_mask_seed_shares
                } else {
                    &r.mask_key_shares
                }
            })
            .filter(|revealed| revealed.owner == owner)
            .map(|revealed| revealed.share.clone())
            .collect();
        shamir::reconstruct(&shares, config.threshold).ok()
    };
    let round_id = round.federation.round;
    let target_key = round.adverts[&target].mask_public_key;
    let mut terms = vec![MaskTerm {
        seed: PrgSeed::from_bytes(*rebuild(target, true)?),
        sign: Sign::Subtract,
    }];
    for partner in neighbours(round, target) {
        let key = KeyPair::from_secret_bytes(&*rebuild(partner, false)?);
        terms.push(MaskTerm {
            seed: key
                .pairwise_mask_seed(&target_key, round_id, partner, target)
                .ok()?,
            sign: pairwise_sign(target, partner).flip(),
        });
    }
    let masked = &round.masked[&target];
    let mut values = unpack(&masked.packed, config.bits, masked.len as usize);
    apply_masks(&mut values, &terms, config.bits).ok()?;
    reduce(&mut values, config.bits);
    Some(values)
}

/// The attack's request to `holder`: "the target survived, every other
/// neighbour of yours dropped", with every genuine signature and attestation
/// the coordinator holds (none before the consistency check).
fn lying_request(round: &Staged, target: NodeId, holder: NodeId) -> UnmaskRequest {
    let genuine = round.aggregator.unmask_request_for(holder);
    UnmaskRequest {
        round: round.federation.round,
        node: holder,
        survivors: vec![target],
        dropped: neighbours(round, holder)
            .into_iter()
            .filter(|&peer| peer != target)
            .collect(),
        signatures: genuine.map(|r| r.signatures.clone()).unwrap_or_default(),
        attestations: genuine.map(|r| r.attestations.clone()).unwrap_or_default(),
    }
}

/// What `signer`'s statements in `round_id` are bound to (its advertised keys
/// in this attempt).
fn binding_of(round: &Staged, signer: NodeId, round_id: RoundId) -> AttemptBinding {
    let federation = &round.federation;
    let advert = &round.adverts[&signer];
    AttemptBinding {
        round: round_id,
        setup_digest: bind_graph_seed(
            &setup_digest(&federation.config, round_id, &federation.ids),
            &round.aggregator.graph_seed().expect("the graph is drawn"),
        ),
        mask_public_key: advert.mask_public_key,
        share_public_key: advert.share_public_key,
    }
}

#[test]
fn without_the_check_the_attack_reads_one_update() {
    let mut round = staged(federation(), Stage::ConsistencyCheck);
    let target = round.federation.ids[0];
    let mut responses = Vec::new();
    for holder in neighbours(&round, target) {
        let request = lying_request(&round, target, holder);
        let node = round.nodes.get_mut(&holder).unwrap();
        responses.push(node.unmask_without_consistency_check(&request).unwrap());
    }
    let read = strip_masks(&round, target, &responses).expect("the attack rebuilds every secret");
    assert_eq!(
        read,
        round.inputs[&target].values(),
        "the target's input, read"
    );
}

#[test]
fn the_check_refuses_the_attack_after_an_honest_signature() {
    // Every node signed the true survivor set; then the coordinator sends the
    // attack's requests, with every genuine signature attached.
    let mut round = staged(federation(), Stage::Unmasking);
    let target = round.federation.ids[0];
    let mut responses = Vec::new();
    for holder in neighbours(&round, target) {
        let request = lying_request(&round, target, holder);
        let verifier = &round.federation.verifier;
        let node = round.nodes.get_mut(&holder).unwrap();
        match node.unmask(&request, verifier) {
            Err(SecAggError::ConsistencyRefused {
                rule: ConsistencyRule::RequestDisagreesWithSet { .. },
                node,
                ..
            }) => assert_eq!(node, holder),
            other => panic!("node {holder} answered the attack: {other:?}"),
        }
        // The honest request is still answered: the refusal changed nothing.
        let honest = round.aggregator.unmask_request_for(holder).unwrap().clone();
        let node = round.nodes.get_mut(&holder).unwrap();
        responses.push(node.unmask(&honest, verifier).unwrap());
    }
    // What the honest requests reveal does not expose the target: its partners
    // survived, so their mask keys are never revealed.
    assert!(strip_masks(&round, target, &responses).is_none());
}

#[test]
fn tailored_survivor_sets_are_not_signed() {
    let mut round = staged(federation(), Stage::ConsistencyCheck);
    let ids = round.federation.ids.clone();
    let target = ids[0];
    let list = |node: NodeId, survivors: Vec<NodeId>| SurvivorList {
        round: round.federation.round,
        node,
        survivors,
    };
    // "The target and you survived": too few of the holder's neighbours for t.
    let mut lists = vec![];
    for &holder in &ids[1..] {
        let mut survivors = vec![target, holder];
        survivors.sort();
        lists.push((holder, list(holder, survivors)));
    }
    for (holder, tailored) in lists {
        let signer = &round.federation.signers[&holder];
        let error = round
            .nodes
            .get_mut(&holder)
            .unwrap()
            .consistency_check(&tailored, signer)
            .unwrap_err();
        assert_eq!(
            error,
            SecAggError::ConsistencyRefused {
                round: round.federation.round,
                node: holder,
                rule: ConsistencyRule::TooFewSurvivingNeighbours { got: 1, needed: 4 },
            }
        );
    }
    // A set that leaves out the node asked, and one out of order.
    let without_target = list(target, ids[1..].to_vec());
    let mut reversed = ids.clone();
    reversed.reverse();
    let unsorted = list(target, reversed);
    let signer = &round.federation.signers[&target];
    let node = round.nodes.get_mut(&target).unwrap();
    assert!(matches!(
        node.consistency_check(&without_target, signer),
        Err(SecAggError::ConsistencyRefused {
            rule: ConsistencyRule::NotASurvivor,
            ..
        })
    ));
    assert!(matches!(
        node.consistency_check(&unsorted, signer),
        Err(SecAggError::ConsistencyRefused {
            rule: ConsistencyRule::MalformedSurvivorList { .. },
            ..
        })
    ));
    // A node signs once.
    let honest = list(target, ids.clone());
    node.consistency_check(&honest, signer).unwrap();
    assert!(matches!(
        node.consistency_check(&honest, signer),
        Err(SecAggError::OutOfOrder { .. })
    ));
}

#[test]
fn a_split_survivor_set_gets_no_shares() {
    // Four nodes (the target among them) are told that everyone survived; three
    // are told that partner p dropped. Each group is a minority of some node's
    // neighbourhood, so no node holds t signatures on its own set.
    let mut round = staged(federation(), Stage::ConsistencyCheck);
    let ids = round.federation.ids.clone();
    let target = ids[0];
    let partner = ids[1];
    let everyone: Vec<NodeId> = ids.clone();
    let without_partner: Vec<NodeId> = ids.iter().copied().filter(|&id| id != partner).collect();
    let mut signed = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let survivors = if i < 4 { &everyone } else { &without_partner };
        let list = SurvivorList {
            round: round.federation.round,
            node: id,
            survivors: survivors.clone(),
        };
        let signer = &round.federation.signers[&id];
        let node = round.nodes.get_mut(&id).unwrap();
        signed.push((
            id,
            survivors.clone(),
            node.consistency_check(&list, signer).unwrap(),
        ));
    }
    let all_signatures: Vec<SurvivorSignature> = signed.iter().map(|(_, _, s)| s.clone()).collect();
    let mut responses = Vec::new();
    for (id, survivors, _) in &signed {
        // The request each node's own set calls for, with every signature.
        let (in_set, out): (Vec<NodeId>, Vec<NodeId>) = neighbours(&round, *id)
            .into_iter()
            .partition(|peer| survivors.contains(peer));
        let attestations = in_set
            .iter()
            .map(|peer| round.masked[peer].partners.clone())
            .collect();
        let request = UnmaskRequest {
            round: round.federation.round,
            node: *id,
            survivors: in_set,
            dropped: out,
            signatures: all_signatures.clone(),
            attestations,
        };
        let verifier = &round.federation.verifier;
        match round.nodes.get_mut(id).unwrap().unmask(&request, verifier) {
            Err(SecAggError::ConsistencyRefused {
                rule: ConsistencyRule::TooFewSignatures { got, needed: 4 },
                ..
            }) => assert!(got < 4),
            Ok(response) => responses.push(response),
            other => panic!("node {id}: {other:?}"),
        }
    }
    assert!(responses.is_empty(), "no node answers a split set");
    assert!(strip_masks(&round, target, &responses).is_none());
}

/// A sparse round (k = 4 of 10, t = 3) at unmasking, every node having signed.
fn sparse() -> Staged {
    let config = SecAggConfig {
        neighbours: 4,
        threshold: 3,
        ..SecAggConfig::for_participants(10)
    };
    staged(
        Federation::new(10, 8, config, RoundId(41)),
        Stage::Unmasking,
    )
}

fn expect_too_few(result: Result<UnmaskResponse, SecAggError>, expected: usize) {
    match result {
        Err(SecAggError::ConsistencyRefused {
            rule: ConsistencyRule::TooFewSignatures { got, needed: 3 },
            ..
        }) => assert_eq!(got, expected),
        other => panic!("expected too few signatures, got {other:?}"),
    }
}

#[test]
fn only_valid_signatures_of_neighbours_on_the_same_set_count() {
    let mut round = sparse();
    let asked = round.federation.ids[0];
    let honest = round.aggregator.unmask_request_for(asked).unwrap().clone();
    assert!(honest.signatures.len() >= 3);
    let set: Vec<NodeId> = round.federation.ids.clone();
    let sign = |signer: NodeId, round_id: RoundId, survivors: &[NodeId]| SurvivorSignature {
        round: round_id,
        node: signer,
        signature: crate::secagg::AdvertisementSigner::sign(
            &round.federation.signers[&signer],
            &SurvivorList::signed_payload(&binding_of(&round, signer, round_id), survivors),
        )
        .unwrap(),
    };
    let with = |signatures: Vec<SurvivorSignature>| UnmaskRequest {
        signatures,
        ..honest.clone()
    };
    let neighbours: Vec<NodeId> = honest.survivors.clone();
    let stranger = *set
        .iter()
        .find(|id| **id != asked && !neighbours.contains(id))
        .unwrap();
    // Signatures over another round, over another set, by a non-neighbour, or one
    // neighbour's signature three times: none but the first copy counts.
    let other_round: Vec<_> = neighbours
        .iter()
        .map(|&n| sign(n, RoundId(99), &set))
        .collect();
    let smaller: Vec<NodeId> = set.iter().copied().filter(|id| *id != stranger).collect();
    let other_set: Vec<_> = neighbours
        .iter()
        .map(|&n| sign(n, RoundId(41), &smaller))
        .collect();
    let repeated = vec![honest.signatures[0].clone(); 3];
    let mut with_stranger = honest.signatures[..2].to_vec();
    with_stranger.push(sign(stranger, RoundId(41), &set));
    let verifier = &round.federation.verifier;
    let node = round.nodes.get_mut(&asked).unwrap();
    expect_too_few(node.unmask(&with(other_round), verifier), 0);
    expect_too_few(node.unmask(&with(other_set), verifier), 0);
    expect_too_few(node.unmask(&with(repeated), verifier), 1);
    expect_too_few(node.unmask(&with(with_stranger), verifier), 2);
    // A forged signature: the verifier rejects bytes the signer never made.
    let mut forged = honest.signatures.clone();
    for signature in &mut forged {
        signature.signature[10] ^= 1;
    }
    expect_too_few(node.unmask(&with(forged), verifier), 0);
    // The genuine request is answered.
    node.unmask(&honest, verifier).unwrap();
}

#[test]
fn a_request_must_ask_for_exactly_what_the_set_calls_for() {
    let mut round = sparse();
    let asked = round.federation.ids[0];
    let honest = round.aggregator.unmask_request_for(asked).unwrap().clone();
    let verifier = &round.federation.verifier;
    let node = round.nodes.get_mut(&asked).unwrap();
    let survivor = honest.survivors[0];
    let fewer = UnmaskRequest {
        survivors: honest.survivors[1..].to_vec(),
        ..honest.clone()
    };
    let moved = UnmaskRequest {
        survivors: honest.survivors[1..].to_vec(),
        dropped: [honest.dropped.clone(), vec![survivor]].concat(),
        ..honest.clone()
    };
    let repeated = UnmaskRequest {
        survivors: [honest.survivors.clone(), vec![survivor]].concat(),
        ..honest.clone()
    };
    for request in [fewer, moved, repeated] {
        assert_eq!(
            node.unmask(&request, verifier).unwrap_err(),
            SecAggError::ConsistencyRefused {
                round: RoundId(41),
                node: asked,
                rule: ConsistencyRule::RequestDisagreesWithSet { peer: survivor },
            },
            "{request:?}"
        );
    }
    let set: BTreeSet<NodeId> = honest.survivors.iter().copied().collect();
    assert_eq!(set.len(), honest.survivors.len());
    node.unmask(&honest, verifier).unwrap();
}

#[test]
fn signatures_from_another_attempt_at_the_same_round_do_not_count() {
    // The coordinator restarts round 41 (same id, same nodes and identity keys,
    // and here the same graph: the nonces are held fixed, so only the keys
    // differ) and replays the first attempt's signatures: the fresh keys of
    // the second attempt are in what is signed, so none counts.
    let mut fixed = sparse().federation.in_round(RoundId(41));
    fixed.fixed_graph_nonces = true;
    let first = staged(fixed.in_round(RoundId(41)), Stage::Unmasking);
    let mut second = staged(fixed, Stage::Unmasking);
    assert_eq!(
        first.aggregator.graph_seed(),
        second.aggregator.graph_seed(),
        "both attempts draw the same graph"
    );
    let asked = second.federation.ids[0];
    let honest = second.aggregator.unmask_request_for(asked).unwrap().clone();
    let replayed = UnmaskRequest {
        signatures: first
            .aggregator
            .unmask_request_for(asked)
            .unwrap()
            .signatures
            .clone(),
        ..honest.clone()
    };
    let verifier = &second.federation.verifier;
    let node = second.nodes.get_mut(&asked).unwrap();
    expect_too_few(node.unmask(&replayed, verifier), 0);
    // The attempt's partner attestations are bound the same way.
    let stale = UnmaskRequest {
        attestations: first
            .aggregator
            .unmask_request_for(asked)
            .unwrap()
            .attestations
            .clone(),
        ..honest.clone()
    };
    assert!(matches!(
        node.unmask(&stale, verifier),
        Err(SecAggError::ConsistencyRefused {
            rule: ConsistencyRule::NotAPartner { .. },
            ..
        })
    ));
    node.unmask(&honest, verifier).unwrap();
}

#[test]
fn a_self_mask_share_goes_only_to_unmask_a_partner() {
    // The coordinator withholds w's shares from u, so u masks without w, yet w
    // holds a share of u's self-mask seed: revealing it would help unmask u's
    // input in a sum without w's. u's signed partner list leaves w out, so w
    // refuses.
    let mut round = sparse();
    let u = round.federation.ids[0];
    let w = neighbours(&round, u)[0];
    let honest = round.aggregator.unmask_request_for(w).unwrap().clone();
    assert!(honest.survivors.contains(&u));
    let without = |partners: &[NodeId]| partners.iter().copied().filter(|&p| p != w).collect();
    let mut forged = honest.clone();
    for attestation in forged.attestations.iter_mut().filter(|a| a.node == u) {
        attestation.partners = without(&attestation.partners);
    }
    let mut missing = honest.clone();
    missing.attestations.retain(|a| a.node != u);
    let verifier = &round.federation.verifier;
    let node = round.nodes.get_mut(&w).unwrap();
    for request in [forged, missing] {
        assert_eq!(
            node.unmask(&request, verifier).unwrap_err(),
            SecAggError::ConsistencyRefused {
                round: RoundId(41),
                node: w,
                rule: ConsistencyRule::NotAPartner { peer: u },
            }
        );
    }
    node.unmask(&honest, verifier).unwrap();
}

#[test]
fn nodes_told_different_setups_never_count_each_others_statements() {
    // k = 6, t = 4 over 7 nodes. The coordinator tells three nodes one
    // context (say, a smaller noise share for them) and four another: no node
    // then finds t neighbours that signed under its own setup.
    let split = |federation: &mut Federation, odd: usize| {
        for (i, &id) in federation.ids.clone().iter().enumerate() {
            let context: &[u8] = if i < odd { b"told A" } else { b"told B" };
            federation.contexts.insert(id, context.to_vec());
        }
    };
    let mut told = federation();
    split(&mut told, 3);
    let mut round = staged(told, Stage::Unmasking);
    let verifier = round.federation.verifier.clone();
    for id in round.federation.ids.clone() {
        let request = round.aggregator.unmask_request_for(id).unwrap().clone();
        let node = round.nodes.get_mut(&id).unwrap();
        // Refused either for too few signatures under its setup or because
        // partners' attestations (bound to the setup too) do not verify.
        let refused = node.unmask(&request, &verifier);
        assert!(
            matches!(
                refused,
                Err(SecAggError::ConsistencyRefused {
                    rule: ConsistencyRule::TooFewSignatures { needed: 4, .. }
                        | ConsistencyRule::NotAPartner { .. },
                    ..
                })
            ),
            "node {id} answered across setups: {refused:?}"
        );
    }
    // Told the same context, the same round unmasks.
    let mut told = federation();
    split(&mut told, 0);
    let mut round = staged(told, Stage::Unmasking);
    let id = round.federation.ids[0];
    let request = round.aggregator.unmask_request_for(id).unwrap().clone();
    let verifier = round.federation.verifier.clone();
    let node = round.nodes.get_mut(&id).unwrap();
    node.unmask(&request, &verifier).unwrap();
    // A context is bound before anything is signed, never after.
    assert!(matches!(
        node.bind_context(b"later"),
        Err(SecAggError::OutOfOrder { .. })
    ));
}
