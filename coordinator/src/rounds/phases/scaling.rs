//! Round 0: the federation agrees on feature scaling, in the clear: each
//! node sends its exact per-feature count, sum and sum of squares. That is why
//! a federation under secure aggregation or DP must declare public constants
//! instead (`[scaling]`, checked by `FederationConfig::validate`), and then
//! this round never runs, not even after an erasure.

use cohort_proto::scaling::{FeatureScaling, FeatureStats};

use super::super::engine::EngineError;
use super::super::live::LiveRound;
use super::super::stage::{ActiveStage, StageResult, StageTask};
use super::deadline;
use super::sample::registered_datasets;
use crate::audit::AuditEvent;
use crate::federation::Federation;

/// Round 0: the nodes' feature statistics become the global standardization.
/// Done once per federation (and again after a rollback to the initial
/// model); a restart reuses the stored result. Asks again while too few
/// nodes answer or their statistics do not combine. `None` if an erasure
/// request interrupted it. With a declared `[scaling]` (required under secure
/// aggregation and DP) no node is asked anything: the declared constants are
/// the scaling, and no node's data is in its lineage.
pub(crate) async fn agree_on_scaling(
    federation: &Federation,
    live: &LiveRound,
) -> Result<Option<FeatureScaling>, EngineError> {
    if let Some(declared) = &federation.config.scaling {
        return Ok(Some(declared.clone()));
    }
    if let Some(scaling) = federation.store.feature_scaling().await? {
        return Ok(Some(scaling));
    }
    let needed = federation.config.min_results();
    loop {
        federation
            .nodes
            .wait_for(federation.config.rounds.min_clients)
            .await;
        let participants = federation.nodes.available();
        let stage = ActiveStage::new(
            0,
            StageTask::FeatureStats,
            deadline(federation),
            participants,
        );
        let Some(answers) = live
            .run_stage(stage, |(node, result)| match result {
                StageResult::FeatureStats(stats) => Some((node, stats)),
                _ => None,
            })
            .await
        else {
            return Ok(None);
        };
        let (contributors, stats): (Vec<String>, Vec<FeatureStats>) = answers.into_iter().unzip();
        if stats.len() < needed {
            tracing::warn!(
                answered = stats.len(),
                needed,
                "too few nodes sent feature statistics; asking again"
            );
            continue;
        }
        match FeatureStats::combine(&stats) {
            Ok(scaling) => {
                keep(federation, contributors, &scaling).await?;
                tracing::info!(nodes = stats.len(), "agreed on global feature scaling");
                return Ok(Some(scaling));
            }
            Err(error) => tracing::warn!(%error, "feature statistics unusable; asking again"),
        }
    }
}

/// Logs the agreed scaling, then stores it. Logged first: the scaling shapes
/// every later model, so the nodes' data behind it is part of every model's
/// lineage.
async fn keep(
    federation: &Federation,
    contributors: Vec<String>,
    scaling: &FeatureScaling,
) -> Result<(), EngineError> {
    let datasets = registered_datasets(federation, &contributors).await?;
    let agreed = AuditEvent::ScalingAgreed {
        contributors,
        datasets,
    };
    federation
        .audit_log
        .append(&federation.store, vec![agreed])
        .await?;
    federation.store.set_feature_scaling(scaling).await?;
    Ok(())
}
