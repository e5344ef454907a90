//! What can go wrong in the transparency log's cryptography, naming the index,
//! tree size or file concerned.

use std::path::PathBuf;

use crate::pki::PkiError;

/// Why a tree operation, a proof, a signed tree head or a key was refused.
#[derive(Debug, thiserror::Error)]
pub enum TransparencyError {
    /// A proof was asked or checked for a leaf the tree of that size does not hold.
    #[error("leaf index {index} is outside a tree of size {tree_size}")]
    LeafIndexOutOfRange {
        /// The leaf's index.
        index: u64,
        /// The tree's size.
        tree_size: u64,
    },
    /// A root or proof was asked for a tree larger than the log so far.
    #[error("tree size {requested} exceeds the {available} entries appended so far")]
    TreeSizeOutOfRange {
        /// The tree size asked for.
        requested: u64,
        /// The entries appended so far.
        available: u64,
    },
    /// A consistency proof was asked or checked from a larger tree to a smaller one.
    #[error(
        "no consistency from tree size {old_size} to {new_size}: the old tree must not be larger"
    )]
    SizesOutOfOrder {
        /// The earlier tree's size.
        old_size: u64,
        /// The later tree's size.
        new_size: u64,
    },
    /// An inclusion proof does not lead to the expected root.
    #[error("inclusion proof for leaf {index} in a tree of size {tree_size} is invalid: {reason}")]
    InclusionProofInvalid {
        /// The leaf's index.
        index: u64,
        /// The tree's size.
        tree_size: u64,
        /// Which check failed.
        reason: &'static str,
    },
    /// A consistency proof does not show that the later tree extends the earlier one.
    #[error("consistency proof from tree size {old_size} to {new_size} is invalid: {reason}")]
    ConsistencyProofInvalid {
        /// The earlier tree's size.
        old_size: u64,
        /// The later tree's size.
        new_size: u64,
        /// Which check failed.
        reason: &'static str,
    },
    /// A signed tree head's signature does not verify under the audit public key.
    #[error("signed tree head for tree size {tree_size} has an invalid signature")]
    BadSignature {
        /// The size the head claims.
        tree_size: u64,
    },
    /// A tree head names another federation than the log it is checked as.
    #[error(
        "the tree head of size {tree_size} was signed for another federation's log, not {expected:?}"
    )]
    OtherFederation {
        /// The size the head claims.
        tree_size: u64,
        /// The federation id it was checked against.
        expected: String,
    },
    /// A tree head names another audit key than the one it is checked with.
    #[error(
        "the tree head of size {tree_size} names audit key id {named}, not {expected} (SHA-256 of the key it is checked with)"
    )]
    OtherLogKey {
        /// The size the head claims.
        tree_size: u64,
        /// The key id in the head (hex).
        named: String,
        /// The id of the key it was checked with (hex).
        expected: String,
    },
    /// The bytes are not a signed tree head's encoding.
    #[error("malformed signed tree head: {reason}")]
    MalformedTreeHead {
        /// What is wrong with them.
        reason: String,
    },
    /// The bytes are not a Merkle frontier's encoding.
    #[error("malformed Merkle frontier: {reason}")]
    MalformedFrontier {
        /// What is wrong with them.
        reason: String,
    },
    /// A hash's text is not 64 hex digits.
    #[error("invalid hash {input:?}: expected 64 hex digits")]
    InvalidHash {
        /// The text given.
        input: String,
    },
    /// A key file was read but does not hold a valid key of the expected kind.
    #[error("{path}: not a valid {kind}: {reason}")]
    InvalidKeyFile {
        /// The file.
        path: PathBuf,
        /// The kind of key expected.
        kind: &'static str,
        /// Why the key was refused.
        reason: String,
    },
    /// A new key could not be generated.
    #[error("could not generate the {kind}: {reason}")]
    KeyGeneration {
        /// The kind of key.
        kind: &'static str,
        /// Why generation failed.
        reason: String,
    },
    /// Writing or reading a key file (the error names the file).
    #[error(transparent)]
    KeyFile(#[from] PkiError),
}
