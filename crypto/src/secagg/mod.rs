//! Secure aggregation: the coordinator learns the sum of the nodes' model updates,
//! and nothing about any single node's update.
//!
//! This is the protocol of Bonawitz et al., "Practical Secure Aggregation for
//! Privacy-Preserving Machine Learning" (CCS 2017), in the SecAgg+ form of Bell et al.,
//! "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead" (CCS 2020): each
//! node masks with its k neighbours in a random k-regular graph ([`graph`]) instead of
//! with every other node, so a node's work and the server's unmasking grow with k, not
//! n. With k = n − 1 it is the 2017 protocol.
//!
//! It is transport-independent: plain messages ([`messages`]) with one byte
//! encoding ([`wire`]), and the two state machines, [`Participant`] (a node) and
//! [`Aggregator`] (the coordinator). A round:
//!
//! 1. **Advertise keys.** Each node makes two X25519 key pairs ([`keys`]), a
//!    self-mask seed b_u and a graph nonce r_u, and sends the public keys and a
//!    commitment to r_u signed by its TLS identity key ([`signing`]).
//! 2. **Graph seed.** Each advertiser is sent every advertiser's commitment and
//!    reveals r_u; the nonces, all committed before any was revealed, draw the
//!    neighbour graph ([`graph_seed`]), so no party chooses it.
//! 3. **Share keys.** Each node Shamir-splits b_u and its mask secret key sk_u t-of-k
//!    among its neighbours ([`shamir`]) and seals each neighbour's shares with
//!    ChaCha20-Poly1305 under an ECDH-derived key; the coordinator relays them unread.
//! 4. **Masked input.** Each node quantizes its weighted update into Z_{2^b}
//!    ([`quantize`]), adds its self mask and its pairwise masks ([`masking`], expanded
//!    by AES-256 in counter mode from [`prg`]), and sends it packed at b bits a value ([`packing`]),
//!    with a signed list of the neighbours it masked with.
//! 5. **Consistency check.** Each survivor is sent the survivor set and signs it,
//!    once (Bonawitz et al. 2017, round "ConsistencyCheck").
//! 6. **Unmasking.** The coordinator asks the signers for shares of each survivor's
//!    b_u and of each dropped node's sk_u, with their neighbours' signatures and
//!    partner lists; a node answers only if the request is exactly what the set
//!    it signed calls for, at least t of its neighbours signed that set, and each
//!    node whose b_u it reveals masked with it. Signed statements are bound to
//!    the attempt (its setup and the signer's fresh keys). The coordinator rebuilds the
//!    secrets and removes the masks that do not cancel; what is left is the sum of
//!    the survivors' inputs.
//!
//! Threat model (argued in `crypto/README.md`, shown by `tests::adversary`): with
//! c colluding neighbours of a node and 2t > k + c, a coordinator that follows the
//! protocol sees only sums of survivors' inputs, and one that lies (different
//! survivor sets to different nodes, any unmask requests) cannot unmask a sum that
//! holds a node's input without the inputs of at least t − c of its neighbours.
//! c counts node identities: whoever holds the federation's CA key can enrol
//! more.
//! [`SecAggConfig::validate`] enforces t > k/2 (c = 0), and each node refuses a
//! round below its own [`NodePolicy`] (fewest participants, lowest t). Every
//! signed statement covers the setup as its signer received it (participants,
//! k, t, bits, clip range, graph seed, and what the application binds with
//! [`Participant::bind_context`]), so nodes told different setups never count
//! each other's statements. The graph comes from the nodes' committed nonces,
//! so a coordinator cannot choose it, only abort an attempt and draw again
//! (`tests::grinding`). Not defended: there are no input-range proofs: a node may send any value in Z_M, and a sum outside the
//! possible range is only detected, at dequantization. The round aborts (an
//! error, never a wrong sum) if fewer than t shares of a needed secret arrive.

pub mod aggregator;
pub mod attempts;
pub mod config;
pub mod error;
mod field;
pub mod graph;
pub mod graph_seed;
pub mod keys;
pub mod masking;
pub mod messages;
pub mod packing;
pub mod participant;
pub mod prg;
pub mod quantize;
pub mod shamir;
pub mod signing;
pub mod threat_model;
pub mod wire;

#[cfg(test)]
mod tests;

pub use aggregator::{AggregateSum, Aggregator, Dropouts};
pub use attempts::{AttemptBudget, AttemptLedger};
pub use config::{NodePolicy, PolicyLimit, SecAggConfig};
pub use error::{ConsistencyRule, GraphSeedRule, SecAggError, SecretKind};
pub use messages::{
    AdvertiseKeys, AttemptBinding, EncryptedShare, GraphCommitments, GraphReveal, GraphReveals,
    MaskedInput, MessageKind, NodeId, PartnerAttestation, RevealedShare, RoundId, ShareKeys, Stage,
    SurvivorList, SurvivorSignature, UnmaskRequest, UnmaskResponse,
};
pub use participant::Participant;
pub use quantize::{DequantizedSum, QuantizedInput, Quantizer, to_signed};
pub use signing::{AdvertisementSigner, AdvertisementVerifier, EcdsaP256Signer, EcdsaP256Verifier};
pub use threat_model::{DerivedParameters, ThreatModel};
