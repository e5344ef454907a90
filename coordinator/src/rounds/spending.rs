//! The privacy budget as the round engine spends it: before each round, one
//! more Poisson-sampled Gaussian event must fit the (ε, δ) budget
//! (`cohort_privacy::PrivacyLedger`), or the federation stops. The ledger
//! including a round's event is written in the round's own commit, and, under
//! the distributed placement, before the sum is unmasked ([`ReleaseCharge`]):
//! there the release is the unmasking, which comes before the commit.

use std::sync::atomic::{AtomicBool, Ordering};

use cohort_privacy::{
    Accountant, CoordinatorView, DpEvent, ObserverEpsilon, PrivacyError, PrivacyLedger, RoundSpend,
};

use super::engine::EngineError;
use crate::federation::Federation;
use crate::store::{Store, StoreError};
use crate::strategy::dp_mechanism;

/// The privacy budget and what has been spent of it, when DP is on.
pub(crate) struct Spending {
    ledger: PrivacyLedger,
    accountant: Box<dyn Accountant + Send + Sync>,
    event: DpEvent,
    /// What a round exposes to the coordinator: nothing beyond the noisy sum
    /// under the distributed placement (but it knows the sample), every
    /// clipped change under the central one.
    coordinator: CoordinatorView,
}

/// What the next round would spend: the ledger with its event, and ε after it
/// against the released models and against the coordinator.
#[derive(Debug)]
pub(crate) struct NextSpend {
    /// The ledger including the round.
    pub ledger: PrivacyLedger,
    /// ε against whoever sees only the released models (the budget's ε).
    pub epsilon: f64,
    /// ε against the coordinator; `None` when it is trusted with the changes
    /// (central placement).
    pub against_coordinator: Option<f64>,
}

impl Spending {
    /// The ledger stored with the federation (or a new one), under the
    /// configured budget; `None` without `[privacy]`.
    pub(crate) async fn load(federation: &Federation) -> Result<Option<Self>, EngineError> {
        let Some(privacy) = &federation.config.privacy else {
            return Ok(None);
        };
        let budget = privacy.budget()?;
        let ledger = match federation.store.privacy_ledger().await? {
            Some(mut stored) => {
                if stored.budget != budget {
                    tracing::warn!(stored = ?stored.budget, configured = ?budget, "privacy budget changed by the configuration");
                }
                stored.budget = budget;
                stored
            }
            None => PrivacyLedger::new(budget)?,
        };
        let event = dp_mechanism::round_event(
            privacy,
            federation.config.rounds.fraction,
            federation.config.min_results(),
            federation.model.num_parameters(),
        )?;
        let coordinator = if federation.config.secure_aggregation.is_some() {
            CoordinatorView::knowing_the_sample(&[event])
        } else {
            CoordinatorView::Trusted
        };
        Ok(Some(Self {
            ledger,
            accountant: dp_mechanism::accountant(privacy.accountant),
            event,
            coordinator,
        }))
    }

    /// The ledger with one more round, and ε after it; or why the budget forbids it.
    pub(crate) fn next_round(&self, round: u64) -> Result<Result<NextSpend, String>, EngineError> {
        let budget = self.ledger.budget;
        let spend = RoundSpend {
            round,
            events: vec![self.event],
            coordinator: self.coordinator.clone(),
        };
        let check = match self.ledger.check_spend(&spend, self.accountant.as_ref()) {
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
        next.record_spend(spend, self.accountant.as_ref())?;
        let against_coordinator = match check.coordinator_after {
            ObserverEpsilon::Bounded(epsilon) => Some(epsilon),
            ObserverEpsilon::Trusted | ObserverEpsilon::Unrecorded => None,
        };
        Ok(Ok(NextSpend {
            ledger: next,
            epsilon: check.epsilon_after,
            against_coordinator,
        }))
    }

    /// The round was committed with `ledger`: it is what has been spent now.
    pub(crate) fn spent(&mut self, ledger: PrivacyLedger) {
        self.ledger = ledger;
    }
}

/// What one attempt at a round spends: the ledger with its event and ε after
/// it (`None` without DP), and, under the distributed placement, the charge
/// to write before the sum is unmasked.
#[derive(Debug, Default)]
pub(crate) struct AttemptSpend {
    /// The ledger with the attempt's event, and ε after it.
    pub next: Option<NextSpend>,
    /// Written before unmasking (secure aggregation with DP only).
    pub charge: Option<ReleaseCharge>,
}

impl AttemptSpend {
    /// The attempt's spend; with secure aggregation, the sum is released when
    /// it is unmasked, before the round commits, so it gets a [`ReleaseCharge`].
    pub(crate) fn new(federation: &Federation, next: Option<NextSpend>) -> Self {
        let distributed = federation.config.secure_aggregation.is_some();
        let charge = next
            .as_ref()
            .filter(|_| distributed)
            .map(|next| ReleaseCharge::new(next.ledger.clone()));
        Self { next, charge }
    }
}

/// One attempt's charge under distributed DP. The unmask requests are the
/// release: with the answers the coordinator holds the noisy sum, whether or
/// not the round then commits. So the ledger with this attempt's event is
/// written durably before any request goes out, and an attempt that got that
/// far stays charged if it fails or the coordinator crashes.
#[derive(Debug)]
pub(crate) struct ReleaseCharge {
    ledger: PrivacyLedger,
    persisted: AtomicBool,
}

impl ReleaseCharge {
    /// The charge of an attempt whose spend is `ledger` (the ledger with the
    /// attempt's event).
    pub(crate) fn new(ledger: PrivacyLedger) -> Self {
        Self {
            ledger,
            persisted: AtomicBool::new(false),
        }
    }

    /// Writes the ledger durably; from now on the attempt counts as spent.
    pub(crate) async fn persist(&self, store: &Store) -> Result<(), StoreError> {
        store.charge_privacy(&self.ledger).await?;
        self.persisted.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// The ledger as spent, if the release happened.
    pub(crate) fn released(self) -> Option<PrivacyLedger> {
        self.persisted.into_inner().then_some(self.ledger)
    }
}
