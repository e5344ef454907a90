//! The records the coordinator keeps: plain, serde-encoded data, versioned by
//! the `schema` field so later releases can read what earlier ones wrote.

use serde::{Deserialize, Serialize};

pub const SCHEMA_VERSION: u32 = 1;

/// Where the federation stands: the last completed round and its model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FederationHead {
    pub schema: u32,
    pub completed_rounds: u64,
    pub model_version: String,
}

/// A node as the coordinator knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub schema: u32,
    pub node_id: String,
    pub first_registered_ms: u64,
    pub last_registered_ms: u64,
    /// Hex SHA-256 of the certificate it last registered with.
    pub certificate_sha256: String,
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
    pub request_id: String,
    pub rollback_to: String,
    /// Completed rounds once rolled back (the rounds `rollback_to` had seen).
    pub rollback_rounds: u64,
    /// The head's completed rounds when the request arrived.
    pub until_round: u64,
    /// The engine has moved the head back.
    pub applied: bool,
}

/// A version of a node's training data, as the node described it. Holds no
/// data: a name, a content hash, a row count, categories and a legal basis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredDataset {
    pub dataset_id: String,
    pub version: String,
    pub content_sha256: String,
    pub row_count: u64,
    pub data_categories: Vec<String>,
    /// GDPR Art. 6(1) basis, as [`cohort_proto::dataset::LegalBasis`] names it.
    pub legal_basis: String,
}

impl RegisteredDataset {
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
    pub dataset_id: String,
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
    pub node_id: String,
    pub num_examples: Option<u64>,
    pub train_loss: Option<f64>,
}

/// Federated evaluation of a round's model: example-weighted means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationSummary {
    pub nodes: Vec<String>,
    pub num_examples: u64,
    pub loss: f64,
    pub accuracy: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RoundOutcome {
    Completed {
        model_out: String,
        contributions: Vec<Contribution>,
        evaluation: Option<EvaluationSummary>,
    },
    Failed {
        reason: String,
    },
}

/// One attempt at one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    pub schema: u32,
    pub round: u64,
    /// 1 for the first attempt at this round; failed attempts are kept too.
    pub attempt: u32,
    pub strategy: String,
    pub model_in: String,
    pub sampled: Vec<String>,
    pub started_ms: u64,
    pub finished_ms: u64,
    pub outcome: RoundOutcome,
    /// Under differential privacy: ε spent by the federation after this round.
    #[serde(default)]
    pub epsilon_spent: Option<f64>,
}
