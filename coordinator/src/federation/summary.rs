//! The line a federation ends with: how many rounds, the final model, its
//! held-out accuracy and the ε spent — what an operator wants to read last,
//! on stdout (`cohort-coordinator serve`) and in the engine's log line.

use std::fmt;

use cohort_privacy::PrivacyError;

use crate::federation::Federation;
use crate::store::StoreError;
use crate::store::records::{EvaluationSummary, FederationHead, RoundOutcome};
use crate::strategy::dp_mechanism;

/// Why a summary could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored privacy ledger could not be accounted.
    #[error("accounting the privacy ledger: {0}")]
    Privacy(#[from] PrivacyError),
}

/// ε spent so far against whoever sees only the released models, as the
/// stored privacy ledger accounts it with the configured accountant: every
/// release counts, a failed attempt whose sum was unmasked included (the
/// last committed round's record would miss it). `None` without `[privacy]`;
/// 0 before any release.
pub async fn epsilon_spent(federation: &Federation) -> Result<Option<f64>, SummaryError> {
    let Some(privacy) = &federation.config.privacy else {
        return Ok(None);
    };
    let Some(ledger) = federation.store.privacy_ledger().await? else {
        return Ok(Some(0.0));
    };
    let accountant = dp_mechanism::accountant(privacy.accountant);
    Ok(Some(ledger.epsilon_spent(accountant.as_ref())?))
}

/// What a finished federation reports (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct FinalSummary {
    /// Rounds committed.
    pub completed_rounds: u64,
    /// The final model's version.
    pub model_version: String,
    /// The nodes' held-out scores of the final model, if it was scored.
    pub evaluation: Option<EvaluationSummary>,
    /// ε spent against whoever sees the released models, and the (ε, δ)
    /// budget, under differential privacy.
    pub privacy: Option<PrivacySpent>,
}

/// ε spent against the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrivacySpent {
    /// ε spent so far (0 before the first round).
    pub epsilon_spent: f64,
    /// The budget's ε.
    pub epsilon_budget: f64,
    /// The budget's δ.
    pub delta: f64,
}

impl FinalSummary {
    /// The summary of `federation` at `head`, read from its store.
    pub async fn of(federation: &Federation, head: &FederationHead) -> Result<Self, SummaryError> {
        let rounds = federation.store.rounds().await?;
        let evaluation = rounds
            .iter()
            .rev()
            .find_map(|record| match &record.outcome {
                RoundOutcome::Completed {
                    model_out,
                    evaluation,
                    ..
                } if *model_out == head.model_version => evaluation.clone(),
                _ => None,
            });
        let privacy = match (&federation.config.privacy, epsilon_spent(federation).await?) {
            (Some(budget), Some(epsilon_spent)) => Some(PrivacySpent {
                epsilon_spent,
                epsilon_budget: budget.epsilon,
                delta: budget.delta,
            }),
            _ => None,
        };
        Ok(Self {
            completed_rounds: head.completed_rounds,
            model_version: head.model_version.clone(),
            evaluation,
            privacy,
        })
    }
}

impl fmt::Display for FinalSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "federation finished: {} rounds, final model {}; ",
            self.completed_rounds, self.model_version
        )?;
        match &self.evaluation {
            Some(e) => write!(
                f,
                "held-out accuracy {:.2} % (loss {:.4}, {} rows on {} nodes); ",
                100.0 * e.accuracy,
                e.loss,
                e.num_examples,
                e.nodes.len()
            )?,
            None => f.write_str("held-out accuracy not measured (no node scored it); ")?,
        }
        match &self.privacy {
            Some(p) => write!(
                f,
                "ε spent {:.4} of {} (δ {:e})",
                p.epsilon_spent, p.epsilon_budget, p.delta
            ),
            None => f.write_str("no differential privacy (ε not accounted)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(evaluation: Option<EvaluationSummary>, privacy: Option<PrivacySpent>) -> String {
        FinalSummary {
            completed_rounds: 3,
            model_version: "abc".into(),
            evaluation,
            privacy,
        }
        .to_string()
    }

    #[test]
    fn the_line_states_accuracy_and_epsilon_or_says_why_not() {
        let scored = EvaluationSummary {
            nodes: vec!["a".into(), "b".into()],
            num_examples: 140,
            loss: 0.25,
            accuracy: 0.9345,
        };
        let spent = PrivacySpent {
            epsilon_spent: 1.23456,
            epsilon_budget: 8.0,
            delta: 1e-5,
        };
        assert_eq!(
            summary(Some(scored), Some(spent)),
            "federation finished: 3 rounds, final model abc; held-out accuracy 93.45 % \
             (loss 0.2500, 140 rows on 2 nodes); ε spent 1.2346 of 8 (δ 1e-5)"
        );
        let bare = summary(None, None);
        assert!(bare.contains("accuracy not measured"), "{bare}");
        assert!(
            bare.ends_with("no differential privacy (ε not accounted)"),
            "{bare}"
        );
    }
}
