//! Bad, replayed and out-of-order messages are refused with an error naming the
//! round, the node and the message; too few shares abort the round.

use super::harness::{Federation, Plan, pick, run, staged};
use crate::secagg::{
    AdvertiseKeys, ConsistencyRule, EncryptedShare, MessageKind, NodeId, RoundId, SecAggConfig,
    SecAggError, SecretKind, Stage, UnmaskRequest,
};

fn federation(round: u64) -> Federation {
    Federation::new(10, 16, SecAggConfig::for_participants(10), RoundId(round))
}

#[test]
fn too_few_shares_abort_the_round() {
    // t = 5 of k = 9: with 6 of 10 silent in unmasking, 4 answers are not enough.
    let federation = federation(1);
    let inputs = federation.plain_inputs();
    let plan = Plan {
        before_unmasking: pick(&federation.ids, 6, 1),
        ..Plan::default()
    };
    let error = run(&federation, &plan, &inputs).result.unwrap_err();
    assert!(
        matches!(
            error,
            SecAggError::RoundAborted {
                round: RoundId(1),
                secret: SecretKind::SelfMaskSeed,
                got,
                needed: 5,
                ..
            } if got < 5
        ),
        "{error}"
    );
    assert!(error.to_string().contains("round 1 aborted"), "{error}");

    // Dropped before their masked input, and then too few answers for their keys.
    let gone = pick(&federation.ids, 2, 2);
    let rest: Vec<NodeId> = federation
        .ids
        .iter()
        .copied()
        .filter(|id| !gone.contains(id))
        .collect();
    let plan = Plan {
        before_masked_input: gone,
        before_unmasking: pick(&rest, 4, 3),
        ..Plan::default()
    };
    let error = run(&federation, &plan, &inputs).result.unwrap_err();
    assert!(
        matches!(error, SecAggError::RoundAborted { got, needed: 5, .. } if got < 5),
        "{error}"
    );

    // Too few survivors for the threshold at all.
    let plan = Plan {
        before_masked_input: pick(&federation.ids, 6, 4),
        ..Plan::default()
    };
    let error = run(&federation, &plan, &inputs).result.unwrap_err();
    assert!(
        matches!(
            error,
            SecAggError::TooFewNodes {
                stage: Stage::MaskedInput,
                got: 4,
                needed: 5,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_node_refuses_to_reveal_both_secrets_of_a_peer() {
    let mut round = staged(federation(2), Stage::Unmasking);
    let asked = round.federation.ids[0];
    let request = round.aggregator.unmask_request_for(asked).unwrap().clone();
    let peer = request.survivors[0];
    let greedy = UnmaskRequest {
        dropped: vec![peer],
        ..request.clone()
    };
    let node = round.nodes.get_mut(&asked).unwrap();
    let error = node
        .unmask(&greedy, &round.federation.verifier)
        .unwrap_err();
    assert_eq!(
        error,
        SecAggError::BothSecretsRequested {
            round: RoundId(2),
            node: asked,
            peer
        }
    );
    assert!(error.to_string().contains("refuses"), "{error}");
    // The refusal changes nothing: the honest request is still answered, once.
    let response = node.unmask(&request, &round.federation.verifier).unwrap();
    assert_eq!(
        response.self_mask_seed_shares.len(),
        request.survivors.len()
    );
    assert!(matches!(
        node.unmask(&request, &round.federation.verifier),
        Err(SecAggError::OutOfOrder { .. })
    ));
    // A request for a node whose shares it does not hold is refused too.
    let mut other = staged(federation(2), Stage::Unmasking);
    let node = other.nodes.get_mut(&asked).unwrap();
    let stranger = UnmaskRequest {
        survivors: vec![NodeId(9999)],
        dropped: vec![],
        ..request
    };
    assert!(matches!(
        node.unmask(&stranger, &other.federation.verifier),
        Err(SecAggError::ConsistencyRefused {
            rule: ConsistencyRule::RequestDisagreesWithSet { .. },
            ..
        })
    ));
}

#[test]
fn shares_that_fail_authentication_are_refused() {
    let mut round = staged(federation(3), Stage::MaskedInput);
    let to = round.federation.ids[4];
    let shares = round.aggregator.shares_for(to);
    let input = round.inputs[&to].clone();
    let signer = &round.federation.signers[&to];
    let node = round.nodes.get_mut(&to).unwrap();

    // One flipped bit in one ciphertext.
    let mut tampered = shares.clone();
    tampered[1].ciphertext[30] ^= 0x10;
    let from = tampered[1].from;
    let error = node.masked_input(&tampered, &input, signer).unwrap_err();
    assert_eq!(
        error,
        SecAggError::ShareAuthentication {
            round: RoundId(3),
            from,
            to
        }
    );
    assert!(
        error.to_string().contains("failed authentication"),
        "{error}"
    );

    // Another sender's ciphertext under this sender's name.
    let mut swapped = shares.clone();
    swapped[0].ciphertext = shares[1].ciphertext.clone();
    assert!(matches!(
        node.masked_input(&swapped, &input, signer),
        Err(SecAggError::ShareAuthentication { .. })
    ));

    // A share addressed to someone else.
    let mut misaddressed = shares.clone();
    misaddressed[0].to = round.federation.ids[5];
    assert!(matches!(
        node.masked_input(&misaddressed, &input, signer),
        Err(SecAggError::Misaddressed { .. })
    ));

    // The untouched shares still work: refusals leave the state as it was.
    node.masked_input(&shares, &input, signer).unwrap();
}

#[test]
fn masked_inputs_of_the_wrong_length_are_refused() {
    let mut round = staged(federation(4), Stage::MaskedInput);
    let id = round.federation.ids[3];
    let message = round
        .nodes
        .get_mut(&id)
        .unwrap()
        .masked_input(
            &round.aggregator.shares_for(id),
            &round.inputs[&id],
            &round.federation.signers[&id],
        )
        .unwrap();
    // 16 coordinates and the weight, at 32 bits.
    assert_eq!(message.len, 17);
    assert_eq!(message.packed.len(), 68);

    let mut short = message.clone();
    short.packed.truncate(64);
    let error = round.aggregator.receive_masked_input(short).unwrap_err();
    assert_eq!(
        error,
        SecAggError::WrongLength {
            round: RoundId(4),
            node: id,
            expected: 17,
            got: 17,
            expected_bytes: 68,
            got_bytes: 64
        }
    );
    assert!(error.to_string().contains(&format!("node {id}")), "{error}");
    let mut long = message.clone();
    long.len = 18;
    assert!(matches!(
        round.aggregator.receive_masked_input(long),
        Err(SecAggError::WrongLength { got: 18, .. })
    ));
    // Refused messages do not count: the genuine one is accepted, once.
    round
        .aggregator
        .receive_masked_input(message.clone())
        .unwrap();
    assert!(matches!(
        round.aggregator.receive_masked_input(message),
        Err(SecAggError::Duplicate {
            what: MessageKind::MaskedInput,
            ..
        })
    ));
}

#[test]
fn messages_from_an_earlier_round_are_refused() {
    // Round 5 runs to the end, keeping every message; then round 6 starts with the
    // same nodes and identity keys.
    let old = staged(federation(5), Stage::Unmasking);
    let old_request = old
        .aggregator
        .unmask_request_for(old.federation.ids[0])
        .unwrap()
        .clone();
    let mut new = staged(old.federation.in_round(RoundId(6)), Stage::AdvertiseKeys);

    // The coordinator refuses a replayed advertisement...
    let (&id, advert) = old.adverts.iter().next().unwrap();
    let error = new
        .aggregator
        .receive_advertisement(advert.clone())
        .unwrap_err();
    assert_eq!(
        error,
        SecAggError::RoundMismatch {
            round: RoundId(6),
            node: id,
            what: MessageKind::AdvertiseKeys,
            got: RoundId(5)
        }
    );
    assert!(error.to_string().contains("replayed"), "{error}");

    // ...and a node refuses old keys relayed to it, even correctly signed ones.
    let mut new = staged(new.federation, Stage::ShareKeys);
    let reveals = new.aggregator.graph_reveals();
    let target = new.federation.ids[1];
    let node = new.nodes.get_mut(&target).unwrap();
    let old_adverts: Vec<AdvertiseKeys> = old.aggregator.advertisements_for(target);
    assert!(matches!(
        node.share_keys(&reveals, &old_adverts, &new.federation.verifier),
        Err(SecAggError::RoundMismatch {
            what: MessageKind::AdvertiseKeys,
            got: RoundId(5),
            ..
        })
    ));
    // Rewriting the round field breaks the signature.
    let relabelled: Vec<AdvertiseKeys> = old_adverts
        .into_iter()
        .map(|a| AdvertiseKeys {
            round: RoundId(6),
            ..a
        })
        .collect();
    assert!(matches!(
        node.share_keys(&reveals, &relabelled, &new.federation.verifier),
        Err(SecAggError::BadSignature {
            round: RoundId(6),
            ..
        })
    ));

    // Later stages: old shares, old masked inputs and old unmask requests.
    let mut later = staged(new.federation.in_round(RoundId(6)), Stage::Unmasking);
    let (&masked_id, old_masked) = old.masked.iter().next().unwrap();
    assert!(matches!(
        later.aggregator.receive_masked_input(old_masked.clone()),
        Err(SecAggError::RoundMismatch { got: RoundId(5), node, .. }) if node == masked_id
    ));
    let node = later.nodes.get_mut(&old_request.node).unwrap();
    assert!(matches!(
        node.unmask(&old_request, &later.federation.verifier),
        Err(SecAggError::RoundMismatch {
            what: MessageKind::UnmaskRequest,
            ..
        })
    ));
    let mut at_shares = staged(later.federation.in_round(RoundId(6)), Stage::MaskedInput);
    let receiver = at_shares.federation.ids[2];
    let old_shares: Vec<EncryptedShare> = old.aggregator.shares_for(receiver);
    let input = at_shares.inputs[&receiver].clone();
    assert!(matches!(
        at_shares.nodes.get_mut(&receiver).unwrap().masked_input(
            &old_shares,
            &input,
            &at_shares.federation.signers[&receiver]
        ),
        Err(SecAggError::RoundMismatch {
            what: MessageKind::EncryptedShare,
            ..
        })
    ));
    // An old share relabelled with the new round fails authentication.
    let relabelled: Vec<EncryptedShare> = old_shares
        .into_iter()
        .map(|s| EncryptedShare {
            round: RoundId(6),
            ..s
        })
        .collect();
    assert!(matches!(
        at_shares.nodes.get_mut(&receiver).unwrap().masked_input(
            &relabelled,
            &input,
            &at_shares.federation.signers[&receiver]
        ),
        Err(SecAggError::ShareAuthentication { .. })
    ));
}

#[test]
fn duplicates_strangers_and_stage_order_are_enforced() {
    let mut round = staged(federation(8), Stage::ShareKeys);
    let (&id, advert) = round.adverts.iter().next().unwrap();
    // Stage 1 is closed: a late advertisement is out of stage.
    assert!(matches!(
        round.aggregator.receive_advertisement(advert.clone()),
        Err(SecAggError::WrongStage {
            stage: Stage::ShareKeys,
            ..
        })
    ));
    let node = round.nodes.get_mut(&id).unwrap();
    let message = node
        .share_keys(
            &round.aggregator.graph_reveals(),
            &round.aggregator.advertisements_for(id),
            &round.federation.verifier,
        )
        .unwrap();
    round.aggregator.receive_shares(message.clone()).unwrap();
    assert!(matches!(
        round.aggregator.receive_shares(message.clone()),
        Err(SecAggError::Duplicate {
            what: MessageKind::ShareKeys,
            ..
        })
    ));
    // A node out of order, and a stranger.
    assert!(matches!(
        node.advertise(&round.federation.signers[&id]),
        Err(SecAggError::OutOfOrder { .. })
    ));
    let stranger = crate::secagg::ShareKeys {
        node: NodeId(4242),
        ..message
    };
    assert!(matches!(
        round.aggregator.receive_shares(stranger),
        Err(SecAggError::UnexpectedSender { .. })
    ));
    assert!(matches!(
        round.aggregator.finish(),
        Err(SecAggError::AggregatorOutOfOrder { .. })
    ));
}

#[test]
fn a_round_that_cannot_unmask_ends_before_any_request() {
    // Ten nodes, t = 5: with five gone before signing, every signer has four
    // signing neighbours and would refuse its request; the aggregator sees it
    // coming and sends none (under DP, nothing is charged for a doomed round).
    let federation = federation(8);
    let plan = Plan {
        before_signing: pick(&federation.ids, 5, 4),
        ..Plan::default()
    };
    let outcome = run(&federation, &plan, &federation.plain_inputs());
    assert!(
        matches!(
            outcome.result,
            Err(SecAggError::RoundAborted {
                got: 0,
                needed: 5,
                ..
            })
        ),
        "{:?}",
        outcome.result
    );
    assert!(outcome.requests.is_empty(), "no unmask request went out");
}
