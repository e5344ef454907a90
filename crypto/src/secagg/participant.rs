//! The node's side of a round: a state machine that walks the six stages once.
//!
//! ```text
//! new ─ advertise() ─▶ AdvertiseKeys ─ reveal_graph_nonce() ─▶ GraphReveal
//!     ─ share_keys() ─▶ ShareKeys
//!     ─ masked_input() ─▶ MaskedInput ─ consistency_check() ─▶ SurvivorSignature
//!     ─ unmask() ─▶ UnmaskResponse (done)
//! ```
//!
//! A step out of order, or a message for another round, another node or a node that is
//! not a neighbour, is an error and leaves the state unchanged.
//!
//! The neighbours are not known until share-keys: the graph is drawn from the
//! nonces every advertiser committed to and then revealed ([`super::graph_seed`]),
//! so the coordinator cannot pick it.
//!
//! What the node reveals is fixed by the one survivor set it signs (the consistency
//! check of Bonawitz et al., CCS 2017, §4, with neighbourhoods as in Bell et al., CCS
//! 2020): it signs a set only if it is in it and at least t of its neighbours are;
//! it answers an unmask request only if at least t of its neighbours in that set
//! signed the same set, and the request asks for exactly the self-mask seed shares
//! of its neighbours in the set and the mask-key shares of its other neighbours.
//! Why that stops a lying coordinator is argued in `crypto/README.md` (threat model)
//! and shown by `tests::adversary`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ring::rand::SystemRandom;

use super::config::{NodePolicy, SecAggConfig};
use super::error::{ConsistencyRule, GraphSeedRule, SecAggError};
use super::graph::NeighbourGraph;
use super::graph_seed;
use super::keys::{RoundKeys, ShareSecret};
use super::masking::{MaskTerm, Sign, apply_masks, pairwise_sign, reduce};
use super::messages::{
    AdvertiseKeys, AttemptBinding, EncryptedShare, GraphCommitments, GraphReveal, GraphReveals,
    MaskedInput, MessageKind, NodeId, PartnerAttestation, RevealedShare, RoundId, ShareKeys, Stage,
    SurvivorList, SurvivorSignature, UnmaskRequest, UnmaskResponse,
};
use super::packing::pack;
use super::prg::PrgSeed;
use super::quantize::QuantizedInput;
use super::shamir::{self, SHARE_LEN, Share};
use super::signing::{AdvertisementSigner, AdvertisementVerifier};

/// SHA-256 of a round's setup: k, t, bits, clip range and the participants,
/// each fixed-width, under a domain label. Statements signed under one setup
/// never verify under another. (The graph seed is bound in once it is known:
/// [`bind_graph_seed`].)
pub(crate) fn setup_digest(
    config: &SecAggConfig,
    round: RoundId,
    participants: &[NodeId],
) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(b"cohort-secagg/v3/setup\0");
    context.update(&round.0.to_be_bytes());
    for value in [config.neighbours, config.threshold, participants.len()] {
        context.update(&(value as u64).to_be_bytes());
    }
    context.update(&config.bits.to_be_bytes());
    context.update(&config.clip_range.to_bits().to_be_bytes());
    for id in participants {
        context.update(&id.0.to_be_bytes());
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(context.finish().as_ref());
    digest
}

/// A neighbour's verified public keys for this round.
#[derive(Debug, Clone, Copy)]
struct PeerKeys {
    mask_public_key: [u8; 32],
    share_public_key: [u8; 32],
}

/// The shares a neighbour sent this node.
#[derive(Debug)]
struct HeldShares {
    self_mask_seed: Share,
    mask_key: Share,
}

