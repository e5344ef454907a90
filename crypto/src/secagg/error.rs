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

/// The rule of the graph's commit-then-reveal (see
/// [`graph_seed`](super::graph_seed)) that a commitment list or a set of revealed
/// nonces broke. A node refuses to reveal its nonce, or to share keys, when one
/// fails; each is what a coordinator would need to break to choose the graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GraphSeedRule {
    /// The list is not ascending by node without repeats.
    MalformedList {
        /// What is wrong with it.
        detail: String,
    },
    /// The commitment list leaves out or alters this node's own commitment.
    OwnCommitmentAltered,
    /// The commitment list names a node outside the round.
    NotAParticipant {
        /// The node.
        node: NodeId,
    },
    /// Fewer commitments than the threshold t: too few nodes to run the round.
    TooFewCommitments {
        /// Commitments listed.
        got: usize,
        /// The threshold t.
        needed: usize,
    },
    /// A committed node's nonce is missing: leaving one out after seeing the
    /// others would choose among seeds.
    Unrevealed {
        /// The node.
        node: NodeId,
    },
    /// A revealed nonce does not open its node's commitment.
    WrongNonce {
        /// The node.
        node: NodeId,
    },
    /// A nonce is revealed for a node that had no commitment in the list.
    Uncommitted {
        /// The node.
        node: NodeId,
    },
    /// A neighbour's signed advertisement commits to another nonce than the
    /// list this node was sent.
    AdvertDisagrees {
        /// The neighbour.
        node: NodeId,
    },
}

impl fmt::Display for GraphSeedRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphSeedRule::MalformedList { detail } => {
                write!(f, "the graph list is malformed: {detail}")
            }
            GraphSeedRule::OwnCommitmentAltered => f.write_str(
                "the commitment list leaves out or alters this node's own graph commitment",
            ),
            GraphSeedRule::NotAParticipant { node } => {
                write!(
                    f,
                    "the commitment list names node {node}, which is not a participant"
                )
            }
            GraphSeedRule::TooFewCommitments { got, needed } => write!(
                f,
                "the commitment list holds {got} nodes; the round needs at least {needed}"
            ),
            GraphSeedRule::Unrevealed { node } => write!(
                f,
                "node {node}'s graph nonce is missing; every committed nonce must be revealed"
            ),
            GraphSeedRule::WrongNonce { node } => {
                write!(
                    f,
                    "node {node}'s revealed nonce does not open its commitment"
                )
            }
            GraphSeedRule::Uncommitted { node } => {
                write!(
                    f,
                    "a nonce is revealed for node {node}, which made no commitment"
                )
            }
            GraphSeedRule::AdvertDisagrees { node } => write!(
                f,
                "node {node}'s signed advertisement commits to another graph nonce than the list"
            ),
        }
    }
}

