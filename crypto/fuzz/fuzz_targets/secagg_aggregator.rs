//! Drives the coordinator's secure-aggregation state machine (`Aggregator`) for a
//! small round (2–6 nodes, 1–8 coordinates, any bit width) with a fuzzed sequence
//! of incoming messages (graph nonces included), stage closings, queries and
//! `finish`.
//!
//! Every message reaches the aggregator through the wire decoder, as on the
//! network: either raw fuzzed bytes, or a message built from fuzzed fields (mostly
//! plausible: the right round, known node ids, requested share owners, the right
//! packed length) and encoded first, so the fuzzer gets past the cheap checks.
//!
//! Checks that the aggregator answers everything with a result, never a panic,
//! and that a sum it does return has one value per coordinate plus the weight,
//! each in Z_{2^bits}, from at least `threshold` contributors none of whom is
//! listed as dropped.
#![no_main]

use cohort_crypto::secagg::graph_seed;
use cohort_crypto::secagg::packing::packed_len;
use cohort_crypto::secagg::shamir::{SHARE_LEN, Share};
use cohort_crypto::secagg::{
    AdvertiseKeys, AggregateSum, Aggregator, EncryptedShare, GraphReveal, MaskedInput, NodeId,
    RevealedShare, RoundId, SecAggConfig, SecAggError, ShareKeys, UnmaskResponse,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

/// The round every plausible message names.
const ROUND: RoundId = RoundId(7);

/// What the builders need to know about the round.
struct Round {
    /// Participants are nodes `0..nodes`; `nodes` itself is a stranger.
    nodes: u32,
    bits: u32,
    /// Coordinates plus the weight.
    masked_len: usize,
    threshold: usize,
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let nodes: u32 = u.int_in_range(2..=6)?;
    let participants: Vec<NodeId> = (0..nodes).map(NodeId).collect();
    let mut config = SecAggConfig::for_participants(participants.len());
    config.bits = u.int_in_range(2..=64)?;
    if u.arbitrary()? {
        config.neighbours = u.int_in_range(1..=6)?;
        config.threshold = u.int_in_range(1..=6)?;
    }
    let vector_len = u.int_in_range(1..=8)?;
    let Ok(mut aggregator) = Aggregator::new(&config, ROUND, &participants, vector_len) else {
        return Ok(());
    };
    let round = Round {
        nodes,
        bits: config.bits,
        masked_len: vector_len + 1,
        threshold: config.threshold,
    };

    while !u.is_empty() {
        match u.int_in_range(0..=10)? {
            0 => {
                if let Some(m) = incoming(u, |u| advertisement(u, &round))? {
                    let _ = aggregator.receive_advertisement(m);
                }
            }
            1 => {
                if let Some(m) = incoming(u, |u| share_keys(u, &round))? {
                    let _ = aggregator.receive_shares(m);
                }
            }
            2 => {
                if let Some(m) = incoming(u, |u| masked_input(u, &round))? {
                    let _ = aggregator.receive_masked_input(m);
                }
            }
            3 => {
                if let Some(m) = incoming(u, |u| unmask_response(u, &round, &aggregator))? {
                    let _ = aggregator.receive_unmask_response(m);
                }
            }
            4 => {
                let _ = aggregator.close_advertise_keys();
            }
            5 => {
                let _ = aggregator.close_share_keys();
            }
            6 => {
                let _ = aggregator.close_masked_input();
            }
            8 => {
                if let Some(m) = incoming(u, |u| graph_reveal(u, &round))? {
                    let _ = aggregator.receive_graph_reveal(m);
                }
            }
            9 => {
                let _ = aggregator.close_graph_seed();
            }
            7 => {
                // What the coordinator relays between stages.
                let node = node(u, &round)?;
                aggregator.graph_commitments();
                aggregator.graph_reveals();
                aggregator.advertisements_for(node);
                aggregator.shares_for(node);
                aggregator.unmask_request_for(node);
                aggregator.unmask_requests().count();
                aggregator.dropouts();
            }
            _ => {
                check_sum(aggregator.finish(), &round);
                return Ok(());
            }
        }
    }
    Ok(())
}

fn check_sum(result: std::result::Result<AggregateSum, SecAggError>, round: &Round) {
    let Ok(sum) = result else {
        return;
    };
    assert_eq!(sum.values().len(), round.masked_len);
    if round.bits < 64 {
        assert!(sum.values().iter().all(|&v| v < 1u64 << round.bits));
    }
    assert!(sum.contributors().len() >= round.threshold);
    let dropouts = sum.dropouts();
    for dropped in dropouts
        .before_advertising
        .iter()
        .chain(&dropouts.before_sharing)
        .chain(&dropouts.before_masked_input)
    {
        assert!(
            !sum.contributors().contains(dropped),
            "{dropped} is counted and dropped"
        );
    }
}

/// A message type of the wire encoding.
trait Wire: Sized {
    fn encode(&self) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Option<Self>;
}

macro_rules! wire {
    ($($message:ty),+) => {$(
        impl Wire for $message {
            fn encode(&self) -> Vec<u8> {
                self.to_bytes()
            }
            fn decode(bytes: &[u8]) -> Option<Self> {
                Self::from_bytes(bytes).ok()
            }
        }
    )+};
}

wire!(AdvertiseKeys, GraphReveal, ShareKeys, MaskedInput, UnmaskResponse);

/// A message as the aggregator would receive it: decoded from raw fuzzed bytes
/// (one time in four) or from the encoding of a built one.
fn incoming<M: Wire>(
    u: &mut Unstructured<'_>,
    build: impl FnOnce(&mut Unstructured<'_>) -> Result<M>,
) -> Result<Option<M>> {
    let bytes = if u.ratio(1, 4)? {
        u.arbitrary::<&[u8]>()?.to_vec()
    } else {
        build(u)?.encode()
    };
    Ok(M::decode(&bytes))
}

/// A participant or, now and then, the one stranger.
fn node(u: &mut Unstructured<'_>, round: &Round) -> Result<NodeId> {
    Ok(NodeId(u.int_in_range(0..=round.nodes)?))
}

/// The round's id, or now and then another.
fn round_id(u: &mut Unstructured<'_>) -> Result<RoundId> {
    Ok(if u.ratio(1, 16)? {
        RoundId(u.arbitrary()?)
    } else {
        ROUND
    })
}

fn small_bytes(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let len = u.int_in_range(0..=16)?;
    Ok(u.bytes(len)?.to_vec())
}

/// One of two nonces, so that a later reveal often opens the commitment.
fn nonce(u: &mut Unstructured<'_>) -> Result<[u8; 32]> {
    Ok([u.int_in_range(0..=1)?; 32])
}

fn advertisement(u: &mut Unstructured<'_>, round: &Round) -> Result<AdvertiseKeys> {
    let node = node(u, round)?;
    Ok(AdvertiseKeys {
        round: round_id(u)?,
        node,
        mask_public_key: u.arbitrary()?,
        share_public_key: u.arbitrary()?,
        graph_commitment: graph_seed::commitment(ROUND, node, &nonce(u)?),
        signature: small_bytes(u)?,
    })
}

fn graph_reveal(u: &mut Unstructured<'_>, round: &Round) -> Result<GraphReveal> {
    Ok(GraphReveal {
        round: round_id(u)?,
        node: node(u, round)?,
        nonce: nonce(u)?,
    })
}

fn share_keys(u: &mut Unstructured<'_>, round: &Round) -> Result<ShareKeys> {
    let sender = node(u, round)?;
    let mut shares = Vec::new();
    for _ in 0..u.int_in_range(0..=round.nodes)? {
        shares.push(EncryptedShare {
            round: round_id(u)?,
            from: if u.ratio(1, 8)? {
                node(u, round)?
            } else {
                sender
            },
            to: node(u, round)?,
            ciphertext: small_bytes(u)?,
        });
    }
    Ok(ShareKeys {
        round: round_id(u)?,
        node: sender,
        shares,
    })
}

fn masked_input(u: &mut Unstructured<'_>, round: &Round) -> Result<MaskedInput> {
    let (len, packed_bytes) = if u.ratio(1, 8)? {
        (u.int_in_range(0..=16)?, u.int_in_range(0..=140)?)
    } else {
        let len = round.masked_len;
        (len as u64, packed_len(len, round.bits))
    };
    Ok(MaskedInput {
        round: round_id(u)?,
        node: node(u, round)?,
        len,
        packed: u.bytes(packed_bytes)?.to_vec(),
    })
}

/// Mostly the shares the aggregator asked this node for, with its own
/// x-coordinate; the share values are fuzzed, or the same for every holder.
fn unmask_response(
    u: &mut Unstructured<'_>,
    round: &Round,
    aggregator: &Aggregator,
) -> Result<UnmaskResponse> {
    let sender = node(u, round)?;
    let (survivors, dropped) = match aggregator.unmask_request_for(sender) {
        Some(request) if !u.ratio(1, 8)? => (request.survivors.clone(), request.dropped.clone()),
        _ => (Vec::new(), Vec::new()),
    };
    let mut revealed = |owners: Vec<NodeId>| -> Result<Vec<RevealedShare>> {
        let mut shares = Vec::new();
        for owner in owners {
            if u.ratio(1, 8)? {
                continue;
            }
            let x = if u.ratio(1, 8)? {
                u.arbitrary()?
            } else {
                u64::from(sender.0) + 1
            };
            let mut bytes = [0u8; SHARE_LEN];
            bytes[..8].copy_from_slice(&x.to_le_bytes());
            if u.arbitrary()? {
                // Every holder reveals the same values for one owner: points of a
                // constant polynomial, which rebuild a well-formed (made-up)
                // secret, so `finish` goes on to remove masks.
                for (i, y) in bytes[8..].chunks_exact_mut(16).enumerate() {
                    y.copy_from_slice(&(u128::from(owner.0) + i as u128).to_le_bytes());
                }
            } else {
                u.fill_buffer(&mut bytes[8..])?;
                // Mostly canonical field elements (below 2^127 − 1).
                for top in [23, 39, 55] {
                    bytes[top] &= 0x7f;
                }
            }
            if let Ok(share) = Share::from_bytes(&bytes) {
                shares.push(RevealedShare { owner, share });
            }
        }
        Ok(shares)
    };
    let self_mask_seed_shares = revealed(survivors)?;
    let mask_key_shares = revealed(dropped)?;
    Ok(UnmaskResponse {
        round: round_id(u)?,
        node: sender,
        self_mask_seed_shares,
        mask_key_shares,
    })
}
