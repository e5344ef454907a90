//! The tamper-evident audit log (Certificate Transparency's structure, RFC 9162):
//! every entry is a leaf of a Merkle tree, and each append writes a tree head
//! signed with the coordinator's Ed25519 audit key, in the same sled transaction
//! as the entries it covers. Nobody can change, drop or reorder an entry without
//! [`verify`] finding the first entry that no longer matches a signed head.
//!
//! The hashing, proofs and signatures are `cohort_crypto::transparency`; this
//! module decides what is logged and keeps it in the coordinator's store.
//!
//! A round's entry is written in the round's own commit transaction (see
//! [`PendingAppend`]), so a committed round always has its audit entry.

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
        let pending = self.prepare(events).await?;
        store.append_audit(pending.batch()).await?;
        Ok(pending.stored())
    }

    /// Encodes `events` and signs the head over the tree they lead to, without
    /// storing anything: the caller writes [`PendingAppend::batch`] in its own
    /// transaction (as the round commit does), then calls
    /// [`PendingAppend::stored`]. No other append can run in between.
    pub async fn prepare(&self, events: Vec<AuditEvent>) -> Result<PendingAppend<'_>, AuditError> {
        let tree = self.tree.lock().await;
        let time_ms = unix_ms(SystemTime::now());
        let mut next = tree.clone();
        let mut entries = Vec::with_capacity(events.len());
        for event in events {
            let entry = AuditEntry {
                schema: AUDIT_SCHEMA,
                seq: next.len(),
                time_ms,
                event,
            };
            let bytes = entry.to_bytes()?;
            next.append_leaf_hash(leaf_hash(&bytes));
            entries.push((entry.seq, bytes));
        }
        let head = self.key.sign_tree_head(next.len(), time_ms, next.root());
        Ok(PendingAppend {
            tree,
            next,
            batch: AuditBatch { entries, head },
        })
    }
}

/// Entries and the signed tree head over them, ready to be stored together.
#[derive(Debug, Clone)]
pub struct AuditBatch {
    /// (sequence number, canonical bytes) per entry.
    pub entries: Vec<(u64, Vec<u8>)>,
    pub head: SignedTreeHead,
}

/// An append that is signed but not yet stored; holds the log's lock.
#[derive(Debug)]
pub struct PendingAppend<'a> {
    tree: tokio::sync::MutexGuard<'a, MerkleTree>,
    next: MerkleTree,
    batch: AuditBatch,
}

impl PendingAppend<'_> {
    pub fn batch(&self) -> &AuditBatch {
        &self.batch
    }

    /// The batch is in the store: the in-memory tree moves on. Dropping a
    /// pending append instead leaves the log as it was.
    pub fn stored(mut self) -> SignedTreeHead {
        *self.tree = self.next;
        self.batch.head
    }
}
