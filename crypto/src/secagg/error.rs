//! Why a secure-aggregation step was refused, naming the round, the node and the
//! message concerned.

use std::fmt;

use super::config::PolicyLimit;
use super::messages::{MessageKind, NodeId, RoundId, Stage};

/// Which of a node's two secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// b_u: seeds the mask that hides the node's input until unmasking.
    SelfMaskSeed,
    /// sk_u: the X25519 key behind every pairwise mask of the node.
    MaskKey,
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecretKind::SelfMaskSeed => "self-mask seed",
            SecretKind::MaskKey => "mask secret key",
        })
    }
}

/// The rule of the consistency check (Bonawitz et al. 2017, round
/// "ConsistencyCheck") that a survivor list or an unmask request broke. A node
/// refuses to sign or to reveal anything when one fails; each is what a lying
/// coordinator would need to break to collect both secrets that hide one node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConsistencyRule {
    /// The survivor list is not ascending without repeats, names a node outside
    /// the round, or names a neighbour that never shared keys with this node.
    MalformedSurvivorList {
        /// What is wrong with it.
        detail: String,
    },
    /// The node is not in the survivor set it is asked to sign: it sent a masked
    /// input, so the set is false.
    NotASurvivor,
    /// Fewer than t of the node's neighbours are in the survivor set: revealing
    /// shares would help unmask a sum of too few inputs.
    TooFewSurvivingNeighbours {
        /// Neighbours in the set.
        got: usize,
        /// The threshold t.
        needed: usize,
    },
    /// Fewer than t of the node's neighbours in the set signed the very set this
    /// node signed: others may have been told a different one.
    TooFewSignatures {
        /// Valid signatures from distinct neighbours in the set.
        got: usize,
        /// The threshold t.
        needed: usize,
    },
    /// A neighbour whose self-mask seed share is asked for has not attested,
    /// in this attempt, that it masked with this node.
    NotAPartner {
        /// The neighbour.
        peer: NodeId,
    },
    /// The request asks for other shares than the signed set calls for: self-mask
    /// seed shares exactly of the neighbours in it, mask-key shares exactly of the
    /// neighbours that shared keys and are not in it.
    RequestDisagreesWithSet {
        /// The first neighbour whose share was wrongly asked for or left out.
        peer: NodeId,
    },
}

impl fmt::Display for ConsistencyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsistencyRule::MalformedSurvivorList { detail } => {
                write!(f, "the survivor list is malformed: {detail}")
            }
            ConsistencyRule::NotASurvivor => {
                f.write_str("the survivor list leaves out this node, which sent its masked input")
            }
            ConsistencyRule::TooFewSurvivingNeighbours { got, needed } => write!(
                f,
                "only {got} of this node's neighbours are in the survivor set; at least {needed} must be"
            ),
            ConsistencyRule::TooFewSignatures { got, needed } => write!(
                f,
                "only {got} neighbours signed the survivor set this node signed; at least {needed} must have"
            ),
            ConsistencyRule::NotAPartner { peer } => write!(
                f,
                "node {peer} has not attested that it masked with this node, so this node's share of its self-mask seed could expose its input"
            ),
            ConsistencyRule::RequestDisagreesWithSet { peer } => write!(
                f,
                "the request's share of node {peer} is not the one the signed survivor set calls for"
            ),
        }
    }
}

