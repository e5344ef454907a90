//! What the audit log records: plain, schema-versioned entries, encoded as
//! canonical JSON (fields in declaration order, no maps), so the bytes that are
//! hashed are a function of the entry alone.
//!
//! No entry holds personal data: nodes appear by their certificate identity and
//! certificate fingerprint, never by anything about the people in their data.

use serde::{Deserialize, Serialize};

use crate::store::records::{DatasetRef, RegisteredDataset};

pub const AUDIT_SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditEvent {
    /// A certificate was revoked: the coordinator refuses it from now on.
    CertificateRevoked {
        certificate_sha256: String,
    },
    /// A node registered with the coordinator (at every (re)connection).
    NodeRegistered {
        node_id: String,
        certificate_sha256: String,
    },
    /// A node registered a new version of its training data (logged when the
    /// version differs from the one it registered before).
    DatasetRegistered {
        node_id: String,
        dataset: RegisteredDataset,
    },
    /// Round 0: the global feature scaling was agreed from these nodes'
    /// statistics; it shapes every model trained after it.
    ScalingAgreed {
        contributors: Vec<String>,
        datasets: Vec<ContributorDataset>,
    },
    /// A round attempt began: who was asked to train, from which model.
    RoundStarted {
        round: u64,
        attempt: u32,
        model_in: String,
        sampled: Vec<String>,
    },
    /// A round's model was committed.
    RoundCompleted {
        round: u64,
        attempt: u32,
        strategy: String,
        model_in: String,
        model_out: String,
        contributors: Vec<String>,
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
        request_id: String,
        node_id: String,
        scope: ErasureScope,
        deadline_ms: u64,
    },
    /// The node no longer holds the erased data: it registered `replacement`
    /// (none when it left the federation) in place of `removed`.
    ErasureDataRemoved {
        request_id: String,
        removed: Option<DatasetRef>,
        replacement: Option<DatasetRef>,
    },
    /// Every model version that learned from the erased data, and the last
    /// untainted version on the head's path the federation rolls back to.
    ErasureModelsIdentified {
        request_id: String,
        tainted: Vec<String>,
        rollback_to: Option<String>,
    },
    /// The round engine moved the head back to the last untainted version.
    HeadRolledBack {
        request_ids: Vec<String>,
        model_version: String,
        completed_rounds: u64,
    },
    /// The rounds after the rollback were retrained with the current data
    /// set versions (exact unlearning); `model_version` is the new head.
    ErasureRemediated {
        request_id: String,
        model_version: String,
        /// Why the retraining stopped short of the rounds the head had (the
        /// privacy budget), when it did; the rollback alone remediated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retrain_stopped: Option<String>,
    },
    ErasureClosed {
        request_id: String,
    },
    /// A round attempt failed; the global model did not move.
    RoundFailed {
        round: u64,
        attempt: u32,
        reason: String,
    },
    /// The federation stopped before its configured rounds.
    FederationStopped {
        reason: String,
    },
    /// A node downloaded a model version (through FetchModel).
    ModelDownloaded {
        node_id: String,
        model_version: String,
    },
    /// An auditor read the log (through the auditor API).
    AuditorRead {
        auditor: String,
        reading: String,
    },
    /// A request was refused by the service (`count` identical refusals at
    /// about the same time: see `audit/refusals.rs`).
    RequestRefused {
        peer: String,
        code: String,
        reason: String,
        #[serde(default = "one", skip_serializing_if = "is_one")]
        count: u64,
    },
    /// A TLS connection was refused before reaching the service.
    ConnectionRefused {
        remote_addr: String,
        reason: String,
        #[serde(default = "one", skip_serializing_if = "is_one")]
        count: u64,
    },
    /// Refusals that came faster than they could be queued: counted, not
    /// logged one by one.
    RefusalsNotLogged {
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
    pub schema: u32,
    /// 0-based index in the log: the Merkle leaf index.
    pub seq: u64,
    pub time_ms: u64,
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
    pub node_id: String,
    pub dataset: DatasetRef,
}

/// What an erasure request covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum ErasureScope {
    /// One data subject's rows, named by the node's HMAC-SHA256 pseudonym
    /// (`cohort_crypto::transparency::SubjectPseudonymKey`), never the raw id.
    Subject {
        pseudonym: String,
        dataset: DatasetRef,
    },
    /// A whole data set version.
    Dataset { dataset: DatasetRef },
    /// The node leaves: everything it contributed.
    NodeLeaving,
}

/// The protections a round ran under, as configured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundProtection {
    pub secure_aggregation: Option<SecureAggregationParameters>,
    pub differential_privacy: Option<DifferentialPrivacyParameters>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecureAggregationParameters {
    pub clip_range: f64,
    pub bits: u32,
    pub weight_cap: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DifferentialPrivacyParameters {
    pub noise_multiplier: f64,
    pub clip_norm: f64,
    pub delta: f64,
    /// Where the noise is added (central or distributed).
    pub placement: String,
}

impl RoundProtection {
    pub fn of(config: &crate::config::FederationConfig) -> Self {
        Self {
            secure_aggregation: config.secure_aggregation.as_ref().map(|s| {
                SecureAggregationParameters {
                    clip_range: s.clip_range,
                    bits: s.bits,
                    weight_cap: s.weight_cap,
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
