//! The embedded backend: the coordinator's state in typed trees over sled,
//! in the state folder (the default; see the parent module).
//!
//! Trees: `meta` (federation definition, feature scaling, head), `nodes`
//! (registry), `rounds` (completed rounds by number), `failed_rounds` (failed
//! attempts by round and attempt), `models` (parameters by content address).
//!
//! [`SledStore::commit_round`] writes a round's model, its record and the new
//! head in one sled transaction, then flushes: a crash before it leaves the
//! previous round whole, after it the new round whole. A round in flight is
//! never half-counted.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use cohort_privacy::PrivacyLedger;
use cohort_proto::scaling::FeatureScaling;

use super::records::{
    AuditBatch, EvaluationSummary, FederationHead, NodeRecord, Remediation, RoundOutcome,
    RoundRecord,
};
use super::{
    AUDIT_FRONTIER, CONFIG, DEFINITION, FederationDefinition, HEAD, PRIVACY_LEDGER, REMEDIATIONS,
    SCALING, STRATEGY_STATE, StoreError, decode, encode, same_definition, strategy_state_of,
};
use crate::strategy::StrategyState;

/// The coordinator's durable state in typed trees over one sled database.
/// Cheap to clone (every clone is a handle to the same database); the folder
/// stays locked until the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SledStore {
    pub(super) db: sled::Db,
    pub(super) meta: sled::Tree,
    pub(super) nodes: sled::Tree,
    pub(super) rounds: sled::Tree,
    pub(super) failed_rounds: sled::Tree,
    pub(super) models: sled::Tree,
    pub(super) audit_entries: sled::Tree,
    pub(super) audit_heads: sled::Tree,
    /// Model versions that learned from erased data, with the request.
    pub(super) tainted_models: sled::Tree,
}

/// Writes an audit batch inside a transaction over (entries, heads, meta).
fn write_audit_batch(
    entries: &sled::transaction::TransactionalTree,
    heads: &sled::transaction::TransactionalTree,
    meta: &sled::transaction::TransactionalTree,
    batch: &AuditBatch,
) -> Result<(), ConflictableTransactionError<()>> {
    for (seq, bytes) in &batch.entries {
        entries.insert(&seq.to_be_bytes(), bytes.as_slice())?;
    }
    for head in &batch.heads {
        heads.insert(&head.tree_size.to_be_bytes(), &head.to_bytes()[..])?;
    }
    meta.insert(AUDIT_FRONTIER, batch.frontier.as_slice())?;
    Ok(())
}

/// The file sled locks (an exclusive `flock`) while a database is open.
fn lock_file(path: &Path) -> Result<Option<File>, StoreError> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .open(path.join("db"))
    {
        Ok(file) => Ok(Some(file)),
        // No database yet: nobody holds it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Open {
            path: path.to_owned(),
            source: e.into(),
        }),
    }
}

fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
    // The same advisory lock sled takes, tried first so that a folder in use
    // is reported as such (sled's own refusal is an untyped I/O error).
    if let Some(file) = lock_file(path)?
        && let Err(TryLockError::WouldBlock) = file.try_lock()
    {
        return Err(StoreError::Locked {
            path: path.to_owned(),
        });
    }
    sled::Config::new()
        .path(path)
        .open()
        .map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })
}

/// A transaction's outcome as a store result. Our transactions never abort on
/// their own, so an abort is reported against `key` as corruption.
fn settled(
    result: Result<(), TransactionError<()>>,
    key: impl FnOnce() -> String,
) -> Result<(), StoreError> {
    match result {
        Ok(()) => Ok(()),
        Err(TransactionError::Storage(e)) => Err(e.into()),
        Err(TransactionError::Abort(())) => Err(StoreError::Corrupt {
            key: key(),
            reason: "transaction aborted".into(),
        }),
    }
}

