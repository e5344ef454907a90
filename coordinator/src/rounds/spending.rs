//! The privacy budget as the round engine spends it: before each round, one
//! more Poisson-sampled Gaussian event must fit the (ε, δ) budget
//! (`cohort_privacy::PrivacyLedger`), or the federation stops. The ledger
//! including a round's event is written in the round's own commit.

use cohort_privacy::{Accountant, DpEvent, PrivacyError, PrivacyLedger};

use super::engine::EngineError;
use crate::federation::Federation;
use crate::strategy::dp_mechanism;

/// The privacy budget and what has been spent of it, when DP is on.
pub(crate) struct Spending {
    ledger: PrivacyLedger,
    accountant: Box<dyn Accountant + Send + Sync>,
    event: DpEvent,
}

/// What the next round would spend: the ledger with its event and ε after it.
pub(crate) type NextSpend = (PrivacyLedger, f64);

impl Spending {
    /// The ledger stored with the federation (or a new one), under the
    /// configured budget; `None` without `[privacy]`.
    pub(crate) fn load(federation: &Federation) -> Result<Option<Self>, EngineError> {
        let Some(privacy) = &federation.config.privacy else {
            return Ok(None);
        };
        let budget = privacy.budget()?;
        let ledger = match federation.store.privacy_ledger()? {
            Some(mut stored) => {
                if stored.budget != budget {
                    tracing::warn!(stored = ?stored.budget, configured = ?budget, "privacy budget changed by the configuration");
                }
                stored.budget = budget;
                stored
            }
            None => PrivacyLedger::new(budget)?,
        };
        Ok(Some(Self {
            ledger,
            accountant: dp_mechanism::accountant(privacy.accountant),
            event: dp_mechanism::round_event(
                privacy,
                federation.config.rounds.fraction,
                federation.config.min_results(),
                federation.layout.num_parameters(),
            )?,
        }))
    }

    /// The ledger with one more round, and ε after it; or why the budget forbids it.
    pub(crate) fn next_round(&self, round: u64) -> Result<Result<NextSpend, String>, EngineError> {
        let budget = self.ledger.budget;
        let check = match self.ledger.check(&[self.event], self.accountant.as_ref()) {
            Ok(check) => check,
            Err(PrivacyError::BudgetAlreadyExceeded { epsilon_spent, .. }) => {
                return Ok(Err(format!(
                    "privacy budget exhausted: ε = {epsilon_spent:.4} already spent of {} (δ = {})",
                    budget.epsilon, budget.delta
                )));
            }
            Err(other) => return Err(other.into()),
        };
        if check.exceeds() {
            return Ok(Err(format!(
                "privacy budget exhausted: ε = {:.4} spent of {} (δ = {}); round {round} would bring it to {:.4}",
                check.epsilon_spent, budget.epsilon, budget.delta, check.epsilon_after
            )));
        }
        let mut next = self.ledger.clone();
        next.record(round, vec![self.event], self.accountant.as_ref())?;
        Ok(Ok((next, check.epsilon_after)))
    }

    /// The round was committed with `ledger`: it is what has been spent now.
    pub(crate) fn spent(&mut self, ledger: PrivacyLedger) {
        self.ledger = ledger;
    }
}
