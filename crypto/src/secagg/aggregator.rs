//! The coordinator's side of a round: collect each stage's messages, relay what the
//! nodes need, and unmask the sum.
//!
//! The caller (the coordinator's round driver) feeds each stage's messages as they
//! arrive, closes the stage at its deadline, and relays what the aggregator hands out.
//! Whoever has not sent a stage's message by then has dropped at that stage:
//!
//! | set | who                                   | |
//! |-----|---------------------------------------|-|
//! | U1  | advertised keys                       | every one must reveal its graph nonce |
//! | U2  | shared keys (⊆ U1)                    | their masks are in the survivors' inputs |
//! | U3  | sent a masked input (⊆ U2)            | the survivors: the sum is theirs |
//! | U4  | signed U3 (⊆ U3)                      | they are asked to unmask |
//! | U5  | answered the unmask request (⊆ U4)    | they supply the shares |
//!
//! Between U1 and U2 every advertiser reveals the nonce it committed to in its
//! advert; the nonces draw the neighbour graph ([`super::graph_seed`]), and one
//! missing nonce aborts the attempt.
//!
//! In the consistency check every survivor is sent U3 and signs it; in unmasking,
//! each signer u is sent its neighbours' signatures and asked, for its neighbours,
//! for shares of b_v for v ∈ U3 and of sk_v for v ∈ U2 ∖ U3 — disjoint sets, so the
//! aggregator never holds both secrets of one node. Its state holds masked data only: the running sum of the
//! masked inputs (each one is added on arrival and not kept) and the shares; the one
//! output, [`Aggregator::finish`], is the sum over U3 with the masks removed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use subtle::ConstantTimeEq;

use super::config::SecAggConfig;
use super::error::{SecAggError, SecretKind};
use super::graph::NeighbourGraph;
use super::graph_seed;
use super::keys::KeyPair;
use super::masking::{MaskTerm, Sign, apply_masks, pairwise_sign, reduce};
use super::messages::{
    AdvertiseKeys, EncryptedShare, GraphCommitments, GraphReveal, GraphReveals, MaskedInput,
    MessageKind, NodeId, PartnerAttestation, RevealedShare, RoundId, ShareKeys, Stage,
    SurvivorList, SurvivorSignature, UnmaskRequest, UnmaskResponse,
};
use super::packing::{packed_len, unpack_add};
use super::prg::PrgSeed;
use super::shamir::{self, Share};

/// Who dropped out, and when.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropouts {
    /// Participants that never advertised keys.
    pub before_advertising: Vec<NodeId>,
    /// Advertised keys but sent no shares: nobody masked with them.
    pub before_sharing: Vec<NodeId>,
    /// Shared keys but sent no masked input: their mask keys are rebuilt to remove
    /// their pairwise masks from the survivors' inputs.
    pub before_masked_input: Vec<NodeId>,
    /// Sent a masked input (and count in the sum) but did not sign the survivor set.
    pub before_signing: Vec<NodeId>,
    /// Signed the survivor set (and count in the sum) but did not answer in
    /// unmasking.
    pub before_unmasking: Vec<NodeId>,
}

/// The unmasked sum of the survivors' quantized inputs, in Z_M.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateSum {
    round: RoundId,
    contributors: Vec<NodeId>,
    dropouts: Dropouts,
    values: Vec<u64>,
}

impl AggregateSum {
    /// The round the sum is of.
    pub fn round(&self) -> RoundId {
        self.round
    }

    /// The nodes whose inputs are in the sum (U3).
    pub fn contributors(&self) -> &[NodeId] {
        &self.contributors
    }

    /// Who dropped out at which stage of the round.
    pub fn dropouts(&self) -> &Dropouts {
        &self.dropouts
    }

    /// The sum, per coordinate (the weight last); read it with
    /// [`Quantizer::dequantize_sum`](super::quantize::Quantizer::dequantize_sum).
    pub fn values(&self) -> &[u64] {
        &self.values
    }
}

