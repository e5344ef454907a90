//! The six stages' messages, as plain data.
//!
//! Every message carries the round it belongs to; a receiver checks it against its
//! own round, so a message replayed from an earlier round is refused. Nothing here is
//! secret to the coordinator except [`EncryptedShare::ciphertext`], which only the
//! addressed node can open. The transport (gRPC) carries these; it must check that a
//! message's `node` is the identity of the TLS peer that sent it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::shamir::{SHARE_LEN, Share};

/// A node's id within a round: the coordinator numbers the round's participants (for
/// example by the sorted order of their certificate identities) and every party uses
/// the same numbers. Ids order the pairwise mask signs and are Shamir x-coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The Shamir x-coordinate of the shares this node holds (never 0: x = 0 is the
    /// secret itself).
    pub(crate) fn share_x(self) -> u64 {
        u64::from(self.0) + 1
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A training round's number; it increases from round to round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoundId(pub u64);

impl fmt::Display for RoundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The protocol's stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Each node advertises two signed public keys and a commitment to its
    /// graph nonce.
    AdvertiseKeys,
    /// Each advertiser reveals its graph nonce; the nonces fix the graph
    /// (see [`super::graph_seed`]).
    GraphSeed,
    /// Each node seals shares of its secrets for its neighbours.
    ShareKeys,
    /// Each node sends its masked input.
    MaskedInput,
    /// Each survivor signs the survivor set it is told (Bonawitz et al. 2017,
    /// round "ConsistencyCheck").
    ConsistencyCheck,
    /// Each survivor reveals the shares its signed survivor set calls for.
    Unmasking,
    /// The round is over for this party.
    Finished,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::AdvertiseKeys => "advertise-keys",
            Stage::GraphSeed => "graph-seed",
            Stage::ShareKeys => "share-keys",
            Stage::MaskedInput => "masked-input",
            Stage::ConsistencyCheck => "consistency-check",
            Stage::Unmasking => "unmasking",
            Stage::Finished => "finished",
        })
    }
}

/// Which message an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// [`AdvertiseKeys`].
    AdvertiseKeys,
    /// [`GraphCommitments`].
    GraphCommitments,
    /// [`GraphReveal`].
    GraphReveal,
    /// [`GraphReveals`].
    GraphReveals,
    /// [`ShareKeys`].
    ShareKeys,
    /// [`EncryptedShare`].
    EncryptedShare,
    /// [`MaskedInput`].
    MaskedInput,
    /// [`SurvivorList`].
    SurvivorList,
    /// [`SurvivorSignature`].
    SurvivorSignature,
    /// [`UnmaskRequest`].
    UnmaskRequest,
    /// [`UnmaskResponse`].
    UnmaskResponse,
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageKind::AdvertiseKeys => "key advertisement",
            MessageKind::GraphCommitments => "graph commitment list",
            MessageKind::GraphReveal => "graph nonce",
            MessageKind::GraphReveals => "graph nonce list",
            MessageKind::ShareKeys => "key shares",
            MessageKind::EncryptedShare => "encrypted share",
            MessageKind::MaskedInput => "masked input",
            MessageKind::SurvivorList => "survivor list",
            MessageKind::SurvivorSignature => "survivor signature",
            MessageKind::UnmaskRequest => "unmask request",
            MessageKind::UnmaskResponse => "unmask response",
        })
    }
}

pub(super) const ID_BYTES: usize = 4;
pub(super) const ROUND_BYTES: usize = 8;
const KEY_BYTES: usize = 32;

/// Stage 1, node → everyone (relayed): this round's two X25519 public keys and the
/// commitment to its graph nonce, signed with the node's TLS identity key so the
/// coordinator cannot substitute its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertiseKeys {
    /// The round the keys are for.
    pub round: RoundId,
    /// The advertising node.
    pub node: NodeId,
    /// For the pairwise mask seeds (ECDH with each neighbour).
    pub mask_public_key: [u8; 32],
    /// For encrypting the secret shares sent to each neighbour.
    pub share_public_key: [u8; 32],
    /// The commitment to the node's graph nonce
    /// ([`graph_seed::commitment`](super::graph_seed::commitment)).
    pub graph_commitment: [u8; 32],
    /// The node's signature over [`AdvertiseKeys::signed_payload`].
    pub signature: Vec<u8>,
}

