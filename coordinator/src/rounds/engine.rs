//! Drives the federation's rounds until the configured count is reached, and,
//! when the coordinator serves after finish, again whenever an erasure request
//! taints the final model (see [`run`]). A round is the sequence of its
//! phases (`super::phases`); between rounds the engine calls the unlearning
//! hook ([`unlearning::between_rounds`]) and checks the privacy budget.

use std::sync::Arc;
use std::time::Instant;

use cohort_privacy::PrivacyError;
use cohort_proto::model::decode_f32;
use cohort_proto::scaling::FeatureScaling;
use cohort_proto::v1;
use ndarray::Array1;

use super::failure::RoundFailure;
use super::live::LiveRound;
use super::phases::{self, RoundPlan};
use super::spending::{AttemptSpend, NextSpend, ReleaseCharge, Spending};
use super::timing::{RoundTiming, StagePart};
use super::unlearning::{self, ErasureError};
use crate::audit::{AuditError, AuditEvent};
use crate::federation::summary::FinalSummary;
use crate::federation::{Federation, FederationEvent};
use crate::store::StoreError;
use crate::store::records::FederationHead;
use crate::strategy::{Strategy, StrategyError};

/// Why the round engine stopped before its rounds were done.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `rounds.max_failed_attempts` attempts at one round failed in a row.
    #[error("round {round} failed {attempts} times in a row; last reason: {reason}")]
    RoundKeepsFailing {
        /// The round.
        round: u64,
        /// Its failed attempts.
        attempts: u32,
        /// Why the last one failed.
        reason: RoundFailure,
    },
    /// The head names a model the store does not hold.
    #[error("the head model {0} is missing from the store")]
    MissingModel(String),
    /// A stored model does not decode.
    #[error("stored model {version} is unreadable: {reason}")]
    UnreadableModel {
        /// The model.
        version: String,
        /// Why.
        reason: String,
    },
    /// The privacy accounting failed (not: the budget is spent).
    #[error("privacy accounting failed: {0}")]
    Privacy(#[from] PrivacyError),
    /// The audit log failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The unlearning workflow failed.
    #[error(transparent)]
    Erasure(#[from] ErasureError),
    /// The strategy could not be built or resumed.
    #[error("strategy: {0}")]
    Strategy(#[from] StrategyError),
}

/// What the engine carries from one round to the next.
struct Progress {
    strategy: Box<dyn Strategy>,
    /// None until agreed (at the first round to run, and again after a
    /// rollback to the initial model): agreeing needs the nodes, so it waits
    /// until a round will run.
    scaling: Option<FeatureScaling>,
    head: FederationHead,
    spending: Option<Spending>,
    /// Failed attempts at the next round so far.
    failed_attempts: u32,
}

impl Progress {
    /// An erasure's rollback moved the head back to `head`: the strategy
    /// resumes the state (momentum, moments) it had at that round, as the
    /// store now holds it, so the retrain is the training that would have
    /// happened without the erased data. Back at the initial model, the
    /// scaling is agreed again on the nodes' current data.
    async fn rolled_back(
        &mut self,
        federation: &Federation,
        head: FederationHead,
    ) -> Result<(), EngineError> {
        self.strategy = crate::strategy::for_config(&federation.config)?;
        crate::strategy::resume(
            self.strategy.as_mut(),
            federation.store.strategy_state().await?,
        )?;
        if head.completed_rounds == 0 {
            self.scaling = None;
        }
        self.head = head;
        self.failed_attempts = 0;
        Ok(())
    }
}

/// Runs rounds until `rounds.count` have completed (or the privacy budget
/// stops the federation), then finishes the federation.
///
/// Serving after finish (`server.serve_after_finish`), the engine then waits
/// for an erasure request that taints the final model: the federation is
/// reopened, rolled back and retrained by the nodes that start again, and
/// finishes again. Waiting is on the round's interrupt signal, never a timer.
/// Returns the final head when it stops: after the rounds, or, serving after
/// finish, when the coordinator shuts down.
pub async fn run(
    federation: Arc<Federation>,
    live: Arc<LiveRound>,
    strategy: Box<dyn Strategy>,
) -> Result<FederationHead, EngineError> {
    let head = federation
        .store
        .head()
        .await?
        .ok_or_else(|| EngineError::MissingModel("(no head)".into()))?;
    let mut progress = Progress {
        strategy,
        scaling: None,
        head,
        spending: Spending::load(&federation).await?,
        failed_attempts: 0,
    };
    loop {
        let stop_reason = run_rounds(&federation, &live, &mut progress).await?;
        finish(&federation, &progress.head, stop_reason).await;
        if !federation.config.server.serve_after_finish
            || !live.wait_for_interrupt(federation.shutdown_signal()).await
        {
            return Ok(progress.head);
        }
        tracing::info!(model = %progress.head.model_version, "an erasure request tainted the final model: retraining with the nodes that start again");
        federation.reopen();
        federation.emit(FederationEvent::Reopened {
            model_version: progress.head.model_version.clone(),
        });
    }
}

/// Every poll from now on answers `Finished`, and observers hear it.
async fn finish(federation: &Federation, head: &FederationHead, stop_reason: Option<String>) {
    match FinalSummary::of(federation, head).await {
        Ok(summary) => tracing::info!(
            completed_rounds = head.completed_rounds,
            model = %head.model_version,
            accuracy = summary.evaluation.as_ref().map(|e| e.accuracy),
            epsilon_spent = summary.privacy.map(|p| p.epsilon_spent),
            stop_reason,
            "{summary}"
        ),
        Err(error) => tracing::info!(
            completed_rounds = head.completed_rounds,
            model = %head.model_version,
            stop_reason,
            %error,
            "federation finished (its summary could not be read)"
        ),
    }
    federation.finish(v1::Finished {
        completed_rounds: head.completed_rounds,
        final_model_version: head.model_version.clone(),
        stop_reason: stop_reason.clone().unwrap_or_default(),
    });
    federation.emit(FederationEvent::Finished {
        completed_rounds: head.completed_rounds,
        model_version: head.model_version.clone(),
        stop_reason,
    });
}

/// Runs rounds from `progress` until `rounds.count` have completed; returns
/// why it stopped before, if the privacy budget forbade the next round.
async fn run_rounds(
    federation: &Federation,
    live: &LiveRound,
    progress: &mut Progress,
) -> Result<Option<String>, EngineError> {
    loop {
        // An erasure request may have tainted the head: retrain from the last
        // untainted model (exact unlearning), whether or not rounds remain.
        let hook = unlearning::between_rounds(federation, live, &progress.head, None);
        if let Some(rolled_back) = hook.await? {
            progress.rolled_back(federation, rolled_back).await?;
        }
        if progress.head.completed_rounds >= federation.config.rounds.count {
            return Ok(None);
        }
        let round = progress.head.completed_rounds + 1;
        let spend = match next_spend(progress, round)? {
            Ok(spend) => spend,
            Err(reason) => {
                stop(federation, live, &progress.head, &reason).await?;
                return Ok(Some(reason));
            }
        };
        let scaling = match progress.scaling.take() {
            Some(scaling) => scaling,
            None => match phases::agree_on_scaling(federation, live).await? {
                Some(scaling) => scaling,
                // Interrupted by an erasure request: the hook rolls back first.
                None => continue,
            },
        };
        let scaling = progress.scaling.insert(scaling).clone();
        let attempt = progress.failed_attempts + 1;
        let spend = AttemptSpend::new(federation, spend);
        let outcome = run_round(federation, live, progress, &scaling, round, attempt, &spend);
        let outcome = outcome.await?;
        let released = spend.charge.and_then(ReleaseCharge::released);
        counted(
            federation, live, progress, outcome, spend.next, released, round,
        )?;
    }
}

/// The budget is checked before the round runs: a round that would overspend
/// never trains, so it never releases anything. `Err` says why it would.
fn next_spend(
    progress: &Progress,
    round: u64,
) -> Result<Result<Option<NextSpend>, String>, EngineError> {
    Ok(match &progress.spending {
        Some(spending) => spending.next_round(round)?.map(Some),
        None => Ok(None),
    })
}

/// The budget stopped the federation: logged, and the rolled-back erasure
/// requests remediated where the head is.
async fn stop(
    federation: &Federation,
    live: &LiveRound,
    head: &FederationHead,
    reason: &str,
) -> Result<(), EngineError> {
    tracing::warn!(%reason, "federation stopped");
    let stopped = AuditEvent::FederationStopped {
        reason: reason.to_owned(),
    };
    federation
        .audit_log
        .append(&federation.store, vec![stopped])
        .await?;
    unlearning::between_rounds(federation, live, head, Some(reason)).await?;
    Ok(())
}

/// Moves `progress` on by an attempt's outcome: a committed round moves the
/// head and the spend; a failed one counts against `rounds.max_failed_attempts`
/// unless an erasure request discarded it, and stays spent if it `released`
/// its sum (the ledger charged before unmasking).
fn counted(
    federation: &Federation,
    live: &LiveRound,
    progress: &mut Progress,
    outcome: Result<FederationHead, RoundFailure>,
    spend: Option<NextSpend>,
    released: Option<cohort_privacy::PrivacyLedger>,
    round: u64,
) -> Result<(), EngineError> {
    if outcome.is_err()
        && let (Some(spending), Some(ledger)) = (&mut progress.spending, released)
    {
        spending.spent(ledger);
    }
    match outcome {
        Ok(new_head) => {
            progress.head = new_head;
            progress.failed_attempts = 0;
            if let (Some(spending), Some(next)) = (&mut progress.spending, spend) {
                spending.spent(next.ledger);
            }
        }
        // Discarded for an erasure's rollback, which the hook applies next:
        // not the round's fault, so not a failed attempt.
        Err(_) if live.is_interrupted() => {}
        Err(reason) => {
            progress.failed_attempts += 1;
            let attempts = progress.failed_attempts;
            if attempts >= federation.config.rounds.max_failed_attempts {
                return Err(EngineError::RoundKeepsFailing {
                    round,
                    attempts,
                    reason,
                });
            }
        }
    }
    Ok(())
}

/// The model `version` as the strategy reads it.
async fn load_model(federation: &Federation, version: &str) -> Result<Array1<f32>, EngineError> {
    let bytes = federation
        .store
        .model(version)
        .await?
        .ok_or_else(|| EngineError::MissingModel(version.to_owned()))?;
    decode_f32(&bytes, federation.model.num_parameters())
        .map(Array1::from)
        .map_err(|e| EngineError::UnreadableModel {
            version: version.to_owned(),
            reason: e.to_string(),
        })
}

/// One attempt at one round: its phases in order, each timed (a committed
/// round's timing is reported as [`FederationEvent::RoundTimed`]). The outer
/// `Result` is the coordinator's failure (fatal); the inner one the round's
/// (recorded, and retried by the caller).
async fn run_round(
    federation: &Federation,
    live: &LiveRound,
    progress: &mut Progress,
    scaling: &FeatureScaling,
    round: u64,
    attempt: u32,
    spend: &AttemptSpend,
) -> Result<Result<FederationHead, RoundFailure>, EngineError> {
    let started = Instant::now();
    live.take_parts();
    let strategy = progress.strategy.as_mut();
    let global = load_model(federation, &progress.head.model_version).await?;
    live.record(StagePart::since("model load", started));
    let sampling = Instant::now();
    let plan: RoundPlan =
        phases::sample(federation, strategy, &progress.head, round, attempt).await?;
    live.record(StagePart::since("sampling", sampling));
    let release = live.release(&plan.model_in, &plan.sampled);
    let fitted = phases::fit(federation, live, &plan, scaling, spend.charge.as_ref()).await;
    drop(release);
    let needed = federation.config.min_results();
    let aggregating = Instant::now();
    let aggregated = phases::aggregate(strategy, &global, &plan, fitted, needed);
    live.record(StagePart::since("aggregation", aggregating));
    let spend = spend.next.as_ref();
    let committed = phases::commit(federation, live, strategy, &plan, aggregated, spend).await?;
    let (head, record) = match committed {
        Ok(committed) => committed,
        Err(reason) => return Ok(Err(reason)),
    };
    phases::evaluate(federation, live, record, scaling).await?;
    let timing = RoundTiming {
        round,
        attempt,
        seconds: started.elapsed().as_secs_f64(),
        parts: live.take_parts(),
    };
    federation.metrics.round_timed(&timing);
    federation.emit(FederationEvent::RoundTimed(timing));
    Ok(Ok(head))
}