/// The coordinator's state for one round.
#[derive(Clone)]
pub struct Aggregator {
    config: SecAggConfig,
    round: RoundId,
    /// Empty until every advertiser's graph nonce is in.
    graph: NeighbourGraph,
    /// The seed the nodes' nonces drew the graph from, once they are all in.
    graph_seed: Option<[u8; 32]>,
    participants: BTreeSet<NodeId>,
    masked_len: usize,
    stage: Stage,
    /// U1, with each node's advertisement.
    advertised: BTreeMap<NodeId, AdvertiseKeys>,
    /// The graph nonces revealed so far, of nodes in U1.
    graph_nonces: BTreeMap<NodeId, [u8; 32]>,
    /// U2.
    shared: BTreeSet<NodeId>,
    /// Sealed shares by recipient.
    inbox: BTreeMap<NodeId, Vec<EncryptedShare>>,
    /// U3.
    masked: BTreeSet<NodeId>,
    /// Each survivor's signed list of masking partners, relayed to the holders
    /// of its shares.
    attestations: BTreeMap<NodeId, PartnerAttestation>,
    /// Σ_{u ∈ U3} y_u, wrapping; reduced into Z_M at the end.
    running_sum: Vec<u64>,
    /// U4, with each node's signature on U3.
    signatures: BTreeMap<NodeId, SurvivorSignature>,
    requests: BTreeMap<NodeId, UnmaskRequest>,
    /// U5.
    responded: BTreeSet<NodeId>,
    /// Revealed shares of b_v (v ∈ U3) and of sk_v (v ∈ U2 ∖ U3), by owner.
    seed_shares: BTreeMap<NodeId, Vec<Share>>,
    key_shares: BTreeMap<NodeId, Vec<Share>>,
}

impl fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aggregator")
            .field("round", &self.round)
            .field("stage", &self.stage)
            .field("participants", &self.participants.len())
            .field("advertised", &self.advertised.len())
            .field("shared", &self.shared.len())
            .field("masked", &self.masked.len())
            .field("signed", &self.signatures.len())
            .field("responded", &self.responded.len())
            .finish_non_exhaustive()
    }
}

impl Aggregator {
    /// Starts round `round` over `participants`, for models of `vector_len`
    /// coordinates. (The neighbour graph is drawn later, from the nodes'
    /// revealed nonces.)
    pub fn new(
        config: &SecAggConfig,
        round: RoundId,
        participants: &[NodeId],
        vector_len: usize,
    ) -> Result<Self, SecAggError> {
        config.validate(participants.len(), vector_len)?;
        NeighbourGraph::check_shape(config, participants, round)?;
        Ok(Self {
            config: *config,
            round,
            graph: NeighbourGraph::empty(),
            graph_seed: None,
            participants: participants.iter().copied().collect(),
            masked_len: vector_len + 1,
            stage: Stage::AdvertiseKeys,
            advertised: BTreeMap::new(),
            graph_nonces: BTreeMap::new(),
            shared: BTreeSet::new(),
            inbox: BTreeMap::new(),
            masked: BTreeSet::new(),
            attestations: BTreeMap::new(),
            running_sum: vec![0; vector_len + 1],
            signatures: BTreeMap::new(),
            requests: BTreeMap::new(),
            responded: BTreeSet::new(),
            seed_shares: BTreeMap::new(),
            key_shares: BTreeMap::new(),
        })
    }

    /// The round this aggregator serves.
    pub fn round(&self) -> RoundId {
        self.round
    }

    /// The stage whose messages are being collected.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The round's neighbourhood graph (empty before the graph-seed stage
    /// closes).
    pub fn graph(&self) -> &NeighbourGraph {
        &self.graph
    }

    /// Round, stage and sender checks common to every incoming message.
    fn admit(
        &self,
        round: RoundId,
        node: NodeId,
        what: MessageKind,
        stage: Stage,
        allowed: bool,
        already: bool,
    ) -> Result<(), SecAggError> {
        if round != self.round {
            return Err(SecAggError::RoundMismatch {
                round: self.round,
                node,
                what,
                got: round,
            });
        }
        if self.stage != stage {
            return Err(SecAggError::WrongStage {
                round,
                node,
                what,
                stage: self.stage,
            });
        }
        if !allowed {
            return Err(SecAggError::UnexpectedSender { round, node, what });
        }
        if already {
            return Err(SecAggError::Duplicate { round, node, what });
        }
        Ok(())
    }

