//! Erasure requests (GDPR Art. 17, the right to erasure) carried through to the
//! model. A node that received a request removes the subject's rows (or a whole
//! data set, or leaves), registers the new data set version, and reports it.
//! The coordinator then, each step an audit entry with its time:
//!
//! 1. **received**: the request, with its one-month deadline (Art. 12(3));
//! 2. **data removed**: the removed and replacement data set versions;
//! 3. **models identified**: every model version that learned from the removed
//!    version, directly or by starting from one that did ([`super::lineage`]).
//!    They are *tainted*: FetchModel no longer serves them;
//! 4. **remediated**: exact unlearning. The round engine rolls the head back to
//!    the last untainted version on its path ([`apply_rollback`]) and reruns
//!    the later rounds with the same round configuration and the nodes'
//!    current data set versions; once the head is back where it was, the
//!    request is remediated and
//! 5. **closed**.
//!
//! A request for a federation that already finished is retrained without a
//! restart when the coordinator serves after finish
//! (`server.serve_after_finish`): the engine waits in [`wait_for_rollback`],
//! and the federation leaves its finished state until the nodes, started
//! again, have rerun the rounds. Otherwise the rollback waits for the
//! coordinator's next start.
//!
//! When no model learned from the data (or the head is untainted), steps 4 and
//! 5 follow at once. Subjects appear only by their pseudonym (HMAC-SHA256 under
//! a key that stays on the node), never by identifier.

use std::collections::BTreeSet;
use std::time::SystemTime;

use cohort_proto::v1::{self, erasure_report::Scope};
use serde::Serialize;

use super::lineage::{Lineage, Source};
use super::{AuditEntry, AuditError, AuditEvent, ErasureScope, stored_entries};
use crate::federation::Federation;
use crate::rounds::stage::unix_ms;
use crate::store::StoreError;
use crate::store::records::{DatasetRef, FederationHead, Remediation, SCHEMA_VERSION};

/// GDPR Art. 12(3): one month to act on a request. Counted as 30 days.
pub const DEADLINE_MS: u64 = 30 * 24 * 60 * 60 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// The report cannot be acted on; the message says why.
    #[error("erasure report refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// What the node is told: its request's id, deadline and consequences.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    pub request_id: String,
    pub deadline_ms: u64,
    pub tainted: Vec<String>,
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

