//! The privacy ledger: a budget, what each round spent, and ε per observer.
//!
//! Plain serde data: a [`PrivacyBudget`] and one [`RoundSpend`] per round.
//! The coordinator stores the ledger (in sled) and a node its DP-SGD ledger
//! (a JSON file); before a round they ask whether its spend fits:
//! [`PrivacyLedger::check_spend`] answers with ε before and after and by
//! how much the budget would be exceeded; [`PrivacyLedger::record_spend`]
//! appends only if it fits.
//!
//! Observers. What a round costs depends on who looks ([`Observer`]):
//! - [`Observer::ReleasedModels`]: whoever sees the released models but not
//!   who was sampled (nodes, inference requesters, anyone the models reach).
//!   Amplification by Poisson subsampling holds against them *only while the
//!   sample is secret from them*. The budget is enforced on this ε.
//! - [`Observer::Coordinator`]: it draws the sample, so amplification never
//!   holds against it ([`DpEvent::with_known_sample`]). Under the distributed
//!   placement it sees only the noisy sum: its ε is that of the unsampled
//!   mechanism ([`CoordinatorView::Events`]). Under the central placement it
//!   sees every clipped update in the clear: it is trusted and no ε bounds
//!   it ([`CoordinatorView::Trusted`]).
//!
//! Composition is incremental: the ledger keeps each observer's running
//! [`Composition`] (for RDP, the summed curve) beside the rounds, so with
//! the RDP accountant checking round 1000 costs what checking round 1 costs
//! (`benches/ledger.rs`; the PLD accountant's read-out grows with the
//! composed distribution's width, see its module). The cache is not
//! serialized; a ledger read back recomposes its history once, at its first
//! check, and `rounds` is append-only (change it through `record_spend`).

use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::accountant::{Accountant, Composition, DpEvent};
use crate::error::{PrivacyError, Result, check_delta, check_epsilon};

/// An (ε, δ) budget: ε > 0 and δ ∈ (0, 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrivacyBudget {
    /// ε > 0.
    pub epsilon: f64,
    /// δ ∈ (0, 1).
    pub delta: f64,
}

impl PrivacyBudget {
    /// A validated budget; errors name ε or δ when out of range.
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

/// Who looks at what a round releases (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Observer {
    /// Whoever sees the released models but not who was sampled.
    ReleasedModels,
    /// The coordinator, which draws the sample.
    Coordinator,
}

/// What one round exposed to the coordinator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "exposure", rename_all = "snake_case")]
pub enum CoordinatorView {
    /// Not recorded (a round recorded with [`PrivacyLedger::record`], or a
    /// ledger from before per-observer accounting): no ε is claimed against
    /// the coordinator.
    #[default]
    Unrecorded,
    /// It saw the contributions in the clear (central placement): it is
    /// trusted, and no ε bounds what it learned.
    Trusted,
    /// Its view is these events (typically the released events
    /// [`DpEvent::with_known_sample`]).
    Events {
        /// The events as the coordinator sees them.
        events: Vec<DpEvent>,
    },
}

impl CoordinatorView {
    /// The view of someone who knows the sample and sees only what
    /// `released` noised: each event with q = 1.
    pub fn knowing_the_sample(released: &[DpEvent]) -> Self {
        Self::Events {
            events: released.iter().map(DpEvent::with_known_sample).collect(),
        }
    }

    fn is_unrecorded(&self) -> bool {
        matches!(self, Self::Unrecorded)
    }
}

/// The events spent in one federated round, per observer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundSpend {
    /// The round's number.
    pub round: u64,
    /// The round as [`Observer::ReleasedModels`] sees it; the budget is
    /// enforced on these.
    pub events: Vec<DpEvent>,
    /// The round as the coordinator sees it.
    #[serde(default, skip_serializing_if = "CoordinatorView::is_unrecorded")]
    pub coordinator: CoordinatorView,
}

impl RoundSpend {
    /// A round whose events are the same for every observer: the sample is
    /// secret from all of them (a node's DP-SGD: it samples its own rows).
    pub fn same_for_all(round: u64, events: Vec<DpEvent>) -> Self {
        Self {
            round,
            coordinator: CoordinatorView::Events {
                events: events.clone(),
            },
            events,
        }
    }
}

/// ε against one observer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ObserverEpsilon {
    /// At most this ε (at the budget's δ).
    Bounded(f64),
    /// The observer saw contributions in the clear in some round: trusted,
    /// no ε.
    Trusted,
    /// Some round did not record this observer's view: no claim.
    Unrecorded,
}

