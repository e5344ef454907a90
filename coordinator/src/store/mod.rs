//! The coordinator's durable state, in typed trees over sled.
//!
//! Trees: `meta` (federation definition, feature scaling, head), `nodes`
//! (registry), `rounds` (completed rounds by number), `failed_rounds` (failed
//! attempts by round and attempt), `models` (parameters by content address).
//!
//! [`Store::commit_round`] writes a round's model, its record and the new head in
//! one sled transaction, then flushes: a crash before it leaves the previous round
//! whole, after it the new round whole. A round in flight is never half-counted.
//! sled stays behind this type so another store could stand in later.
//!
//! The store depends on nothing above it: what it keeps are plain
//! [`records`] (the audit log's batches included), built by the modules that
//! use it.

pub mod postgres;
pub mod records;

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use cohort_privacy::PrivacyLedger;

use crate::strategy::StrategyState;
use cohort_proto::scaling::FeatureScaling;
use records::{
    AuditBatch, EvaluationSummary, FederationHead, NodeRecord, Remediation, RoundOutcome,
    RoundRecord,
};

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled could not open the folder.
    #[error("state store at {path}: {source}")]
    Open {
        /// The store's folder.
        path: PathBuf,
        /// sled's reason.
        source: sled::Error,
    },
    /// Another handle (a coordinator process, or `audit verify`) has the
    /// folder open: sled allows one at a time.
    #[error(
        "state store at {path} is in use by another process (a running coordinator?); stop it first"
    )]
    Locked {
        /// The store's folder.
        path: PathBuf,
    },
    /// A read or write failed.
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record does not decode.
    #[error("state store record `{key}` is corrupt: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The folder belongs to another federation.
    #[error("state store holds federation {stored:?}, not {configured:?}")]
    OtherFederation {
        /// The federation the store was created for.
        stored: String,
        /// The one configured now.
        configured: String,
    },
    /// The configured model is not the one the store's rounds trained.
    #[error("the state store's model ({stored}) differs from the configured one ({configured})")]
    ModelChanged {
        /// The stored model's description.
        stored: String,
        /// The configured model's description.
        configured: String,
    },
    /// A record could not be encoded.
    #[error("state store record `{key}` cannot be encoded: {reason}")]
    Unencodable {
        /// The record's key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The PostgreSQL store's settings do not describe a usable connection.
    #[error("PostgreSQL store settings: {reason}")]
    PostgresConfig {
        /// Why (never the URL: it may carry a password).
        reason: String,
    },
    /// The CA certificate for the database's TLS could not be read.
    #[error("PostgreSQL store CA certificate: {0}")]
    DatabaseAuthority(#[from] cohort_crypto::tls::TlsError),
    /// No connection to the database could be had.
    #[error("PostgreSQL store connection: {0}")]
    PostgresPool(String),
    /// A statement or transaction on the database failed.
    #[error("PostgreSQL store: {}", postgres_reason(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// Federated evaluation arrived for a round that was never committed.
    #[error("round {0} has no record to update")]
    NoSuchRound(u64),
}

/// A PostgreSQL error with the server's message when there is one
/// (tokio-postgres' own display says only "db error").
fn postgres_reason(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

/// Checks that the definition a store holds is the configured one.
fn same_definition(
    stored: FederationDefinition,
    configured: &FederationDefinition,
) -> Result<(), StoreError> {
    if stored.federation_id != configured.federation_id {
        return Err(StoreError::OtherFederation {
            stored: stored.federation_id,
            configured: configured.federation_id.clone(),
        });
    }
    if stored.model_fingerprint != configured.model_fingerprint {
        return Err(StoreError::ModelChanged {
            stored: stored.model_description,
            configured: configured.model_description.clone(),
        });
    }
    Ok(())
}

/// The federation definition that must stay fixed across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FederationDefinition {
    /// The federation's id.
    pub federation_id: String,
    /// Hex fingerprint of the model layout.
    pub model_fingerprint: String,
    /// The model spec in words, for the error when it changed.
    pub model_description: String,
}

/// The coordinator's durable state: typed trees over one sled database.
/// Cheap to clone (every clone is a handle to the same database); the folder
/// stays locked until the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    nodes: sled::Tree,
    rounds: sled::Tree,
    failed_rounds: sled::Tree,
    models: sled::Tree,
    audit_entries: sled::Tree,
    audit_heads: sled::Tree,
    /// Model versions that learned from erased data, with the request.
    tainted_models: sled::Tree,
}