/// Checks a node's report and works out what it covers and what the node now
/// has registered instead. A node leaving is marked as left here.
async fn scope_of(
    federation: &Federation,
    node_id: &str,
    report: &v1::ErasureReport,
) -> Result<(ErasureScope, Option<DatasetRef>, Option<DatasetRef>), ErasureError> {
    let refused = |reason: String| Err(ErasureError::Refused(reason));
    let Some(mut record) = federation.store.node(node_id)? else {
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
            federation.store.put_node(&record)?;
            federation.node_left(node_id);
            Ok((ErasureScope::NodeLeaving, removed, None))
        }
        Some(scope) => {
            if removed.dataset_id.is_empty() || removed.version.is_empty() {
                return refused("dataset_id and removed_version are required".into());
            }
            let current = record.dataset.as_ref().map(|d| d.reference());
            let replacement = match current {
                Some(now) if now.dataset_id == removed.dataset_id && now != removed => now,
                Some(now) if now == removed => {
                    return refused(format!(
                        "node {node_id} still has {removed} registered: remove the rows, \
                         register the new version, then report"
                    ));
                }
                _ => {
                    return refused(format!(
                        "node {node_id} has no version of data set {:?} registered",
                        removed.dataset_id
                    ));
                }
            };
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

/// Records a node's erasure report and taints what learned from the data.
pub async fn receive(
    federation: &Federation,
    node_id: &str,
    report: &v1::ErasureReport,
) -> Result<Receipt, ErasureError> {
    let _commits = federation.commit_lock.lock().await;
    let (scope, removed, replacement) = scope_of(federation, node_id, report).await?;
    let store = &federation.store;
    let lineage = Lineage::from_entries(&stored_entries(store)?);
    let source = match (&scope, &removed) {
        (ErasureScope::NodeLeaving, _) | (_, None) => Source::Node(node_id.to_owned()),
        (_, Some(removed)) => Source::Dataset {
            dataset_id: removed.dataset_id.clone(),
            version: Some(removed.version.clone()),
        },
    };
    let tainted: Vec<String> = lineage
        .influenced_by(&source)
        .into_iter()
        .map(|m| m.model_version)
        .collect();
    let head = store
        .head()?
        .ok_or_else(|| ErasureError::Refused("the federation has no head model yet".into()))?;
    let rollback = rollback_target(&lineage, &head, &tainted);

    let request_id = hex::encode(rand::random::<[u8; 8]>());
    let now = unix_ms(SystemTime::now());
    let mut remediations = store.remediations()?;
    let mut events = vec![
        AuditEvent::ErasureReceived {
            request_id: request_id.clone(),
            node_id: node_id.to_owned(),
            scope,
            deadline_ms: now + DEADLINE_MS,
        },
        AuditEvent::ErasureDataRemoved {
            request_id: request_id.clone(),
            removed,
            replacement,
        },
        AuditEvent::ErasureModelsIdentified {
            request_id: request_id.clone(),
            tainted: tainted.clone(),
            rollback_to: rollback.as_ref().map(|(model, _)| model.clone()),
        },
    ];
    match &rollback {
        Some((model, rounds)) => {
            let until_round = remediations
                .iter()
                .map(|r| r.until_round)
                .fold(head.completed_rounds, u64::max);
            remediations.push(Remediation {
                request_id: request_id.clone(),
                rollback_to: model.clone(),
                rollback_rounds: *rounds,
                until_round,
                applied: false,
            });
        }
        None => events.extend([
            AuditEvent::ErasureRemediated {
                request_id: request_id.clone(),
                model_version: head.model_version.clone(),
                retrain_stopped: None,
            },
            AuditEvent::ErasureClosed {
                request_id: request_id.clone(),
            },
        ]),
    }
    let marks: Vec<(String, String)> = tainted
        .iter()
        .map(|m| (m.clone(), request_id.clone()))
        .collect();
    let audit = federation
        .audit_log
        .prepare(&federation.store, events)
        .await?;
    store
        .commit_erasure_step(&marks, &remediations, None, audit.batch())
        .await?;
    audit.stored();
    if rollback.is_some() {
        // A round in flight started from a tainted model: stop waiting for
        // it. A finished federation's engine (serving after finish) wakes.
        federation.rollback_queued();
    }
    tracing::info!(%request_id, node = node_id, tainted = tainted.len(), rollback_to = ?rollback, "erasure request received");
    Ok(Receipt {
        request_id,
        deadline_ms: now + DEADLINE_MS,
        tainted,
        rollback_to: rollback.map(|(model, _)| model),
    })
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

/// Whether a rollback waits for the engine: a round in flight then started
/// from a tainted model and must not be committed. Call with the commit lock.
pub fn rollback_pending(federation: &Federation) -> Result<bool, ErasureError> {
    Ok(federation.store.remediations()?.iter().any(|r| !r.applied))
}

/// For the engine of a finished federation that serves after finish: waits
/// until an erasure request has queued a rollback (true), or the coordinator
/// shuts down (false). A rollback queued before the call counts.
pub async fn wait_for_rollback(federation: &Federation) -> Result<bool, ErasureError> {
    let mut queued = federation.rollback_signal();
    let mut shutdown = federation.shutdown_signal();
    loop {
        queued.borrow_and_update();
        if *shutdown.borrow_and_update() {
            return Ok(false);
        }
        {
            let _commits = federation.commit_lock.lock().await;
            if rollback_pending(federation)? {
                return Ok(true);
            }
        }
        let changed = tokio::select! {
            changed = queued.changed() => changed,
            changed = shutdown.changed() => changed,
        };
        if changed.is_err() {
            return Ok(false);
        }
    }
}

/// Moves the head back to the earliest pending rollback target; the engine
/// calls this before every round. Returns the new head if it moved.
pub async fn apply_rollback(
    federation: &Federation,
) -> Result<Option<FederationHead>, ErasureError> {
    let _commits = federation.commit_lock.lock().await;
    let mut remediations = federation.store.remediations()?;
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
        model_version: target.rollback_to.clone(),
    };
    let audit = federation
        .audit_log
        .prepare(
            &federation.store,
            vec![AuditEvent::HeadRolledBack {
                request_ids,
                model_version: head.model_version.clone(),
                completed_rounds: head.completed_rounds,
            }],
        )
        .await?;
    federation
        .store
        .commit_erasure_step(&[], &remediations, Some(&head), audit.batch())
        .await?;
    audit.stored();
    federation.resume_stages();
    tracing::info!(model = %head.model_version, completed_rounds = head.completed_rounds, "head rolled back for erasure; retraining");
    Ok(Some(head))
}

/// After a committed round: remediations whose retraining has caught up with
/// where the head was are remediated and closed.
pub async fn after_commit(
    federation: &Federation,
    head: &FederationHead,
) -> Result<(), ErasureError> {
    close_remediations(federation, head, None).await
}

/// The federation stopped (its privacy budget allows no further round) with
/// the retraining of rolled-back requests cut short. The rollback already took
/// the erased data out of the head, and the tainted models are not served, so
/// each such request is remediated at the head, the log saying why the
/// retraining stopped, and closed; it does not stay open, nor go overdue.
pub async fn after_stop(
    federation: &Federation,
    head: &FederationHead,
    reason: &str,
) -> Result<(), ErasureError> {
    close_remediations(federation, head, Some(reason)).await
}

async fn close_remediations(
    federation: &Federation,
    head: &FederationHead,
    retrain_stopped: Option<&str>,
) -> Result<(), ErasureError> {
    let _commits = federation.commit_lock.lock().await;
    let (done, open): (Vec<_>, Vec<_>) =
        federation.store.remediations()?.into_iter().partition(|r| {
            r.applied && (retrain_stopped.is_some() || head.completed_rounds >= r.until_round)
        });
    if done.is_empty() {
        return Ok(());
    }
    let events = done
        .iter()
        .flat_map(|r| {
            [
                AuditEvent::ErasureRemediated {
                    request_id: r.request_id.clone(),
                    model_version: head.model_version.clone(),
                    retrain_stopped: retrain_stopped.map(str::to_owned),
                },
                AuditEvent::ErasureClosed {
                    request_id: r.request_id.clone(),
                },
            ]
        })
        .collect();
    let audit = federation
        .audit_log
        .prepare(&federation.store, events)
        .await?;
    federation
        .store
        .commit_erasure_step(&[], &open, None, audit.batch())
        .await?;
    audit.stored();
    Ok(())
}

/// One request as the log tells it, for `audit erasures`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErasureStatus {
    pub request_id: String,
    pub node_id: String,
    pub scope: ErasureScope,
    pub received_ms: u64,
    pub deadline_ms: u64,
    /// (step, time) in the order they happened.
    pub steps: Vec<(String, u64)>,
    pub tainted: Vec<String>,
    /// The model version the request was remediated at.
    pub remediated_model: Option<String>,
    /// Why the retraining stopped short, if it did (the privacy budget).
    pub retrain_stopped: Option<String>,
    pub closed_ms: Option<u64>,
    /// Not closed by its deadline (still open after it, or closed late).
    pub overdue: bool,
}

/// Every erasure request in the log, with its steps, as of `now_ms`.
pub fn statuses(entries: &[AuditEntry], now_ms: u64) -> Vec<ErasureStatus> {
    fn step<'a>(
        out: &'a mut [ErasureStatus],
        id: &str,
        name: &str,
        time: u64,
    ) -> Option<&'a mut ErasureStatus> {
        let status = out.iter_mut().find(|s| s.request_id == id)?;
        status.steps.push((name.to_owned(), time));
        Some(status)
    }
    let mut out: Vec<ErasureStatus> = Vec::new();
    for entry in entries {
        let time = entry.time_ms;
        match &entry.event {
            AuditEvent::ErasureReceived {
                request_id,
                node_id,
                scope,
                deadline_ms,
            } => out.push(ErasureStatus {
                request_id: request_id.clone(),
                node_id: node_id.clone(),
                scope: scope.clone(),
                received_ms: time,
                deadline_ms: *deadline_ms,
                steps: vec![("received".into(), time)],
                tainted: Vec::new(),
                remediated_model: None,
                retrain_stopped: None,
                closed_ms: None,
                overdue: false,
            }),
            AuditEvent::ErasureDataRemoved { request_id, .. } => {
                step(&mut out, request_id, "data_removed", time);
            }
            AuditEvent::ErasureModelsIdentified {
                request_id,
                tainted,
                ..
            } => {
                if let Some(status) = step(&mut out, request_id, "models_identified", time) {
                    status.tainted = tainted.clone();
                }
            }
            AuditEvent::HeadRolledBack { request_ids, .. } => {
                for id in request_ids {
                    step(&mut out, id, "rolled_back", time);
                }
            }
            AuditEvent::ErasureRemediated {
                request_id,
                model_version,
                retrain_stopped,
            } => {
                if let Some(status) = step(&mut out, request_id, "remediated", time) {
                    status.remediated_model = Some(model_version.clone());
                    status.retrain_stopped.clone_from(retrain_stopped);
                }
            }
            AuditEvent::ErasureClosed { request_id } => {
                if let Some(status) = step(&mut out, request_id, "closed", time) {
                    status.closed_ms = Some(time);
                }
            }
            _ => {}
        }
    }
    for status in &mut out {
        status.overdue = status.closed_ms.unwrap_or(now_ms) > status.deadline_ms;
    }
    out
}

