//! Committing: the round's outcome made durable.

use std::time::{Duration, Instant};

use cohort_proto::model::{encode_f32, model_version};

use super::super::engine::EngineError;
use super::super::failure::RoundFailure;
use super::super::live::LiveRound;
use super::super::spending::NextSpend;
use super::super::timing::StagePart;
use super::{Aggregated, RoundPlan};
use crate::audit::{AuditEvent, RoundProtection};
use crate::federation::{Federation, FederationEvent};
use crate::store::records::{FederationHead, RoundOutcome, RoundRecord};
use crate::strategy::Strategy;

/// Committing, under the commit lock (so no erasure request taints the head
/// unseen in between). A round that started from a model an erasure request
/// tainted meanwhile is discarded; a failed one is recorded and reported, the
/// model unchanged, and its reason returned. Otherwise the new model, the
/// round's record, the head, the round's signed audit entry, the privacy
/// ledger including `spend` and the strategy's state are written in one
/// transaction: the new head and the record (to evaluate) are returned.
pub(crate) async fn commit(
    federation: &Federation,
    live: &LiveRound,
    strategy: &dyn Strategy,
    plan: &RoundPlan,
    aggregated: Result<Aggregated, RoundFailure>,
    spend: Option<&NextSpend>,
) -> Result<Result<(FederationHead, RoundRecord), RoundFailure>, EngineError> {
    let _commits = live.lock_commits().await;
    let aggregated = if live.is_interrupted() {
        Err(RoundFailure::Discarded)
    } else {
        aggregated
    };
    match aggregated {
        Ok(aggregated) => {
            let committed =
                commit_model(federation, live, strategy, plan, aggregated, spend).await?;
            Ok(Ok(committed))
        }
        Err(reason) => {
            record_failure(federation, strategy, plan, &reason).await?;
            Ok(Err(reason))
        }
    }
}

/// A failed attempt: its record, its audit entry, its event.
async fn record_failure(
    federation: &Federation,
    strategy: &dyn Strategy,
    plan: &RoundPlan,
    failure: &RoundFailure,
) -> Result<(), EngineError> {
    let (round, attempt) = (plan.round, plan.attempt);
    let reason = failure.to_string();
    tracing::warn!(round, attempt, %reason, kind = failure.kind().as_str(), "round failed");
    let outcome = RoundOutcome::Failed {
        reason: reason.clone(),
        kind: Some(failure.kind()),
    };
    let record = plan.record(strategy.name(), outcome);
    federation.store.record_failed_round(&record).await?;
    let failed = AuditEvent::RoundFailed {
        round,
        attempt,
        reason,
    };
    federation
        .audit_log
        .append(&federation.store, vec![failed])
        .await?;
    federation.emit(FederationEvent::RoundFailed(record));
    Ok(())
}

/// The new model with everything that must be durable before it can be
/// fetched, in one transaction; timed as `commit encode` (the model's bytes
/// and version), `commit store write` (the transaction, flushed) and `commit
/// audit` (signing the entry, and waiting for the log).
async fn commit_model(
    federation: &Federation,
    live: &LiveRound,
    strategy: &dyn Strategy,
    plan: &RoundPlan,
    aggregated: Aggregated,
    spend: Option<&NextSpend>,
) -> Result<(FederationHead, RoundRecord), EngineError> {
    let Aggregated {
        model,
        contributions,
        graph_seed,
    } = aggregated;
    let mut protection = RoundProtection::of(&federation.config, plan.sampled.len());
    if let Some(secure_aggregation) = protection.secure_aggregation.as_mut() {
        secure_aggregation.graph_seed = graph_seed;
    }
    let encoding = Instant::now();
    let encoded = encode_f32(model.as_slice().unwrap_or(&model.to_vec()));
    let version = model_version(&federation.fingerprint, &encoded);
    live.record(StagePart::since("commit encode", encoding));
    let completed = AuditEvent::RoundCompleted {
        round: plan.round,
        attempt: plan.attempt,
        strategy: strategy.name().to_owned(),
        model_in: plan.model_in.clone(),
        model_out: version.clone(),
        contributors: contributions.iter().map(|c| c.node_id.clone()).collect(),
        epsilon_spent: spend.map(|next| next.epsilon),
        datasets: contributions
            .iter()
            .filter_map(|c| {
                plan.datasets
                    .iter()
                    .find(|d| d.node_id == c.node_id)
                    .cloned()
            })
            .collect(),
        protection,
    };
    let outcome = RoundOutcome::Completed {
        model_out: version.clone(),
        contributions,
        evaluation: None,
    };
    let mut record = plan.record(strategy.name(), outcome);
    record.epsilon_spent = spend.map(|next| next.epsilon);
    record.epsilon_against_coordinator = spend.and_then(|next| next.against_coordinator);
    let (store, state) = (&federation.store, strategy.state());
    let ledger = spend.map(|next| &next.ledger);
    let committing = Instant::now();
    let mut writing = Duration::ZERO;
    let head = federation
        .audit_log
        .commit_audited(store, vec![completed], async |batch| {
            let started = Instant::now();
            let written =
                (store.commit_round(&record, &version, &encoded, ledger, state.as_ref(), batch))
                    .await;
            writing = started.elapsed();
            written
        })
        .await?;
    let audit = committing.elapsed().saturating_sub(writing);
    for (name, took) in [("commit store write", writing), ("commit audit", audit)] {
        live.record(StagePart {
            name: name.to_owned(),
            seconds: took.as_secs_f64(),
            bytes: 0,
        });
    }
    Ok((head, record))
}
