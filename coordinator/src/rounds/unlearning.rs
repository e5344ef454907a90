//! Erasure requests (GDPR Art. 17, the right to erasure) carried through to the
//! model: exact unlearning by rollback and retraining. A node that received a
//! request removes the subject's rows (or a whole data set, or leaves),
//! registers the new data set version, and reports it ([`receive`]). The
//! coordinator then, each step an audit entry with its time:
//!
//! 1. **received**: the request, with its one-month deadline (Art. 12(3));
//! 2. **data removed**: the removed and replacement data set versions;
//! 3. **models identified**: every model version that learned from the removed
//!    version, or from any other version of the data set the node registered
//!    but the replacement (the rows may have been in earlier versions too),
//!    directly or by starting from one that did
//!    ([`crate::audit::lineage`]). They are *tainted*: FetchModel no longer
//!    serves them, and the round in flight is interrupted;
//! 4. **remediated**: the round engine's one hook, [`between_rounds`], rolls
//!    the head back to the last untainted version on its path and the engine
//!    reruns the later rounds with the same round configuration and the nodes'
//!    current data set versions; once the head is back where it was, the
//!    request is remediated;
//! 5. **closed**, once every node that had downloaded one of the tainted
//!    models has acknowledged withdrawing it (deleted from its models folder
//!    and refused by its inference server; acknowledged with the poll after
//!    the taint list reached it, and by a finished node with one last poll):
//!    [`close_withdrawn`]. A holder that does not acknowledge within
//!    `server.withdrawal_patience_hours` of the request (a week by default;
//!    a node stopped for good, or revoked) is recorded as unreachable
//!    (`WithdrawalsUnacknowledged`) and the request closes without it: its
//!    copies are beyond the coordinator's reach, and the log says so. A node
//!    that leaves, reporting the request itself, is not waited for.
//!
//! A request for a federation that already finished is retrained without a
//! restart when the coordinator serves after finish
//! (`server.serve_after_finish`): the engine waits for the interrupt
//! ([`LiveRound::wait_for_interrupt`]), and the federation leaves its finished
//! state until the nodes, started again, have rerun the rounds. Otherwise the
//! rollback waits for the coordinator's next start.
//!
//! When no model learned from the data (or the head is untainted), step 4
//! follows at once, and step 5 too if no node holds a tainted model.
//! Subjects appear only by their pseudonym (HMAC-SHA256 under a key that
//! stays on the node), never by identifier. The requests as the log
//! tells them are [`crate::audit::erasure`].
//!
//! # What the retrained model is
//!
//! Without differential privacy and secure aggregation, a model is a
//! deterministic function of the configuration (the initial model's
//! `model.init_seed`; `rounds.seed`, from which every round's sample and
//! training seed derive, [`super::sampling::training_seed`]; `[training]`,
//! `[strategy]`, `[scaling]`), the feature statistics behind an agreed
//! scaling, and, round by round, which nodes contributed and the rows of the
//! data set version each trained on. Nothing else enters: not the attempt
//! number, the clock, the order updates arrive in (aggregation sums them in
//! node-id order), nor threads (the nodes' burn/ndarray training runs on one
//! thread). The rollback returns to the initial model whenever the erased
//! data was in the agreed scaling (it is in every model's lineage), and the
//! scaling is then agreed again from the current data. So the retrained model
//! is, bit for bit, the model of a federation that never had the erased rows
//! and saw the same participation: `tests/tests/e2e/replay.rs` checks it
//! against such a federation, and replays the rounds from the audit log and
//! the reduced data alone (the `cohort_e2e::replay` harness).
//!
//! Limits: bitwise only for the same build on CPUs with the same SIMD
//! features (the matrix and vector kernels are picked at run time, and FMA
//! rounds differently); not under differential privacy (noise, sample and
//! seeds come from the operating system, and must) nor secure aggregation
//! (its stochastic rounding draws system randomness: the test bounds the
//! difference instead, measured at ~3e-7); a declared `[scaling]`
//! is kept as is, so it must not be computed from erasable rows. See
//! `docs/COMPLIANCE.md`, "Checking an unlearning".
//!
//! Threat model: the coordinator is trusted to run this workflow (its audit
//! log lets an auditor check it did, see `crate::audit`); a node can only
//! report erasures of its own data (its TLS identity), and a report that does
//! not match what it registered is refused.