impl AdvertiseKeys {
    const DOMAIN: &'static [u8] = b"cohort-secagg/v3/advertise-keys\0";

    /// The bytes the node signs and its peers verify: a domain label, then the
    /// round, the node id, both public keys and the graph commitment, all
    /// fixed-length so the encoding is unique.
    pub fn signed_payload(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(Self::DOMAIN.len() + ROUND_BYTES + ID_BYTES + 96);
        payload.extend_from_slice(Self::DOMAIN);
        payload.extend_from_slice(&self.round.0.to_be_bytes());
        payload.extend_from_slice(&self.node.0.to_be_bytes());
        payload.extend_from_slice(&self.mask_public_key);
        payload.extend_from_slice(&self.share_public_key);
        payload.extend_from_slice(&self.graph_commitment);
        payload
    }

    /// Bytes on the wire (payload fields, without framing).
    pub fn wire_size(&self) -> usize {
        ROUND_BYTES + ID_BYTES + 3 * KEY_BYTES + self.signature.len()
    }
}

/// Stage 2, coordinator → every advertiser: the graph commitments of every node
/// whose advertisement arrived (U1), by node, ascending. Fixed before any nonce
/// is revealed: a node reveals its own only once it has seen this list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphCommitments {
    /// The round.
    pub round: RoundId,
    /// (node, commitment), ascending by node, without repeats.
    pub commitments: Vec<(NodeId, [u8; 32])>,
}

impl GraphCommitments {
    /// Bytes on the wire (payload fields, without framing).
    pub fn wire_size(&self) -> usize {
        ROUND_BYTES + ID_BYTES + (ID_BYTES + KEY_BYTES) * self.commitments.len()
    }
}

/// Stage 2, node → coordinator: the nonce behind the node's graph commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphReveal {
    /// The round.
    pub round: RoundId,
    /// The revealing node.
    pub node: NodeId,
    /// The 32 random bytes its commitment hides.
    pub nonce: [u8; 32],
}

impl GraphReveal {
    /// Bytes on the wire (payload fields, without framing).
    pub fn wire_size(&self) -> usize {
        ROUND_BYTES + ID_BYTES + KEY_BYTES
    }
}

/// Stage 3, coordinator → every node, with its neighbours' adverts: every
/// committed node's revealed nonce, ascending by node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphReveals {
    /// The round.
    pub round: RoundId,
    /// (node, nonce), ascending by node, without repeats.
    pub nonces: Vec<(NodeId, [u8; 32])>,
}

impl GraphReveals {
    /// Bytes on the wire (payload fields, without framing).
    pub fn wire_size(&self) -> usize {
        ROUND_BYTES + ID_BYTES + (ID_BYTES + KEY_BYTES) * self.nonces.len()
    }
}

/// One node's Shamir shares for one neighbour, sealed with ChaCha20-Poly1305 under a
/// key only the two of them can derive. The coordinator relays it unread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedShare {
    /// The round the shares are for.
    pub round: RoundId,
    /// The node whose secrets are shared.
    pub from: NodeId,
    /// The neighbour that is to hold the shares.
    pub to: NodeId,
    /// Nonce, then ciphertext and tag; round, sender and recipient are authenticated.
    pub ciphertext: Vec<u8>,
}

impl EncryptedShare {
    /// Bytes on the wire (payload fields, without framing).
    pub fn wire_size(&self) -> usize {
        ROUND_BYTES + 2 * ID_BYTES + self.ciphertext.len()
    }
}

/// Stage 3, node → coordinator: one [`EncryptedShare`] per neighbour that advertised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareKeys {
    /// The round the shares are for.
    pub round: RoundId,
    /// The sharing node.
    pub node: NodeId,
    /// The sealed shares, one per neighbour.
    pub shares: Vec<EncryptedShare>,
}