    fn close(&mut self, stage: Stage, step: &'static str) -> Result<(), SecAggError> {
        if self.stage != stage {
            return Err(SecAggError::AggregatorOutOfOrder {
                round: self.round,
                step,
                stage: self.stage,
            });
        }
        Ok(())
    }

    fn require_nodes(&self, stage: Stage, got: usize) -> Result<(), SecAggError> {
        if got < self.config.threshold {
            return Err(SecAggError::TooFewNodes {
                round: self.round,
                stage,
                got,
                needed: self.config.threshold,
            });
        }
        Ok(())
    }

    /// Stage 1: a node's key advertisement. (Its signature is checked by the
    /// neighbours, who must not trust the coordinator to have checked it.)
    pub fn receive_advertisement(&mut self, message: AdvertiseKeys) -> Result<(), SecAggError> {
        let node = message.node;
        self.admit(
            message.round,
            node,
            MessageKind::AdvertiseKeys,
            Stage::AdvertiseKeys,
            self.participants.contains(&node),
            self.advertised.contains_key(&node),
        )?;
        self.advertised.insert(node, message);
        Ok(())
    }

    /// Ends stage 1: U1 is fixed.
    pub fn close_advertise_keys(&mut self) -> Result<(), SecAggError> {
        self.close(Stage::AdvertiseKeys, "close the advertise-keys stage")?;
        self.require_nodes(Stage::AdvertiseKeys, self.advertised.len())?;
        self.stage = Stage::GraphSeed;
        Ok(())
    }

    /// For every node in U1: U1's graph commitments, to pass to
    /// [`Participant::reveal_graph_nonce`](super::participant::Participant::reveal_graph_nonce).
    pub fn graph_commitments(&self) -> GraphCommitments {
        GraphCommitments {
            round: self.round,
            commitments: self
                .advertised
                .iter()
                .map(|(&node, advert)| (node, advert.graph_commitment))
                .collect(),
        }
    }

    /// Stage 2: a node's graph nonce, which must open its commitment.
    pub fn receive_graph_reveal(&mut self, message: GraphReveal) -> Result<(), SecAggError> {
        let node = message.node;
        self.admit(
            message.round,
            node,
            MessageKind::GraphReveal,
            Stage::GraphSeed,
            self.advertised.contains_key(&node),
            self.graph_nonces.contains_key(&node),
        )?;
        let committed = &self.advertised[&node].graph_commitment;
        if !graph_seed::opens(self.round, node, &message.nonce, committed) {
            return Err(SecAggError::Malformed {
                round: self.round,
                node,
                what: MessageKind::GraphReveal,
                detail: "the nonce does not open the node's graph commitment".into(),
            });
        }
        self.graph_nonces.insert(node, message.nonce);
        Ok(())
    }

    /// Ends stage 2: every node in U1 must have revealed its nonce (else the
    /// attempt aborts: leaving a nonce out would choose among graphs); the
    /// nonces draw the graph.
    pub fn close_graph_seed(&mut self) -> Result<(), SecAggError> {
        self.close(Stage::GraphSeed, "close the graph-seed stage")?;
        let commitments: BTreeMap<NodeId, [u8; 32]> = self
            .advertised
            .iter()
            .map(|(&node, advert)| (node, advert.graph_commitment))
            .collect();
        if let Some(&node) = commitments
            .keys()
            .find(|node| !self.graph_nonces.contains_key(node))
        {
            return Err(SecAggError::GraphNonceMissing {
                round: self.round,
                node,
            });
        }
        // Every nonce opens its commitment (checked on arrival), so this only
        // hashes; the checker id names U1's first node.
        let checker = self.advertised.keys().next().copied().unwrap_or(NodeId(0));
        let seed = graph_seed::seed_from_reveals(
            self.round,
            checker,
            &commitments,
            &self.graph_reveals(),
        )?;
        let participants: Vec<NodeId> = self.participants.iter().copied().collect();
        self.graph = NeighbourGraph::harary(&self.config, &participants, self.round, &seed)?;
        self.graph_seed = Some(seed);
        self.stage = Stage::ShareKeys;
        Ok(())
    }

