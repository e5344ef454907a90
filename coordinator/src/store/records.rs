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
