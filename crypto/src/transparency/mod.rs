//! The cryptography of Cohort's tamper-evident audit log, after Certificate
//! Transparency (RFC 9162).
//!
//! The coordinator appends every audit event to a Merkle tree and periodically
//! signs a tree head: the tree's size and root, with a timestamp. An auditor
//! holding two signed tree heads can check, with hashes alone, that an event is
//! in the log (an inclusion proof) and that the later log extends the earlier
//! one without rewriting or dropping anything (a consistency proof). What this
//! module promises:
//!
//! - [`hash`]: leaf and node hashes exactly as RFC 9162 §2.1.1 defines them
//!   (SHA-256, prefixes 0x00 and 0x01), so roots match other CT
//!   implementations; [`struct@Hash`] compares in constant time.
//! - [`tree`]: an append-only [`MerkleTree`] that yields `MTH(D[0:m])` for every
//!   prefix `m`, with O(log n) appends and roots.
//! - [`frontier`]: the O(log n) right edge of the tree, which is all a log
//!   writer needs to append and sign heads, with a fixed encoding to persist.
//! - [`proof`]: inclusion and consistency proofs generated as RFC 9162 §2.1.3.1
//!   and §2.1.4.1 define them and verified with the algorithms of §2.1.3.2 and
//!   §2.1.4.2, for every tree size.
//! - [`tree_head`]: [`SignedTreeHead`]s signed with Ed25519 (RFC 8032) over a
//!   versioned, fixed-layout encoding that names the log ([`LogId`]: the
//!   federation and the audit key), so a head cannot pass for another log's.
//! - [`pseudonym`]: HMAC-SHA256 pseudonyms for data subjects, with a key that
//!   stays on the node, so the log never holds a raw identifier.
//!
//! Storing the log (the coordinator's sled database) and serving proofs over
//! gRPC are not part of this module.

pub mod error;
pub mod frontier;
pub mod hash;
pub mod proof;
pub mod pseudonym;
pub mod tree;
pub mod tree_head;

pub use error::TransparencyError;
pub use frontier::MerkleFrontier;
pub use hash::{Hash, empty_root, leaf_hash, node_hash};
pub use proof::{verify_consistency, verify_inclusion};
pub use pseudonym::SubjectPseudonymKey;
pub use tree::MerkleTree;
pub use tree_head::{AuditSigningKey, LogId, LogIdentity, SignedTreeHead};