use std::time::SystemTime;

use cohort_proto::v1::{self, erasure_report::Scope};

use super::live::LiveRound;
use crate::audit::erasure::{Copies, DEADLINE_MS, ErasureStatus, statuses};
use crate::audit::lineage::{Lineage, Source};
use crate::audit::{AuditEntry, AuditError, AuditEvent, ErasureScope, stored_entries};
use crate::federation::Federation;
use crate::store::records::{
    DatasetRef, FederationHead, NodeRecord, Remediation, SCHEMA_VERSION, unix_ms,
};
use crate::store::{Store, StoreError};

/// Why an erasure report was refused, or its workflow failed.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// The report cannot be acted on; the message says why.
    #[error("erasure report refused: {0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// What the node is told: its request's id, deadline and consequences.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// The request's id in the audit log.
    pub request_id: String,
    /// When it must be closed by, Unix ms.
    pub deadline_ms: u64,
    /// The model versions that learned from the data.
    pub tainted: Vec<String>,
    /// The model the head rolls back to, if the head is tainted.
    pub rollback_to: Option<String>,
}

impl From<Receipt> for v1::ErasureReceipt {
    fn from(receipt: Receipt) -> Self {
        Self {
            request_id: receipt.request_id,
            deadline_unix_ms: receipt.deadline_ms,
            tainted_models: receipt.tainted,
            rollback_to: receipt.rollback_to.unwrap_or_default(),
        }
    }
}

