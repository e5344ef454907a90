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
//! [`AuditLog::commit_audited`]), so a committed round always has its audit
//! entry.
//!
//! Appending costs O(log n): the log keeps only the tree's right edge (a
//! [`MerkleFrontier`]), stored with every batch, so neither an append nor a
//! restart rereads old entries. [`verify`] (and the auditor API) rebuild the
//! whole tree from the stored entries when they need it.

mod entry;
pub mod erasure;
pub mod lineage;
pub mod refusals;
pub mod remote;
pub mod seen_head;
mod verify;

use crate::observability::live::AppendLatency;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use cohort_crypto::transparency::{
    AuditSigningKey, LogIdentity, MerkleFrontier, SignedTreeHead, TransparencyError, leaf_hash,
};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

pub use entry::{
    AUDIT_SCHEMA, AuditEntry, AuditEvent, ContributorDataset, DifferentialPrivacyParameters,
    ErasureScope, ROUND_STARTED_RECORDS_RECEIPT, RoundProtection, SecureAggregationParameters,
};

pub use verify::{
    AuditViolation, VerifiedLog, check_consistency, stored_entries, stored_entries_from, verify,
    verify_log,
};

use crate::store::records::{AuditBatch, unix_ms};
use crate::store::{Store, StoreError};

/// The audit signing key's file in the coordinator's state folder (kept
/// there whichever backend holds the log).
pub const SIGNING_KEY_FILE: &str = "audit-signing.key";

/// Why the audit log could not append, open or check.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signing key could not be loaded or created.
    #[error("audit key: {0}")]
    Key(#[from] TransparencyError),
    /// An entry did not encode.
    #[error("audit entry cannot be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    /// The stored log fails verification.
    #[error("the stored audit log does not verify: {0}")]
    Tampered(#[from] AuditViolation),
    /// A group commit this append was part of failed (the committer's error).
    #[error("audit append failed: {0}")]
    Failed(String),
    /// The log holds signed heads but the key file that signed them is not
    /// there: a new key would sign heads no auditor can check against the old.
    #[error(
        "audit key {path} is missing but the log holds signed heads: restore it (a standby \
         coordinator needs a copy of the active one's, mode 0600)"
    )]
    KeyMissing {
        /// Where the key was looked for.
        path: std::path::PathBuf,
    },
    /// The key file is not the one that signed the log's latest head.
    #[error("audit key {path} did not sign this log's latest head: {reason}")]
    KeyMismatch {
        /// The key file.
        path: std::path::PathBuf,
        /// Why the head does not verify with it.
        reason: String,
    },
}

/// Checks that the key at `key_path` signed the stored log's latest head
/// (any key will do for a log without heads), before a coordinator relies on
/// it: a standby checks its copy of the key when it starts, not at takeover.
pub async fn check_signing_key(
    store: &Store,
    key_path: &Path,
    federation_id: &str,
) -> Result<(), AuditError> {
    let Some((_, head)) = store.latest_audit_head().await? else {
        return Ok(());
    };
    if !key_path.exists() {
        return Err(AuditError::KeyMissing {
            path: key_path.to_owned(),
        });
    }
    let key = AuditSigningKey::load(key_path)?;
    SignedTreeHead::from_bytes(&head)
        .and_then(|head| head.verify(&key.log_identity(federation_id)))
        .map_err(|e| AuditError::KeyMismatch {
            path: key_path.to_owned(),
            reason: e.to_string(),
        })
}

/// The coordinator's audit log: the signing key and the right edge of the
/// Merkle tree of what is stored. Appends are serialized so sequence numbers
/// and heads stay in order.
///
/// Every entry gets its own signed head, so `verify` names exactly the entry
/// that changed. Concurrent appends are committed together (group commit):
/// each caller queues its events and waits; whoever holds the tree next
/// writes every queued append in one sled transaction and one flush. So a
/// download or an auditor's read can be made durable before it is answered
/// without serializing the callers on one fsync each.
#[derive(Debug)]
pub struct AuditLog {
    key: Arc<LogSigner>,
    frontier: Arc<Mutex<MerkleFrontier>>,
    waiting: std::sync::Mutex<Vec<WaitingAppend>>,
    /// How long appends waited for their group commit (for `/metrics`).
    append_latency: AppendLatency,
}

