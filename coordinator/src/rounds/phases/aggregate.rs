//! Aggregating: the strategy turns what came back into the next model.

use ndarray::Array1;

use super::super::failure::RoundFailure;
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
    /// Under secure aggregation, the seed its neighbour graph was drawn from.
    pub graph_seed: Option<String>,
}

/// Aggregating: with at least `needed` results, the strategy's next model
/// from `global` (FedAvg: the example-weighted mean; under secure aggregation
/// from the sum alone); else, or if the strategy refuses, why the round fails.
///
/// The strategy sees the results in node-id order, whatever order they
/// arrived in: float addition is not associative, so summing in arrival order
/// could make the same updates give different bits. The same updates always
/// give the same model, which retraining after an erasure relies on (see
/// `crate::rounds::unlearning`, "What the retrained model is").
pub(crate) fn aggregate(
    strategy: &mut dyn Strategy,
    global: &Array1<f32>,
    plan: &RoundPlan,
    fitted: Result<Fitted, RoundFailure>,
    needed: usize,
) -> Result<Aggregated, RoundFailure> {
    let too_few = |got: usize| RoundFailure::TooFewUpdates {
        got,
        sampled: plan.sampled.len(),
        needed,
    };
    let context = plan.context();
    let (model, contributions, graph_seed) = match fitted? {
        Fitted::Updates(results) if results.len() < needed => return Err(too_few(results.len())),
        Fitted::Secure(fit) if fit.contributors.len() < needed => {
            return Err(too_few(fit.contributors.len()));
        }
        Fitted::Updates(mut results) => {
            results.sort_by(|a, b| a.node_id.cmp(&b.node_id));
            let model = strategy.aggregate_fit(global, &results, &context);
            let contributions = results
                .iter()
                .map(|r| Contribution {
                    node_id: r.node_id.clone(),
                    num_examples: Some(r.num_examples),
                    train_loss: Some(r.train_loss),
                })
                .collect();
            (model, contributions, None)
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
            (model, contributions, fit.graph_seed)
        }
    };
    Ok(Aggregated {
        model: model.map_err(|e| RoundFailure::AggregationFailed(e.to_string()))?,
        contributions,
        graph_seed,
    })
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use cohort_proto::v1;
    use ndarray::array;

    use super::*;
    use crate::strategy::FedAvg;
    use crate::strategy::test_support::result;

    fn plan() -> RoundPlan {
        RoundPlan {
            round: 1,
            attempt: 1,
            model_in: String::new(),
            sampled: ["a", "b", "c"].map(String::from).into(),
            available: 3,
            datasets: Vec::new(),
            training: v1::TrainingConfig::default(),
            started: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_same_updates_in_any_arrival_order_give_the_same_bits() {
        // Equal weights: ⅓·(−1e17) + ⅓·1e17 + ⅓·1 is ⅓ summed in that order,
        // and 0 with the ⅓ added first (it vanishes next to 3e16).
        let updates = [
            result("a", array![-1e17], 1),
            result("b", array![1e17], 1),
            result("c", array![1.0], 1),
        ];
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        let global = array![0.0f32];
        for order in orders {
            let arrived = order.map(|i| updates[i].clone()).to_vec();
            let next = aggregate(
                &mut FedAvg,
                &global,
                &plan(),
                Ok(Fitted::Updates(arrived)),
                3,
            )
            .unwrap();
            assert_eq!(
                next.model[0].to_bits(),
                (1.0f32 / 3.0).to_bits(),
                "{order:?}"
            );
            let contributors: Vec<&str> = next
                .contributions
                .iter()
                .map(|c| c.node_id.as_str())
                .collect();
            assert_eq!(contributors, ["a", "b", "c"]);
        }
    }
}
