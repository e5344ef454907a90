//! A node's long-poll: the task the open stage has for it, `Finished` once
//! the rounds are done, or `Idle` when the poll's time is up; with every
//! answer the list of tainted model versions, and with every request the
//! node's acknowledgement of the ones it withdrew ([`Withdrawals`]). Every
//! task carries the federation's CA-signed revocation list, so that nodes
//! refuse revoked secure-aggregation neighbours ([`signed_revocations`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cohort_proto::v1;
use tonic::Status;

use crate::audit::AuditEvent;
use crate::federation::Federation;
use crate::rounds::live::LiveRound;

/// What a node's poll comes back with.
#[derive(Debug)]
pub(super) enum PollOutcome {
    /// The open stage's task for the node.
    Task(Box<v1::Task>),
    /// Nothing for it within the poll timeout.
    Idle,
    /// The federation finished.
    Finished(v1::Finished),
    /// The coordinator is shutting down.
    ShuttingDown,
}

/// The outcome now, if there is one; a poll is also what keeps a node
/// available for sampling.
fn poll_now(federation: &Federation, live: &LiveRound, node_id: &str) -> Option<PollOutcome> {
    let finished = federation.finished();
    federation.nodes.polled(node_id, finished.is_some());
    if let Some(finished) = finished {
        return Some(PollOutcome::Finished(finished));
    }
    live.task_for(node_id)
        .map(|task| PollOutcome::Task(Box::new(task)))
}

/// The CA-signed revocation list the coordinator itself consults
/// (`server.revocation_list`, the `revoked.signed` that `pki revoke` writes),
/// read as it is now; empty without one. The coordinator only relays it: it
/// cannot forge, shorten or roll it back, which nodes check.
pub(super) async fn signed_revocations(federation: &Federation) -> Vec<u8> {
    let Some(path) = &federation.config.server.revocation_list else {
        return Vec::new();
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "signed revocation list unreadable; tasks go without it");
            Vec::new()
        }
    }
}

/// Waits for `node_id`'s task (or the finish) for at most the configured poll
/// timeout: woken by the stage, finish and shutdown signals, the timeout being
/// its only timer.
pub(super) async fn poll(federation: &Federation, live: &LiveRound, node_id: &str) -> PollOutcome {
    let timeout = Duration::from_millis(federation.config.server.poll_timeout_ms);
    let give_up = tokio::time::Instant::now() + timeout;
    let mut tasks = live.task_changes();
    let mut finished = federation.finished_signal();
    let mut shutdown = federation.shutdown_signal();
    loop {
        tasks.borrow_and_update();
        finished.borrow_and_update();
        if *shutdown.borrow_and_update() {
            return PollOutcome::ShuttingDown;
        }
        if let Some(outcome) = poll_now(federation, live, node_id) {
            return outcome;
        }
        tokio::select! {
            changed = tasks.changed() => if changed.is_err() { return PollOutcome::Idle },
            changed = finished.changed() => if changed.is_err() { return PollOutcome::Idle },
            _ = shutdown.changed() => return PollOutcome::ShuttingDown,
            () = tokio::time::sleep_until(give_up) => {
                return poll_now(federation, live, node_id).unwrap_or(PollOutcome::Idle);
            }
        }
    }
}

/// The most withdrawn versions one poll may acknowledge (a bound on the
/// work a request causes; far above any real taint list).
const MAX_WITHDRAWN_PER_POLL: usize = 10_000;

/// Tainted model versions each node has acknowledged withdrawing, so that the
/// audit log records each node and version once per coordinator run (kept in
/// memory: after a restart a node's standing acknowledgement is logged again,
/// once).
#[derive(Debug, Default)]
pub(super) struct Withdrawals {
    acknowledged: std::sync::Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl Withdrawals {
    /// Logs the tainted versions in `withdrawn` that `node_id` had not
    /// acknowledged before; versions that are not tainted are ignored. Returns
    /// whether it logged any.
    pub(super) async fn acknowledge(
        &self,
        federation: &Federation,
        node_id: &str,
        withdrawn: &[String],
    ) -> Result<bool, Status> {
        if withdrawn.len() > MAX_WITHDRAWN_PER_POLL {
            // Not refused: a node past the cap acknowledges the rest later.
            tracing::warn!(
                node = node_id,
                sent = withdrawn.len(),
                "acknowledgement past the per-poll cap: the rest is ignored"
            );
        }
        let withdrawn = &withdrawn[..withdrawn.len().min(MAX_WITHDRAWN_PER_POLL)];
        let new = self.reserve(federation, node_id, withdrawn).await?;
        if new.is_empty() {
            return Ok(false);
        }
        let event = AuditEvent::TaintedModelsWithdrawn {
            node_id: node_id.to_owned(),
            models: new.clone(),
        };
        let appended = federation
            .audit_log
            .append(&federation.store, vec![event])
            .await;
        if let Err(e) = appended {
            // Released, so that the next poll logs them.
            if let Some(known) = self.lock().get_mut(node_id) {
                for version in &new {
                    known.remove(version);
                }
            }
            return Err(Status::internal(e.to_string()));
        }
        tracing::info!(node = node_id, models = ?new, "tainted models withdrawn");
        Ok(true)
    }

    /// The tainted versions of `withdrawn` that `node_id` had not
    /// acknowledged, marked acknowledged under the lock (so that concurrent
    /// polls of one node log each version once).
    async fn reserve(
        &self,
        federation: &Federation,
        node_id: &str,
        withdrawn: &[String],
    ) -> Result<Vec<String>, Status> {
        let mut tainted = BTreeSet::new();
        for version in withdrawn {
            let is_tainted = federation
                .store
                .is_tainted(version)
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
            if is_tainted {
                tainted.insert(version.clone());
            }
        }
        let mut acknowledged = self.lock();
        let known = acknowledged.entry(node_id.to_owned()).or_default();
        let new: Vec<String> = tainted
            .into_iter()
            .filter(|version| known.insert(version.clone()))
            .collect();
        Ok(new)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeSet<String>>> {
        // A panic while holding it cannot leave the sets half-updated.
        self.acknowledged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Every tainted model version, for the poll answer.
pub(super) async fn taint_list(federation: &Federation) -> Result<Vec<String>, Status> {
    federation
        .store
        .tainted_models()
        .await
        .map_err(|e| Status::internal(e.to_string()))
}
