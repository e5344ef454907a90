//! What each console page shows, gathered in one place: the only module of
//! the console that reads the store, the audit log or the live state; each
//! page costs a handful of reads (the operator page one more per node).

use std::time::{Duration, SystemTime};

use crate::audit::erasure::{ErasureStatus, statuses};
use crate::audit::lineage::{Lineage, LineageError, ModelLineage};
use crate::audit::{AuditError, VerifiedLog, stored_entries, verify};
use crate::federation::Federation;
use crate::federation::summary::{SummaryError, epsilon_spent};
use crate::rounds::live::LiveRound;
use crate::store::StoreError;
use crate::store::records::{RoundOutcome, RoundRecord, unix_ms};

/// Why a page's data could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The store could not be read.
    #[error("reading the federation's state: {0}")]
    Store(#[from] StoreError),
    /// The audit log could not be read, or does not verify.
    #[error("reading the audit log: {0}")]
    Audit(#[from] AuditError),
    /// The privacy ledger could not be read or accounted.
    #[error(transparent)]
    Ledger(#[from] SummaryError),
    /// The model version asked about is not in the log.
    #[error(transparent)]
    Lineage(#[from] LineageError),
}

/// One committed round, as the rounds table shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundRow {
    /// The round's number.
    pub round: u64,
    /// Nodes sampled for it.
    pub participants: usize,
    /// Sampled nodes whose update is not in the aggregate.
    pub dropouts: usize,
    /// Held-out accuracy of its model, once evaluated.
    pub accuracy: Option<f64>,
    /// Held-out loss of its model, once evaluated.
    pub loss: Option<f64>,
    /// ε spent after it, under differential privacy.
    pub epsilon: Option<f64>,
    /// The model it committed.
    pub model_out: String,
}

/// A failed attempt at a round.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedRound {
    /// The round attempted.
    pub round: u64,
    /// Which attempt.
    pub attempt: u32,
    /// When it failed, Unix ms.
    pub failed_ms: u64,
    /// Why, in words.
    pub reason: String,
}

/// ε spent against the configured budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrivacyBudget {
    /// ε spent so far (every release counted).
    pub spent: f64,
    /// The budget's ε.
    pub budget: f64,
    /// The budget's δ.
    pub delta: f64,
}

/// A node registered with this coordinator, as the nodes table shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    /// Its certificate identity.
    pub node_id: String,
    /// How long since it was last heard from.
    pub silent_for: Duration,
    /// `dataset_id@version` of the data it registered, if it described one.
    pub dataset: Option<String>,
    /// Available, silent or finished.
    pub status: &'static str,
}

/// The stage in flight.
#[derive(Debug, Clone, PartialEq)]
pub struct StageRow {
    /// Its round (0: the feature-statistics stage).
    pub round: u64,
    /// What it asks.
    pub kind: &'static str,
    /// Participants that have not answered yet.
    pub waiting_for: usize,
    /// Time left before it closes with the answers it has.
    pub remaining: Duration,
}

/// Everything the operator page shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OperatorSnapshot {
    /// The federation's id.
    pub federation_id: String,
    /// Rounds configured.
    pub rounds_configured: u64,
    /// Committed rounds, oldest first.
    pub rounds: Vec<RoundRow>,
    /// Failed attempts, oldest first.
    pub failed: Vec<FailedRound>,
    /// Under differential privacy: ε against the budget.
    pub privacy: Option<PrivacyBudget>,
    /// Registered nodes, by id.
    pub nodes: Vec<NodeRow>,
    /// The stage in flight, if any.
    pub stage: Option<StageRow>,
    /// The federation has run its rounds.
    pub finished: bool,
}

/// The latest signed tree head, as the audit page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadSummary {
    /// Entries it covers.
    pub tree_size: u64,
    /// Its Merkle root (hex).
    pub root_hash: String,
    /// When it was signed, Unix ms.
    pub timestamp_ms: u64,
}

/// The server's verification of its own audit log.
#[derive(Debug, Clone, PartialEq)]
pub enum Verification {
    /// Every entry in place and every signed head genuine.
    Verified {
        /// Entries in the log.
        entries: u64,
        /// Signed tree heads checked.
        heads_checked: u64,
        /// The latest signed head (none for an empty log).
        head: Option<HeadSummary>,
    },
    /// The first inconsistency found.
    Failed {
        /// What is wrong.
        reason: String,
    },
}

/// Everything the audit page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSnapshot {
    /// The log as the server verified it just now.
    pub verification: Verification,
    /// Hex Ed25519 key the tree heads are signed with.
    pub audit_key: String,
    /// Every erasure request, oldest first.
    pub erasures: Vec<ErasureStatus>,
    /// Model versions committed, newest first (each links to its lineage).
    pub models: Vec<(u64, String)>,
    /// When this was gathered, Unix ms (erasure deadlines are against it).
    pub now_ms: u64,
}