impl std::fmt::Display for ObserverEpsilon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bounded(epsilon) => write!(f, "ε = {epsilon:.4}"),
            Self::Trusted => f.write_str("trusted (sees contributions in the clear; no ε)"),
            Self::Unrecorded => f.write_str("not recorded (no ε claimed)"),
        }
    }
}

/// The answer to "may this round be spent?".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetCheck {
    /// ε spent so far against the released models (at the budget's δ).
    pub epsilon_spent: f64,
    /// ε against the released models after the proposed round.
    pub epsilon_after: f64,
    /// ε against the coordinator after the proposed round.
    pub coordinator_after: ObserverEpsilon,
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

/// The budget and everything spent against it.
#[derive(Debug, Serialize, Deserialize)]
pub struct PrivacyLedger {
    /// The (ε, δ) budget enforced against the released models.
    pub budget: PrivacyBudget,
    /// Every round's spend, in order; append-only.
    pub rounds: Vec<RoundSpend>,
    /// The running compositions of `rounds`, per observer (not stored).
    #[serde(skip)]
    composed: Mutex<Option<Composed>>,
}

impl Clone for PrivacyLedger {
    fn clone(&self) -> Self {
        Self {
            budget: self.budget,
            rounds: self.rounds.clone(),
            composed: Mutex::new(self.cache().clone()),
        }
    }
}

impl PartialEq for PrivacyLedger {
    fn eq(&self, other: &Self) -> bool {
        self.budget == other.budget && self.rounds == other.rounds
    }
}

/// Both observers' running compositions of the first `rounds` rounds.
#[derive(Debug, Clone)]
struct Composed {
    rounds: usize,
    released: Composition,
    coordinator: CoordinatorComposition,
}

/// The coordinator's composition, unless some round made it unboundable.
#[derive(Debug, Clone)]
enum CoordinatorComposition {
    Bounded(Composition),
    Trusted,
    Unrecorded,
}

impl CoordinatorComposition {
    fn add(&mut self, view: &CoordinatorView, accountant: &dyn Accountant) -> Result<()> {
        // One trusted round makes the coordinator trusted for good; one
        // unrecorded round leaves no claim (unless it is already trusted).
        match view {
            CoordinatorView::Events { events } => {
                if let Self::Bounded(composition) = self {
                    accountant.compose(composition, events)?;
                }
            }
            CoordinatorView::Trusted => *self = Self::Trusted,
            CoordinatorView::Unrecorded => {
                if !matches!(self, Self::Trusted) {
                    *self = Self::Unrecorded;
                }
            }
        }
        Ok(())
    }

    fn epsilon(&self, accountant: &dyn Accountant, delta: f64) -> Result<ObserverEpsilon> {
        Ok(match self {
            Self::Bounded(composition) => {
                ObserverEpsilon::Bounded(accountant.epsilon_of(composition, delta)?)
            }
            Self::Trusted => ObserverEpsilon::Trusted,
            Self::Unrecorded => ObserverEpsilon::Unrecorded,
        })
    }
}

impl Composed {
    fn empty(accountant: &dyn Accountant) -> Self {
        Self {
            rounds: 0,
            released: accountant.empty(),
            coordinator: CoordinatorComposition::Bounded(accountant.empty()),
        }
    }

    fn accepted_by(&self, accountant: &dyn Accountant) -> bool {
        accountant.accepts(&self.released)
            && match &self.coordinator {
                CoordinatorComposition::Bounded(c) => accountant.accepts(c),
                _ => true,
            }
    }

    fn add(&mut self, spend: &RoundSpend, accountant: &dyn Accountant) -> Result<()> {
        let mut next = self.clone();
        accountant.compose(&mut next.released, &spend.events)?;
        next.coordinator.add(&spend.coordinator, accountant)?;
        next.rounds += 1;
        *self = next;
        Ok(())
    }
}

