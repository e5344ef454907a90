//! What can go wrong in the transparency log's cryptography, naming the index,
//! tree size or file concerned.

use std::path::PathBuf;

use crate::pki::PkiError;

/// Why a tree operation, a proof, a signed tree head or a key was refused.
#[derive(Debug, thiserror::Error)]
pub enum TransparencyError {
    #[error("leaf index {index} is outside a tree of size {tree_size}")]
    LeafIndexOutOfRange { index: u64, tree_size: u64 },
    #[error("tree size {requested} exceeds the {available} entries appended so far")]
    TreeSizeOutOfRange { requested: u64, available: u64 },
    #[error(
        "no consistency from tree size {old_size} to {new_size}: the old tree must not be larger"
    )]
    SizesOutOfOrder { old_size: u64, new_size: u64 },
    #[error("inclusion proof for leaf {index} in a tree of size {tree_size} is invalid: {reason}")]
    InclusionProofInvalid {
        index: u64,
        tree_size: u64,
        reason: &'static str,
    },
    #[error("consistency proof from tree size {old_size} to {new_size} is invalid: {reason}")]
    ConsistencyProofInvalid {
        old_size: u64,
        new_size: u64,
        reason: &'static str,
    },
    #[error("signed tree head for tree size {tree_size} has an invalid signature")]
    BadSignature { tree_size: u64 },
    #[error("malformed signed tree head: {reason}")]
    MalformedTreeHead { reason: String },
    #[error("malformed Merkle frontier: {reason}")]
    MalformedFrontier { reason: String },
    #[error("invalid hash {input:?}: expected 64 hex digits")]
    InvalidHash { input: String },
    #[error("{path}: not a valid {kind}: {reason}")]
    InvalidKeyFile {
        path: PathBuf,
        kind: &'static str,
        reason: String,
    },
    #[error("could not generate the {kind}: {reason}")]
    KeyGeneration { kind: &'static str, reason: String },
    /// Writing or reading a key file (the error names the file).
    #[error(transparent)]
    KeyFile(#[from] PkiError),
}
