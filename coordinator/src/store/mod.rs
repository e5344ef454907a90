//! The coordinator's durable state, on one of two backends behind one type,
//! [`Store`]: an embedded sled folder ([`SledStore`], the default: the state
//! folder of the quickstart and the simulations) or a PostgreSQL database
//! ([`PgStore`], `[server] store = { postgres = "…" }`, issue #20).
//!
//! Both keep the same records in the same encodings (serde JSON) and make the
//! same promises: [`Store::commit_round`] writes a round's model, record, head,
//! privacy ledger, strategy state and audit entries together or not at all (a
//! crash before it leaves the previous round whole, after it the new round
//! whole; a round in flight is never half-counted); an erasure step likewise;
//! an audit batch (the log's group commit) is one write; models are
//! content-addressed. The same tests run on both (`tests.rs`).
//!
//! The methods are async. On sled, reads stay the synchronous, in-memory-cached
//! calls they always were (called inline, as before the split) and commits
//! await sled's flush; on PostgreSQL every call is a query on a pooled
//! connection, except the taint checks, answered from a copy of the taint
//! table kept in memory (`postgres/taints.rs`).
//!
//! The store depends on nothing above it: what it keeps are plain
//! [`records`] (the audit log's batches included), built by the modules that
//! use it.

pub mod postgres;
pub mod records;
mod sled;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use cohort_privacy::PrivacyLedger;
use cohort_proto::scaling::FeatureScaling;

pub use self::sled::SledStore;
use crate::strategy::StrategyState;
pub use postgres::{PgStore, PostgresSettings};
use records::{
    AuditBatch, EvaluationSummary, FederationHead, NodeRecord, Remediation, RoundRecord,
};

const DEFINITION: &str = "definition";
const SCALING: &str = "feature_scaling";
const HEAD: &str = "head";
pub(crate) const CONFIG: &str = "config";
const PRIVACY_LEDGER: &str = "privacy_ledger";
const STRATEGY_STATE: &str = "strategy_state";
/// The audit tree's right edge after the last append (see [`AuditBatch`]).
const AUDIT_FRONTIER: &str = "audit_frontier";
const REMEDIATIONS: &str = "remediations";

/// The key of the strategy state committed with round `round`: kept for
/// every round, so a rollback to round r resumes the state of round r.
fn strategy_state_of(round: u64) -> String {
    format!("{STRATEGY_STATE}/{round:020}")
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Unencodable {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// `value` as the store reads it back once written under `key`: JSON's
/// floating-point numbers may come back one unit in the last place off, so a
/// value read from the store compares equal only to one that went this way.
pub(crate) fn as_stored<T: Serialize + DeserializeOwned>(
    key: &str,
    value: &T,
) -> Result<T, StoreError> {
    decode(key, &encode(key, value)?)
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled could not open the folder.
    #[error("state store at {path}: {source}")]
    Open {
        /// The store's folder.
        path: PathBuf,
        /// sled's reason.
        source: ::sled::Error,
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
    Sled(#[from] ::sled::Error),
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
    /// This coordinator's lease on the database was taken over by another
    /// (it was paused or cut off past the lease's expiry): it is no longer
    /// the active coordinator, and the write was not made.
    #[error(
        "fenced off: another coordinator took the lease over (token {current}, this one held \
         {token}); this coordinator is no longer active and wrote nothing"
    )]
    Fenced {
        /// The token this coordinator's writes carry.
        token: u64,
        /// The lease's token now.
        current: u64,
    },
    /// A copy into a database that already holds state (see
    /// [`PgStore::copy_from_sled`]).
    #[error(
        "the target database is not empty ({rows} records of a federation already): \
         migrate into a new, empty database"
    )]
    NotEmpty {
        /// Records found in the target's tables.
        rows: i64,
    },
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

/// Where a federation's state is kept.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    /// An embedded sled database in this folder (`[server] state_dir`).
    Folder(PathBuf),
    /// A PostgreSQL database (`[server] store = { postgres = "…" }`).
    Postgres(PostgresSettings),
}

impl std::fmt::Display for StoreLocation {
    /// The location for logs and errors: a database URL with its password
    /// replaced by `***`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Folder(path) => write!(f, "state folder {}", path.display()),
            Self::Postgres(settings) => write!(f, "PostgreSQL {}", settings.redacted()),
        }
    }
}

/// The coordinator's durable state on either backend (see the module docs).
/// Cheap to clone: every clone is a handle to the same database.
#[derive(Debug, Clone)]
pub enum Store {
    /// In an embedded sled folder.
    Sled(SledStore),
    /// In a PostgreSQL database.
    Postgres(PgStore),
}