/// The audit key and the federation whose log it signs: every head names both
/// (see `cohort_crypto::transparency::tree_head`).
#[derive(Debug)]
struct LogSigner {
    key: AuditSigningKey,
    federation_id: String,
}

impl LogSigner {
    fn identity(&self) -> LogIdentity {
        self.key.log_identity(&self.federation_id)
    }
}

/// An append queued for the next group commit.
#[derive(Debug)]
struct WaitingAppend {
    events: Vec<AuditEvent>,
    /// The head over the append's last entry.
    done: oneshot::Sender<Result<SignedTreeHead, String>>,
}

impl AuditLog {
    /// Loads (or on first start creates, mode 0600) the audit key at `key_path`
    /// and resumes `federation_id`'s log from the stored frontier. The frontier
    /// must match the latest signed head and the number of stored entries;
    /// otherwise (an older store, or anything out of place) the whole log is
    /// verified and the frontier rebuilt from it, so a tampered log, or one
    /// signed for another federation, still refuses to open.
    pub async fn open(
        store: &Store,
        key_path: &Path,
        federation_id: &str,
    ) -> Result<Self, AuditError> {
        let key = if key_path.exists() {
            AuditSigningKey::load(key_path)?
        } else {
            // Missing: refused for a log with signed heads (`KeyMissing`).
            check_signing_key(store, key_path, federation_id).await?;
            AuditSigningKey::generate(key_path)?
        };
        let signer = LogSigner {
            key,
            federation_id: federation_id.to_owned(),
        };
        let identity = signer.identity();
        let frontier = match resume_frontier(store, &identity).await? {
            Some(frontier) => frontier,
            None => verify(store, &identity)
                .await?
                .leaf_hashes
                .into_iter()
                .collect(),
        };
        Ok(Self {
            key: Arc::new(signer),
            frontier: Arc::new(Mutex::new(frontier)),
            waiting: std::sync::Mutex::new(Vec::new()),
            append_latency: AppendLatency::default(),
        })
    }

