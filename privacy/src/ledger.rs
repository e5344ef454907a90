//! The privacy ledger the coordinator persists.
//!
//! Plain serde data: a [`PrivacyBudget`] and the DP events spent per round.
//! The logic is pure — the coordinator stores the ledger (in sled) and asks
//! it, before a round, whether the round's events fit: [`PrivacyLedger::check`]
//! answers with the ε before and after and by how much the budget would be
//! exceeded; [`PrivacyLedger::record`] appends only if it fits.

use serde::{Deserialize, Serialize};

use crate::accountant::{Accountant, DpEvent};
use crate::error::{PrivacyError, Result, check_delta, check_epsilon};

/// An (ε, δ) budget: ε > 0 and δ ∈ (0, 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrivacyBudget {
    pub epsilon: f64,
    pub delta: f64,
}

impl PrivacyBudget {
    /// A validated budget.
    pub fn new(epsilon: f64, delta: f64) -> Result<Self> {
        let budget = Self { epsilon, delta };
        budget.validate()?;
        Ok(budget)
    }

    /// Checks ε > 0 (finite) and δ ∈ (0, 1); fields are public, so every
    /// consumer re-checks.
    pub fn validate(&self) -> Result<()> {
        check_epsilon(self.epsilon)?;
        check_delta(self.delta)?;
        Ok(())
    }
}

/// The events spent in one federated round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundSpend {
    pub round: u64,
    pub events: Vec<DpEvent>,
}

/// The budget and everything spent against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivacyLedger {
    pub budget: PrivacyBudget,
    pub rounds: Vec<RoundSpend>,
}

/// The answer to "may these events be spent?".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetCheck {
    /// ε spent so far (at the budget's δ).
    pub epsilon_spent: f64,
    /// ε after adding the proposed events.
    pub epsilon_after: f64,
    /// The budget checked against.
    pub budget: PrivacyBudget,
}

impl BudgetCheck {
    /// Whether the proposed events would overshoot the budget.
    pub fn exceeds(&self) -> bool {
        self.epsilon_after > self.budget.epsilon
    }

    /// How far ε would overshoot (0 when within budget).
    pub fn excess(&self) -> f64 {
        (self.epsilon_after - self.budget.epsilon).max(0.0)
    }

    /// ε still available after the proposed events (0 when exceeded).
    pub fn remaining(&self) -> f64 {
        (self.budget.epsilon - self.epsilon_after).max(0.0)
    }
}

impl PrivacyLedger {
    /// An empty ledger with a validated budget.
    pub fn new(budget: PrivacyBudget) -> Result<Self> {
        budget.validate()?;
        Ok(Self {
            budget,
            rounds: Vec::new(),
        })
    }

    /// Every event spent so far, in round order.
    pub fn events(&self) -> Vec<DpEvent> {
        // Runs of the same mechanism compose as one event with their counts
        // added: the accountants' cost then grows with the number of distinct
        // mechanisms, not with the number of rounds.
        let mut events: Vec<DpEvent> = Vec::new();
        for event in self.rounds.iter().flat_map(|r| r.events.iter()) {
            if let Some(last) = events.last_mut()
                && let Some(merged) = last.merged_with(event)
            {
                *last = merged;
                continue;
            }
            events.push(*event);
        }
        events
    }

    /// ε spent so far at the budget's δ.
    pub fn epsilon_spent(&self, accountant: &dyn Accountant) -> Result<f64> {
        self.budget.validate()?;
        accountant.epsilon(&self.events(), self.budget.delta)
    }

    /// Whether spending `events` would exceed the budget, and by how much.
    /// Errors if the ledger is already over budget.
    pub fn check(&self, events: &[DpEvent], accountant: &dyn Accountant) -> Result<BudgetCheck> {
        let epsilon_spent = self.epsilon_spent(accountant)?;
        if epsilon_spent > self.budget.epsilon {
            return Err(PrivacyError::BudgetAlreadyExceeded {
                epsilon_spent,
                epsilon_budget: self.budget.epsilon,
                delta: self.budget.delta,
            });
        }
        let mut all = self.events();
        all.extend_from_slice(events);
        let epsilon_after = accountant.epsilon(&all, self.budget.delta)?;
        Ok(BudgetCheck {
            epsilon_spent,
            epsilon_after,
            budget: self.budget,
        })
    }

    /// Appends `events` as `round` if they fit the budget; otherwise leaves
    /// the ledger unchanged and returns [`PrivacyError::BudgetExceeded`].
    pub fn record(
        &mut self,
        round: u64,
        events: Vec<DpEvent>,
        accountant: &dyn Accountant,
    ) -> Result<BudgetCheck> {
        let check = self.check(&events, accountant)?;
        if check.exceeds() {
            return Err(PrivacyError::BudgetExceeded {
                epsilon_after: check.epsilon_after,
                epsilon_budget: self.budget.epsilon,
                excess: check.excess(),
                delta: self.budget.delta,
            });
        }
        self.rounds.push(RoundSpend { round, events });
        Ok(check)
    }
}