fn is_pseudonym(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What a report covers: its scope, the data set version removed, and the
/// one the node has registered instead.
type Covered = (ErasureScope, Option<DatasetRef>, Option<DatasetRef>);

/// Checks a node's report and works out what it covers and what the node now
/// has registered instead. A node leaving is marked as left here.
async fn scope_of(
    federation: &Federation,
    node_id: &str,
    report: &v1::ErasureReport,
) -> Result<Covered, ErasureError> {
    let refused = |reason: String| Err(ErasureError::Refused(reason));
    let Some(mut record) = federation.store.node(node_id).await? else {
        return refused(format!("node {node_id} has never registered"));
    };
    let removed = DatasetRef {
        dataset_id: report.dataset_id.clone(),
        version: report.removed_version.clone(),
    };
    match &report.scope {
        None => refused("the report names no scope (subject, whole data set or leaving)".into()),
        Some(Scope::NodeLeaving(_)) => {
            let removed = record.dataset.as_ref().map(|d| d.reference());
            record.left_ms = Some(unix_ms(SystemTime::now()));
            federation.store.put_node(&record).await?;
            federation.nodes.left(node_id);
            Ok((ErasureScope::NodeLeaving, removed, None))
        }
        Some(scope) => {
            if removed.dataset_id.is_empty() || removed.version.is_empty() {
                return refused("dataset_id and removed_version are required".into());
            }
            let replacement = replacement_of(&record, &removed)?;
            let scope = match scope {
                Scope::SubjectPseudonym(pseudonym) if is_pseudonym(pseudonym) => {
                    ErasureScope::Subject {
                        pseudonym: pseudonym.clone(),
                        dataset: removed.clone(),
                    }
                }
                Scope::SubjectPseudonym(_) => {
                    return refused(
                        "subject_pseudonym must be 64 lowercase hex digits (an HMAC-SHA256), \
                         never the subject's identifier"
                            .into(),
                    );
                }
                _ => ErasureScope::Dataset {
                    dataset: removed.clone(),
                },
            };
            Ok((scope, Some(removed), Some(replacement)))
        }
    }
}

/// The version of `removed`'s data set the node registered after removing
/// the rows: it must have registered one, and not `removed` itself.
fn replacement_of(record: &NodeRecord, removed: &DatasetRef) -> Result<DatasetRef, ErasureError> {
    let node_id = &record.node_id;
    match record.dataset.as_ref().map(|d| d.reference()) {
        Some(now) if now.dataset_id == removed.dataset_id && now != *removed => Ok(now),
        Some(now) if now == *removed => Err(ErasureError::Refused(format!(
            "node {node_id} still has {removed} registered: remove the rows, \
             register the new version, then report"
        ))),
        _ => Err(ErasureError::Refused(format!(
            "node {node_id} has no version of data set {:?} registered",
            removed.dataset_id
        ))),
    }
}

/// Records a node's erasure report and taints what learned from the data; if
/// the head is tainted, queues a rollback and interrupts the round in flight.
pub async fn receive(
    federation: &Federation,
    live: &LiveRound,
    node_id: &str,
    report: &v1::ErasureReport,
) -> Result<Receipt, ErasureError> {
    let _commits = live.lock_commits().await;
    let (scope, removed, replacement) = scope_of(federation, node_id, report).await?;
    let store = &federation.store;
    let entries = stored_entries(store).await?;
    let removed_data = match &scope {
        ErasureScope::NodeLeaving => None,
        _ => removed.as_ref(),
    };
    let sources = erased_sources(&entries, node_id, removed_data, replacement.as_ref());
    let lineage = Lineage::from_entries(&entries);
    let tainted: Vec<String> = lineage
        .influenced_by_any(&sources)
        .into_iter()
        .map(|m| m.model_version)
        .collect();
    let head = store
        .head()
        .await?
        .ok_or_else(|| ErasureError::Refused("the federation has no head model yet".into()))?;
    let rollback = rollback_target(&lineage, &head, &tainted);
    let exempt = matches!(scope, ErasureScope::NodeLeaving).then_some(node_id);
    let awaiting = !Copies::of(&entries).awaiting(&tainted, exempt).is_empty();
    let receipt = Receipt {
        request_id: hex::encode(rand::random::<[u8; 8]>()),
        deadline_ms: unix_ms(SystemTime::now()) + DEADLINE_MS,
        tainted,
        rollback_to: rollback.as_ref().map(|(model, _)| model.clone()),
    };
    let closes_now = rollback.is_none() && !awaiting;
    let events = request_events(
        &receipt,
        node_id,
        scope,
        removed,
        replacement,
        &head,
        closes_now,
    );
    let remediations =
        with_remediation(store, &receipt.request_id, rollback, &head, closes_now).await?;
    let marks: Vec<(String, String)> = (receipt.tainted.iter())
        .map(|m| (m.clone(), receipt.request_id.clone()))
        .collect();
    federation
        .audit_log
        .commit_audited(store, events, async |batch| {
            store
                .commit_erasure_step(&marks, &remediations, None, batch)
                .await
        })
        .await?;
    if receipt.rollback_to.is_some() {
        // A round in flight started from a tainted model: stop waiting for
        // it. A finished federation's engine (serving after finish) wakes.
        live.interrupt();
    }
    tracing::info!(request_id = %receipt.request_id, node = node_id, tainted = receipt.tainted.len(), rollback_to = ?receipt.rollback_to, "erasure request received");
    Ok(receipt)
}

/// What an erasure takes out of the models. A node leaving: everything it
/// contributed. Else every version of the data set the node registered but
/// the `replacement`, not only the `removed` one: rows removed from one
/// version were usually in the earlier ones too, and the coordinator cannot
/// tell which held them, so it takes them all to have.
fn erased_sources(
    entries: &[AuditEntry],
    node_id: &str,
    removed: Option<&DatasetRef>,
    replacement: Option<&DatasetRef>,
) -> Vec<Source> {
    let Some(removed) = removed else {
        return vec![Source::Node(node_id.to_owned())];
    };
    let mut versions = vec![removed.version.clone()];
    for entry in entries {
        if let AuditEvent::DatasetRegistered {
            node_id: registrant,
            dataset,
        } = &entry.event
            && registrant == node_id
            && dataset.dataset_id == removed.dataset_id
            && replacement.is_none_or(|r| r.version != dataset.version)
            && !versions.contains(&dataset.version)
        {
            versions.push(dataset.version.clone());
        }
    }
    (versions.into_iter())
        .map(|version| Source::Dataset {
            dataset_id: removed.dataset_id.clone(),
            version: Some(version),
        })
        .collect()
}

/// The request's first three steps; with no rollback to wait for, its
/// remediation too, and its closing if no node holds a tainted model it has
/// not withdrawn (`closes_now`).
fn request_events(
    receipt: &Receipt,
    node_id: &str,
    scope: ErasureScope,
    removed: Option<DatasetRef>,
    replacement: Option<DatasetRef>,
    head: &FederationHead,
    closes_now: bool,
) -> Vec<AuditEvent> {
    let request_id = &receipt.request_id;
    let mut events = vec![
        AuditEvent::ErasureReceived {
            request_id: request_id.clone(),
            node_id: node_id.to_owned(),
            scope,
            deadline_ms: receipt.deadline_ms,
        },
        AuditEvent::ErasureDataRemoved {
            request_id: request_id.clone(),
            removed,
            replacement,
        },
        AuditEvent::ErasureModelsIdentified {
            request_id: request_id.clone(),
            tainted: receipt.tainted.clone(),
            rollback_to: receipt.rollback_to.clone(),
        },
    ];
    if receipt.rollback_to.is_none() {
        events.push(AuditEvent::ErasureRemediated {
            request_id: request_id.clone(),
            model_version: head.model_version.clone(),
            retrain_stopped: None,
        });
    }
    if closes_now {
        events.push(AuditEvent::ErasureClosed {
            request_id: request_id.clone(),
        });
    }
    events
}

/// The stored remediations, with this request's unless it `closes_now`: if it
/// rolls back, retrained until the head is back at the furthest round any
/// pending request had seen; if not, remediated already and waiting for the
/// withdrawals.
async fn with_remediation(
    store: &Store,
    request_id: &str,
    rollback: Option<(String, u64)>,
    head: &FederationHead,
    closes_now: bool,
) -> Result<Vec<Remediation>, StoreError> {
    let mut remediations = store.remediations().await?;
    if closes_now {
        return Ok(remediations);
    }
    let remediation = match rollback {
        Some((rollback_to, rollback_rounds)) => Remediation {
            request_id: request_id.to_owned(),
            rollback_to,
            rollback_rounds,
            until_round: (remediations.iter().filter(|r| !r.remediated))
                .map(|r| r.until_round)
                .fold(head.completed_rounds, u64::max),
            applied: false,
            remediated: false,
        },
        None => Remediation {
            request_id: request_id.to_owned(),
            rollback_to: head.model_version.clone(),
            rollback_rounds: head.completed_rounds,
            until_round: head.completed_rounds,
            applied: true,
            remediated: true,
        },
    };
    remediations.push(remediation);
    Ok(remediations)
}

/// The last untainted model on the head's path and the rounds it had seen, if
/// the head is tainted.
fn rollback_target(
    lineage: &Lineage,
    head: &FederationHead,
    tainted: &[String],
) -> Option<(String, u64)> {
    if !tainted.contains(&head.model_version) {
        return None;
    }
    let path = lineage.model(&head.model_version).ok()?;
    let first = path
        .rounds
        .iter()
        .find(|step| tainted.contains(&step.model_out))?;
    Some((first.model_in.clone(), first.round.saturating_sub(1)))
}

/// Whether the store holds a rollback not applied yet (a request that
/// arrived before the last stop): the round engine applies it first.
pub async fn rollback_pending(store: &Store) -> Result<bool, StoreError> {
    Ok(store.remediations().await?.iter().any(|r| !r.applied))
}

/// The round engine's hook, called before every round and when the privacy
/// budget stops the federation (`stopped`, with why).
///
/// Requests whose retraining has caught up with where the head was are
/// remediated and closed. Stopped, every rolled-back request is: the rollback
/// already took the erased data out of the head and the tainted models are
/// not served, so it is remediated at the head, the log saying why the
/// retraining stopped; it does not stay open, nor go overdue.
///
/// Not stopped, a pending rollback is then applied: the head moves back to
/// the earliest target, the strategy state to that round's, and the round in
/// flight may open stages again. Returns the new head if it moved.
pub async fn between_rounds(
    federation: &Federation,
    live: &LiveRound,
    head: &FederationHead,
    stopped: Option<&str>,
) -> Result<Option<FederationHead>, ErasureError> {
    let _commits = live.lock_commits().await;
    if remediate_caught_up(federation, head, stopped).await? {
        // Acknowledgements and the patience close the others as they come.
        close_withdrawn_locked(federation).await?;
    }
    if stopped.is_some() {
        return Ok(None);
    }
    apply_rollback(federation, live).await
}

/// Moves the head back to the earliest pending rollback target. Call with
/// the commit lock.
async fn apply_rollback(
    federation: &Federation,
    live: &LiveRound,
) -> Result<Option<FederationHead>, ErasureError> {
    let store = &federation.store;
    let mut remediations = store.remediations().await?;
    let Some(target) = remediations
        .iter()
        .filter(|r| !r.applied)
        .min_by_key(|r| r.rollback_rounds)
        .cloned()
    else {
        return Ok(None);
    };
    let mut request_ids = Vec::new();
    for remediation in remediations.iter_mut().filter(|r| !r.applied) {
        remediation.applied = true;
        request_ids.push(remediation.request_id.clone());
    }
    let head = FederationHead {
        schema: SCHEMA_VERSION,
        completed_rounds: target.rollback_rounds,
        model_version: target.rollback_to,
    };
    let rolled_back = AuditEvent::HeadRolledBack {
        request_ids,
        model_version: head.model_version.clone(),
        completed_rounds: head.completed_rounds,
    };
    federation
        .audit_log
        .commit_audited(store, vec![rolled_back], async |batch| {
            store
                .commit_erasure_step(&[], &remediations, Some(&head), batch)
                .await
        })
        .await?;
    live.resume();
    tracing::info!(model = %head.model_version, completed_rounds = head.completed_rounds, "head rolled back for erasure; retraining");
    Ok(Some(head))
}

/// Remediates the applied requests the head has caught up with (all of them
/// if the retraining `stopped`); returns whether it remediated any. Call with
/// the commit lock.
async fn remediate_caught_up(
    federation: &Federation,
    head: &FederationHead,
    stopped: Option<&str>,
) -> Result<bool, ErasureError> {
    let store = &federation.store;
    let mut remediations = store.remediations().await?;
    let mut events = Vec::new();
    for r in remediations.iter_mut().filter(|r| {
        r.applied && !r.remediated && (stopped.is_some() || head.completed_rounds >= r.until_round)
    }) {
        r.remediated = true;
        events.push(AuditEvent::ErasureRemediated {
            request_id: r.request_id.clone(),
            model_version: head.model_version.clone(),
            retrain_stopped: stopped.map(str::to_owned),
        });
    }
    if events.is_empty() {
        return Ok(false);
    }
    federation
        .audit_log
        .commit_audited(store, events, async |batch| {
            store
                .commit_erasure_step(&[], &remediations, None, batch)
                .await
        })
        .await?;
    Ok(true)
}

/// Closes the remediated requests that no node holds a tainted model of any
/// more (each holder acknowledged withdrawing it), and those whose
/// withdrawal patience (`server.withdrawal_patience_hours`) ran out, the
/// holders that did not acknowledge recorded as unreachable. Called when a
/// node acknowledges, between rounds once a request is remediated, and by
/// [`watch_withdrawal_patience`] (which reads the log once a minute only
/// while a remediated request waits).
pub async fn close_withdrawn(
    federation: &Federation,
    live: &LiveRound,
) -> Result<(), ErasureError> {
    let _commits = live.lock_commits().await;
    close_withdrawn_locked(federation).await
}

/// [`close_withdrawn`], with the commit lock held.
async fn close_withdrawn_locked(federation: &Federation) -> Result<(), ErasureError> {
    let store = &federation.store;
    let remediations = store.remediations().await?;
    if !remediations.iter().any(|r| r.remediated) {
        return Ok(());
    }
    let now_ms = unix_ms(SystemTime::now());
    let requests = statuses(&stored_entries(store).await?, now_ms);
    let patience_ms =
        (federation.config.server.withdrawal_patience_hours).saturating_mul(3_600_000);
    let mut events = Vec::new();
    let mut open = Vec::new();
    for remediation in remediations {
        let request = requests
            .iter()
            .find(|s| s.request_id == remediation.request_id);
        match request.filter(|_| remediation.remediated) {
            Some(request) => match closing_events(request, now_ms, patience_ms) {
                Some(closing) => events.extend(closing),
                None => open.push(remediation),
            },
            None => open.push(remediation),
        }
    }
    if events.is_empty() {
        return Ok(());
    }
    federation
        .audit_log
        .commit_audited(store, events, async |batch| {
            store.commit_erasure_step(&[], &open, None, batch).await
        })
        .await?;
    Ok(())
}

/// A remediated request's last entries, if it may close now: every holder
/// withdrew, or the patience ran out and the rest are recorded unreachable.
fn closing_events(
    request: &ErasureStatus,
    now_ms: u64,
    patience_ms: u64,
) -> Option<Vec<AuditEvent>> {
    let request_id = request.request_id.clone();
    let mut events = Vec::new();
    if !request.awaiting_withdrawal.is_empty() {
        if now_ms < request.received_ms.saturating_add(patience_ms) {
            return None;
        }
        events.push(AuditEvent::WithdrawalsUnacknowledged {
            request_id: request_id.clone(),
            node_ids: request.awaiting_withdrawal.clone(),
        });
    }
    events.push(AuditEvent::ErasureClosed { request_id });
    Some(events)
}

/// How often [`watch_withdrawal_patience`] looks for requests whose
/// withdrawal patience ran out (which is counted in hours).
const PATIENCE_CHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// Closes requests whose withdrawal patience ran out while nothing else
/// happened (no round, no poll): checks every minute until shutdown.
pub async fn watch_withdrawal_patience(
    federation: std::sync::Arc<Federation>,
    live: std::sync::Arc<LiveRound>,
) {
    let mut shutdown = federation.shutdown_signal();
    let mut ticks = tokio::time::interval(PATIENCE_CHECK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        if let Err(error) = close_withdrawn(&federation, &live).await {
            tracing::warn!(%error, "closing erasure requests whose withdrawal patience ran out failed; retried in a minute");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rollback_target_is_the_model_before_the_first_tainted_round() {
        use crate::audit::lineage::tests::completed;
        let lineage = Lineage::from_entries(&[
            completed(0, 1, "m0", "m1", &[("a", "v1")]),
            completed(1, 2, "m1", "m2", &[("a", "v2")]),
            completed(2, 3, "m2", "m3", &[("a", "v2")]),
        ]);
        let head = |model: &str, rounds| FederationHead {
            schema: SCHEMA_VERSION,
            completed_rounds: rounds,
            model_version: model.into(),
        };
        let tainted: Vec<String> = lineage
            .influenced_by(&Source::dataset("bc@v2").unwrap())
            .into_iter()
            .map(|m| m.model_version)
            .collect();
        assert_eq!(tainted, ["m2", "m3"]);
        assert_eq!(
            rollback_target(&lineage, &head("m3", 3), &tainted),
            Some(("m1".into(), 1))
        );
        assert_eq!(rollback_target(&lineage, &head("m1", 1), &tainted), None);
    }

    fn registered(seq: u64, node_id: &str, version: &str) -> AuditEntry {
        AuditEntry {
            schema: crate::audit::AUDIT_SCHEMA,
            seq,
            time_ms: seq,
            event: AuditEvent::DatasetRegistered {
                node_id: node_id.into(),
                dataset: crate::store::records::RegisteredDataset {
                    dataset_id: "bc".into(),
                    version: version.into(),
                    content_sha256: String::new(),
                    row_count: 1,
                    data_categories: Vec::new(),
                    legal_basis: String::new(),
                },
            },
        }
    }

    #[test]
    fn an_erasure_takes_out_the_earlier_versions_that_may_have_held_the_rows() {
        use crate::audit::lineage::tests::completed;
        // a trains on v1, then on v2 (v1 plus rows); the subject was in both,
        // and a reports it removed from v2, registering v3.
        let entries = [
            registered(0, "a", "v1"),
            registered(1, "b", "w1"),
            completed(2, 1, "m0", "m1", &[("a", "v1"), ("b", "w1")]),
            registered(3, "a", "v2"),
            completed(4, 2, "m1", "m2", &[("a", "v2"), ("b", "w1")]),
            registered(5, "a", "v3"),
        ];
        let reference = |version: &str| DatasetRef {
            dataset_id: "bc".into(),
            version: version.into(),
        };
        let sources = erased_sources(
            &entries,
            "a",
            Some(&reference("v2")),
            Some(&reference("v3")),
        );
        let versions: Vec<_> = (sources.iter())
            .map(|s| match s {
                Source::Dataset { version, .. } => version.clone().unwrap_or_default(),
                Source::Node(node) => node.clone(),
            })
            .collect();
        assert_eq!(versions, ["v2", "v1"], "not v3, nor b's w1");
        let lineage = Lineage::from_entries(&entries);
        let tainted: Vec<String> = (lineage.influenced_by_any(&sources).into_iter())
            .map(|m| m.model_version)
            .collect();
        assert_eq!(tainted, ["m1", "m2"]);
        let head = FederationHead {
            schema: SCHEMA_VERSION,
            completed_rounds: 2,
            model_version: "m2".into(),
        };
        // Back to the initial model: m1 learned from v1, which held the rows.
        assert_eq!(
            rollback_target(&lineage, &head, &tainted),
            Some(("m0".into(), 0))
        );
        // A node leaving takes out everything it contributed.
        let leaving = erased_sources(&entries, "b", None, None);
        assert_eq!(leaving, [Source::Node("b".into())]);
    }

    #[test]
    fn only_a_pseudonym_is_accepted_as_a_subject() {
        assert!(is_pseudonym(&"0a".repeat(32)));
        assert!(!is_pseudonym("patient-42"));
        assert!(!is_pseudonym(&"0A".repeat(32)));
    }
    #[test]
    fn a_request_closes_when_its_holders_withdrew_or_its_patience_ran_out() {
        let request = |awaiting: &[&str]| ErasureStatus {
            request_id: "r".into(),
            node_id: "hospital-a".into(),
            scope: ErasureScope::NodeLeaving,
            received_ms: 1_000,
            deadline_ms: 1_000 + DEADLINE_MS,
            steps: Vec::new(),
            tainted: vec!["m1".into()],
            remediated_model: Some("m0".into()),
            retrain_stopped: None,
            closed_ms: None,
            withdrawn_by: Vec::new(),
            holders: vec!["b".into(), "c".into()],
            awaiting_withdrawal: awaiting.iter().map(|n| (*n).to_owned()).collect(),
            unacknowledged: Vec::new(),
            overdue: false,
        };
        let closed = AuditEvent::ErasureClosed {
            request_id: "r".into(),
        };
        assert_eq!(
            closing_events(&request(&[]), 1_001, 500),
            Some(vec![closed.clone()])
        );
        assert_eq!(closing_events(&request(&["c"]), 1_499, 500), None);
        assert_eq!(
            closing_events(&request(&["c"]), 1_500, 500),
            Some(vec![
                AuditEvent::WithdrawalsUnacknowledged {
                    request_id: "r".into(),
                    node_ids: vec!["c".into()],
                },
                closed
            ])
        );
    }
}