/// Everything that can go wrong in a round of secure aggregation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecAggError {
    #[error("invalid secure-aggregation configuration: {0}")]
    InvalidConfig(String),

    #[error(
        "round {round}: {what} from node {node} is for round {got}; refused as replayed or stale"
    )]
    RoundMismatch {
        round: RoundId,
        node: NodeId,
        what: MessageKind,
        got: RoundId,
    },

    #[error("round {round}: a second {what} from node {node}; refused as a replay")]
    Duplicate {
        round: RoundId,
        node: NodeId,
        what: MessageKind,
    },

    #[error("round {round}: {what} from node {node} arrived in the {stage} stage")]
    WrongStage {
        round: RoundId,
        node: NodeId,
        what: MessageKind,
        stage: Stage,
    },

    #[error("round {round}: the aggregator cannot {step} in the {stage} stage")]
    AggregatorOutOfOrder {
        round: RoundId,
        step: &'static str,
        stage: Stage,
    },

    #[error("round {round}: node {node} cannot {step} in the {stage} stage")]
    OutOfOrder {
        round: RoundId,
        node: NodeId,
        step: &'static str,
        stage: Stage,
    },

    #[error(
        "round {round}: node {node} may not send a {what} now (not a participant, or it dropped at an earlier stage)"
    )]
    UnexpectedSender {
        round: RoundId,
        node: NodeId,
        what: MessageKind,
    },

    #[error("round {round}: {what} pairs node {node} with node {peer}, which is not its neighbour")]
    NotNeighbour {
        round: RoundId,
        node: NodeId,
        peer: NodeId,
        what: MessageKind,
    },

    #[error("round {round}: {what} for node {to} was delivered to node {node}")]
    Misaddressed {
        round: RoundId,
        node: NodeId,
        to: NodeId,
        what: MessageKind,
    },

    #[error("round {round}: {what} from node {node} is malformed: {detail}")]
    Malformed {
        round: RoundId,
        node: NodeId,
        what: MessageKind,
        detail: String,
    },

    #[error("a {what} could not be decoded: {detail}")]
    Undecodable { what: MessageKind, detail: String },

    #[error("round {round}: the key advertisement of node {node} has an invalid signature")]
    BadSignature { round: RoundId, node: NodeId },

    #[error("round {round}: node {node} advertised an unusable public key: {reason}")]
    BadPublicKey {
        round: RoundId,
        node: NodeId,
        reason: &'static str,
    },

    #[error(
        "round {round}: the share from node {from} to node {to} failed authentication (tampered with, misaddressed or from another round)"
    )]
    ShareAuthentication {
        round: RoundId,
        from: NodeId,
        to: NodeId,
    },

    #[error(
        "round {round}: masked input from node {node} holds {got} values in {got_bytes} bytes; expected {expected} values in {expected_bytes} bytes"
    )]
    WrongLength {
        round: RoundId,
        node: NodeId,
        expected: u64,
        got: u64,
        expected_bytes: usize,
        got_bytes: usize,
    },

    #[error(
        "round {round}: node {node} refuses to reveal both the self-mask seed and the mask secret key of node {peer}: together they expose node {peer}'s update"
    )]
    BothSecretsRequested {
        round: RoundId,
        node: NodeId,
        peer: NodeId,
    },

    #[error("round {round}: node {node} refuses the consistency check: {rule}")]
    ConsistencyRefused {
        round: RoundId,
        node: NodeId,
        rule: ConsistencyRule,
    },

    #[error(
        "the round's {limit} is {got}, below this node's own minimum of {needed}; it does not take part"
    )]
    BelowNodePolicy {
        limit: PolicyLimit,
        got: usize,
        needed: usize,
    },

    #[error("round {round}: node {node} holds no share from node {peer}")]
    NoShareHeld {
        round: RoundId,
        node: NodeId,
        peer: NodeId,
    },

    #[error(
        "round {round} aborted: {got} shares of the {secret} of node {node} are available, {needed} are needed to unmask the sum"
    )]
    RoundAborted {
        round: RoundId,
        node: NodeId,
        secret: SecretKind,
        got: usize,
        needed: usize,
    },

    #[error(
        "round {round}: node {node} has only {got} neighbours that completed the {stage} stage; the threshold is {needed}"
    )]
    TooFewNeighbours {
        round: RoundId,
        node: NodeId,
        stage: Stage,
        got: usize,
        needed: usize,
    },

    #[error(
        "round {round} aborted: only {got} nodes completed the {stage} stage; the threshold is {needed}"
    )]
    TooFewNodes {
        round: RoundId,
        stage: Stage,
        got: usize,
        needed: usize,
    },

    #[error(
        "round {round}: the shares of node {node}'s {secret} do not rebuild it consistently (a share was corrupted)"
    )]
    InconsistentShares {
        round: RoundId,
        node: NodeId,
        secret: SecretKind,
    },

    #[error("{got} shares cannot rebuild a secret shared with threshold {needed}")]
    TooFewShares { needed: usize, got: usize },

    #[error("invalid shares: {0}")]
    InvalidShares(&'static str),

    #[error("invalid update: {0}")]
    InvalidUpdate(String),

    #[error(
        "sum coordinate {index} is {value}, beyond the ±{bound} that {n} inputs can reach: the sum is corrupted"
    )]
    SumOutOfRange {
        index: usize,
        value: i128,
        bound: i128,
        n: usize,
    },

    #[error("the total weight of the sum is not positive; a weighted mean needs a positive weight")]
    NoWeight,

    #[error("signing the key advertisement failed: {0}")]
    Signing(String),

    #[error("cryptographic failure: {0}")]
    Crypto(&'static str),
}