    /// The advertisers (U1) whose graph nonce has not arrived: after a
    /// failed [`close_graph_seed`](Self::close_graph_seed), who aborted the
    /// attempt.
    pub fn unrevealed(&self) -> Vec<NodeId> {
        self.advertised
            .keys()
            .filter(|node| !self.graph_nonces.contains_key(node))
            .copied()
            .collect()
    }

    /// The seed the graph was drawn from (`None` before the graph-seed stage
    /// closes): an auditor can redraw the graph from it.
    pub fn graph_seed(&self) -> Option<[u8; 32]> {
        self.graph_seed
    }

    /// For every node in U1, with its neighbours' adverts: every revealed nonce.
    pub fn graph_reveals(&self) -> GraphReveals {
        GraphReveals {
            round: self.round,
            nonces: self
                .graph_nonces
                .iter()
                .map(|(&node, nonce)| (node, *nonce))
                .collect(),
        }
    }

    /// For `node`: the advertisements of its neighbours in U1, to pass to
    /// [`Participant::share_keys`](super::participant::Participant::share_keys).
    pub fn advertisements_for(&self, node: NodeId) -> Vec<AdvertiseKeys> {
        self.graph
            .neighbours(node)
            .into_iter()
            .filter_map(|peer| self.advertised.get(&peer).cloned())
            .collect()
    }

    /// Stage 2: a node's sealed shares, exactly one for each of its neighbours in U1.
    pub fn receive_shares(&mut self, message: ShareKeys) -> Result<(), SecAggError> {
        let round = self.round;
        let node = message.node;
        self.admit(
            message.round,
            node,
            MessageKind::ShareKeys,
            Stage::ShareKeys,
            self.advertised.contains_key(&node),
            self.shared.contains(&node),
        )?;
        let malformed = |detail: String| SecAggError::Malformed {
            round,
            node,
            what: MessageKind::ShareKeys,
            detail,
        };
        let mut expected: BTreeSet<NodeId> = self
            .graph
            .neighbours(node)
            .into_iter()
            .filter(|peer| self.advertised.contains_key(peer))
            .collect();
        for share in &message.shares {
            if share.round != round {
                return Err(SecAggError::RoundMismatch {
                    round,
                    node,
                    what: MessageKind::EncryptedShare,
                    got: share.round,
                });
            }
            if share.from != node {
                return Err(malformed(format!(
                    "it carries a share from node {}",
                    share.from
                )));
            }
            if !expected.remove(&share.to) {
                return Err(malformed(format!(
                    "a share for node {}, which is not an advertised neighbour or is addressed twice",
                    share.to
                )));
            }
        }
        if let Some(missing) = expected.first() {
            return Err(malformed(format!(
                "no share for node {missing} ({} missing in all)",
                expected.len()
            )));
        }
        for share in message.shares {
            self.inbox.entry(share.to).or_default().push(share);
        }
        self.shared.insert(node);
        Ok(())
    }

    /// Ends stage 2: U2 is fixed.
    pub fn close_share_keys(&mut self) -> Result<(), SecAggError> {
        self.close(Stage::ShareKeys, "close the share-keys stage")?;
        self.require_nodes(Stage::ShareKeys, self.shared.len())?;
        self.stage = Stage::MaskedInput;
        Ok(())
    }

    /// For `node`: the shares its neighbours in U2 sealed for it, to pass to
    /// [`Participant::masked_input`](super::participant::Participant::masked_input).
    pub fn shares_for(&self, node: NodeId) -> Vec<EncryptedShare> {
        self.inbox.get(&node).cloned().unwrap_or_default()
    }

    /// Stage 3: a node's masked input, added to the running sum at once.
    pub fn receive_masked_input(&mut self, message: MaskedInput) -> Result<(), SecAggError> {
        let node = message.node;
        self.admit(
            message.round,
            node,
            MessageKind::MaskedInput,
            Stage::MaskedInput,
            self.shared.contains(&node),
            self.masked.contains(&node),
        )?;
        let bits = self.config.bits;
        let expected_bytes = packed_len(self.masked_len, bits);
        if message.len != self.masked_len as u64 || message.packed.len() != expected_bytes {
            return Err(SecAggError::WrongLength {
                round: self.round,
                node,
                expected: self.masked_len as u64,
                got: message.len,
                expected_bytes,
                got_bytes: message.packed.len(),
            });
        }
        self.check_partners(&message.partners, node)?;
        unpack_add(&message.packed, bits, &mut self.running_sum);
        self.masked.insert(node);
        self.attestations.insert(node, message.partners);
        Ok(())
    }