impl ShareKeys {
    /// Bytes on the wire (payload fields, without framing).
    pub fn wire_size(&self) -> usize {
        ROUND_BYTES
            + ID_BYTES
            + self
                .shares
                .iter()
                .map(EncryptedShare::wire_size)
                .sum::<usize>()
    }
}

/// Stage 4, node → coordinator: the quantized update plus all masks, in Z_M, packed
/// at `bits` bits per value (see [`super::packing`]), with the node's signed list
/// of masking partners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedInput {
    /// The round the input is for.
    pub round: RoundId,
    /// The sending node.
    pub node: NodeId,
    /// How many values are packed (the model's length plus the weight).
    pub len: u64,
    /// Who the node masked with, signed (its `node` is this message's).
    pub partners: PartnerAttestation,
    /// The masked values, `len` of them at the round's bit width.
    pub packed: Vec<u8>,
}

impl MaskedInput {
    /// Bytes on the wire (payload fields, without framing).
    pub fn wire_size(&self) -> usize {
        ROUND_BYTES + ID_BYTES + 8 + self.partners.wire_size() + self.packed.len()
    }
}

/// Stage 5, coordinator → node: the survivor set U3, every node whose masked input
/// arrived, sorted. The node signs it ([`SurvivorSignature`]) once, and from then on
/// reveals shares only as this set calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurvivorList {
    /// The round.
    pub round: RoundId,
    /// The node asked to sign.
    pub node: NodeId,
    /// U3, ascending, without repeats.
    pub survivors: Vec<NodeId>,
}

impl SurvivorList {
    const DOMAIN: &'static [u8] = b"cohort-secagg/v2/survivors\0";

    /// The bytes a survivor signs: the set, bound to the signer's attempt (see
    /// [`AttemptBinding`]), so a signature is worth one set in one attempt.
    pub fn signed_payload(binding: &AttemptBinding, survivors: &[NodeId]) -> Vec<u8> {
        binding.statement(Self::DOMAIN, survivors)
    }

    /// Bytes on the wire (payload fields, without framing).
    pub fn wire_size(&self) -> usize {
        ROUND_BYTES + ID_BYTES * (self.survivors.len() + 2)
    }
}

/// What a node's signed statements in a round (its survivor set, its masking
/// partners) are bound to: the round, a digest of the round's setup as the node
/// received it, and the signer's own public keys for this attempt. The keys are
/// fresh in every attempt, so a statement from one attempt never verifies in
/// another, even one the coordinator gave the same round id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptBinding {
    /// The round.
    pub round: RoundId,
    /// SHA-256 of the round's setup (k, t, bits, clip range, participants and
    /// the graph seed; see `Participant::new`).
    pub setup_digest: [u8; 32],
    /// The signer's mask public key in this attempt.
    pub mask_public_key: [u8; 32],
    /// The signer's share public key in this attempt.
    pub share_public_key: [u8; 32],
}

impl AttemptBinding {
    /// domain ‖ round ‖ setup digest ‖ both keys ‖ count ‖ ids: fixed-width
    /// fields, so one encoding means one statement.
    fn statement(&self, domain: &[u8], ids: &[NodeId]) -> Vec<u8> {
        let mut payload = Vec::with_capacity(
            domain.len() + ROUND_BYTES + 3 * KEY_BYTES + ID_BYTES * (ids.len() + 1),
        );
        payload.extend_from_slice(domain);
        payload.extend_from_slice(&self.round.0.to_be_bytes());
        payload.extend_from_slice(&self.setup_digest);
        payload.extend_from_slice(&self.mask_public_key);
        payload.extend_from_slice(&self.share_public_key);
        payload.extend_from_slice(&(ids.len() as u32).to_be_bytes());
        for id in ids {
            payload.extend_from_slice(&id.0.to_be_bytes());
        }
        payload
    }
}

