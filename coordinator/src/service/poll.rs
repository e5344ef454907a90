//! A node's long-poll: the task the open stage has for it, `Finished` once
//! the rounds are done, or `Idle` when the poll's time is up. Every task
//! carries the federation's CA-signed revocation list, so that nodes refuse
//! revoked secure-aggregation neighbours ([`signed_revocations`]).

use std::time::Duration;

use cohort_crypto::pki::SIGNED_REVOKED_FILE;
use cohort_proto::v1;

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

/// The CA-signed revocation list beside the configured one
/// (`revoked.signed` beside `revoked.txt`, both written by `pki revoke`),
/// read as it is now; empty without one. The coordinator only relays it: it
/// cannot forge, shorten or roll it back, which nodes check.
pub(super) async fn signed_revocations(federation: &Federation) -> Vec<u8> {
    let Some(list) = &federation.config.server.revocation_list else {
        return Vec::new();
    };
    let path = list.with_file_name(SIGNED_REVOKED_FILE);
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
