//! Aggregating: the strategy turns what came back into the next model.

use ndarray::Array1;

use super::{Fitted, RoundPlan};
use crate::store::records::Contribution;
use crate::strategy::Strategy;

/// The round's new model and whose updates are in it.
#[derive(Debug)]
pub(crate) struct Aggregated {
    /// The next global model.
    pub model: Array1<f32>,
    /// Who contributed (with example counts and losses only in the clear).
    pub contributions: Vec<Contribution>,
}

/// Aggregating: with at least `needed` results, the strategy's next model
/// from `global` (FedAvg: the example-weighted mean; under secure aggregation
/// from the sum alone); else, or if the strategy refuses, why the round fails.
pub(crate) fn aggregate(
    strategy: &mut dyn Strategy,
    global: &Array1<f32>,
    plan: &RoundPlan,
    fitted: Result<Fitted, String>,
    needed: usize,
) -> Result<Aggregated, String> {
    let too_few = |got: usize| {
        format!(
            "only {got} of {} sampled nodes returned an update before the deadline; {needed} needed",
            plan.sampled.len()
        )
    };
    let context = plan.context();
    let (model, contributions) = match fitted? {
        Fitted::Updates(results) if results.len() < needed => return Err(too_few(results.len())),
        Fitted::Secure(fit) if fit.contributors.len() < needed => {
            return Err(too_few(fit.contributors.len()));
        }
        Fitted::Updates(results) => {
            let model = strategy.aggregate_fit(global, &results, &context);
            let contributions = results
                .iter()
                .map(|r| Contribution {
                    node_id: r.node_id.clone(),
                    num_examples: Some(r.num_examples),
                    train_loss: Some(r.train_loss),
                })
                .collect();
            (model, contributions)
        }
        Fitted::Secure(fit) => {
            if !fit.dropped.is_empty() {
                tracing::info!(round = plan.round, dropped = ?fit.dropped, "nodes dropped out of secure aggregation");
            }
            let model = strategy.aggregate_secure_sum(global, &fit.sum, &context);
            let contributions = fit
                .contributors
                .iter()
                .map(|node_id| Contribution {
                    node_id: node_id.clone(),
                    num_examples: None,
                    train_loss: None,
                })
                .collect();
            (model, contributions)
        }
    };
    Ok(Aggregated {
        model: model.map_err(|e| e.to_string())?,
        contributions,
    })
}