/// The operator page's data.
pub async fn operator(
    federation: &Federation,
    live: &LiveRound,
) -> Result<OperatorSnapshot, SnapshotError> {
    let completed = federation.store.rounds().await?;
    let failed = federation.store.failed_rounds().await?;
    let privacy = match (&federation.config.privacy, epsilon_spent(federation).await?) {
        (Some(config), Some(spent)) => Some(PrivacyBudget {
            spent,
            budget: config.epsilon,
            delta: config.delta,
        }),
        _ => None,
    };
    let mut nodes = Vec::new();
    for sighting in federation.nodes.sightings() {
        let record = federation.store.node(&sighting.node_id).await?;
        nodes.push(NodeRow {
            dataset: record
                .and_then(|r| r.dataset)
                .map(|d| d.reference().to_string()),
            node_id: sighting.node_id,
            silent_for: sighting.silent_for,
            status: sighting.status.name(),
        });
    }
    Ok(OperatorSnapshot {
        federation_id: federation.config.federation_id.clone(),
        rounds_configured: federation.config.rounds.count,
        rounds: completed.iter().filter_map(round_row).collect(),
        failed: failed.iter().filter_map(failed_round).collect(),
        privacy,
        nodes,
        stage: stage(live),
        finished: federation.finished().is_some(),
    })
}

fn round_row(record: &RoundRecord) -> Option<RoundRow> {
    let RoundOutcome::Completed {
        model_out,
        contributions,
        evaluation,
    } = &record.outcome
    else {
        return None;
    };
    Some(RoundRow {
        round: record.round,
        participants: record.sampled.len(),
        dropouts: record.sampled.len().saturating_sub(contributions.len()),
        accuracy: evaluation.as_ref().map(|e| e.accuracy),
        loss: evaluation.as_ref().map(|e| e.loss),
        epsilon: record.epsilon_spent,
        model_out: model_out.clone(),
    })
}

fn failed_round(record: &RoundRecord) -> Option<FailedRound> {
    let RoundOutcome::Failed { reason, .. } = &record.outcome else {
        return None;
    };
    Some(FailedRound {
        round: record.round,
        attempt: record.attempt,
        failed_ms: record.finished_ms,
        reason: reason.clone(),
    })
}

/// The operator page's data for the stage fragment alone: the stage in
/// flight, read from the live round without touching the store (it is
/// re-fetched whenever a participant answers).
pub fn stage_only(live: &LiveRound) -> OperatorSnapshot {
    OperatorSnapshot {
        stage: stage(live),
        ..OperatorSnapshot::default()
    }
}

fn stage(live: &LiveRound) -> Option<StageRow> {
    let open = live.open_stage()?;
    Some(StageRow {
        round: open.round,
        kind: open.kind.name(),
        waiting_for: open.waiting_for.len(),
        remaining: open
            .deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    })
}

/// The audit page's data: the log verified by the server now, its erasure
/// requests and the model versions whose lineage can be drawn. A log that
/// does not verify is shown as such, with the requests its entries record.
pub async fn audit(federation: &Federation) -> Result<AuditSnapshot, SnapshotError> {
    let now_ms = unix_ms(SystemTime::now());
    let (verification, entries) =
        match verify(&federation.store, &federation.audit_log.identity()).await {
            Ok(log) => (verified(&log), log.entries),
            Err(error) => (
                Verification::Failed {
                    reason: error.to_string(),
                },
                stored_entries(&federation.store).await?,
            ),
        };
    let mut models: Vec<(u64, String)> = Lineage::from_entries(&entries)
        .steps()
        .iter()
        .map(|step| (step.round, step.model_out.clone()))
        .collect();
    models.reverse();
    Ok(AuditSnapshot {
        verification,
        audit_key: hex::encode(federation.audit_log.public_key()),
        erasures: statuses(&entries, now_ms),
        models,
        now_ms,
    })
}

fn verified(log: &VerifiedLog) -> Verification {
    Verification::Verified {
        entries: log.entries.len() as u64,
        heads_checked: log.heads_checked,
        head: log.head.as_ref().map(|h| HeadSummary {
            tree_size: h.tree_size,
            root_hash: h.root_hash.to_string(),
            timestamp_ms: h.timestamp_ms,
        }),
    }
}

/// The lineage of `model_version` from the verified log.
pub async fn lineage(
    federation: &Federation,
    model_version: &str,
) -> Result<ModelLineage, SnapshotError> {
    let log = verify(&federation.store, &federation.audit_log.identity()).await?;
    Ok(Lineage::from_entries(&log.entries).model(model_version)?)
}

/// The verified log as `audit export --format json` writes it.
pub async fn export(federation: &Federation) -> Result<serde_json::Value, SnapshotError> {
    let log = verify(&federation.store, &federation.audit_log.identity()).await?;
    Ok(log.export_json())
}