/// Calls `method` on the backend: `read` for one that is synchronous on sled
/// (a read from sled's cache, or an unflushed write), `commit` for one that
/// is async on both (it awaits sled's flush).
macro_rules! on_backend {
    (read $store:ident.$method:ident($($arg:expr),*)) => {
        match $store {
            Store::Sled(sled) => sled.$method($($arg),*),
            Store::Postgres(postgres) => postgres.$method($($arg),*).await,
        }
    };
    (commit $store:ident.$method:ident($($arg:expr),*)) => {
        match $store {
            Store::Sled(sled) => sled.$method($($arg),*).await,
            Store::Postgres(postgres) => postgres.$method($($arg),*).await,
        }
    };
}

impl From<SledStore> for Store {
    fn from(store: SledStore) -> Self {
        Self::Sled(store)
    }
}

impl From<PgStore> for Store {
    fn from(store: PgStore) -> Self {
        Self::Postgres(store)
    }
}

impl Store {
    /// Opens (or creates) the store at `location`: a sled folder another
    /// handle holds is refused ([`StoreError::Locked`]); a database gets the
    /// migrations it lacks.
    pub async fn open(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::Folder(path) => Ok(Self::Sled(SledStore::open(path)?)),
            StoreLocation::Postgres(settings) => Ok(Self::Postgres(PgStore::open(settings).await?)),
        }
    }

    /// The sled backend, if this store is one (for sled-only operations).
    pub fn as_sled(&self) -> Option<&SledStore> {
        match self {
            Self::Sled(sled) => Some(sled),
            Self::Postgres(_) => None,
        }
    }

    /// The federation definition recorded on first start, if any.
    pub async fn definition(&self) -> Result<Option<FederationDefinition>, StoreError> {
        on_backend!(read self.definition())
    }

    /// Records the definition on first start; on later starts, checks it is the same.
    pub async fn check_definition(
        &self,
        definition: &FederationDefinition,
    ) -> Result<(), StoreError> {
        on_backend!(read self.check_definition(definition))
    }

    /// Keeps the configuration this start runs with (the latest one wins; the
    /// definition above is what may not change).
    pub async fn put_config(
        &self,
        config: &crate::config::FederationConfig,
    ) -> Result<(), StoreError> {
        on_backend!(read self.put_config(config))
    }

    /// The configuration of the latest start, if one was kept.
    pub async fn config(&self) -> Result<Option<crate::config::FederationConfig>, StoreError> {
        on_backend!(read self.config())
    }

    /// Where the federation stands (none before the first start).
    pub async fn head(&self) -> Result<Option<FederationHead>, StoreError> {
        on_backend!(read self.head())
    }

    /// Stores the initial model and makes it the head, unless a head exists.
    pub async fn init_head(
        &self,
        model_version: &str,
        encoded: &[u8],
    ) -> Result<FederationHead, StoreError> {
        on_backend!(read self.init_head(model_version, encoded))
    }

    /// The feature scaling agreed in round 0, if it has been.
    pub async fn feature_scaling(&self) -> Result<Option<FeatureScaling>, StoreError> {
        on_backend!(read self.feature_scaling())
    }

    /// Keeps the agreed feature scaling, durably.
    pub async fn set_feature_scaling(&self, scaling: &FeatureScaling) -> Result<(), StoreError> {
        on_backend!(commit self.set_feature_scaling(scaling))
    }

    /// Encoded parameters of a model version.
    pub async fn model(&self, version: &str) -> Result<Option<Vec<u8>>, StoreError> {
        on_backend!(read self.model(version))
    }

    /// The registry's record of `node_id`, if it ever registered.
    pub async fn node(&self, node_id: &str) -> Result<Option<NodeRecord>, StoreError> {
        on_backend!(read self.node(node_id))
    }

    /// The registry's records of those of `node_ids` that ever registered,
    /// by node id (one query on PostgreSQL, not one per node).
    pub async fn node_records(
        &self,
        node_ids: &[String],
    ) -> Result<BTreeMap<String, NodeRecord>, StoreError> {
        on_backend!(read self.node_records(node_ids))
    }

    /// Writes a node's record (on sled not flushed: registration flushes with
    /// its audit entry).
    pub async fn put_node(&self, record: &NodeRecord) -> Result<(), StoreError> {
        on_backend!(read self.put_node(record))
    }

    /// The DP events spent so far, if the federation runs under a budget.
    pub async fn privacy_ledger(&self) -> Result<Option<PrivacyLedger>, StoreError> {
        on_backend!(read self.privacy_ledger())
    }

    /// Writes the privacy ledger alone, durably: the charge of a release that
    /// happens before its round commits, so that it survives the round
    /// failing or the coordinator crashing (see
    /// `rounds::spending::ReleaseCharge`).
    pub async fn charge_privacy(&self, ledger: &PrivacyLedger) -> Result<(), StoreError> {
        on_backend!(commit self.charge_privacy(ledger))
    }

    /// A stateful strategy's state as of the head's round (see
    /// [`crate::strategy::StrategyState`]).
    pub async fn strategy_state(&self) -> Result<Option<StrategyState>, StoreError> {
        on_backend!(read self.strategy_state())
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
        on_backend!(commit self.commit_round(
            record,
            model_version,
            encoded_model,
            ledger,
            strategy_state,
            audit
        ))
    }

    /// Keeps a failed attempt (the head does not move).
    pub async fn record_failed_round(&self, record: &RoundRecord) -> Result<(), StoreError> {
        on_backend!(commit self.record_failed_round(record))
    }

    /// Adds federated-evaluation metrics to a completed round.
    pub async fn set_round_evaluation(
        &self,
        round: u64,
        evaluation: EvaluationSummary,
    ) -> Result<RoundRecord, StoreError> {
        on_backend!(commit self.set_round_evaluation(round, evaluation))
    }

    /// Appends audit entries (by sequence number), the signed tree heads over
    /// them (by tree size) and the tree's new frontier in one transaction.
    pub async fn append_audit(&self, batch: &AuditBatch) -> Result<(), StoreError> {
        on_backend!(commit self.append_audit(batch))
    }

    /// Every model version an erasure request tainted, in version order.
    pub async fn tainted_models(&self) -> Result<Vec<String>, StoreError> {
        on_backend!(read self.tainted_models())
    }

    /// Whether an erasure request tainted `model_version`.
    pub async fn is_tainted(&self, model_version: &str) -> Result<bool, StoreError> {
        on_backend!(read self.is_tainted(model_version))
    }

    /// Erasure remediations not yet finished.
    pub async fn remediations(&self) -> Result<Vec<Remediation>, StoreError> {
        on_backend!(read self.remediations())
    }

    /// One step of an erasure request, atomically with its audit entries:
    /// `tainted` model versions (with the request id), the remediations list
    /// as it now stands, and (on a rollback) the new head. A rolled-back head
    /// gets back the strategy state committed with its round (none at the
    /// initial model), not the abandoned head's, and a head back at the
    /// initial model drops the feature scaling too, so it is agreed again on
    /// the nodes' current data.
    pub async fn commit_erasure_step(
        &self,
        tainted: &[(String, String)],
        remediations: &[Remediation],
        head: Option<&FederationHead>,
        audit: &AuditBatch,
    ) -> Result<(), StoreError> {
        on_backend!(commit self.commit_erasure_step(tainted, remediations, head, audit))
    }

    /// The audit tree's frontier as of the last append, as stored.
    pub async fn audit_frontier(&self) -> Result<Option<Vec<u8>>, StoreError> {
        on_backend!(read self.audit_frontier())
    }

    /// How many audit entries are stored (one past the last sequence number),
    /// without reading them.
    pub async fn audit_len(&self) -> Result<u64, StoreError> {
        on_backend!(read self.audit_len())
    }

    /// The signed tree head with the largest tree size, as stored.
    pub async fn latest_audit_head(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        on_backend!(read self.latest_audit_head())
    }

    /// Audit entries in order, as stored.
    pub async fn audit_entries(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        on_backend!(read self.audit_entries())
    }

    /// Audit entries with sequence numbers in `range`, in order, as stored:
    /// read without touching the entries outside it.
    pub async fn audit_entries_in(
        &self,
        range: Range<u64>,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        on_backend!(read self.audit_entries_in(range))
    }

    /// Signed tree heads by tree size, as stored.
    pub async fn audit_heads(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        on_backend!(read self.audit_heads())
    }

    /// At most `limit` signed tree heads with tree sizes in `range`, smallest first.
    pub async fn audit_heads_in(
        &self,
        range: Range<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        on_backend!(read self.audit_heads_in(range, limit))
    }

    /// Completed rounds in order.
    pub async fn rounds(&self) -> Result<Vec<RoundRecord>, StoreError> {
        on_backend!(read self.rounds())
    }

    /// Failed attempts in order.
    pub async fn failed_rounds(&self) -> Result<Vec<RoundRecord>, StoreError> {
        on_backend!(read self.failed_rounds())
    }
}
