//! Each committed round's scalars as a TensorBoard event file
//! (`[server] tensorboard_dir`), so that runs can be charted and compared in
//! TensorBoard next to the `/metrics` a Prometheus scrapes.
//!
//! Per round (the step), from its record as committed:
//! - `eval/accuracy`, `eval/loss`: the federated held-out evaluation, when the
//!   nodes scored the round's model;
//! - `round/participants`, `round/sampled`: whose updates are in it, of those
//!   asked;
//! - `privacy/epsilon_spent`: ε spent after the round, under DP.
//!
//! The same aggregates the round records and `/metrics` show an operator; no
//! node identity, model or data. A failed write is logged and the rounds go on:
//! tracking never stops a federation.

use std::path::Path;

use cohort_proto::tensorboard::{EventFile, EventFileError};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::federation::{Federation, FederationEvent};
use crate::store::records::{RoundOutcome, RoundRecord};

/// Creates the event file in `dir` and writes every round committed from now
/// on into it until the federation shuts down.
pub fn spawn(dir: &Path, federation: &Federation) -> Result<JoinHandle<()>, EventFileError> {
    let suffix = format!("cohort-coordinator.{}", std::process::id());
    let mut events = EventFile::create(dir, &suffix)?;
    let mut rounds = federation.subscribe();
    let mut shutdown = federation.shutdown_signal();
    tracing::info!(file = %events.path().display(), "TensorBoard event file");
    Ok(tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                event = rounds.recv() => event,
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            match event {
                Ok(event) => write(&mut events, &event),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "TensorBoard writer fell behind; some events skipped"
                    );
                }
                Err(RecvError::Closed) => return,
            }
        }
        // Rounds committed before the stop but not yet written.
        while let Ok(event) = rounds.try_recv() {
            write(&mut events, &event);
        }
    }))
}

fn write(events: &mut EventFile, event: &FederationEvent) {
    if let FederationEvent::RoundCompleted(record) = event
        && let Err(error) = events.scalars(record.round, &scalars(record))
    {
        tracing::warn!(%error, "cannot write the TensorBoard event file");
    }
}

/// The scalars of one committed round.
pub fn scalars(record: &RoundRecord) -> Vec<(&'static str, f64)> {
    let mut scalars = vec![("round/sampled", record.sampled.len() as f64)];
    if let RoundOutcome::Completed {
        contributions,
        evaluation,
        ..
    } = &record.outcome
    {
        scalars.push(("round/participants", contributions.len() as f64));
        if let Some(evaluation) = evaluation {
            scalars.push(("eval/accuracy", evaluation.accuracy));
            scalars.push(("eval/loss", evaluation.loss));
        }
    }
    if let Some(epsilon) = record.epsilon_spent {
        scalars.push(("privacy/epsilon_spent", epsilon));
    }
    scalars
}
