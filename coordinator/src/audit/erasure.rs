//! Erasure requests (GDPR Art. 17) as the audit log tells them: each
//! request's steps (received, data removed, models identified, rolled back,
//! remediated, closed) with their times, and whether it was closed within its
//! deadline. Computed from the log alone, so an auditor gets the same answer
//! from a log it fetched and verified. The workflow that writes these steps is
//! `crate::rounds::unlearning`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{AuditEntry, AuditEvent, ErasureScope, ROUND_STARTED_RECORDS_RECEIPT};

/// GDPR Art. 12(3): one month to act on a request. Counted as 30 days.
pub const DEADLINE_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// One request as the log tells it, for `audit erasures`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErasureStatus {
    /// The request's id.
    pub request_id: String,
    /// The node that reported it.
    pub node_id: String,
    /// What it covers.
    pub scope: ErasureScope,
    /// When it was received, Unix ms.
    pub received_ms: u64,
    /// When it must be closed by, Unix ms.
    pub deadline_ms: u64,
    /// (step, time) in the order they happened.
    pub steps: Vec<(String, u64)>,
    /// The model versions that learned from the data.
    pub tainted: Vec<String>,
    /// The model version the request was remediated at.
    pub remediated_model: Option<String>,
    /// Why the retraining stopped short, if it did (the privacy budget).
    pub retrain_stopped: Option<String>,
    /// When it was closed, Unix ms.
    pub closed_ms: Option<u64>,
    /// (node, time) for each node that acknowledged withdrawing one of its
    /// tainted models: deleted from its models folder and no longer served.
    pub withdrawn_by: Vec<(String, u64)>,
    /// The nodes that received one of the tainted models: downloaded it, or
    /// were sampled to train from it (see [`Copies::of`]). A node that left,
    /// reporting the request itself, is not counted: it cannot poll.
    pub holders: Vec<String>,
    /// The holders that have not yet acknowledged withdrawing every tainted
    /// model they received: the request closes once this is empty (or the
    /// rest are recorded in `unacknowledged`).
    pub awaiting_withdrawal: Vec<String>,
    /// Holders recorded as unreachable when the withdrawal patience ran out.
    pub unacknowledged: Vec<String>,
    /// Not closed by its deadline (still open after it, or closed late).
    pub overdue: bool,
}

/// Every erasure request in the log, with its steps, as of `now_ms`.
pub fn statuses(entries: &[AuditEntry], now_ms: u64) -> Vec<ErasureStatus> {
    let mut out: Vec<ErasureStatus> = Vec::new();
    for entry in entries {
        follow(&mut out, entry);
    }
    let copies = Copies::of(entries);
    for status in &mut out {
        status.overdue = status.closed_ms.unwrap_or(now_ms) > status.deadline_ms;
        let exempt = matches!(status.scope, ErasureScope::NodeLeaving).then_some(&*status.node_id);
        status.holders = copies.holders(&status.tainted, exempt);
        status.awaiting_withdrawal = copies.awaiting(&status.tainted, exempt);
    }
    out
}

/// Adds `request_id`'s step `name` at `time`; returns the request.
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