/// Stage 4, node → coordinator, with its masked input: the neighbours it masked
/// with (those whose shares it received), signed. A neighbour reveals a share of
/// this node's self-mask seed only if it is listed: so every node that helps
/// unmask this node's input has a pairwise mask with it that only the sum removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerAttestation {
    /// The node that masked.
    pub node: NodeId,
    /// Its masking partners, ascending.
    pub partners: Vec<NodeId>,
    /// Its identity key's signature over [`PartnerAttestation::signed_payload`].
    pub signature: Vec<u8>,
}

impl PartnerAttestation {
    const DOMAIN: &'static [u8] = b"cohort-secagg/v2/partners\0";

    /// The bytes the node signs, bound to its attempt.
    pub fn signed_payload(binding: &AttemptBinding, partners: &[NodeId]) -> Vec<u8> {
        binding.statement(Self::DOMAIN, partners)
    }

    /// Bytes on the wire (payload fields, without framing).
    pub fn wire_size(&self) -> usize {
        ID_BYTES * (self.partners.len() + 2) + ID_BYTES + self.signature.len()
    }
}

/// Stage 5, node → coordinator: the node's signature, with its identity key, over
/// [`SurvivorList::signed_payload`] of the set it was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurvivorSignature {
    /// The round.
    pub round: RoundId,
    /// The signer.
    pub node: NodeId,
    /// The signer's identity-key signature over the set, bound to its attempt.
    pub signature: Vec<u8>,
}

impl SurvivorSignature {
    /// Bytes on the wire (payload fields, without framing).
    pub fn wire_size(&self) -> usize {
        ROUND_BYTES + ID_BYTES + self.signature.len()
    }
}

/// Stage 6, coordinator → node: whose shares to reveal, with the neighbours'
/// signatures on the survivor set. For a neighbour in the set, the share of its
/// self-mask seed; for one that shared keys but is not in it, the share of its mask
/// secret key. The node checks both lists against the set it signed (see
/// [`ConsistencyRule`](super::error::ConsistencyRule)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmaskRequest {
    /// The round.
    pub round: RoundId,
    /// The node asked.
    pub node: NodeId,
    /// Neighbours whose masked input arrived: reveal their self-mask seed shares.
    pub survivors: Vec<NodeId>,
    /// Neighbours that shared keys but sent no masked input: reveal their mask key
    /// shares.
    pub dropped: Vec<NodeId>,
    /// The signatures of the node's neighbours on the survivor set.
    pub signatures: Vec<SurvivorSignature>,
    /// For each neighbour in `survivors`, its signed list of masking partners.
    pub attestations: Vec<PartnerAttestation>,
}

impl UnmaskRequest {
    /// Bytes on the wire (payload fields, without framing).
    pub fn wire_size(&self) -> usize {
        ROUND_BYTES
            + ID_BYTES
            + ID_BYTES * (self.survivors.len() + self.dropped.len())
            + self
                .signatures
                .iter()
                .map(SurvivorSignature::wire_size)
                .sum::<usize>()
            + self
                .attestations
                .iter()
                .map(PartnerAttestation::wire_size)
                .sum::<usize>()
    }
}

/// A share revealed in stage 6, with the node whose secret it is a share of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevealedShare {
    /// The node whose secret this is a share of.
    pub owner: NodeId,
    /// The revealing node's share (its x-coordinate is the revealer's).
    pub share: Share,
}

/// Stage 6, node → coordinator: the shares asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmaskResponse {
    /// The round.
    pub round: RoundId,
    /// The revealing node.
    pub node: NodeId,
    /// Shares of the self-mask seeds of the request's `survivors`.
    pub self_mask_seed_shares: Vec<RevealedShare>,
    /// Shares of the mask secret keys of the request's `dropped`.
    pub mask_key_shares: Vec<RevealedShare>,
}

impl UnmaskResponse {
    /// Bytes on the wire (payload fields, without framing).
    pub fn wire_size(&self) -> usize {
        ROUND_BYTES
            + ID_BYTES
            + (ID_BYTES + SHARE_LEN)
                * (self.self_mask_seed_shares.len() + self.mask_key_shares.len())
    }
}