/// One node's state in one round.
pub struct Participant {
    config: SecAggConfig,
    round: RoundId,
    node: NodeId,
    participants: BTreeSet<NodeId>,
    /// Empty until the graph seed is known (share-keys).
    neighbours: BTreeSet<NodeId>,
    /// This node's contribution to the graph seed; revealed in graph-seed.
    graph_nonce: [u8; 32],
    /// The commitment list this node revealed its nonce against.
    graph_commitments: BTreeMap<NodeId, [u8; 32]>,
    masked_len: usize,
    keys: RoundKeys,
    self_mask_seed: PrgSeed,
    /// The stage whose message this node produces next.
    stage: Stage,
    peers: BTreeMap<NodeId, PeerKeys>,
    /// Each peer's share secret, agreed once when sealing and used again to
    /// open what it sealed for this node.
    share_secrets: BTreeMap<NodeId, ShareSecret>,
    held: BTreeMap<NodeId, HeldShares>,
    /// The survivor set this node signed; what it reveals follows from it.
    signed_survivors: BTreeSet<NodeId>,
    /// SHA-256 of the round's setup as this node received it (its statements
    /// are bound to it).
    setup_digest: [u8; 32],
    rng: SystemRandom,
}

impl fmt::Debug for Participant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Participant")
            .field("round", &self.round)
            .field("node", &self.node)
            .field("stage", &self.stage)
            .field("neighbours", &self.neighbours)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Participant {
    /// Joins round `round` as `node`, among `participants` (the coordinator's list; the
    /// same at every node), for models of `vector_len` coordinates, if the round
    /// meets this node's own `policy`. Makes this round's key pairs, self-mask
    /// seed and graph nonce.
    pub fn new(
        config: &SecAggConfig,
        policy: &NodePolicy,
        round: RoundId,
        node: NodeId,
        participants: &[NodeId],
        vector_len: usize,
    ) -> Result<Self, SecAggError> {
        config.validate(participants.len(), vector_len)?;
        policy.check(config, participants.len())?;
        NeighbourGraph::check_shape(config, participants, round)?;
        if !participants.contains(&node) {
            return Err(SecAggError::InvalidConfig(format!(
                "round {round}: node {node} is not among the round's participants"
            )));
        }
        let rng = SystemRandom::new();
        let mut graph_nonce = [0u8; 32];
        ring::rand::SecureRandom::fill(&rng, &mut graph_nonce)
            .map_err(|_| SecAggError::Crypto("no system randomness for the graph nonce"))?;
        Ok(Self {
            config: *config,
            round,
            node,
            participants: participants.iter().copied().collect(),
            neighbours: BTreeSet::new(),
            graph_nonce,
            graph_commitments: BTreeMap::new(),
            masked_len: vector_len + 1,
            keys: RoundKeys::generate(&rng)?,
            self_mask_seed: PrgSeed::random(&rng)?,
            stage: Stage::AdvertiseKeys,
            peers: BTreeMap::new(),
            share_secrets: BTreeMap::new(),
            held: BTreeMap::new(),
            signed_survivors: BTreeSet::new(),
            setup_digest: setup_digest(config, round, participants),
            rng,
        })
    }

    /// Binds what the application adds to the round's setup — the
    /// federation, the noise each node adds, the weight cap: whatever the
    /// coordinator sends that all nodes must agree on — into every statement
    /// this participant signs or accepts. Nodes told different contexts then
    /// never count each other's survivor signatures or partner attestations,
    /// so a coordinator cannot give one node a different setup unnoticed.
    /// Only before [`advertise`](Self::advertise).
    pub fn bind_context(&mut self, context: &[u8]) -> Result<(), SecAggError> {
        self.expect_stage(Stage::AdvertiseKeys, "bind the setup context")?;
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        digest.update(b"cohort-secagg/v2/context\0");
        digest.update(&self.setup_digest);
        digest.update(&(context.len() as u64).to_be_bytes());
        digest.update(context);
        self.setup_digest.copy_from_slice(digest.finish().as_ref());
        Ok(())
    }

    /// Replaces this node's graph nonce, so that tests can hold the graph
    /// fixed across attempts and isolate what else binds a statement.
    #[cfg(test)]
    pub(crate) fn fix_graph_nonce(&mut self, nonce: [u8; 32]) {
        self.graph_nonce = nonce;
    }

    /// This node's id in the round.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The round this participant belongs to.
    pub fn round(&self) -> RoundId {
        self.round
    }

    /// The stage whose message this node produces next ([`Stage::Finished`] once it
    /// has answered the unmask request).
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The nodes this one masks with (if they share keys), by id; none before
    /// share-keys, when the graph is drawn.
    pub fn neighbours(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.neighbours.iter().copied()
    }

    fn expect_stage(&self, stage: Stage, step: &'static str) -> Result<(), SecAggError> {
        if self.stage != stage {
            return Err(SecAggError::OutOfOrder {
                round: self.round,
                node: self.node,
                step,
                stage: self.stage,
            });
        }
        Ok(())
    }

    fn expect_round(
        &self,
        got: RoundId,
        from: NodeId,
        what: MessageKind,
    ) -> Result<(), SecAggError> {
        if got != self.round {
            return Err(SecAggError::RoundMismatch {
                round: self.round,
                node: from,
                what,
                got,
            });
        }
        Ok(())
    }

    /// Stage 1: this round's public keys and graph commitment, signed by
    /// `signer` (the node's identity key).
    pub fn advertise(
        &mut self,
        signer: &dyn AdvertisementSigner,
    ) -> Result<AdvertiseKeys, SecAggError> {
        self.expect_stage(Stage::AdvertiseKeys, "advertise keys")?;
        let mut advert = AdvertiseKeys {
            round: self.round,
            node: self.node,
            mask_public_key: self.keys.mask_public_key(),
            share_public_key: self.keys.share_public_key(),
            graph_commitment: graph_seed::commitment(self.round, self.node, &self.graph_nonce),
            signature: Vec::new(),
        };
        advert.signature = signer
            .sign(&advert.signed_payload())
            .map_err(SecAggError::Signing)?;
        self.stage = Stage::GraphSeed;
        Ok(advert)
    }

    /// Stage 2: given the commitments of every node that advertised (the same
    /// list at every node, fixed before any nonce is revealed), checks that
    /// it holds this node's own commitment, only participants and at least t
    /// nodes, keeps it, and reveals this node's graph nonce.
    pub fn reveal_graph_nonce(
        &mut self,
        list: &GraphCommitments,
    ) -> Result<GraphReveal, SecAggError> {
        self.expect_stage(Stage::GraphSeed, "reveal its graph nonce")?;
        self.expect_round(list.round, self.node, MessageKind::GraphCommitments)?;
        let (round, node) = (self.round, self.node);
        let commitments = graph_seed::commitments_by_node(list, node)?;
        let own = graph_seed::commitment(round, node, &self.graph_nonce);
        if commitments.get(&node) != Some(&own) {
            return Err(graph_seed::refused(
                round,
                node,
                GraphSeedRule::OwnCommitmentAltered,
            ));
        }
        if let Some(stranger) = commitments
            .keys()
            .find(|id| !self.participants.contains(id))
        {
            let rule = GraphSeedRule::NotAParticipant { node: *stranger };
            return Err(graph_seed::refused(round, node, rule));
        }
        if commitments.len() < self.config.threshold {
            let rule = GraphSeedRule::TooFewCommitments {
                got: commitments.len(),
                needed: self.config.threshold,
            };
            return Err(graph_seed::refused(round, node, rule));
        }
        self.graph_commitments = commitments;
        self.stage = Stage::ShareKeys;
        Ok(GraphReveal {
            round,
            node,
            nonce: self.graph_nonce,
        })
    }

    /// Stage 3: given every committed node's revealed nonce, draws the graph
    /// (and binds this node's later statements to it); then, given the
    /// advertisements of the neighbours that advertised (relayed by the
    /// coordinator), checks each one's signature with `verifier` and its
    /// commitment against the list, and splits the self-mask seed and the mask
    /// secret key t-of-(their number) and seals one pair of shares for each of
    /// them.
    pub fn share_keys(
        &mut self,
        reveals: &GraphReveals,
        neighbour_keys: &[AdvertiseKeys],
        verifier: &dyn AdvertisementVerifier,
    ) -> Result<ShareKeys, SecAggError> {
        self.expect_stage(Stage::ShareKeys, "share keys")?;
        let seed =
            graph_seed::seed_from_reveals(self.round, self.node, &self.graph_commitments, reveals)?;
        let participants: Vec<NodeId> = self.participants.iter().copied().collect();
        let graph = NeighbourGraph::harary(&self.config, &participants, self.round, &seed)?;
        let neighbours: BTreeSet<NodeId> = graph.neighbours(self.node).into_iter().collect();
        let peers = self.verified_peers(&neighbours, neighbour_keys, verifier)?;
        let secrets = (peers.iter())
            .map(|(peer, keys)| {
                let secret =
                    (self.keys.share).share_secret(&keys.share_public_key, self.round, *peer)?;
                Ok((*peer, secret))
            })
            .collect::<Result<BTreeMap<_, _>, SecAggError>>()?;
        let shares = self.sealed_shares(&secrets)?;
        self.share_secrets = secrets;
        self.neighbours = neighbours;
        self.setup_digest = graph_seed::bind_graph_seed(&self.setup_digest, &seed);
        self.peers = peers;
        self.stage = Stage::MaskedInput;
        Ok(ShareKeys {
            round: self.round,
            node: self.node,
            shares,
        })
    }

    /// The neighbours' advertised keys, each from one of `neighbours`, once,
    /// signed by its identity key, committing to the listed nonce, and never
    /// seen before in this round; at least t of them.
    fn verified_peers(
        &self,
        neighbours: &BTreeSet<NodeId>,
        neighbour_keys: &[AdvertiseKeys],
        verifier: &dyn AdvertisementVerifier,
    ) -> Result<BTreeMap<NodeId, PeerKeys>, SecAggError> {
        let round = self.round;
        let own_keys = [self.keys.mask_public_key(), self.keys.share_public_key()];
        let mut seen_keys: BTreeSet<[u8; 32]> = own_keys.into_iter().collect();
        let mut peers = BTreeMap::new();
        for advert in neighbour_keys {
            let peer = advert.node;
            self.expect_round(advert.round, peer, MessageKind::AdvertiseKeys)?;
            if !neighbours.contains(&peer) {
                return Err(SecAggError::NotNeighbour {
                    round,
                    node: self.node,
                    peer,
                    what: MessageKind::AdvertiseKeys,
                });
            }
            if peers.contains_key(&peer) {
                return Err(SecAggError::Duplicate {
                    round,
                    node: peer,
                    what: MessageKind::AdvertiseKeys,
                });
            }
            if !verifier.verify(peer, &advert.signed_payload(), &advert.signature) {
                return Err(SecAggError::BadSignature { round, node: peer });
            }
            if self.graph_commitments.get(&peer) != Some(&advert.graph_commitment) {
                let rule = GraphSeedRule::AdvertDisagrees { node: peer };
                return Err(graph_seed::refused(round, self.node, rule));
            }
            // A key seen before (ours, or another node's) means a reflected or copied
            // key: masks or shares would be shared with the wrong party.
            for key in [advert.mask_public_key, advert.share_public_key] {
                if !seen_keys.insert(key) {
                    return Err(SecAggError::BadPublicKey {
                        round,
                        node: peer,
                        reason: "a key already advertised in this round",
                    });
                }
            }
            peers.insert(
                peer,
                PeerKeys {
                    mask_public_key: advert.mask_public_key,
                    share_public_key: advert.share_public_key,
                },
            );
        }
        self.expect_enough(peers.len(), Stage::AdvertiseKeys)?;
        Ok(peers)
    }

    /// Fewer than t neighbours completed `stage`: the round cannot unmask.
    fn expect_enough(&self, got: usize, stage: Stage) -> Result<(), SecAggError> {
        if got < self.config.threshold {
            return Err(SecAggError::TooFewNeighbours {
                round: self.round,
                node: self.node,
                stage,
                got,
                needed: self.config.threshold,
            });
        }
        Ok(())
    }

    /// t-of-(peers) shares of the self-mask seed and the mask secret key, one
    /// pair sealed for each peer under a key only the two can derive.
    fn sealed_shares(
        &self,
        secrets: &BTreeMap<NodeId, ShareSecret>,
    ) -> Result<Vec<EncryptedShare>, SecAggError> {
        let (round, threshold) = (self.round, self.config.threshold);
        let xs: Vec<u64> = secrets.keys().map(|id| id.share_x()).collect();
        let seed_shares = shamir::split(self.self_mask_seed.as_bytes(), threshold, &xs, &self.rng)?;
        let key_shares = shamir::split(&self.keys.mask.secret_bytes(), threshold, &xs, &self.rng)?;
        let mut shares = Vec::with_capacity(secrets.len());
        let mut plaintext = zeroize::Zeroizing::new([0u8; 2 * SHARE_LEN]);
        for ((peer, secret), (seed_share, key_share)) in
            secrets.iter().zip(seed_shares.iter().zip(&key_shares))
        {
            plaintext[..SHARE_LEN].copy_from_slice(&seed_share.to_bytes()[..]);
            plaintext[SHARE_LEN..].copy_from_slice(&key_share.to_bytes()[..]);
            let ciphertext = secret.seal(round, self.node, *peer, &plaintext[..], &self.rng)?;
            shares.push(EncryptedShare {
                round,
                from: self.node,
                to: *peer,
                ciphertext,
            });
        }
        Ok(shares)
    }

    /// Stage 3: opens the shares the neighbours sent (each must authenticate), then
    /// masks `input` with the self mask and one pairwise mask per neighbour that sent
    /// shares, packs it at b bits per value, and signs the list of those neighbours
    /// with `signer`.
    pub fn masked_input(
        &mut self,
        received: &[EncryptedShare],
        input: &QuantizedInput,
        signer: &dyn AdvertisementSigner,
    ) -> Result<MaskedInput, SecAggError> {
        self.expect_stage(Stage::MaskedInput, "send its masked input")?;
        let round = self.round;
        if input.len() != self.masked_len {
            return Err(SecAggError::InvalidUpdate(format!(
                "round {round}: node {}'s quantized input has {} values; the round masks {}",
                self.node,
                input.len(),
                self.masked_len
            )));
        }
        let held = self.opened_shares(received)?;
        let partners: Vec<NodeId> = held.keys().copied().collect();
        let values = self.masked(input, &partners)?;
        let payload = PartnerAttestation::signed_payload(&self.binding(), &partners);
        let signature = signer.sign(&payload).map_err(SecAggError::Signing)?;

        self.held = held;
        self.stage = Stage::ConsistencyCheck;
        Ok(MaskedInput {
            round,
            node: self.node,
            len: values.len() as u64,
            partners: PartnerAttestation {
                node: self.node,
                partners,
                signature,
            },
            packed: pack(&values, self.config.bits),
        })
    }

    /// The shares each neighbour sealed for this node: addressed to it, from a
    /// peer that shared keys, once, authenticated, and at its x-coordinate; at
    /// least t of them.
    fn opened_shares(
        &self,
        received: &[EncryptedShare],
    ) -> Result<BTreeMap<NodeId, HeldShares>, SecAggError> {
        let round = self.round;
        let mut held = BTreeMap::new();
        for share in received {
            let from = share.from;
            self.expect_round(share.round, from, MessageKind::EncryptedShare)?;
            self.expect_addressee(share.to, MessageKind::EncryptedShare)?;
            let Some(secret) = self.share_secrets.get(&from) else {
                return Err(SecAggError::NotNeighbour {
                    round,
                    node: self.node,
                    peer: from,
                    what: MessageKind::EncryptedShare,
                });
            };
            if held.contains_key(&from) {
                return Err(SecAggError::Duplicate {
                    round,
                    node: from,
                    what: MessageKind::EncryptedShare,
                });
            }
            let plaintext = secret.open(round, from, self.node, &share.ciphertext)?;
            let malformed = |detail: &str| SecAggError::Malformed {
                round,
                node: from,
                what: MessageKind::EncryptedShare,
                detail: detail.to_owned(),
            };
            if plaintext.len() != 2 * SHARE_LEN {
                return Err(malformed("the sealed shares have the wrong length"));
            }
            let self_mask_seed = Share::from_bytes(&plaintext[..SHARE_LEN])
                .map_err(|e| malformed(&e.to_string()))?;
            let mask_key = Share::from_bytes(&plaintext[SHARE_LEN..])
                .map_err(|e| malformed(&e.to_string()))?;
            if self_mask_seed.x() != self.node.share_x() || mask_key.x() != self.node.share_x() {
                return Err(malformed("the shares are for another node's x-coordinate"));
            }
            held.insert(
                from,
                HeldShares {
                    self_mask_seed,
                    mask_key,
                },
            );
        }
        self.expect_enough(held.len(), Stage::ShareKeys)?;
        Ok(held)
    }

    /// `input` plus the self mask and one pairwise mask per partner, in Z_M.
    fn masked(&self, input: &QuantizedInput, partners: &[NodeId]) -> Result<Vec<u64>, SecAggError> {
        let mut terms = Vec::with_capacity(partners.len() + 1);
        terms.push(MaskTerm {
            seed: self.self_mask_seed.clone(),
            sign: Sign::Add,
        });
        for &peer in partners {
            // Partners come from the opened shares, whose senders are all peers.
            let Some(keys) = self.peers.get(&peer) else {
                return Err(SecAggError::NotNeighbour {
                    round: self.round,
                    node: self.node,
                    peer,
                    what: MessageKind::EncryptedShare,
                });
            };
            terms.push(MaskTerm {
                seed: self.keys.mask.pairwise_mask_seed(
                    &keys.mask_public_key,
                    self.round,
                    self.node,
                    peer,
                )?,
                sign: pairwise_sign(self.node, peer),
            });
        }
        let mut values = input.values().to_vec();
        apply_masks(&mut values, &terms, self.config.bits)?;
        reduce(&mut values, self.config.bits);
        Ok(values)
    }

    /// What this node's own statements are bound to.
    fn binding(&self) -> AttemptBinding {
        AttemptBinding {
            round: self.round,
            setup_digest: self.setup_digest,
            mask_public_key: self.keys.mask_public_key(),
            share_public_key: self.keys.share_public_key(),
        }
    }

    /// What a neighbour's statements are bound to, if its keys are known.
    fn peer_binding(&self, peer: NodeId) -> Option<AttemptBinding> {
        self.peers.get(&peer).map(|keys| AttemptBinding {
            round: self.round,
            setup_digest: self.setup_digest,
            mask_public_key: keys.mask_public_key,
            share_public_key: keys.share_public_key,
        })
    }

    fn refuse(&self, rule: ConsistencyRule) -> SecAggError {
        SecAggError::ConsistencyRefused {
            round: self.round,
            node: self.node,
            rule,
        }
    }

    fn expect_addressee(&self, to: NodeId, what: MessageKind) -> Result<(), SecAggError> {
        if to != self.node {
            return Err(SecAggError::Misaddressed {
                round: self.round,
                node: self.node,
                to,
                what,
            });
        }
        Ok(())
    }

    /// Stage 4: signs the survivor set `list` (with `signer`, the node's identity
    /// key) after checking that it is well formed, holds this node and at least t
    /// of its neighbours, and names no neighbour that did not share keys with it.
    /// The node signs once: what it reveals later follows from this set.
    pub fn consistency_check(
        &mut self,
        list: &SurvivorList,
        signer: &dyn AdvertisementSigner,
    ) -> Result<SurvivorSignature, SecAggError> {
        self.expect_round(list.round, list.node, MessageKind::SurvivorList)?;
        self.expect_addressee(list.node, MessageKind::SurvivorList)?;
        self.expect_stage(Stage::ConsistencyCheck, "sign the survivor set")?;
        let malformed = |detail: String| ConsistencyRule::MalformedSurvivorList { detail };
        if !list.survivors.windows(2).all(|pair| pair[0] < pair[1]) {
            return Err(self.refuse(malformed("not ascending without repeats".into())));
        }
        let survivors: BTreeSet<NodeId> = list.survivors.iter().copied().collect();
        if let Some(stranger) = survivors.difference(&self.participants).next() {
            return Err(self.refuse(malformed(format!(
                "node {stranger} is not a participant of the round"
            ))));
        }
        if let Some(peer) = survivors
            .intersection(&self.neighbours)
            .find(|peer| !self.held.contains_key(peer))
        {
            return Err(self.refuse(malformed(format!(
                "neighbour {peer} never shared keys with this node, so it sent no masked input"
            ))));
        }
        if !survivors.contains(&self.node) {
            return Err(self.refuse(ConsistencyRule::NotASurvivor));
        }
        let surviving_neighbours = survivors.intersection(&self.neighbours).count();
        if surviving_neighbours < self.config.threshold {
            return Err(self.refuse(ConsistencyRule::TooFewSurvivingNeighbours {
                got: surviving_neighbours,
                needed: self.config.threshold,
            }));
        }
        let payload = SurvivorList::signed_payload(&self.binding(), &list.survivors);
        let signature = signer.sign(&payload).map_err(SecAggError::Signing)?;
        self.signed_survivors = survivors;
        self.stage = Stage::Unmasking;
        Ok(SurvivorSignature {
            round: self.round,
            node: self.node,
            signature,
        })
    }

    /// The request's lists must be exactly what the signed set calls for.
    fn check_request_against_set(&self, request: &UnmaskRequest) -> Result<(), SecAggError> {
        let survivors: BTreeSet<NodeId> = request.survivors.iter().copied().collect();
        let dropped: BTreeSet<NodeId> = request.dropped.iter().copied().collect();
        if let Some(&peer) = survivors.intersection(&dropped).next() {
            return Err(SecAggError::BothSecretsRequested {
                round: self.round,
                node: self.node,
                peer,
            });
        }
        let (expected_survivors, expected_dropped): (BTreeSet<NodeId>, BTreeSet<NodeId>) = self
            .held
            .keys()
            .partition(|peer| self.signed_survivors.contains(peer));
        // The first id listed twice, if any.
        let repeated = |list: &[NodeId]| {
            let mut seen = BTreeSet::new();
            list.iter().find(|id| !seen.insert(**id)).copied()
        };
        let disagreement = survivors
            .symmetric_difference(&expected_survivors)
            .chain(dropped.symmetric_difference(&expected_dropped))
            .next()
            .copied()
            .or_else(|| repeated(&request.survivors))
            .or_else(|| repeated(&request.dropped));
        match disagreement {
            Some(peer) => Err(self.refuse(ConsistencyRule::RequestDisagreesWithSet { peer })),
            None => Ok(()),
        }
    }

    /// How many distinct neighbours in the signed set signed that same set in
    /// this attempt (invalid signatures and other signers are not counted; each
    /// signer is verified at most once).
    fn count_valid_signatures(
        &self,
        request: &UnmaskRequest,
        verifier: &dyn AdvertisementVerifier,
    ) -> usize {
        let sorted: Vec<NodeId> = self.signed_survivors.iter().copied().collect();
        let mut tried = BTreeSet::new();
        let mut valid = 0;
        for signature in &request.signatures {
            let signer = signature.node;
            let eligible = signer != self.node
                && self.neighbours.contains(&signer)
                && self.signed_survivors.contains(&signer)
                && tried.insert(signer);
            let Some(binding) = self.peer_binding(signer).filter(|_| eligible) else {
                continue;
            };
            let payload = SurvivorList::signed_payload(&binding, &sorted);
            if verifier.verify(signer, &payload, &signature.signature) {
                valid += 1;
            }
        }
        valid
    }

    /// Every neighbour whose self-mask seed share is asked for must have
    /// attested, in this attempt, that it masked with this node: else this
    /// node's share would help unmask an input that no mask of this node's
    /// keeps inside a sum.
    fn check_partner_attestations(
        &self,
        request: &UnmaskRequest,
        verifier: &dyn AdvertisementVerifier,
    ) -> Result<(), SecAggError> {
        for &peer in &request.survivors {
            let attested = request
                .attestations
                .iter()
                .find(|attestation| attestation.node == peer)
                .zip(self.peer_binding(peer))
                .is_some_and(|(attestation, binding)| {
                    attestation.partners.binary_search(&self.node).is_ok()
                        && verifier.verify(
                            peer,
                            &PartnerAttestation::signed_payload(&binding, &attestation.partners),
                            &attestation.signature,
                        )
                });
            if !attested {
                return Err(self.refuse(ConsistencyRule::NotAPartner { peer }));
            }
        }
        Ok(())
    }

    /// Stage 5: reveals the requested shares: of the self-mask seed of each survivor,
    /// of the mask key of each dropped neighbour. Refuses (naming the
    /// [`ConsistencyRule`]) unless the request asks for exactly what the signed
    /// survivor set calls for and at least t neighbours in that set signed it too,
    /// each signature checked with `verifier` (their identity keys).
    pub fn unmask(
        &mut self,
        request: &UnmaskRequest,
        verifier: &dyn AdvertisementVerifier,
    ) -> Result<UnmaskResponse, SecAggError> {
        self.expect_round(request.round, request.node, MessageKind::UnmaskRequest)?;
        self.expect_addressee(request.node, MessageKind::UnmaskRequest)?;
        self.expect_stage(Stage::Unmasking, "reveal shares")?;
        self.check_request_against_set(request)?;
        self.check_partner_attestations(request, verifier)?;
        let signatures = self.count_valid_signatures(request, verifier);
        if signatures < self.config.threshold {
            return Err(self.refuse(ConsistencyRule::TooFewSignatures {
                got: signatures,
                needed: self.config.threshold,
            }));
        }
        self.reveal(request)
    }

    /// The shares `request` names, once its checks passed; ends the round.
    fn reveal(&mut self, request: &UnmaskRequest) -> Result<UnmaskResponse, SecAggError> {
        let round = self.round;
        let survivors: BTreeSet<NodeId> = request.survivors.iter().copied().collect();
        let dropped: BTreeSet<NodeId> = request.dropped.iter().copied().collect();
        let reveal = |peers: &BTreeSet<NodeId>, pick: fn(&HeldShares) -> &Share| {
            peers
                .iter()
                .map(|&peer| {
                    let held = self.held.get(&peer).ok_or(SecAggError::NoShareHeld {
                        round,
                        node: self.node,
                        peer,
                    })?;
                    Ok(RevealedShare {
                        owner: peer,
                        share: pick(held).clone(),
                    })
                })
                .collect::<Result<Vec<_>, SecAggError>>()
        };
        let self_mask_seed_shares = reveal(&survivors, |held| &held.self_mask_seed)?;
        let mask_key_shares = reveal(&dropped, |held| &held.mask_key)?;
        self.stage = Stage::Finished;
        Ok(UnmaskResponse {
            round,
            node: self.node,
            self_mask_seed_shares,
            mask_key_shares,
        })
    }

    /// The protocol without the consistency check, as it was before it: a node
    /// refuses only a request for both secrets of one peer. Test-only, to show
    /// that the attack `tests::adversary` runs succeeds without the check.
    #[cfg(test)]
    pub(crate) fn unmask_without_consistency_check(
        &mut self,
        request: &UnmaskRequest,
    ) -> Result<UnmaskResponse, SecAggError> {
        self.expect_stage(Stage::ConsistencyCheck, "reveal shares unchecked")?;
        if let Some(&peer) = request
            .survivors
            .iter()
            .find(|peer| request.dropped.contains(peer))
        {
            return Err(SecAggError::BothSecretsRequested {
                round: self.round,
                node: self.node,
                peer,
            });
        }
        self.reveal(request)
    }
}