/// Everything that can go wrong in a round of secure aggregation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecAggError {
    /// The round's parameters (k, t, bits, clip range, participant list) cannot run
    /// the protocol safely or at all.
    #[error("invalid secure-aggregation configuration: {0}")]
    InvalidConfig(String),

    /// A message names another round than the receiver's: replayed from an
    /// earlier round, or stale.
    #[error(
        "round {round}: {what} from node {node} is for round {got}; refused as replayed or stale"
    )]
    RoundMismatch {
        /// The receiver's round.
        round: RoundId,
        /// The sender.
        node: NodeId,
        /// The message refused.
        what: MessageKind,
        /// The round the message names.
        got: RoundId,
    },

    /// A node sent a message it had already sent in this round.
    #[error("round {round}: a second {what} from node {node}; refused as a replay")]
    Duplicate {
        /// The round.
        round: RoundId,
        /// The sender.
        node: NodeId,
        /// The repeated message.
        what: MessageKind,
    },

    /// The graph's commit-then-reveal was broken: the graph would not be
    /// drawn from the nodes' randomness alone.
    #[error("round {round}: node {node} refuses the neighbour graph: {rule}")]
    GraphSeedRefused {
        /// The round.
        round: RoundId,
        /// The node that checked (the coordinator's own id-less checks name
        /// the offending node).
        node: NodeId,
        /// The rule that failed.
        rule: GraphSeedRule,
    },

    /// A node in U1 did not reveal its graph nonce: the attempt aborts, since
    /// a graph drawn without it would be one the coordinator could choose.
    #[error(
        "round {round}: node {node} committed to a graph nonce but did not reveal it; the attempt aborts"
    )]
    GraphNonceMissing {
        /// The round.
        round: RoundId,
        /// The node that did not reveal.
        node: NodeId,
    },

    /// The node has let too many attempts abort for the attempts it completed
    /// (see [`attempts`](super::attempts)): it joins no more secure
    /// aggregation until its operator restarts it (a federation whose rounds
    /// keep aborting stops anyway, after `rounds.max_failed_attempts`).
    #[error(
        "round {round}: this node has joined {aborted} attempts that never got its masked input, against {completed} that did; it joins no more (a coordinator aborting attempts could be choosing among neighbour graphs)"
    )]
    AttemptBudgetSpent {
        /// The attempt refused.
        round: RoundId,
        /// Attempts joined and not completed.
        aborted: u64,
        /// Attempts completed.
        completed: u64,
    },

    /// The aggregator received a message that belongs to another stage than its
    /// current one.
    #[error("round {round}: {what} from node {node} arrived in the {stage} stage")]
    WrongStage {
        /// The round.
        round: RoundId,
        /// The sender.
        node: NodeId,
        /// The message refused.
        what: MessageKind,
        /// The aggregator's stage when it arrived.
        stage: Stage,
    },

    /// The aggregator was asked to take a step its current stage does not allow.
    #[error("round {round}: the aggregator cannot {step} in the {stage} stage")]
    AggregatorOutOfOrder {
        /// The round.
        round: RoundId,
        /// The step asked for.
        step: &'static str,
        /// The aggregator's stage.
        stage: Stage,
    },

    /// A participant was asked to take a step its current stage does not allow.
    #[error("round {round}: node {node} cannot {step} in the {stage} stage")]
    OutOfOrder {
        /// The round.
        round: RoundId,
        /// The participant asked.
        node: NodeId,
        /// The step asked for.
        step: &'static str,
        /// The participant's stage.
        stage: Stage,
    },

    /// The sender is not a participant of the round, or dropped out at an earlier
    /// stage, or was not asked for this message.
    #[error(
        "round {round}: node {node} may not send a {what} now (not a participant, or it dropped at an earlier stage)"
    )]
    UnexpectedSender {
        /// The round.
        round: RoundId,
        /// The sender.
        node: NodeId,
        /// The message refused.
        what: MessageKind,
    },

    /// A message pairs this node with a node that is not its neighbour in the
    /// round's graph.
    #[error("round {round}: {what} pairs node {node} with node {peer}, which is not its neighbour")]
    NotNeighbour {
        /// The round.
        round: RoundId,
        /// The receiving node.
        node: NodeId,
        /// The node it was paired with.
        peer: NodeId,
        /// The message refused.
        what: MessageKind,
    },

    /// A message addressed to one node was delivered to another.
    #[error("round {round}: {what} for node {to} was delivered to node {node}")]
    Misaddressed {
        /// The round.
        round: RoundId,
        /// The node that received it.
        node: NodeId,
        /// The node it is addressed to.
        to: NodeId,
        /// The message refused.
        what: MessageKind,
    },

    /// A message decoded, but its content is not what the protocol calls for (for
    /// example shares for another node, or a partner list that disagrees with the
    /// shares relayed).
    #[error("round {round}: {what} from node {node} is malformed: {detail}")]
    Malformed {
        /// The round.
        round: RoundId,
        /// The sender.
        node: NodeId,
        /// The message refused.
        what: MessageKind,
        /// What is wrong with it.
        detail: String,
    },

    /// The bytes of a message are not a valid encoding of it (see
    /// [`wire`](super::wire)).
    #[error("a {what} could not be decoded: {detail}")]
    Undecodable {
        /// The message expected.
        what: MessageKind,
        /// Where and why decoding stopped.
        detail: String,
    },

    /// A key advertisement's signature does not verify against its sender's
    /// identity key.
    #[error("round {round}: the key advertisement of node {node} has an invalid signature")]
    BadSignature {
        /// The round.
        round: RoundId,
        /// The node that advertised.
        node: NodeId,
    },

    /// An advertised X25519 public key cannot be used: a low-order point, or a key
    /// already advertised in the round.
    #[error("round {round}: node {node} advertised an unusable public key: {reason}")]
    BadPublicKey {
        /// The round.
        round: RoundId,
        /// The node that advertised the key.
        node: NodeId,
        /// Why the key is refused.
        reason: &'static str,
    },

    /// A sealed share failed to open: tampered with, misaddressed, or from
    /// another round.
    #[error(
        "round {round}: the share from node {from} to node {to} failed authentication (tampered with, misaddressed or from another round)"
    )]
    ShareAuthentication {
        /// The round.
        round: RoundId,
        /// The node that sealed the share.
        from: NodeId,
        /// The node it was sealed for.
        to: NodeId,
    },

    /// A masked input's value count or packed length is not the round's.
    #[error(
        "round {round}: masked input from node {node} holds {got} values in {got_bytes} bytes; expected {expected} values in {expected_bytes} bytes"
    )]
    WrongLength {
        /// The round.
        round: RoundId,
        /// The sender.
        node: NodeId,
        /// Values the round masks (the model's length plus the weight).
        expected: u64,
        /// Values the message claims.
        got: u64,
        /// Packed bytes the round's value count and bit width call for.
        expected_bytes: usize,
        /// Packed bytes the message holds.
        got_bytes: usize,
    },

    /// An unmask request asks this node for shares of both secrets of one peer,
    /// which together would expose that peer's update.
    #[error(
        "round {round}: node {node} refuses to reveal both the self-mask seed and the mask secret key of node {peer}: together they expose node {peer}'s update"
    )]
    BothSecretsRequested {
        /// The round.
        round: RoundId,
        /// The node asked.
        node: NodeId,
        /// The peer both of whose secrets were asked for.
        peer: NodeId,
    },

    /// A survivor list or an unmask request broke a rule of the consistency check,
    /// so the node signs or reveals nothing.
    #[error("round {round}: node {node} refuses the consistency check: {rule}")]
    ConsistencyRefused {
        /// The round.
        round: RoundId,
        /// The refusing node.
        node: NodeId,
        /// The rule broken.
        rule: ConsistencyRule,
    },

    /// The round falls below one of the node's own bounds
    /// ([`NodePolicy`](super::config::NodePolicy)); the node does not take part.
    #[error(
        "the round's {limit} is {got}, below this node's own minimum of {needed}; it does not take part"
    )]
    BelowNodePolicy {
        /// The bound concerned.
        limit: PolicyLimit,
        /// The round's value.
        got: usize,
        /// The node's minimum.
        needed: usize,
    },

    /// The node is asked to reveal a share of a peer that never sent it one.
    #[error("round {round}: node {node} holds no share from node {peer}")]
    NoShareHeld {
        /// The round.
        round: RoundId,
        /// The node asked.
        node: NodeId,
        /// The peer whose share is missing.
        peer: NodeId,
    },

    /// Fewer than t shares of a secret needed for unmasking arrived: the sum
    /// cannot be unmasked and the round ends without one.
    #[error(
        "round {round} aborted: {got} shares of the {secret} of node {node} are available, {needed} are needed to unmask the sum"
    )]
    RoundAborted {
        /// The round.
        round: RoundId,
        /// The node whose secret cannot be rebuilt.
        node: NodeId,
        /// Which of its secrets.
        secret: SecretKind,
        /// Shares that arrived.
        got: usize,
        /// The threshold t.
        needed: usize,
    },

    /// A participant has fewer than t neighbours left after a stage: too few to
    /// unmask safely.
    #[error(
        "round {round}: node {node} has only {got} neighbours that completed the {stage} stage; the threshold is {needed}"
    )]
    TooFewNeighbours {
        /// The round.
        round: RoundId,
        /// The participant.
        node: NodeId,
        /// The stage too few of its neighbours completed.
        stage: Stage,
        /// Neighbours that completed the stage.
        got: usize,
        /// The threshold t.
        needed: usize,
    },

    /// Fewer than t nodes completed a stage: the aggregator aborts the round.
    #[error(
        "round {round} aborted: only {got} nodes completed the {stage} stage; the threshold is {needed}"
    )]
    TooFewNodes {
        /// The round.
        round: RoundId,
        /// The stage.
        stage: Stage,
        /// Nodes that completed it.
        got: usize,
        /// The threshold t.
        needed: usize,
    },

    /// The shares of a node's secret do not all lie on one polynomial: one was
    /// corrupted, and the secret is not trusted.
    #[error(
        "round {round}: the shares of node {node}'s {secret} do not rebuild it consistently (a share was corrupted)"
    )]
    InconsistentShares {
        /// The round.
        round: RoundId,
        /// The node whose secret was rebuilt.
        node: NodeId,
        /// Which of its secrets.
        secret: SecretKind,
    },

    /// Fewer shares than the threshold were given to Shamir reconstruction.
    #[error("{got} shares cannot rebuild a secret shared with threshold {needed}")]
    TooFewShares {
        /// The threshold t.
        needed: usize,
        /// Shares given.
        got: usize,
    },

    /// Shamir shares or parameters are invalid: a threshold of 0, x-coordinate 0,
    /// a repeated x-coordinate, a wrong length or a value outside the field.
    #[error("invalid shares: {0}")]
    InvalidShares(&'static str),

    /// An update, its weight, a quantized input or a sum does not fit the round:
    /// wrong length, a weight outside [0, 1] or a non-finite coordinate.
    #[error("invalid update: {0}")]
    InvalidUpdate(String),

    /// A coordinate of the unmasked sum lies beyond what `n` quantized inputs can
    /// reach: a node sent out-of-range values or the sum is corrupted.
    #[error(
        "sum coordinate {index} is {value}, beyond the ±{bound} that {n} inputs can reach: the sum is corrupted"
    )]
    SumOutOfRange {
        /// The coordinate.
        index: usize,
        /// Its value, read as a signed integer.
        value: i128,
        /// n times the quantization scale.
        bound: i128,
        /// The number of inputs summed.
        n: usize,
    },

    /// A weighted mean was asked of a sum whose total weight is not positive.
    #[error("the total weight of the sum is not positive; a weighted mean needs a positive weight")]
    NoWeight,

    /// The identity key failed to sign a statement (key advertisement, partner
    /// list, survivor set), or it or a peer's certificate could not be read.
    #[error("signing with the node's identity key failed: {0}")]
    Signing(String),

    /// The identity key's file is open to group or others; it is not read.
    #[error(transparent)]
    InsecureKeyFile(#[from] crate::pki::InsecureKeyFile),

    /// A cryptographic primitive failed: randomness unavailable, a key derivation
    /// or seal refused, a PRG keystream exhausted, or a masking thread panicked.
    #[error("cryptographic failure: {0}")]
    Crypto(&'static str),
}
