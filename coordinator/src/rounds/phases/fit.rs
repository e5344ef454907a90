//! Fit: the sampled nodes train from the head's model.

use cohort_proto::scaling::FeatureScaling;
use cohort_proto::v1;

use super::super::failure::RoundFailure;
use super::super::live::LiveRound;
use super::super::secure::{self, SecureFit};
use super::super::spending::ReleaseCharge;
use super::super::stage::{self, ActiveStage, StageResult, StageTask};
use super::{RoundPlan, deadline};
use crate::federation::Federation;
use crate::strategy::FitResult;

/// What came back from the fit.
#[derive(Debug)]
pub(crate) enum Fitted {
    /// In the clear: each node's trained model, as many as answered in time.
    Updates(Vec<FitResult>),
    /// Under secure aggregation: only the sum of the survivors' changes.
    Secure(SecureFit),
}

/// Fit: in the clear, one stage collecting every sampled node's trained model
/// until all have answered or the deadline passed; under secure aggregation,
/// the six stages of [`secure::fit`]. `Err` says why secure aggregation
/// produced no sum.
pub(crate) async fn fit(
    federation: &Federation,
    live: &LiveRound,
    plan: &RoundPlan,
    scaling: &FeatureScaling,
    charge: Option<&ReleaseCharge>,
) -> Result<Fitted, RoundFailure> {
    let deadline = deadline(federation);
    if federation.config.secure_aggregation.is_some() {
        let task = v1::FitTask {
            model_version: plan.model_in.clone(),
            config: Some(plan.training),
            scaling: Some(stage::scaling(scaling)),
        };
        return secure::fit(federation, live, plan, task, deadline, charge)
            .await
            .map(Fitted::Secure)
            .map_err(RoundFailure::SecureAggregationAborted);
    }
    let task = StageTask::Fit {
        model_version: plan.model_in.clone(),
        training: plan.training,
        scaling: scaling.clone(),
    };
    let stage = ActiveStage::new(plan.round, task, deadline, plan.sampled.iter().cloned());
    let updates = live
        .run_stage(stage, |(_, result)| match result {
            StageResult::Fit(fit) => Some(fit),
            _ => None,
        })
        .await;
    // Interrupted by an erasure: nothing came back, and the commit discards it.
    Ok(Fitted::Updates(updates.unwrap_or_default()))
}
