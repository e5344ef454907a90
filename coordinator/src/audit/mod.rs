//! The tamper-evident audit log (Certificate Transparency's structure, RFC 9162):
//! every entry is a leaf of a Merkle tree, and each append writes a tree head
//! signed with the coordinator's Ed25519 audit key, in the same sled transaction
//! as the entries it covers. Nobody can change, drop or reorder an entry without
//! [`verify`] finding the first entry that no longer matches a signed head.
//!
//! The hashing, proofs and signatures are `cohort_crypto::transparency`; this
//! module decides what is logged and keeps it in the coordinator's store.
//!
//! Known gap of this first slice: a round's entry is appended right after the
//! round's own commit, in a second transaction; a crash between the two leaves
//! the round without its entry (the round record itself is intact).

mod entry;
mod verify;

use std::path::Path;
use std::time::SystemTime;

use cohort_crypto::transparency::{
    AuditSigningKey, MerkleTree, SignedTreeHead, TransparencyError, leaf_hash,
};
use tokio::sync::Mutex;

pub use entry::{AUDIT_SCHEMA, AuditEntry, AuditEvent};
pub use verify::{AuditViolation, VerifiedLog, verify};

use crate::rounds::stage::unix_ms;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("audit key: {0}")]
    Key(#[from] TransparencyError),
    #[error("audit entry cannot be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the stored audit log does not verify: {0}")]
    Tampered(#[from] AuditViolation),
}

/// The coordinator's audit log: the signing key and the Merkle tree of what is
/// stored. Appends are serialized so sequence numbers and heads stay in order.
#[derive(Debug)]
pub struct AuditLog {
    key: AuditSigningKey,
    tree: Mutex<MerkleTree>,
}

impl AuditLog {
    /// Loads (or on first start creates, mode 0600) the audit key at `key_path`,
    /// checks the stored log against it, and rebuilds the tree.
    pub fn open(store: &Store, key_path: &Path) -> Result<Self, AuditError> {
        let key = if key_path.exists() {
            AuditSigningKey::load(key_path)?
        } else {
            AuditSigningKey::generate(key_path)?
        };
        let verified = verify(store, &key.public_key())?;
        let tree = MerkleTree::from_leaf_hashes(verified.leaf_hashes);
        Ok(Self {
            key,
            tree: Mutex::new(tree),
        })
    }

    /// The Ed25519 public key auditors pin to check tree heads.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.public_key()
    }

    /// Appends `events` and a signed head over the new tree, atomically, and
    /// flushes: when this returns, the entries are durable.
    pub async fn append(
        &self,
        store: &Store,
        events: Vec<AuditEvent>,
    ) -> Result<SignedTreeHead, AuditError> {
        let mut tree = self.tree.lock().await;
        let time_ms = unix_ms(SystemTime::now());
        let mut encoded = Vec::with_capacity(events.len());
        let mut leaves = Vec::with_capacity(events.len());
        for (offset, event) in events.into_iter().enumerate() {
            let entry = AuditEntry {
                schema: AUDIT_SCHEMA,
                seq: tree.len() + offset as u64,
                time_ms,
                event,
            };
            let bytes = entry.to_bytes()?;
            leaves.push(leaf_hash(&bytes));
            encoded.push((entry.seq, bytes));
        }
        // Compute the new head on a copy: the in-memory tree only moves once the
        // store has taken the batch.
        let mut next = tree.clone();
        for leaf in &leaves {
            next.append_leaf_hash(*leaf);
        }
        let head = self.key.sign_tree_head(next.len(), time_ms, next.root());
        store.append_audit(&encoded, &head.to_bytes()).await?;
        *tree = next;
        Ok(head)
    }
}
