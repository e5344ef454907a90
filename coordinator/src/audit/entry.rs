//! What the audit log records: plain, schema-versioned entries, encoded as
//! canonical JSON (fields in declaration order, no maps), so the bytes that are
//! hashed are a function of the entry alone.
//!
//! No entry holds personal data: nodes appear by their certificate identity and
//! certificate fingerprint, never by anything about the people in their data.

use serde::{Deserialize, Serialize};

use crate::store::records::{DatasetRef, RegisteredDataset};

/// Version of the entry format written now, stored in each entry's `schema`.
///
/// 2: a `RoundStarted` entry also stands for its sampled nodes' receipt of its
/// `model_in`, whose downloads get no `ModelDownloaded` entry each (#17). In
/// schema 1 every download had its own entry, and `RoundStarted` recorded the
/// sample only.
pub const AUDIT_SCHEMA: u32 = 2;

/// The first schema in which `RoundStarted` records receipt (see [`AUDIT_SCHEMA`]).
pub const ROUND_STARTED_RECORDS_RECEIPT: u32 = 2;

/// Something that happened in the federation, as the log records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditEvent {
    /// A certificate was revoked: the coordinator refuses it from now on.
    CertificateRevoked {
        /// Hex SHA-256 of the revoked certificate (DER).
        certificate_sha256: String,
    },
    /// A node registered with the coordinator (at every (re)connection).
    NodeRegistered {
        /// The node's certificate identity.
        node_id: String,
        /// Hex SHA-256 of the certificate it connected with.
        certificate_sha256: String,
    },
    /// A node registered a new version of its training data (logged when the
    /// version differs from the one it registered before).
    DatasetRegistered {
        /// The node's certificate identity.
        node_id: String,
        /// The new data set version, with its metadata.
        dataset: RegisteredDataset,
    },
    /// Round 0: the global feature scaling was agreed from these nodes'
    /// statistics; it shapes every model trained after it.
    ScalingAgreed {
        /// The nodes whose statistics were combined.
        contributors: Vec<String>,
        /// The data set version each of them contributed.
        datasets: Vec<ContributorDataset>,
    },
    /// A round attempt began: who was asked to train, from which model.
    RoundStarted {
        /// The round's number.
        round: u64,
        /// Which attempt at the round this is (a failed attempt is retried).
        attempt: u32,
        /// The model version the sampled nodes train from.
        model_in: String,
        /// The nodes asked to train.
        sampled: Vec<String>,
    },
    /// A round's model was committed.
    RoundCompleted {
        /// The round's number.
        round: u64,
        /// The attempt that completed the round.
        attempt: u32,
        /// The name of the aggregation strategy.
        strategy: String,
        /// The model version the round started from.
        model_in: String,
        /// The model version the round committed.
        model_out: String,
        /// The nodes whose updates were aggregated.
        contributors: Vec<String>,
        /// Total ε spent by the federation after this round, against whoever
        /// sees only the released models; `None` without differential privacy.
        epsilon_spent: Option<f64>,
        /// The data set version each contributor had registered when the
        /// round started (absent in entries written before lineage existed).
        #[serde(default)]
        datasets: Vec<ContributorDataset>,
        /// Secure aggregation and differential privacy the round ran under.
        #[serde(default)]
        protection: RoundProtection,
    },
    /// A node reported an erasure request (GDPR Art. 17); the one-month
    /// deadline of Art. 12(3) runs from this entry's time.
    ErasureReceived {
        /// The request's id, assigned by the coordinator.
        request_id: String,
        /// The node that reported it.
        node_id: String,
        /// Which data the request covers.
        scope: ErasureScope,
        /// When the Art. 12(3) deadline runs out, in Unix milliseconds.
        deadline_ms: u64,
    },
    /// The node no longer holds the erased data: it registered `replacement`
    /// (none when it left the federation) in place of `removed`.
    ErasureDataRemoved {
        /// The erasure request.
        request_id: String,
        /// The data set version the node held before.
        removed: Option<DatasetRef>,
        /// The version registered in its place.
        replacement: Option<DatasetRef>,
    },
    /// Every model version that learned from the erased data, and the last
    /// untainted version on the head's path the federation rolls back to.
    ErasureModelsIdentified {
        /// The erasure request.
        request_id: String,
        /// Model versions trained on the erased data.
        tainted: Vec<String>,
        /// The version the head rolls back to; `None` when the head is
        /// untainted.
        rollback_to: Option<String>,
    },
    /// The round engine moved the head back to the last untainted version.
    HeadRolledBack {
        /// The erasure requests the rollback serves.
        request_ids: Vec<String>,
        /// The model version that is now the head.
        model_version: String,
        /// The head's completed rounds after the rollback.
        completed_rounds: u64,
    },
    /// The rounds after the rollback were retrained with the current data
    /// set versions (exact unlearning); `model_version` is the new head.
    ErasureRemediated {
        /// The erasure request.
        request_id: String,
        /// The head's model version once remediated.
        model_version: String,
        /// Why the retraining stopped short of the rounds the head had (the
        /// privacy budget), when it did; the rollback alone remediated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retrain_stopped: Option<String>,
    },
    /// A node withdrew tainted model versions: it deleted them from its
    /// models folder and its inference server refuses them. Sent with its
    /// polls; logged once per node and version in each coordinator run.
    TaintedModelsWithdrawn {
        /// The node that withdrew them.
        node_id: String,
        /// The tainted versions it withdrew since its last acknowledgement.
        models: Vec<String>,
    },
    /// Nodes that had received one of the request's tainted models and did
    /// not acknowledge withdrawing it within `server.withdrawal_patience_hours`
    /// of the request: recorded as unreachable, so the request can close
    /// without them (their copies are outside the coordinator's reach).
    WithdrawalsUnacknowledged {
        /// The erasure request.
        request_id: String,
        /// The holders that did not acknowledge.
        node_ids: Vec<String>,
    },
    /// The erasure request is closed: the head model did not learn from the
    /// erased data, directly or through the models it was trained from, and
    /// every node that had received a tainted model acknowledged withdrawing
    /// it or is recorded as unreachable ([`Self::WithdrawalsUnacknowledged`]).
    ErasureClosed {
        /// The erasure request.
        request_id: String,
    },
    /// A round attempt failed; the global model did not move.
    RoundFailed {
        /// The round's number.
        round: u64,
        /// The attempt that failed.
        attempt: u32,
        /// Why it failed.
        reason: String,
    },
    /// The federation stopped before its configured rounds.
    FederationStopped {
        /// Why it stopped.
        reason: String,
    },
    /// The federation's first model was read from its owner's file
    /// (`[model] initial_parameters`), before it became the head. (A
    /// built-in model's first model is drawn from the config's seed, which
    /// the stored config states.)
    ModelInitialized {
        /// Its content address.
        model_version: String,
        /// Hex SHA-256 of the file it was read from.
        file_sha256: String,
    },
    /// A node downloaded a model version (through FetchModel) that no
    /// `RoundStarted` of schema 2 already records it receiving.
    ModelDownloaded {
        /// The node's certificate identity.
        node_id: String,
        /// The version it downloaded.
        model_version: String,
    },
    /// An auditor read the log (through the auditor API).
    AuditorRead {
        /// The auditor's certificate name.
        auditor: String,
        /// What it read (the tree head, a range of entries, …).
        reading: String,
    },
    /// A request was refused by the service (`count` identical refusals at
    /// about the same time: see `audit/refusals.rs`).
    RequestRefused {
        /// The refused peer, by certificate identity.
        peer: String,
        /// The gRPC status code returned, by name.
        code: String,
        /// Why the request was refused.
        reason: String,
        /// How many identical refusals this entry stands for.
        #[serde(default = "one", skip_serializing_if = "is_one")]
        count: u64,
    },
    /// A TLS connection was refused before reaching the service.
    ConnectionRefused {
        /// The peer's address.
        remote_addr: String,
        /// Why the connection was refused.
        reason: String,
        /// How many identical refusals this entry stands for.
        #[serde(default = "one", skip_serializing_if = "is_one")]
        count: u64,
    },
    /// Refusals that came faster than they could be queued: counted, not
    /// logged one by one.
    RefusalsNotLogged {
        /// How many refusals went unlogged.
        count: u64,
    },
}