impl SledStore {
    /// Opens (or creates) the store in the folder `path`, at once: a folder
    /// another handle holds is refused ([`StoreError::Locked`]), not waited for.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = open_db(path)?;
        Ok(Self {
            meta: db.open_tree("meta")?,
            nodes: db.open_tree("nodes")?,
            rounds: db.open_tree("rounds")?,
            failed_rounds: db.open_tree("failed_rounds")?,
            models: db.open_tree("models")?,
            audit_entries: db.open_tree("audit_entries")?,
            audit_heads: db.open_tree("audit_heads")?,
            tainted_models: db.open_tree("tainted_models")?,
            db,
        })
    }

    /// Waits until no handle holds the store in the folder `path` (the last
    /// clone of a store dropped, and sled done with the folder's files), at
    /// most `patience`; true once it is free. The wait is the kernel's, on the
    /// lock sled holds: nothing polls. A store opened after this returned
    /// true is not refused as [`StoreError::Locked`] by a handle dropped before.
    ///
    /// sled only: a sled folder admits one process at a time, so a restarted
    /// coordinator must wait for the old one's handle to go. A PostgreSQL
    /// database takes any number of connections; there is nothing to wait for.
    pub async fn released(path: &Path, patience: Duration) -> bool {
        let path = path.to_owned();
        let free = tokio::task::spawn_blocking(move || match lock_file(&path) {
            // Held for the moment of the test: dropping the file releases it.
            Ok(Some(file)) => file.lock().is_ok(),
            Ok(None) => true,
            Err(_) => false,
        });
        matches!(tokio::time::timeout(patience, free).await, Ok(Ok(true)))
    }

    fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &str) -> Result<Option<T>, StoreError> {
        tree.get(key)?.map(|bytes| decode(key, &bytes)).transpose()
    }

    /// The federation definition recorded on first start, if any.
    pub fn definition(&self) -> Result<Option<FederationDefinition>, StoreError> {
        Self::get(&self.meta, DEFINITION)
    }

    /// Records the definition on first start; on later starts, checks it is the same.
    pub fn check_definition(&self, definition: &FederationDefinition) -> Result<(), StoreError> {
        match Self::get::<FederationDefinition>(&self.meta, DEFINITION)? {
            None => {
                self.meta
                    .insert(DEFINITION, encode(DEFINITION, definition)?)?;
                self.db.flush()?;
                Ok(())
            }
            Some(stored) => same_definition(stored, definition),
        }
    }

    /// Keeps the configuration this start runs with (the latest one wins; the
    /// definition above is what may not change).
    pub fn put_config(&self, config: &crate::config::FederationConfig) -> Result<(), StoreError> {
        self.meta.insert(CONFIG, encode(CONFIG, config)?)?;
        Ok(())
    }

    /// The configuration of the latest start, if one was kept.
    pub fn config(&self) -> Result<Option<crate::config::FederationConfig>, StoreError> {
        Self::get(&self.meta, CONFIG)
    }

    /// Where the federation stands (none before the first start).
    pub fn head(&self) -> Result<Option<FederationHead>, StoreError> {
        Self::get(&self.meta, HEAD)
    }

    /// Stores the initial model and makes it the head, unless a head exists.
    pub fn init_head(
        &self,
        model_version: &str,
        encoded: &[u8],
    ) -> Result<FederationHead, StoreError> {
        if let Some(head) = self.head()? {
            return Ok(head);
        }
        let head = FederationHead::at(0, model_version);
        self.models.insert(model_version, encoded)?;
        self.meta.insert(HEAD, encode(HEAD, &head)?)?;
        self.db.flush()?;
        Ok(head)
    }

    /// The feature scaling agreed in round 0, if it has been.
    pub fn feature_scaling(&self) -> Result<Option<FeatureScaling>, StoreError> {
        Self::get(&self.meta, SCALING)
    }

    /// Keeps the agreed feature scaling, durably.
    pub async fn set_feature_scaling(&self, scaling: &FeatureScaling) -> Result<(), StoreError> {
        self.meta.insert(SCALING, encode(SCALING, scaling)?)?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// Encoded parameters of a model version.
    pub fn model(&self, version: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.models.get(version)?.map(|bytes| bytes.to_vec()))
    }

    /// The registry's record of `node_id`, if it ever registered.
    pub fn node(&self, node_id: &str) -> Result<Option<NodeRecord>, StoreError> {
        Self::get(&self.nodes, node_id)
    }

    /// The records of those of `node_ids` that ever registered.
    pub fn node_records(
        &self,
        node_ids: &[String],
    ) -> Result<BTreeMap<String, NodeRecord>, StoreError> {
        let mut records = BTreeMap::new();
        for node_id in node_ids {
            if let Some(record) = self.node(node_id)? {
                records.insert(node_id.clone(), record);
            }
        }
        Ok(records)
    }

    /// Writes a node's record (not flushed: registration flushes with its
    /// audit entry).
    pub fn put_node(&self, record: &NodeRecord) -> Result<(), StoreError> {
        self.nodes
            .insert(record.node_id.as_str(), encode(&record.node_id, record)?)?;
        Ok(())
    }

    /// The DP events spent so far, if the federation runs under a budget.
    pub fn privacy_ledger(&self) -> Result<Option<PrivacyLedger>, StoreError> {
        Self::get(&self.meta, PRIVACY_LEDGER)
    }

    /// Writes the privacy ledger alone, durably (flushed): the charge of a
    /// release that happens before its round commits, so that it survives the
    /// round failing or the coordinator crashing (see
    /// `rounds::spending::ReleaseCharge`).
    pub async fn charge_privacy(&self, ledger: &PrivacyLedger) -> Result<(), StoreError> {
        self.meta
            .insert(PRIVACY_LEDGER, encode(PRIVACY_LEDGER, ledger)?)?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// A stateful strategy's state as of the head's round (see
    /// [`crate::strategy::StrategyState`]).
    pub fn strategy_state(&self) -> Result<Option<StrategyState>, StoreError> {
        Self::get(&self.meta, STRATEGY_STATE)
    }

    /// Writes a completed round in one sled transaction, then flushes (see
    /// [`super::Store::commit_round`]).
    pub async fn commit_round(
        &self,
        record: &RoundRecord,
        model_version: &str,
        encoded_model: &[u8],
        ledger: Option<&PrivacyLedger>,
        strategy_state: Option<&StrategyState>,
        audit: &AuditBatch,
    ) -> Result<FederationHead, StoreError> {
        let head = FederationHead::at(record.round, model_version);
        let record_bytes = encode(&format!("rounds/{}", record.round), record)?;
        let head_bytes = encode(HEAD, &head)?;
        let ledger_bytes = ledger.map(|l| encode(PRIVACY_LEDGER, l)).transpose()?;
        let strategy_bytes = strategy_state
            .map(|state| encode(STRATEGY_STATE, state))
            .transpose()?;
        let trees = (
            &self.models,
            &self.rounds,
            &self.meta,
            &self.audit_entries,
            &self.audit_heads,
        );
        let result: Result<(), TransactionError<()>> =
            trees.transaction(|(models, rounds, meta, audit_entries, audit_heads)| {
                models.insert(model_version.as_bytes(), encoded_model)?;
                rounds.insert(&record.round.to_be_bytes(), record_bytes.as_slice())?;
                meta.insert(HEAD, head_bytes.as_slice())?;
                if let Some(ledger) = &ledger_bytes {
                    meta.insert(PRIVACY_LEDGER, ledger.as_slice())?;
                }
                let of_round = strategy_state_of(record.round);
                match &strategy_bytes {
                    Some(state) => {
                        meta.insert(STRATEGY_STATE, state.as_slice())?;
                        meta.insert(of_round.as_bytes(), state.as_slice())?
                    }
                    None => {
                        meta.remove(of_round.as_bytes())?;
                        meta.remove(STRATEGY_STATE)?
                    }
                };
                write_audit_batch(audit_entries, audit_heads, meta, audit)
            });
        settled(result, || format!("rounds/{}", record.round))?;
        self.db.flush_async().await?;
        Ok(head)
    }

    /// Keeps a failed attempt (the head does not move).
    pub async fn record_failed_round(&self, record: &RoundRecord) -> Result<(), StoreError> {
        let mut key = record.round.to_be_bytes().to_vec();
        key.extend_from_slice(&record.attempt.to_be_bytes());
        self.failed_rounds.insert(
            key,
            encode(&format!("failed_rounds/{}", record.round), record)?,
        )?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// Adds federated-evaluation metrics to a completed round.
    pub async fn set_round_evaluation(
        &self,
        round: u64,
        evaluation: EvaluationSummary,
    ) -> Result<RoundRecord, StoreError> {
        let key = round.to_be_bytes();
        let mut record: RoundRecord = match self.rounds.get(key)? {
            Some(bytes) => decode(&format!("rounds/{round}"), &bytes)?,
            None => return Err(StoreError::NoSuchRound(round)),
        };
        if let RoundOutcome::Completed {
            evaluation: slot, ..
        } = &mut record.outcome
        {
            *slot = Some(evaluation);
        }
        self.rounds
            .insert(key, encode(&format!("rounds/{round}"), &record)?)?;
        self.db.flush_async().await?;
        Ok(record)
    }

    /// Appends audit entries (by sequence number), the signed tree head over
    /// them (by tree size) and the tree's new frontier in one transaction,
    /// then flushes.
    pub async fn append_audit(&self, batch: &AuditBatch) -> Result<(), StoreError> {
        let result: Result<(), TransactionError<()>> =
            (&self.audit_entries, &self.audit_heads, &self.meta)
                .transaction(|(log, heads, meta)| write_audit_batch(log, heads, meta, batch));
        settled(result, || {
            let size = batch.heads.last().map_or(0, |head| head.tree_size);
            format!("audit_heads/{size}")
        })?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// Every model version an erasure request tainted, in version order.
    pub fn tainted_models(&self) -> Result<Vec<String>, StoreError> {
        self.tainted_models
            .iter()
            .keys()
            .map(|key| Ok(String::from_utf8_lossy(&key?).into_owned()))
            .collect()
    }

    /// Whether an erasure request tainted `model_version`.
    pub fn is_tainted(&self, model_version: &str) -> Result<bool, StoreError> {
        Ok(self.tainted_models.contains_key(model_version)?)
    }

    /// Erasure remediations not yet finished.
    pub fn remediations(&self) -> Result<Vec<Remediation>, StoreError> {
        Ok(Self::get(&self.meta, REMEDIATIONS)?.unwrap_or_default())
    }

    /// One step of an erasure request in one sled transaction, then flushes
    /// (see [`super::Store::commit_erasure_step`]).
    pub async fn commit_erasure_step(
        &self,
        tainted: &[(String, String)],
        remediations: &[Remediation],
        head: Option<&FederationHead>,
        audit: &AuditBatch,
    ) -> Result<(), StoreError> {
        let remediation_bytes = encode(REMEDIATIONS, &remediations)?;
        let head_bytes = head.map(|h| encode(HEAD, h)).transpose()?;
        let back_to_initial = head.is_some_and(|h| h.completed_rounds == 0);
        // The strategy resumes the state it had at the round rolled back to.
        let rolled_back_state = match head {
            Some(h) if h.completed_rounds > 0 => self
                .meta
                .get(strategy_state_of(h.completed_rounds).as_bytes())?,
            _ => None,
        };
        let trees = (
            &self.tainted_models,
            &self.meta,
            &self.audit_entries,
            &self.audit_heads,
        );
        let result: Result<(), TransactionError<()>> =
            trees.transaction(|(tainted_models, meta, audit_entries, audit_heads)| {
                for (model, request) in tainted {
                    tainted_models.insert(model.as_bytes(), request.as_bytes())?;
                }
                meta.insert(REMEDIATIONS, remediation_bytes.as_slice())?;
                if let Some(head) = &head_bytes {
                    meta.insert(HEAD, head.as_slice())?;
                    match &rolled_back_state {
                        Some(state) => meta.insert(STRATEGY_STATE, state.as_ref())?,
                        None => meta.remove(STRATEGY_STATE)?,
                    };
                    if back_to_initial {
                        meta.remove(SCALING)?;
                    }
                }
                write_audit_batch(audit_entries, audit_heads, meta, audit)
            });
        settled(result, || REMEDIATIONS.to_owned())?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// The audit tree's frontier as of the last append, as stored.
    pub fn audit_frontier(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(AUDIT_FRONTIER)?.map(|bytes| bytes.to_vec()))
    }

    /// How many audit entries are stored (one past the last sequence number),
    /// without reading them.
    pub fn audit_len(&self) -> Result<u64, StoreError> {
        match self.audit_entries.last()? {
            None => Ok(0),
            Some((key, _)) => Ok(Self::number(&key, "audit_entries")? + 1),
        }
    }

    /// The signed tree head with the largest tree size, as stored.
    pub fn latest_audit_head(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.audit_heads
            .last()?
            .map(|(key, value)| Ok((Self::number(&key, "audit_heads")?, value.to_vec())))
            .transpose()
    }

    pub(super) fn number(key: &[u8], name: &str) -> Result<u64, StoreError> {
        let number: [u8; 8] = key.try_into().map_err(|_| StoreError::Corrupt {
            key: format!("{name}/{key:?}"),
            reason: "key is not a 64-bit number".into(),
        })?;
        Ok(u64::from_be_bytes(number))
    }

    /// Audit entries in order, as stored.
    pub fn audit_entries(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Self::numbered(&self.audit_entries, "audit_entries")
    }

    /// Audit entries with sequence numbers in `range`, in order, as stored:
    /// read without touching the entries outside it.
    pub fn audit_entries_in(
        &self,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Self::numbered_in(&self.audit_entries, "audit_entries", range, usize::MAX)
    }

    /// Signed tree heads by tree size, as stored.
    pub fn audit_heads(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Self::numbered(&self.audit_heads, "audit_heads")
    }

    /// At most `limit` signed tree heads with tree sizes in `range`, smallest first.
    pub fn audit_heads_in(
        &self,
        range: std::ops::Range<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Self::numbered_in(&self.audit_heads, "audit_heads", range, limit)
    }

    fn numbered(tree: &sled::Tree, name: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Self::numbered_in(tree, name, 0..u64::MAX, usize::MAX)
    }

    fn numbered_in(
        tree: &sled::Tree,
        name: &str,
        range: std::ops::Range<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        // Big-endian keys sort as numbers, so a key range is a number range.
        tree.range(range.start.to_be_bytes()..range.end.to_be_bytes())
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                Ok((Self::number(&key, name)?, value.to_vec()))
            })
            .collect()
    }

    /// Raw access for tamper tests: what an attacker with the disk could do.
    #[cfg(test)]
    pub(crate) fn audit_trees(&self) -> (&sled::Tree, &sled::Tree) {
        (&self.audit_entries, &self.audit_heads)
    }

    /// Raw access for tests: overwrite (or with `None` remove) the stored frontier.
    #[cfg(test)]
    pub(crate) fn set_audit_frontier(&self, bytes: Option<&[u8]>) -> Result<(), StoreError> {
        match bytes {
            Some(bytes) => self.meta.insert(AUDIT_FRONTIER, bytes)?,
            None => self.meta.remove(AUDIT_FRONTIER)?,
        };
        Ok(())
    }

    /// Completed rounds in order.
    pub fn rounds(&self) -> Result<Vec<RoundRecord>, StoreError> {
        Self::records(&self.rounds, "rounds")
    }

    /// Failed attempts in order.
    pub fn failed_rounds(&self) -> Result<Vec<RoundRecord>, StoreError> {
        Self::records(&self.failed_rounds, "failed_rounds")
    }

    fn records(tree: &sled::Tree, name: &str) -> Result<Vec<RoundRecord>, StoreError> {
        tree.iter()
            .map(|item| {
                let (key, value) = item?;
                decode(&format!("{name}/{key:?}"), &value)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sled only: one handle on a folder at a time (see [`SledStore::released`]).
    #[tokio::test]
    async fn a_folder_in_use_is_refused_at_once_and_free_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let store = SledStore::open(&path).unwrap();
        assert!(
            matches!(SledStore::open(&path), Err(StoreError::Locked { .. })),
            "a second handle on an open folder is refused, typed"
        );
        drop(store);
        assert!(SledStore::released(&path, Duration::from_secs(60)).await);
        SledStore::open(&path).unwrap();
    }
}