/// The distinct tainted model versions of the requests in `statuses`.
pub fn tainted_models(statuses: &[ErasureStatus]) -> BTreeSet<String> {
    statuses
        .iter()
        .flat_map(|s| s.tainted.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AUDIT_SCHEMA;

    fn entry(seq: u64, time_ms: u64, event: AuditEvent) -> AuditEntry {
        AuditEntry {
            schema: AUDIT_SCHEMA,
            seq,
            time_ms,
            event,
        }
    }

    #[test]
    fn statuses_follow_every_step_and_flag_overdue_requests() {
        let received = |id: &str, time| {
            entry(
                0,
                time,
                AuditEvent::ErasureReceived {
                    request_id: id.into(),
                    node_id: "hospital-a".into(),
                    scope: ErasureScope::NodeLeaving,
                    deadline_ms: time + DEADLINE_MS,
                },
            )
        };
        let entries = [
            received("closed", 1_000),
            received("open", 2_000),
            entry(
                2,
                3_000,
                AuditEvent::ErasureModelsIdentified {
                    request_id: "closed".into(),
                    tainted: vec!["m1".into()],
                    rollback_to: Some("m0".into()),
                },
            ),
            entry(
                3,
                4_000,
                AuditEvent::HeadRolledBack {
                    request_ids: vec!["closed".into()],
                    model_version: "m0".into(),
                    completed_rounds: 0,
                },
            ),
            entry(
                4,
                5_000,
                AuditEvent::ErasureClosed {
                    request_id: "closed".into(),
                },
            ),
        ];
        let now = 2_000 + DEADLINE_MS + 1;
        let all = statuses(&entries, now);
        assert_eq!(all.len(), 2);
        let steps: Vec<_> = all[0].steps.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            steps,
            ["received", "models_identified", "rolled_back", "closed"]
        );
        assert_eq!(all[0].closed_ms, Some(5_000));
        assert!(!all[0].overdue, "closed in time");
        assert!(all[1].overdue, "open past its deadline");
        assert!(!statuses(&entries, 2_000 + DEADLINE_MS)[1].overdue);
        assert_eq!(tainted_models(&all), ["m1".to_owned()].into());
    }

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

    #[test]
    fn only_a_pseudonym_is_accepted_as_a_subject() {
        assert!(is_pseudonym(&"0a".repeat(32)));
        assert!(!is_pseudonym("patient-42"));
        assert!(!is_pseudonym(&"0A".repeat(32)));
    }
}