/// Moves the requests in `out` on by one log entry.
fn follow(out: &mut Vec<ErasureStatus>, entry: &AuditEntry) {
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
            withdrawn_by: Vec::new(),
            holders: Vec::new(),
            awaiting_withdrawal: Vec::new(),
            unacknowledged: Vec::new(),
            overdue: false,
        }),
        AuditEvent::ErasureDataRemoved { request_id, .. } => {
            step(out, request_id, "data_removed", time);
        }
        AuditEvent::ErasureModelsIdentified {
            request_id,
            tainted,
            ..
        } => {
            if let Some(status) = step(out, request_id, "models_identified", time) {
                status.tainted = tainted.clone();
            }
        }
        AuditEvent::HeadRolledBack { request_ids, .. } => {
            for id in request_ids {
                step(out, id, "rolled_back", time);
            }
        }
        AuditEvent::ErasureRemediated {
            request_id,
            model_version,
            retrain_stopped,
        } => {
            if let Some(status) = step(out, request_id, "remediated", time) {
                status.remediated_model = Some(model_version.clone());
                status.retrain_stopped.clone_from(retrain_stopped);
            }
        }
        AuditEvent::TaintedModelsWithdrawn { node_id, models } => {
            withdrawn(out, node_id, models, time);
        }
        AuditEvent::WithdrawalsUnacknowledged {
            request_id,
            node_ids,
        } => {
            let name = "withdrawals_unacknowledged";
            if let Some(status) = step(out, request_id, name, time) {
                status.unacknowledged.clone_from(node_ids);
            }
        }
        AuditEvent::ErasureClosed { request_id } => {
            if let Some(status) = step(out, request_id, "closed", time) {
                status.closed_ms = Some(time);
            }
        }
        _ => {}
    }
}

/// Which model versions each node downloaded, and which tainted versions it
/// acknowledged withdrawing, from the log.
#[derive(Debug, Default)]
pub struct Copies {
    downloaded: BTreeMap<String, BTreeSet<String>>,
    withdrawn: BTreeMap<String, BTreeSet<String>>,
}

impl Copies {
    /// The downloads and withdrawals in `entries`. From audit schema 2 a
    /// round's sampled nodes count as holding its `model_in` (`RoundStarted`):
    /// the service does not log their downloads of it one by one, and a
    /// sampled node that never fetched it is waited for all the same (it
    /// acknowledges the whole taint list it hears), which errs on the side of
    /// the data subject. Entries of schema 1 keep their meaning: there every
    /// download had its own entry.
    pub fn of(entries: &[AuditEntry]) -> Self {
        let mut copies = Self::default();
        for entry in entries {
            match &entry.event {
                AuditEvent::ModelDownloaded {
                    node_id,
                    model_version,
                } => copies.received(node_id, model_version),
                AuditEvent::RoundStarted {
                    model_in, sampled, ..
                } if entry.schema >= ROUND_STARTED_RECORDS_RECEIPT => {
                    for node_id in sampled {
                        copies.received(node_id, model_in);
                    }
                }
                AuditEvent::TaintedModelsWithdrawn { node_id, models } => {
                    let versions = copies.withdrawn.entry(node_id.clone()).or_default();
                    versions.extend(models.iter().cloned());
                }
                _ => {}
            }
        }
        copies
    }

    fn received(&mut self, node_id: &str, model_version: &str) {
        let versions = self.downloaded.entry(node_id.to_owned()).or_default();
        versions.insert(model_version.to_owned());
    }

    /// The nodes (but `exempt`) that downloaded one of `tainted`, sorted.
    pub fn holders(&self, tainted: &[String], exempt: Option<&str>) -> Vec<String> {
        (self.downloaded.iter())
            .filter(|(node, versions)| {
                Some(node.as_str()) != exempt && tainted.iter().any(|t| versions.contains(t))
            })
            .map(|(node, _)| node.clone())
            .collect()
    }

    /// The [`Self::holders`] of `tainted` that have not acknowledged
    /// withdrawing each tainted version they downloaded, sorted.
    pub fn awaiting(&self, tainted: &[String], exempt: Option<&str>) -> Vec<String> {
        let mut holders = self.holders(tainted, exempt);
        holders.retain(|node| !self.withdrew_all(node, tainted));
        holders
    }

    /// Whether `node` acknowledged withdrawing each of `tainted` it downloaded.
    fn withdrew_all(&self, node: &str, tainted: &[String]) -> bool {
        let none = BTreeSet::new();
        let downloaded = self.downloaded.get(node).unwrap_or(&none);
        let withdrawn = self.withdrawn.get(node).unwrap_or(&none);
        (tainted.iter())
            .filter(|t| downloaded.contains(*t))
            .all(|t| withdrawn.contains(t))
    }
}