    /// The Ed25519 public key auditors pin to check tree heads.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.key.public_key()
    }

    /// The log's identity (its federation and audit key), which every head
    /// names and auditors verify heads against.
    pub fn identity(&self) -> LogIdentity {
        self.key.identity()
    }

    /// The latency of this log's appends so far (clones share the values).
    pub fn append_latency(&self) -> AppendLatency {
        self.append_latency.clone()
    }

    /// The number of entries appended so far.
    pub async fn entry_count(&self) -> u64 {
        self.frontier.lock().await.len()
    }

    /// Appends `events`, each with a signed head, atomically, and flushes:
    /// when this returns, the entries are durable. Returns the last head.
    pub async fn append(
        &self,
        store: &Store,
        events: Vec<AuditEvent>,
    ) -> Result<SignedTreeHead, AuditError> {
        if events.is_empty() {
            return Err(AuditError::Failed(
                "an append needs at least one event".into(),
            ));
        }
        let started = std::time::Instant::now();
        let (done, mut answer) = oneshot::channel();
        self.waiting().push(WaitingAppend { events, done });
        // Ours is committed by whoever holds the tree next: by another caller
        // (then the answer comes first and this one never takes the tree,
        // which is what lets groups form), or by this one, with everything
        // waiting by then.
        let answer = tokio::select! {
            biased;
            answer = &mut answer => answer,
            frontier = self.frontier.clone().lock_owned() => {
                let waiting = std::mem::take(&mut *self.waiting());
                if !waiting.is_empty() {
                    // Spawned: the commit goes on if this caller is cancelled
                    // (its client went away), and the others get their answer.
                    let (key, store) = (self.key.clone(), store.clone());
                    tokio::spawn(commit_waiting(key, store, frontier, waiting));
                }
                answer.await
            }
        };
        self.append_latency.observe(started.elapsed());
        answer
            .map_err(|_| AuditError::Failed("the group commit was abandoned".into()))?
            .map_err(AuditError::Failed)
    }

    /// Waits for the append being committed, if any, and commits what still
    /// waits (callers that went away): after this nothing of the log is in
    /// flight, so a coordinator shutting down releases its store at once.
    pub async fn drain(&self, store: &Store) {
        let frontier = self.frontier.clone().lock_owned().await;
        let waiting = std::mem::take(&mut *self.waiting());
        if !waiting.is_empty() {
            commit_waiting(self.key.clone(), store.clone(), frontier, waiting).await;
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<WaitingAppend>> {
        // The list is plain data; a panic elsewhere leaves it usable.
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends `events` in the store transaction `write` makes with their
    /// batch (a round's commit, an erasure step): both are durable together
    /// or neither is. No other append runs in between. Returns what `write`
    /// returned; a failed `write` leaves the log as the store has it.
    pub async fn commit_audited<T>(
        &self,
        store: &Store,
        events: Vec<AuditEvent>,
        write: impl AsyncFnOnce(&AuditBatch) -> Result<T, StoreError>,
    ) -> Result<T, AuditError> {
        let pending = self.prepare(store, events).await?;
        let written = write(pending.batch()).await?;
        pending.stored();
        Ok(written)
    }

    /// Encodes `events` and signs the head over the tree they lead to, without
    /// storing anything: the caller writes [`PendingAppend::batch`], then
    /// calls [`PendingAppend::stored`]. No other append can run in between.
    async fn prepare(
        &self,
        store: &Store,
        events: Vec<AuditEvent>,
    ) -> Result<PendingAppend, AuditError> {
        let frontier = self.frontier.clone().lock_owned().await;
        sign(&self.key, store, frontier, events).await
    }
}

/// Writes the waiting appends in one transaction and tells each its head.
async fn commit_waiting(
    key: Arc<LogSigner>,
    store: Store,
    frontier: OwnedMutexGuard<MerkleFrontier>,
    waiting: Vec<WaitingAppend>,
) {
    let (appends, senders): (Vec<_>, Vec<_>) =
        waiting.into_iter().map(|w| (w.events, w.done)).unzip();
    let counts: Vec<usize> = appends.iter().map(Vec::len).collect();
    let events = appends.into_iter().flatten().collect();
    let result = match sign(&key, &store, frontier, events).await {
        Ok(pending) => {
            let written = store.append_audit(pending.batch()).await;
            // Let go of the store before the tree: whoever takes the tree
            // next (a shutdown's `drain`) may count on the store being free.
            drop(store);
            match written {
                Ok(()) => Ok(pending.stored_heads()),
                Err(error) => Err(error.to_string()),
            }
        }
        Err(error) => Err(error.to_string()),
    };
    let mut heads = result.map(Vec::into_iter);
    for (sender, count) in senders.into_iter().zip(counts) {
        let answer = match &mut heads {
            // One head per entry: this append's last is its head.
            Ok(heads) => heads
                .by_ref()
                .take(count)
                .last()
                .ok_or_else(|| "no head was signed".to_owned()),
            Err(error) => Err(error.clone()),
        };
        // A caller that gave up waiting is no reason to stop.
        let _ = sender.send(answer);
    }
}

/// An entry for each event, each followed by a signed head, after the tree
/// has caught up with the store.
async fn sign(
    key: &LogSigner,
    store: &Store,
    mut frontier: OwnedMutexGuard<MerkleFrontier>,
    events: Vec<AuditEvent>,
) -> Result<PendingAppend, AuditError> {
    catch_up(store, &mut frontier).await?;
    let time_ms = unix_ms(SystemTime::now());
    let mut next = frontier.clone();
    let mut entries = Vec::with_capacity(events.len());
    let mut heads = Vec::with_capacity(events.len());
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
        heads.push(
            key.key
                .sign_tree_head(&key.federation_id, next.len(), time_ms, next.root()),
        );
    }
    Ok(PendingAppend {
        batch: AuditBatch {
            entries,
            heads,
            frontier: next.to_bytes(),
        },
        frontier,
        next,
    })
}

/// Extends the tree with entries the store holds beyond it: those of a
/// pending append whose caller was cancelled after the store's transaction
/// but before [`PendingAppend::stored`]. Without this the next append would
/// reuse their sequence numbers. Usually an empty range read.
async fn catch_up(store: &Store, frontier: &mut MerkleFrontier) -> Result<(), AuditError> {
    for (seq, bytes) in store.audit_entries_in(frontier.len()..u64::MAX).await? {
        if seq != frontier.len() {
            return Err(AuditViolation::Missing {
                seq: frontier.len(),
            }
            .into());
        }
        frontier.append_leaf_hash(leaf_hash(&bytes));
    }
    Ok(())
}

/// The stored frontier, if it is exactly the tree the latest genuine signed
/// head describes and every entry it covers is stored.
async fn resume_frontier(
    store: &Store,
    log: &LogIdentity,
) -> Result<Option<MerkleFrontier>, AuditError> {
    let Some(bytes) = store.audit_frontier().await? else {
        return Ok(None);
    };
    let Ok(frontier) = MerkleFrontier::from_bytes(&bytes) else {
        return Ok(None);
    };
    let Some((tree_size, head)) = store.latest_audit_head().await? else {
        return Ok(None);
    };
    let Ok(head) = SignedTreeHead::from_bytes(&head) else {
        return Ok(None);
    };
    let matches = head.verify(log).is_ok()
        && head.tree_size == tree_size
        && frontier.len() == tree_size
        && store.audit_len().await? == tree_size
        && frontier.root() == head.root_hash;
    Ok(matches.then_some(frontier))
}

/// An append that is signed but not yet stored; holds the log's lock.
#[derive(Debug)]
struct PendingAppend {
    frontier: OwnedMutexGuard<MerkleFrontier>,
    next: MerkleFrontier,
    batch: AuditBatch,
}

impl PendingAppend {
    fn batch(&self) -> &AuditBatch {
        &self.batch
    }

    /// The batch is in the store: the in-memory frontier moves on. Dropping a
    /// pending append instead leaves the log as the store has it (the next
    /// append catches up if the batch was stored after all).
    fn stored(self) {
        self.stored_heads();
    }

    /// As [`Self::stored`], returning the batch's signed heads.
    fn stored_heads(mut self) -> Vec<SignedTreeHead> {
        *self.frontier = self.next;
        self.batch.heads
    }
}

/// Logs a `CertificateRevoked` entry for each fingerprint in `revoked` that
/// the log does not hold yet (so each revocation is logged once, at the first
/// start that reads it).
pub async fn log_new_revocations(
    log: &AuditLog,
    store: &Store,
    revoked: &std::collections::BTreeSet<String>,
) -> Result<(), AuditError> {
    if revoked.is_empty() {
        return Ok(());
    }
    let mut logged = std::collections::BTreeSet::new();
    for (_, bytes) in store.audit_entries().await? {
        if let Ok(AuditEntry {
            event: AuditEvent::CertificateRevoked { certificate_sha256 },
            ..
        }) = serde_json::from_slice::<AuditEntry>(&bytes)
        {
            logged.insert(certificate_sha256);
        }
    }
    let new: Vec<AuditEvent> = revoked
        .difference(&logged)
        .map(|certificate_sha256| AuditEvent::CertificateRevoked {
            certificate_sha256: certificate_sha256.clone(),
        })
        .collect();
    if !new.is_empty() {
        log.append(store, new).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    /// The federation the test logs belong to.
    pub(crate) const FEDERATION: &str = "audit-tests";

    fn event(i: u64) -> AuditEvent {
        AuditEvent::RoundFailed {
            round: i,
            attempt: 1,
            reason: format!("entry {i}"),
        }
    }

    /// A log of 13 entries in batches of 1, 4 and 8 (sizes that are not
    /// powers of two at every head).
    async fn thirteen(dir: &Path) -> (Store, AuditLog) {
        let store = Store::from(SledStore::open(&dir.join("state")).unwrap());
        let log = AuditLog::open(&store, &dir.join("audit.key"), FEDERATION)
            .await
            .unwrap();
        for batch in [0..1, 1..5, 5..13] {
            log.append(&store, batch.map(event).collect())
                .await
                .unwrap();
        }
        (store, log)
    }

    async fn rebuilt(store: &Store, log: &AuditLog) -> MerkleFrontier {
        verify(store, &log.identity())
            .await
            .unwrap()
            .leaf_hashes
            .into_iter()
            .collect()
    }

    #[tokio::test]
    async fn the_stored_frontier_is_the_tree_of_the_stored_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (store, log) = thirteen(dir.path()).await;
        let stored =
            MerkleFrontier::from_bytes(&store.audit_frontier().await.unwrap().unwrap()).unwrap();
        assert_eq!(stored, rebuilt(&store, &log).await);
        assert_eq!(stored.len(), 13);
        assert_eq!(log.entry_count().await, 13);
    }

    #[tokio::test]
    async fn reopening_resumes_and_falls_back_to_a_full_check_when_the_frontier_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let (store, log) = thirteen(dir.path()).await;
        let key = dir.path().join("audit.key");
        drop(log);

        // A store written before frontiers were kept, and a frontier that
        // does not match the latest head: both rebuild from the entries.
        let wrong: MerkleFrontier = (0..13u64).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for frontier in [None, Some(wrong.to_bytes()), Some(vec![1, 2, 3])] {
            store
                .as_sled()
                .unwrap()
                .set_audit_frontier(frontier.as_deref())
                .unwrap();
            let log = AuditLog::open(&store, &key, FEDERATION).await.unwrap();
            let head = log.append(&store, vec![event(99)]).await.unwrap();
            assert_eq!(head.tree_size, rebuilt(&store, &log).await.len());
            assert_eq!(head.root_hash, rebuilt(&store, &log).await.root());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_commit_together_each_whole_and_under_its_own_head() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::from(SledStore::open(&dir.path().join("state")).unwrap());
        let log = std::sync::Arc::new(
            AuditLog::open(&store, &dir.path().join("audit.key"), FEDERATION)
                .await
                .unwrap(),
        );
        let appends: Vec<_> = (0..64)
            .map(|i| {
                let (log, store) = (log.clone(), store.clone());
                tokio::spawn(async move {
                    let head = log.append(&store, vec![event(i), event(i + 1000)]).await;
                    (i, head.unwrap())
                })
            })
            .collect();
        let mut heads = Vec::new();
        for append in appends {
            heads.push(append.await.unwrap());
        }
        let verified = verify(&store, &log.identity())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut sizes = Vec::new();
        for (i, head) in heads {
            // The head returned is the one over this append's two entries.
            let size = head.tree_size as usize;
            sizes.push(size);
            let rounds: Vec<_> = verified.entries[size - 2..size]
                .iter()
                .map(|entry| match &entry.event {
                    AuditEvent::RoundFailed { round, .. } => *round,
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(rounds, [i, i + 1000]);
        }
        sizes.sort_unstable();
        assert_eq!(sizes, (1..=64).map(|k| 2 * k).collect::<Vec<_>>());
        assert_eq!(verified.heads_checked, 128);
    }

    #[tokio::test]
    async fn a_batch_that_never_reached_the_store_is_not_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (store, log) = thirteen(dir.path()).await;
        // A crash between signing and the store's transaction: nothing of the
        // batch is stored, and the log goes on from the last stored entry.
        let lost = log
            .prepare(&store, vec![event(50), event(51)])
            .await
            .unwrap();
        assert_eq!(lost.batch().heads[1].tree_size, 15);
        drop(lost);
        drop(log);
        let log = AuditLog::open(&store, &dir.path().join("audit.key"), FEDERATION)
            .await
            .unwrap();
        assert_eq!(log.entry_count().await, 13);
        let head = log.append(&store, vec![event(60)]).await.unwrap();
        assert_eq!(head.tree_size, 14);
        let verified = verify(&store, &log.identity()).await.unwrap();
        assert_eq!(verified.entries.len(), 14);
        assert_eq!(verified.head.unwrap().root_hash, head.root_hash);
    }

    #[tokio::test]
    async fn an_audited_commit_stores_its_entries_with_the_write_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (store, log) = thirteen(dir.path()).await;
        // The write fails: nothing of the batch is stored or counted.
        let failed = log
            .commit_audited(&store, vec![event(50)], async |_| {
                Err::<(), _>(StoreError::NoSuchRound(7))
            })
            .await;
        assert!(
            matches!(failed, Err(AuditError::Store(StoreError::NoSuchRound(7)))),
            "{failed:?}"
        );
        assert_eq!(log.entry_count().await, 13);
        // The write succeeds: the entry is stored, and the log moves on.
        log.commit_audited(&store, vec![event(60)], async |batch| {
            store.append_audit(batch).await
        })
        .await
        .unwrap();
        assert_eq!(log.entry_count().await, 14);
        let verified = verify(&store, &log.identity()).await.unwrap();
        assert_eq!(verified.entries.len(), 14);
        assert!(matches!(
            verified.entries[13].event,
            AuditEvent::RoundFailed { round: 60, .. }
        ));
    }

    #[tokio::test]
    async fn a_batch_stored_by_a_cancelled_caller_is_counted_by_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let (store, log) = thirteen(dir.path()).await;
        // The caller went away after the store's transaction, before `stored`.
        let cancelled = log
            .prepare(&store, vec![event(50), event(51)])
            .await
            .unwrap();
        store.append_audit(cancelled.batch()).await.unwrap();
        drop(cancelled);
        let head = log.append(&store, vec![event(60)]).await.unwrap();
        assert_eq!(head.tree_size, 16);
        let verified = verify(&store, &log.identity()).await.unwrap();
        assert_eq!(verified.entries.len(), 16);
        assert_eq!(verified.head.unwrap().root_hash, head.root_hash);
    }

    #[tokio::test]
    async fn a_tampered_log_with_an_unusable_frontier_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let (store, log) = thirteen(dir.path()).await;
        drop(log);
        store.as_sled().unwrap().set_audit_frontier(None).unwrap();
        let (entries, _) = store.as_sled().unwrap().audit_trees();
        let mut changed = entries.get(6u64.to_be_bytes()).unwrap().unwrap().to_vec();
        changed[10] ^= 1;
        entries.insert(6u64.to_be_bytes(), changed).unwrap();
        match AuditLog::open(&store, &dir.path().join("audit.key"), FEDERATION).await {
            Err(AuditError::Tampered(violation)) => {
                assert!(violation.to_string().contains("entry "), "{violation}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_log_checked_as_another_federations_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (store, log) = thirteen(dir.path()).await;
        let key = log.public_key();
        drop(log);
        // The same key, the same entries: only the federation differs.
        let other = LogIdentity::new("another-federation", &key);
        match verify(&store, &other).await {
            Err(AuditError::Tampered(AuditViolation::BadHead {
                tree_size: 1,
                reason,
            })) => {
                assert!(reason.contains("another federation"), "{reason}")
            }
            other => panic!("a log was accepted as another federation's: {other:?}"),
        }
        assert!(matches!(
            AuditLog::open(&store, &dir.path().join("audit.key"), "another-federation").await,
            Err(AuditError::Tampered(AuditViolation::BadHead { .. }))
        ));
        AuditLog::open(&store, &dir.path().join("audit.key"), FEDERATION)
            .await
            .unwrap();
    }
}