impl PrivacyLedger {
    /// An empty ledger with a validated budget.
    pub fn new(budget: PrivacyBudget) -> Result<Self> {
        budget.validate()?;
        Ok(Self {
            budget,
            rounds: Vec::new(),
            composed: Mutex::default(),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Option<Composed>> {
        self.composed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every event spent so far against the released models, in round
    /// order, runs of the same mechanism merged into one event.
    pub fn events(&self) -> Vec<DpEvent> {
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

    /// The running compositions of every round so far: the kept one when it
    /// is current and `accountant`'s, else extended or rebuilt from the
    /// rounds (and kept for the next call).
    fn composed(&self, accountant: &dyn Accountant) -> Result<Composed> {
        let mut cache = self.cache();
        let mut composed = match cache.take() {
            Some(c) if c.rounds <= self.rounds.len() && c.accepted_by(accountant) => c,
            _ => Composed::empty(accountant),
        };
        for spend in &self.rounds[composed.rounds..] {
            composed.add(spend, accountant)?;
        }
        *cache = Some(composed.clone());
        Ok(composed)
    }

    /// ε spent so far against the released models, at the budget's δ.
    pub fn epsilon_spent(&self, accountant: &dyn Accountant) -> Result<f64> {
        self.budget.validate()?;
        accountant.epsilon_of(&self.composed(accountant)?.released, self.budget.delta)
    }

    /// ε spent so far against `observer`, at the budget's δ.
    pub fn epsilon_against(
        &self,
        observer: Observer,
        accountant: &dyn Accountant,
    ) -> Result<ObserverEpsilon> {
        self.budget.validate()?;
        let composed = self.composed(accountant)?;
        match observer {
            Observer::ReleasedModels => Ok(ObserverEpsilon::Bounded(
                accountant.epsilon_of(&composed.released, self.budget.delta)?,
            )),
            Observer::Coordinator => composed.coordinator.epsilon(accountant, self.budget.delta),
        }
    }

    /// Whether spending `events` (coordinator view unrecorded) would exceed
    /// the budget; see [`Self::check_spend`].
    pub fn check(&self, events: &[DpEvent], accountant: &dyn Accountant) -> Result<BudgetCheck> {
        self.check_spend(&self.unrecorded(events.to_vec()), accountant)
    }

    /// Whether `spend` would exceed the budget, and by how much, with ε
    /// against the coordinator after it. Costs the same whatever the number
    /// of rounds already recorded (once the ledger has composed them).
    /// Errors if the ledger is already over budget or an event is invalid
    /// or unsupported by `accountant`.
    pub fn check_spend(
        &self,
        spend: &RoundSpend,
        accountant: &dyn Accountant,
    ) -> Result<BudgetCheck> {
        self.budget.validate()?;
        let composed = self.composed(accountant)?;
        let epsilon_spent = accountant.epsilon_of(&composed.released, self.budget.delta)?;
        if epsilon_spent > self.budget.epsilon {
            return Err(PrivacyError::BudgetAlreadyExceeded {
                epsilon_spent,
                epsilon_budget: self.budget.epsilon,
                delta: self.budget.delta,
            });
        }
        let mut after = composed;
        after.add(spend, accountant)?;
        Ok(BudgetCheck {
            epsilon_spent,
            epsilon_after: accountant.epsilon_of(&after.released, self.budget.delta)?,
            coordinator_after: after.coordinator.epsilon(accountant, self.budget.delta)?,
            budget: self.budget,
        })
    }

    /// Appends `events` as `round` (coordinator view unrecorded) if they fit
    /// the budget; see [`Self::record_spend`].
    pub fn record(
        &mut self,
        round: u64,
        events: Vec<DpEvent>,
        accountant: &dyn Accountant,
    ) -> Result<BudgetCheck> {
        let spend = RoundSpend {
            round,
            ..self.unrecorded(events)
        };
        self.record_spend(spend, accountant)
    }

    /// Appends `spend` if it fits the budget; otherwise leaves the ledger
    /// unchanged and returns [`PrivacyError::BudgetExceeded`] (or the
    /// errors of [`Self::check_spend`]).
    pub fn record_spend(
        &mut self,
        spend: RoundSpend,
        accountant: &dyn Accountant,
    ) -> Result<BudgetCheck> {
        let check = self.check_spend(&spend, accountant)?;
        if check.exceeds() {
            return Err(PrivacyError::BudgetExceeded {
                epsilon_after: check.epsilon_after,
                epsilon_budget: self.budget.epsilon,
                excess: check.excess(),
                delta: self.budget.delta,
            });
        }
        let mut composed = self.composed(accountant)?;
        composed.add(&spend, accountant)?;
        self.rounds.push(spend);
        *self.cache() = Some(composed);
        Ok(check)
    }

    fn unrecorded(&self, events: Vec<DpEvent>) -> RoundSpend {
        RoundSpend {
            round: self.rounds.last().map_or(0, |r| r.round + 1),
            events,
            coordinator: CoordinatorView::Unrecorded,
        }
    }
}