fn one() -> u64 {
    1
}

fn is_one(count: &u64) -> bool {
    *count == 1
}

/// One entry: its position, when it was written, and what happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The entry format's version ([`AUDIT_SCHEMA`] when written now).
    pub schema: u32,
    /// 0-based index in the log: the Merkle leaf index.
    pub seq: u64,
    /// When the entry was written, in Unix milliseconds.
    pub time_ms: u64,
    /// What happened.
    pub event: AuditEvent,
}

impl AuditEntry {
    /// The canonical bytes that become the Merkle leaf.
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// The data set version one contributor trained on in a round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContributorDataset {
    /// The contributing node.
    pub node_id: String,
    /// The data set version it trained on.
    pub dataset: DatasetRef,
}

/// What an erasure request covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum ErasureScope {
    /// One data subject's rows, named by the node's HMAC-SHA256 pseudonym
    /// (`cohort_crypto::transparency::SubjectPseudonymKey`), never the raw id.
    Subject {
        /// The subject's pseudonym (hex).
        pseudonym: String,
        /// The data set version holding the subject's rows.
        dataset: DatasetRef,
    },
    /// A whole data set version.
    Dataset {
        /// The erased version.
        dataset: DatasetRef,
    },
    /// The node leaves: everything it contributed.
    NodeLeaving,
}