const DEFINITION: &str = "definition";
const SCALING: &str = "feature_scaling";
const HEAD: &str = "head";
const CONFIG: &str = "config";
const PRIVACY_LEDGER: &str = "privacy_ledger";
const STRATEGY_STATE: &str = "strategy_state";
/// The audit tree's right edge after the last append (see [`AuditBatch`]).
const AUDIT_FRONTIER: &str = "audit_frontier";
const REMEDIATIONS: &str = "remediations";

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

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Unencodable {
        key: key.to_owned(),
        reason: e.to_string(),
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

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

impl Store {
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

    /// The key of the strategy state committed with round `round`: kept for
    /// every round, so a rollback to round r resumes the state of round r.
    fn strategy_state_of(round: u64) -> String {
        format!("{STRATEGY_STATE}/{round:020}")
    }

    /// Writes a completed round atomically: model, record, head, the round's
    /// audit entries, (under differential privacy) the ledger that includes
    /// this round's spend, and the strategy's state after this round (removed
    /// when the strategy keeps none, so a stale state of an earlier strategy is
    /// never resumed). The spend and the audit trail are durable before anyone
    /// can fetch the model, and the strategy state always belongs to the head's
    /// model: a round that crashed before this commit is rerun from the
    /// previous round's state.
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
                let of_round = Self::strategy_state_of(record.round);
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

    /// One step of an erasure request, atomically with its audit entries:
    /// `tainted` model versions (with the request id), the remediations list
    /// as it now stands, and (on a rollback) the new head. A rolled-back head
    /// gets back the strategy state committed with its round (none at the
    /// initial model), not the abandoned head's, and a
    /// head back at the initial model drops the feature scaling too, so it is
    /// agreed again on the nodes' current data.
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
                .get(Self::strategy_state_of(h.completed_rounds).as_bytes())?,
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

    fn number(key: &[u8], name: &str) -> Result<u64, StoreError> {
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
        self.rounds
            .iter()
            .map(|item| {
                let (key, value) = item?;
                decode(&format!("rounds/{key:?}"), &value)
            })
            .collect()
    }

    /// Failed attempts in order.
    pub fn failed_rounds(&self) -> Result<Vec<RoundRecord>, StoreError> {
        self.failed_rounds
            .iter()
            .map(|item| {
                let (key, value) = item?;
                decode(&format!("failed_rounds/{key:?}"), &value)
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::strategy::StrategyState;

    /// A completed round's record, for the store tests of both backends.
    pub(crate) fn record(round: u64) -> RoundRecord {
        RoundRecord {
            schema: records::SCHEMA_VERSION,
            round,
            attempt: 1,
            strategy: "fedadam".into(),
            model_in: format!("model-{}", round - 1),
            sampled: vec!["a".into()],
            started_ms: 0,
            finished_ms: 0,
            outcome: RoundOutcome::Completed {
                model_out: format!("model-{round}"),
                contributions: vec![],
                evaluation: None,
            },
            epsilon_spent: None,
            epsilon_against_coordinator: None,
        }
    }

    /// No audit entries: these tests are about what the store keeps beside them.
    fn no_audit() -> AuditBatch {
        AuditBatch {
            entries: Vec::new(),
            heads: Vec::new(),
            frontier: Vec::new(),
        }
    }

    async fn commit(store: &Store, round: u64, state: Option<&StrategyState>) {
        store
            .commit_round(
                &record(round),
                &format!("model-{round}"),
                &[0, 0, 128, 63],
                None,
                state,
                &no_audit(),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn strategy_state_moves_with_the_round_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        assert_eq!(store.strategy_state().unwrap(), None);

        let state = StrategyState {
            strategy: "fedadam".into(),
            buffers: [("m".to_owned(), vec![0.5]), ("v".to_owned(), vec![0.25])].into(),
        };
        commit(&store, 1, Some(&state)).await;
        assert_eq!(store.head().unwrap().unwrap().completed_rounds, 1);
        assert_eq!(store.strategy_state().unwrap(), Some(state));

        // A stateless strategy's commit clears it: it belongs to no later head.
        commit(&store, 2, None).await;
        assert_eq!(store.head().unwrap().unwrap().completed_rounds, 2);
        assert_eq!(store.strategy_state().unwrap(), None);
    }

    #[tokio::test]
    async fn a_rollback_restores_the_strategy_state_of_its_round() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        let state = |m: f32| StrategyState {
            strategy: "fedadam".into(),
            buffers: [("m".to_owned(), vec![m])].into(),
        };
        for round in 1..=3 {
            commit(&store, round, Some(&state(round as f32))).await;
        }
        assert_eq!(store.strategy_state().unwrap(), Some(state(3.0)));
        let rollback = |round: u64| FederationHead {
            schema: records::SCHEMA_VERSION,
            completed_rounds: round,
            model_version: format!("model-{round}"),
        };
        for (round, expected) in [(1, Some(state(1.0))), (0, None)] {
            store
                .commit_erasure_step(&[], &[], Some(&rollback(round)), &no_audit())
                .await
                .unwrap();
            assert_eq!(
                store.strategy_state().unwrap(),
                expected,
                "back to round {round}"
            );
        }
    }

    #[tokio::test]
    async fn a_folder_in_use_is_refused_at_once_and_free_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let store = Store::open(&path).unwrap();
        assert!(
            matches!(Store::open(&path), Err(StoreError::Locked { .. })),
            "a second handle on an open folder is refused, typed"
        );
        drop(store);
        assert!(Store::released(&path, Duration::from_secs(60)).await);
        Store::open(&path).unwrap();
    }
}