/// Marks `node_id`'s acknowledgement on every request one of whose tainted
/// `models` it withdrew (the first time only).
fn withdrawn(out: &mut [ErasureStatus], node_id: &str, models: &[String], time: u64) {
    for status in out.iter_mut().filter(|s| {
        s.tainted.iter().any(|t| models.contains(t))
            && !s.withdrawn_by.iter().any(|(node, _)| node == node_id)
    }) {
        status.withdrawn_by.push((node_id.to_owned(), time));
    }
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
    fn a_request_awaits_every_holder_of_a_tainted_model_until_it_withdraws_them_all() {
        let downloaded = |seq, node: &str, model: &str| {
            entry(
                seq,
                seq * 10,
                AuditEvent::ModelDownloaded {
                    node_id: node.into(),
                    model_version: model.into(),
                },
            )
        };
        let withdrew = |seq, node: &str, models: &[&str]| {
            entry(
                seq,
                seq * 10,
                AuditEvent::TaintedModelsWithdrawn {
                    node_id: node.into(),
                    models: models.iter().map(|m| (*m).to_owned()).collect(),
                },
            )
        };
        let request = |scope| {
            entry(
                4,
                40,
                AuditEvent::ErasureReceived {
                    request_id: "r".into(),
                    node_id: "leaver".into(),
                    scope,
                    deadline_ms: 40 + DEADLINE_MS,
                },
            )
        };
        let identified = entry(
            5,
            50,
            AuditEvent::ErasureModelsIdentified {
                request_id: "r".into(),
                tainted: vec!["m1".into(), "m2".into()],
                rollback_to: Some("m0".into()),
            },
        );
        let mut entries = vec![
            downloaded(0, "a", "m0"),
            downloaded(1, "a", "m1"),
            downloaded(2, "b", "m0"),
            downloaded(3, "c", "m2"),
            request(ErasureScope::NodeLeaving),
            identified,
            // `a` withdrew one of the two (the other it never had), `c` none
            // yet, `leaver` is the node leaving.
            withdrew(6, "a", &["m1"]),
            downloaded(7, "leaver", "m1"),
        ];
        let status = |entries: &[AuditEntry]| statuses(entries, 100).remove(0);
        let waiting = status(&entries);
        assert_eq!(waiting.holders, ["a", "c"], "b never had a tainted model");
        assert_eq!(waiting.awaiting_withdrawal, ["c"]);
        entries.push(withdrew(8, "c", &["m1"]));
        assert_eq!(
            status(&entries).awaiting_withdrawal,
            ["c"],
            "not the one it had"
        );
        entries.push(withdrew(9, "c", &["m2"]));
        assert!(status(&entries).awaiting_withdrawal.is_empty());
        // Had it been a subject's erasure, the reporting node is a holder too.
        entries[4] = request(ErasureScope::Dataset {
            dataset: crate::store::records::DatasetRef {
                dataset_id: "d".into(),
                version: "v".into(),
            },
        });
        assert_eq!(status(&entries).awaiting_withdrawal, ["leaver"]);
    }

    #[test]
    fn a_round_s_sampled_nodes_hold_its_starting_model_without_a_download_entry_each() {
        let started = entry(
            0,
            0,
            AuditEvent::RoundStarted {
                round: 2,
                attempt: 1,
                model_in: "m1".into(),
                sampled: vec!["a".into(), "b".into()],
            },
        );
        let copies = Copies::of(std::slice::from_ref(&started));
        let tainted = ["m1".to_owned()];
        assert_eq!(copies.holders(&tainted, None), ["a", "b"]);
        assert_eq!(copies.holders(&tainted, Some("b")), ["a"]);
        assert!(copies.holders(&["m2".to_owned()], None).is_empty());
        // A log written before schema 2 logged every download: there a
        // round's start records the sample only.
        let before = AuditEntry {
            schema: 1,
            ..started
        };
        assert!(Copies::of(&[before]).holders(&tainted, None).is_empty());
    }
}