/// The protections a round ran under, as configured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundProtection {
    /// Secure aggregation's parameters; `None` when the round ran without it.
    pub secure_aggregation: Option<SecureAggregationParameters>,
    /// Differential privacy's parameters; `None` when the round ran without it.
    pub differential_privacy: Option<DifferentialPrivacyParameters>,
}

/// The secure-aggregation parameters a round ran under (see
/// `[secure_aggregation]` in the configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecureAggregationParameters {
    /// Each coordinate of a node's model change is clipped to ±`clip_range`.
    pub clip_range: f64,
    /// Masked sums are computed modulo 2^`bits`.
    pub bits: u32,
    /// The public cap on a node's example count when weighting its update.
    pub weight_cap: u64,
    /// k: each node's neighbourhood size in this round (as configured or
    /// derived from the threat model for the round's participants). Absent
    /// in entries written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbours: Option<u32>,
    /// t: the shares needed to rebuild a node's secret in this round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// The seed the nodes' committed nonces drew the round's neighbour graph
    /// from (hex SHA-256; `cohort_crypto::secagg::graph_seed`): with the
    /// participants, k and the protocol round it redraws who masked with
    /// whom. Absent in entries written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_seed: Option<String>,
}

/// The differential-privacy parameters a round ran under (see `[privacy]` in
/// the configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DifferentialPrivacyParameters {
    /// Noise standard deviation as a multiple of `clip_norm`.
    pub noise_multiplier: f64,
    /// The configured L2 bound on each node's model change (the starting
    /// bound under adaptive clipping).
    pub clip_norm: f64,
    /// The δ of the (ε, δ) guarantee.
    pub delta: f64,
    /// Where the noise is added (central or distributed).
    pub placement: String,
}

impl RoundProtection {
    /// The protections `config` sets for a round with `participants` nodes
    /// (k and t follow from it as the round itself derived them).
    pub fn of(config: &crate::config::FederationConfig, participants: usize) -> Self {
        Self {
            secure_aggregation: config.secure_aggregation.as_ref().map(|s| {
                let round = s.for_round(participants).ok();
                SecureAggregationParameters {
                    clip_range: s.clip_range,
                    bits: s.bits,
                    weight_cap: s.weight_cap,
                    neighbours: round
                        .as_ref()
                        .map(|r| r.neighbourhood_size(participants) as u32),
                    threshold: round.as_ref().map(|r| r.threshold as u32),
                    graph_seed: None,
                }
            }),
            differential_privacy: config
                .privacy
                .as_ref()
                .map(|p| DifferentialPrivacyParameters {
                    noise_multiplier: p.noise_multiplier,
                    clip_norm: p.clip_norm,
                    delta: p.delta,
                    placement: format!("{:?}", p.placement).to_lowercase(),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_written_before_lineage_and_protections_still_read() {
        let old = r#"{"schema":1,"seq":4,"time_ms":9,"event":{"kind":"round_completed","round":2,"attempt":1,"strategy":"fedavg","model_in":"a","model_out":"b","contributors":["n"],"epsilon_spent":null}}"#;
        let entry: AuditEntry = serde_json::from_str(old).unwrap();
        match entry.event {
            AuditEvent::RoundCompleted {
                datasets,
                protection,
                ..
            } => {
                assert!(datasets.is_empty());
                assert_eq!(protection, RoundProtection::default());
            }
            other => panic!("{other:?}"),
        }
    }
}
