//! The records the coordinator keeps: plain, serde-encoded data, versioned by
//! the `schema` field so later releases can read what earlier ones wrote, and
//! the audit batch the store writes beside them. Nothing here knows the
//! modules above the store: they build these records, the store keeps them.

use std::time::{SystemTime, UNIX_EPOCH};

use cohort_crypto::transparency::SignedTreeHead;
use serde::{Deserialize, Serialize};

/// The `schema` every record written by this release carries.
pub const SCHEMA_VERSION: u32 = 1;

/// `time` as records keep it: milliseconds since the Unix epoch (0 for a time
/// before it).
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Audit entries, the signed tree heads over them and the Merkle tree's
/// frontier after them, ready to be stored together (built by
/// `crate::audit::AuditLog`, written by [`super::Store`] in the same
/// transaction as what they record).
#[derive(Debug, Clone)]
pub struct AuditBatch {
    /// (sequence number, canonical bytes) per entry.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// One head after each entry, by increasing tree size.
    pub heads: Vec<SignedTreeHead>,
    /// `MerkleFrontier::to_bytes` of the tree including these entries.
    pub frontier: Vec<u8>,
}

/// Where the federation stands: the last completed round and its model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FederationHead {
    /// [`SCHEMA_VERSION`] when written.
    pub schema: u32,
    /// Rounds committed so far (0: the initial model).
    pub completed_rounds: u64,
    /// Content address of the head's model.
    pub model_version: String,
}

impl FederationHead {
    /// The head once `completed_rounds` rounds are committed, at `model_version`.
    pub fn at(completed_rounds: u64, model_version: &str) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            completed_rounds,
            model_version: model_version.to_owned(),
        }
    }
}

/// A node as the coordinator knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// [`SCHEMA_VERSION`] when written.
    pub schema: u32,
    /// The node's identity (its certificate's name).
    pub node_id: String,
    /// Its first registration, Unix ms.
    pub first_registered_ms: u64,
    /// Its latest registration, Unix ms.
    pub last_registered_ms: u64,
    /// Hex SHA-256 of the certificate it last registered with.
    pub certificate_sha256: String,
    /// Training rows it reported at its latest registration.
    pub num_train_examples: u64,
    /// The training data's version it last registered (none from nodes that
    /// describe no data set).
    #[serde(default)]
    pub dataset: Option<RegisteredDataset>,
    /// When it left the federation (an erasure of everything it contributed);
    /// a node that left may not register again.
    #[serde(default)]
    pub left_ms: Option<u64>,
}

/// An erasure request's remediation: roll the head back to the last untainted
/// model version, then retrain until the head is back at `until_round`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remediation {
    /// The erasure request it carries out.
    pub request_id: String,
    /// The last untainted model version on the head's path.
    pub rollback_to: String,
    /// Completed rounds once rolled back (the rounds `rollback_to` had seen).
    pub rollback_rounds: u64,
    /// The head's completed rounds when the request arrived.
    pub until_round: u64,
    /// The engine has moved the head back.
    pub applied: bool,
    /// The head no longer carries the erased data (the retraining caught up,
    /// or there was nothing to roll back): the request waits only for the
    /// nodes holding tainted models to withdraw them before it closes.
    #[serde(default)]
    pub remediated: bool,
}

/// A version of a node's training data, as the node described it. Holds no
/// data: a name, a content hash, a row count, categories and a legal basis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredDataset {
    /// The node's name for the data set.
    pub dataset_id: String,
    /// First 16 hex digits of `content_sha256`.
    pub version: String,
    /// Hex SHA-256 of the training rows.
    pub content_sha256: String,
    /// Training rows in this version.
    pub row_count: u64,
    /// What kinds of personal data the rows hold.
    pub data_categories: Vec<String>,
    /// GDPR Art. 6(1) basis, as [`cohort_proto::dataset::LegalBasis`] names it.
    pub legal_basis: String,
}

impl RegisteredDataset {
    /// The `dataset_id@version` this version goes by.
    pub fn reference(&self) -> DatasetRef {
        DatasetRef {
            dataset_id: self.dataset_id.clone(),
            version: self.version.clone(),
        }
    }
}

/// Names one data set version: `dataset_id@version`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DatasetRef {
    /// The node's name for the data set.
    pub dataset_id: String,
    /// The version's content-derived id.
    pub version: String,
}

impl std::fmt::Display for DatasetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.dataset_id, self.version)
    }
}

impl From<&cohort_proto::v1::DatasetVersion> for RegisteredDataset {
    fn from(wire: &cohort_proto::v1::DatasetVersion) -> Self {
        Self {
            dataset_id: wire.dataset_id.clone(),
            version: wire.version.clone(),
            content_sha256: wire.content_sha256.clone(),
            row_count: wire.row_count,
            data_categories: wire.data_categories.clone(),
            legal_basis: wire.legal_basis.clone(),
        }
    }
}

/// One node's contribution to a round. Under secure aggregation the coordinator
/// never learns a node's example count or loss: both are `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// The contributing node.
    pub node_id: String,
    /// Its training rows (what FedAvg weighted it by), if known.
    pub num_examples: Option<u64>,
    /// Its local training loss, if known.
    pub train_loss: Option<f64>,
}

/// Federated evaluation of a round's model: example-weighted means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationSummary {
    /// The nodes that scored the model.
    pub nodes: Vec<String>,
    /// Their held-out rows, together.
    pub num_examples: u64,
    /// Example-weighted mean loss.
    pub loss: f64,
    /// Example-weighted mean accuracy.
    pub accuracy: f64,
}

/// How an attempt at a round ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RoundOutcome {
    /// Committed: the head moved to `model_out`.
    Completed {
        /// The round's new model.
        model_out: String,
        /// Whose updates are in it.
        contributions: Vec<Contribution>,
        /// Federated evaluation of `model_out`, once the nodes have scored it.
        evaluation: Option<EvaluationSummary>,
    },
    /// Not committed: the model is unchanged.
    Failed {
        /// Why, in words.
        reason: String,
        /// Why, for programs; `None` in records written before kinds were
        /// stored.
        #[serde(default)]
        kind: Option<crate::rounds::failure::FailureKind>,
    },
}

/// One attempt at one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// [`SCHEMA_VERSION`] when written.
    pub schema: u32,
    /// The round's number (1 for the first).
    pub round: u64,
    /// 1 for the first attempt at this round; failed attempts are kept too.
    pub attempt: u32,
    /// The strategy's name (`fedavg`, `fedadam`, ...).
    pub strategy: String,
    /// The model the round started from.
    pub model_in: String,
    /// The nodes sampled for it.
    pub sampled: Vec<String>,
    /// When sampling was done, Unix ms.
    pub started_ms: u64,
    /// When it committed or failed, Unix ms.
    pub finished_ms: u64,
    /// How it ended.
    pub outcome: RoundOutcome,
    /// Under differential privacy: ε spent by the federation after this round,
    /// against whoever sees only the released models (the budget's ε).
    #[serde(default)]
    pub epsilon_spent: Option<f64>,
    /// Under distributed differential privacy: ε after this round against the
    /// coordinator, which knows the sample (no amplification by subsampling).
    /// `None` under the central placement, where it sees every clipped change.
    #[serde(default)]
    pub epsilon_against_coordinator: Option<f64>,
}
