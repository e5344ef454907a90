//! Evaluating: the nodes score the round's new model on their held-out splits.

use cohort_proto::scaling::FeatureScaling;

use super::super::engine::EngineError;
use super::super::live::LiveRound;
use super::super::stage::{ActiveStage, NodeEvaluation, StageResult, StageTask};
use super::super::timing::StagePart;
use super::deadline;
use crate::federation::{Federation, FederationEvent};
use crate::store::records::{EvaluationSummary, RoundOutcome, RoundRecord};

/// Evaluating: every available node with a held-out split scores the
/// committed model `record` names; the example-weighted means of the scores
/// that come back in time go into the stored record, and `RoundCompleted` is
/// reported with it.
pub(crate) async fn evaluate(
    federation: &Federation,
    live: &LiveRound,
    mut record: RoundRecord,
    scaling: &FeatureScaling,
) -> Result<(), EngineError> {
    let RoundOutcome::Completed { model_out, .. } = &record.outcome else {
        return Ok(());
    };
    let model_out = model_out.clone();
    let task = StageTask::Evaluate {
        model_version: model_out.clone(),
        scaling: scaling.clone(),
    };
    let evaluators = federation.nodes.evaluating();
    let stage = ActiveStage::new(record.round, task, deadline(federation), evaluators);
    let evaluations = live
        .run_stage(stage, |(node, result)| match result {
            StageResult::Evaluate(evaluation) => Some((node, evaluation)),
            _ => None,
        })
        .await
        .unwrap_or_default();
    if let Some(summary) = summary(&evaluations) {
        let writing = std::time::Instant::now();
        record = federation
            .store
            .set_round_evaluation(record.round, summary)
            .await?;
        live.record(StagePart::since("evaluate store write", writing));
    }
    let (accuracy, loss) = match &record.outcome {
        RoundOutcome::Completed {
            evaluation: Some(e),
            ..
        } => (e.accuracy, e.loss),
        _ => (f64::NAN, f64::NAN),
    };
    let (round, epsilon) = (record.round, record.epsilon_spent);
    let against_coordinator = record.epsilon_against_coordinator;
    tracing::info!(
        round,
        model = %model_out,
        accuracy,
        loss,
        epsilon,
        against_coordinator,
        "round completed"
    );
    federation.emit(FederationEvent::RoundCompleted(record));
    Ok(())
}

/// Example-weighted means of the nodes' scores; none without examples.
fn summary(evaluations: &[(String, NodeEvaluation)]) -> Option<EvaluationSummary> {
    let examples: u64 = evaluations.iter().map(|(_, e)| e.num_examples).sum();
    if examples == 0 {
        return None;
    }
    let weighted = |f: fn(&NodeEvaluation) -> f64| {
        evaluations
            .iter()
            .map(|(_, e)| f(e) * e.num_examples as f64)
            .sum::<f64>()
            / examples as f64
    };
    Some(EvaluationSummary {
        nodes: evaluations.iter().map(|(n, _)| n.clone()).collect(),
        num_examples: examples,
        loss: weighted(|e| e.loss),
        accuracy: weighted(|e| e.accuracy),
    })
}