    /// A masked input's partner list must name exactly the neighbours whose
    /// shares were relayed to its sender. (Its signature is the neighbours' to
    /// check.)
    fn check_partners(
        &self,
        attestation: &PartnerAttestation,
        node: NodeId,
    ) -> Result<(), SecAggError> {
        let relayed: Vec<NodeId> = self
            .inbox
            .get(&node)
            .map(|shares| {
                shares
                    .iter()
                    .map(|share| share.from)
                    .collect::<BTreeSet<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .collect();
        if attestation.node != node || attestation.partners != relayed {
            return Err(SecAggError::Malformed {
                round: self.round,
                node,
                what: MessageKind::MaskedInput,
                detail: format!(
                    "its partner list {:?} is not the neighbours whose shares it was sent, {relayed:?}",
                    attestation.partners
                ),
            });
        }
        Ok(())
    }

    /// Ends stage 3: U3, the survivors whose inputs make the sum, is fixed; each of
    /// them is to sign it ([`Aggregator::survivor_list_for`]).
    pub fn close_masked_input(&mut self) -> Result<(), SecAggError> {
        self.close(Stage::MaskedInput, "close the masked-input stage")?;
        self.require_nodes(Stage::MaskedInput, self.masked.len())?;
        self.stage = Stage::ConsistencyCheck;
        Ok(())
    }

    /// For `node` (a survivor): U3, to sign with
    /// [`Participant::consistency_check`](super::participant::Participant::consistency_check).
    pub fn survivor_list_for(&self, node: NodeId) -> Option<SurvivorList> {
        (self.stage >= Stage::ConsistencyCheck && self.masked.contains(&node)).then(|| {
            SurvivorList {
                round: self.round,
                node,
                survivors: self.masked.iter().copied().collect(),
            }
        })
    }

    /// Stage 4: a survivor's signature on U3. The aggregator has no identity keys
    /// and does not check it: the neighbours do, and must not trust it to.
    pub fn receive_survivor_signature(
        &mut self,
        message: SurvivorSignature,
    ) -> Result<(), SecAggError> {
        let node = message.node;
        self.admit(
            message.round,
            node,
            MessageKind::SurvivorSignature,
            Stage::ConsistencyCheck,
            self.masked.contains(&node),
            self.signatures.contains_key(&node),
        )?;
        self.signatures.insert(node, message);
        Ok(())
    }

    /// Ends stage 4: U4, the signers, is fixed, and each signer's unmask request is
    /// prepared with its neighbours' signatures.
    /// Fails with [`SecAggError::RoundAborted`] when, even if every signer
    /// answers, some secret the unmasking needs would have fewer than t shares:
    /// so a round that cannot succeed ends before any unmask request goes out.
    pub fn close_consistency_check(&mut self) -> Result<(), SecAggError> {
        self.close(Stage::ConsistencyCheck, "close the consistency-check stage")?;
        self.require_nodes(Stage::ConsistencyCheck, self.signatures.len())?;
        self.check_unmasking_can_succeed()?;
        self.requests = self
            .signatures
            .keys()
            .map(|&node| (node, self.unmask_request(node)))
            .collect();
        self.stage = Stage::Unmasking;
        Ok(())
    }

    /// Who can answer an unmask request: a signer with at least t signing
    /// neighbours (a node refuses with fewer, `ConsistencyRule::TooFewSignatures`).
    /// Each secret needed (b_u of every survivor, sk_v of every dropped node with
    /// a surviving neighbour) must have t such holders.
    fn check_unmasking_can_succeed(&self) -> Result<(), SecAggError> {
        let t = self.config.threshold;
        let able: BTreeSet<NodeId> = self
            .signatures
            .keys()
            .copied()
            .filter(|&w| {
                let signing = self.graph.neighbours(w);
                signing
                    .iter()
                    .filter(|v| self.signatures.contains_key(v))
                    .count()
                    >= t
            })
            .collect();
        let holders = |owner: NodeId| {
            let neighbours = self.graph.neighbours(owner);
            let surviving = neighbours.iter().any(|v| self.masked.contains(v));
            let count = neighbours.iter().filter(|w| able.contains(w)).count();
            (surviving, count)
        };
        let survivors = self.masked.iter().map(|&u| (u, SecretKind::SelfMaskSeed));
        let dropped = self
            .shared
            .difference(&self.masked)
            .map(|&v| (v, SecretKind::MaskKey));
        for (owner, secret) in survivors.chain(dropped) {
            let (surviving, got) = holders(owner);
            let needed_at_all = secret == SecretKind::SelfMaskSeed || surviving;
            if needed_at_all && got < t {
                return Err(SecAggError::RoundAborted {
                    round: self.round,
                    node: owner,
                    secret,
                    got,
                    needed: t,
                });
            }
        }
        Ok(())
    }

    fn unmask_request(&self, node: NodeId) -> UnmaskRequest {
        let (mut survivors, mut dropped, mut signatures) = (Vec::new(), Vec::new(), Vec::new());
        let mut attestations = Vec::new();
        for peer in self.graph.neighbours(node) {
            if self.masked.contains(&peer) {
                survivors.push(peer);
                attestations.extend(self.attestations.get(&peer).cloned());
            } else if self.shared.contains(&peer) {
                dropped.push(peer);
            }
            if let Some(signature) = self.signatures.get(&peer) {
                signatures.push(signature.clone());
            }
        }
        UnmaskRequest {
            round: self.round,
            node,
            survivors,
            dropped,
            signatures,
            attestations,
        }
    }

    /// The unmask request for `node` (a signer), to send it.
    pub fn unmask_request_for(&self, node: NodeId) -> Option<&UnmaskRequest> {
        self.requests.get(&node)
    }

    /// All unmask requests, one per signer.
    pub fn unmask_requests(&self) -> impl Iterator<Item = &UnmaskRequest> {
        self.requests.values()
    }

    /// Stage 5: a signer's revealed shares. Only shares that were asked for are
    /// accepted, each once, and each must be the sender's own (its x-coordinate).
    pub fn receive_unmask_response(&mut self, message: UnmaskResponse) -> Result<(), SecAggError> {
        let round = self.round;
        let node = message.node;
        self.admit(
            message.round,
            node,
            MessageKind::UnmaskResponse,
            Stage::Unmasking,
            self.requests.contains_key(&node),
            self.responded.contains(&node),
        )?;
        let Some(request) = self.requests.get(&node) else {
            return Err(SecAggError::UnexpectedSender {
                round,
                node,
                what: MessageKind::UnmaskResponse,
            });
        };
        let check = |shares: &[RevealedShare], asked: &[NodeId]| {
            let mut owners = BTreeSet::new();
            for revealed in shares {
                let problem = if !asked.contains(&revealed.owner) {
                    "a share that was not asked for"
                } else if !owners.insert(revealed.owner) {
                    "two shares of one node's secret"
                } else if revealed.share.x() != node.share_x() {
                    "a share with another node's x-coordinate"
                } else {
                    continue;
                };
                return Err(SecAggError::Malformed {
                    round,
                    node,
                    what: MessageKind::UnmaskResponse,
                    detail: format!("{problem} (node {})", revealed.owner),
                });
            }
            Ok(())
        };
        check(&message.self_mask_seed_shares, &request.survivors)?;
        check(&message.mask_key_shares, &request.dropped)?;
        for revealed in message.self_mask_seed_shares {
            self.seed_shares
                .entry(revealed.owner)
                .or_default()
                .push(revealed.share);
        }
        for revealed in message.mask_key_shares {
            self.key_shares
                .entry(revealed.owner)
                .or_default()
                .push(revealed.share);
        }
        self.responded.insert(node);
        Ok(())
    }

    /// Who dropped out at each stage closed so far (for the unmasking stage: who has
    /// not answered yet).
    pub fn dropouts(&self) -> Dropouts {
        fn absent<'a>(
            closed: bool,
            from: impl Iterator<Item = &'a NodeId>,
            present: impl Fn(&NodeId) -> bool,
        ) -> Vec<NodeId> {
            if closed {
                from.filter(|id| !present(id)).copied().collect()
            } else {
                Vec::new()
            }
        }
        Dropouts {
            before_advertising: absent(
                self.stage > Stage::AdvertiseKeys,
                self.participants.iter(),
                |id| self.advertised.contains_key(id),
            ),
            before_sharing: absent(
                self.stage > Stage::ShareKeys,
                self.advertised.keys(),
                |id| self.shared.contains(id),
            ),
            before_masked_input: absent(
                self.stage > Stage::MaskedInput,
                self.shared.iter(),
                |id| self.masked.contains(id),
            ),
            before_signing: absent(
                self.stage > Stage::ConsistencyCheck,
                self.masked.iter(),
                |id| self.signatures.contains_key(id),
            ),
            before_unmasking: absent(
                self.stage > Stage::ConsistencyCheck,
                self.signatures.keys(),
                |id| self.responded.contains(id),
            ),
        }
    }

    /// Rebuilds one secret of `owner` from the revealed shares, or aborts the round.
    fn rebuild(
        &self,
        owner: NodeId,
        secret: SecretKind,
    ) -> Result<zeroize::Zeroizing<[u8; 32]>, SecAggError> {
        let shares = match secret {
            SecretKind::SelfMaskSeed => self.seed_shares.get(&owner),
            SecretKind::MaskKey => self.key_shares.get(&owner),
        }
        .map(Vec::as_slice)
        .unwrap_or_default();
        let needed = self.config.threshold;
        if shares.len() < needed {
            return Err(SecAggError::RoundAborted {
                round: self.round,
                node: owner,
                secret,
                got: shares.len(),
                needed,
            });
        }
        shamir::reconstruct(shares, needed).map_err(|_| SecAggError::InconsistentShares {
            round: self.round,
            node: owner,
            secret,
        })
    }

    /// Ends the round: rebuilds b_u for every survivor and sk_v for every node that
    /// dropped after sharing keys (and had a surviving neighbour), then removes the
    /// survivors' self masks and their pairwise masks with the dropped nodes from the
    /// running sum. Fails with [`SecAggError::RoundAborted`] if fewer than t shares
    /// arrived for any of these secrets. Consumes the state: the masked sum is not
    /// kept.
    pub fn finish(mut self) -> Result<AggregateSum, SecAggError> {
        self.close(Stage::Unmasking, "finish unmasking")?;
        let round = self.round;
        let mut terms = Vec::new();
        // Every secret is rebuilt (or the round aborted) before any mask is expanded.
        for &survivor in &self.masked {
            let seed = self.rebuild(survivor, SecretKind::SelfMaskSeed)?;
            terms.push(MaskTerm {
                seed: PrgSeed::from_bytes(*seed),
                sign: Sign::Subtract,
            });
        }
        for &gone in self.shared.difference(&self.masked) {
            let survivors: Vec<NodeId> = self
                .graph
                .neighbours(gone)
                .into_iter()
                .filter(|peer| self.masked.contains(peer))
                .collect();
            if survivors.is_empty() {
                continue;
            }
            let key = KeyPair::from_secret_bytes(&*self.rebuild(gone, SecretKind::MaskKey)?);
            let advertised = self.advertised.get(&gone).map(|a| a.mask_public_key);
            let matches = advertised.is_some_and(|pk| bool::from(key.public_key().ct_eq(&pk)));
            if !matches {
                return Err(SecAggError::InconsistentShares {
                    round,
                    node: gone,
                    secret: SecretKind::MaskKey,
                });
            }
            for survivor in survivors {
                let Some(peer_key) = self.advertised.get(&survivor).map(|a| a.mask_public_key)
                else {
                    continue;
                };
                terms.push(MaskTerm {
                    seed: key.pairwise_mask_seed(&peer_key, round, gone, survivor)?,
                    // The survivor applied pairwise_sign(survivor, gone); undo it.
                    sign: pairwise_sign(survivor, gone).flip(),
                });
            }
        }
        let bits = self.config.bits;
        apply_masks(&mut self.running_sum, &terms, bits)?;
        reduce(&mut self.running_sum, bits);
        Ok(AggregateSum {
            round,
            contributors: self.masked.iter().copied().collect(),
            dropouts: self.dropouts(),
            values: std::mem::take(&mut self.running_sum),
        })
    }
}
