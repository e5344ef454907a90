//! Following a running federation round by round, from the coordinator's events.
//!
//! [`follow`] is the one event loop of this crate: the demo and the scenario
//! runner both use it. It turns each completed round into a [`RoundRow`], hands
//! every [`Progress`] to the caller as it happens, and returns when the
//! coordinator's round engine finishes. It waits on the coordinator and its event
//! channel only — nothing polls or sleeps.

use std::time::Instant;

use cohort_coordinator::federation::FederationEvent;
use cohort_coordinator::rounds::timing::RoundTiming;
use cohort_coordinator::store::records::{FederationHead, RoundOutcome};
use cohort_coordinator::{Coordinator, CoordinatorError};
use serde::Serialize;
use tokio::sync::broadcast;

/// One completed round, as the reports record it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundRow {
    /// The round's number.
    pub round: u64,
    /// Nodes asked to train; those not among the participants dropped out,
    /// were too late, or failed.
    pub sampled: usize,
    /// Nodes whose update went into the round's model.
    pub participants: usize,
    /// Federated evaluation of the round's model (example-weighted over the
    /// nodes' held-out rows); `None` if no node evaluated it.
    pub accuracy: Option<f64>,
    /// Federated evaluation loss of the round's model, weighted as `accuracy`.
    pub loss: Option<f64>,
    /// Under differential privacy: ε spent by the federation after this round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// Wall time from the previous round's end (or from following) to this
    /// round's end: sampling, local training, aggregation, commit, evaluation.
    pub seconds: f64,
}

/// What happened, as it happens.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A round completed and its model was committed.
    Round(&'a RoundRow),
    /// An attempt at a round failed; the engine retries it.
    Failed {
        /// The round that was attempted.
        round: u64,
        /// Which attempt at it failed.
        attempt: u32,
        /// Why, as the coordinator recorded it.
        reason: &'a str,
    },
    /// The federation stopped before its planned rounds (e.g. the DP budget).
    Stopped(&'a str),
    /// Where a completed round's time went, as the coordinator measured it
    /// (after the round's [`Progress::Round`]).
    Timed(&'a RoundTiming),
}

/// How a followed federation ended.
#[derive(Debug, Clone)]
pub struct Followed {
    /// The federation's final head: rounds committed and the final model.
    pub head: FederationHead,
    /// Every completed round seen, in order.
    pub rounds: Vec<RoundRow>,
    /// Why the federation stopped before its planned rounds, if it did.
    pub stop_reason: Option<String>,
}

/// Follows `coordinator` until its round engine finishes, calling `on` for each
/// event. `events` must have been subscribed before the nodes started, so no
/// round is missed.
pub async fn follow(
    coordinator: &mut Coordinator,
    mut events: broadcast::Receiver<FederationEvent>,
    mut on: impl FnMut(Progress<'_>),
) -> Result<Followed, CoordinatorError> {
    let mut rounds = Vec::new();
    let mut stop_reason = None;
    let mut round_started = Instant::now();
    let mut handle = |event: FederationEvent| match event {
        FederationEvent::RoundCompleted(record) => {
            if let RoundOutcome::Completed {
                contributions,
                evaluation,
                ..
            } = &record.outcome
            {
                let row = RoundRow {
                    round: record.round,
                    sampled: record.sampled.len(),
                    participants: contributions.len(),
                    accuracy: evaluation.as_ref().map(|e| e.accuracy),
                    loss: evaluation.as_ref().map(|e| e.loss),
                    epsilon: record.epsilon_spent,
                    seconds: round_started.elapsed().as_secs_f64(),
                };
                round_started = Instant::now();
                on(Progress::Round(&row));
                rounds.push(row);
            }
        }
        FederationEvent::RoundFailed(record) => {
            if let RoundOutcome::Failed { reason, .. } = &record.outcome {
                on(Progress::Failed {
                    round: record.round,
                    attempt: record.attempt,
                    reason,
                });
            }
        }
        FederationEvent::Finished {
            stop_reason: Some(reason),
            ..
        } => {
            on(Progress::Stopped(&reason));
            stop_reason = Some(reason);
        }
        FederationEvent::RoundTimed(timing) => on(Progress::Timed(&timing)),
        FederationEvent::Finished { .. }
        | FederationEvent::Reopened { .. }
        | FederationEvent::ConnectionRefused { .. }
        | FederationEvent::NodeRegistered { .. } => {}
    };
    let head = loop {
        tokio::select! {
            head = coordinator.wait() => break head?,
            event = events.recv() => if let Ok(event) = event {
                handle(event);
            },
        }
    };
    // Events sent just before the engine finished may still be queued.
    while let Ok(event) = events.try_recv() {
        handle(event);
    }
    Ok(Followed {
        head,
        rounds,
        stop_reason,
    })
}

/// The column header [`RoundRow::line`] lines up with.
pub fn header(dp: bool) -> String {
    format!(
        "round  sampled  participants  accuracy    loss  seconds{}",
        if dp { "  epsilon" } else { "" }
    )
}

impl RoundRow {
    /// One line of a round table (see [`header`]).
    pub fn line(&self) -> String {
        let epsilon = self
            .epsilon
            .map(|e| format!("  {e:>7.3}"))
            .unwrap_or_default();
        format!(
            "{:>5}  {:>7}  {:>12}  {:>8.4}  {:>6.4}  {:>7.3}{epsilon}",
            self.round,
            self.sampled,
            self.participants,
            self.accuracy.unwrap_or(f64::NAN),
            self.loss.unwrap_or(f64::NAN),
            self.seconds
        )
    }
}

/// Prints a progress event as the demo and the runner show it.
pub fn print(progress: Progress<'_>) {
    if let Some(line) = describe(progress) {
        println!("{line}");
    }
}

/// The line [`print()`] prints; none for a round's timing (`cohort-sim
/// bench` shows those).
pub fn describe(progress: Progress<'_>) -> Option<String> {
    Some(match progress {
        Progress::Round(row) => row.line(),
        Progress::Failed {
            round,
            attempt,
            reason,
        } => format!("round {round} attempt {attempt} failed: {reason}"),
        Progress::Stopped(reason) => format!("stopped early: {reason}"),
        Progress::Timed(_) => return None,
    })
}
