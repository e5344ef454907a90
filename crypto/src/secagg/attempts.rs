//! How many attempts a node lets a coordinator abort: the bound on grinding
//! by retry.
//!
//! Within one attempt the graph is a fair draw ([`super::graph_seed`]). A
//! lying coordinator with colluding nodes can still abort every attempt
//! whose graph does not give a target at least t colluding neighbours and
//! start another, until one does; with parameters where one draw in 60 hands
//! the target over, sixty aborted attempts suffice
//! (`tests::grinding::retrying_without_a_budget_hands_the_target_to_colluders`).
//! Honest rounds rarely abort, and a round that leaks a node's input must get
//! its masked input, so the node bounds the aborted attempts per completed
//! one: it joins an attempt (advertises its keys) only while
//!
//! ```text
//! aborted ≤ allowance + per_completed · completed
//! ```
//!
//! where an attempt counts as completed once the node sent its masked input,
//! and every other joined attempt as aborted. Over R completed rounds a
//! coordinator then gets at most `allowance + (per_completed + 1) · R`
//! draws of the graph, where an honest one takes R: grinding multiplies the
//! per-draw leak probability (2^−σ with parameters from the threat model) by
//! a constant, instead of trying until it wins. The count lives with the node
//! process (a restart, the operator's act, starts it afresh).

use super::error::SecAggError;
use super::messages::RoundId;

/// A node's limit on aborted attempts (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptBudget {
    /// Aborted attempts allowed before any completed one.
    pub allowance: u32,
    /// Further aborted attempts allowed per completed one.
    pub per_completed: u32,
}

impl Default for AttemptBudget {
    /// Three aborts to start with, two more per completed attempt: the
    /// coordinator retries a failed round at most `rounds.max_failed_attempts`
    /// (3) times.
    fn default() -> Self {
        Self {
            allowance: 3,
            per_completed: 2,
        }
    }
}

/// The attempts one node has joined and completed, against its budget.
#[derive(Debug, Clone, Default)]
pub struct AttemptLedger {
    budget: AttemptBudget,
    joined: u64,
    completed: u64,
    /// The attempt joined last and not yet completed, if any.
    open: Option<RoundId>,
}

impl AttemptLedger {
    /// A ledger with nothing joined, under `budget`.
    pub fn new(budget: AttemptBudget) -> Self {
        Self {
            budget,
            ..Self::default()
        }
    }

    /// Attempts joined and not completed.
    pub fn aborted(&self) -> u64 {
        self.joined - self.completed
    }

    /// Whether the node may join attempt `round` now: refused once joining
    /// would put more aborted attempts than the budget allows behind it.
    pub fn check(&self, round: RoundId) -> Result<(), SecAggError> {
        let allowed = u64::from(self.budget.allowance)
            + u64::from(self.budget.per_completed) * self.completed;
        if self.aborted() > allowed {
            return Err(SecAggError::AttemptBudgetSpent {
                round,
                aborted: self.aborted(),
                completed: self.completed,
            });
        }
        Ok(())
    }

    /// Records that the node joined attempt `round` (it advertised its keys).
    pub fn joined(&mut self, round: RoundId) {
        self.joined += 1;
        self.open = Some(round);
    }

    /// Records that the node sent its masked input in attempt `round`.
    pub fn completed(&mut self, round: RoundId) {
        if self.open == Some(round) {
            self.completed += 1;
            self.open = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aborts_are_bounded_by_completed_attempts() {
        let mut ledger = AttemptLedger::new(AttemptBudget {
            allowance: 2,
            per_completed: 1,
        });
        // With an allowance of 2, a node joins while at most two aborted
        // attempts are behind it: three attempts, then no more.
        for id in 1..=3 {
            ledger.check(RoundId(id)).unwrap();
            ledger.joined(RoundId(id));
        }
        assert_eq!(ledger.aborted(), 3);
        assert!(matches!(
            ledger.check(RoundId(4)),
            Err(SecAggError::AttemptBudgetSpent {
                aborted: 3,
                completed: 0,
                ..
            })
        ));
        // A completed attempt buys one more abort.
        ledger.joined(RoundId(5));
        ledger.completed(RoundId(5));
        ledger.check(RoundId(6)).unwrap();
        ledger.joined(RoundId(6));
        assert!(ledger.check(RoundId(7)).is_err());
        // Completing an attempt other than the open one counts for nothing.
        ledger.completed(RoundId(5));
        assert!(ledger.check(RoundId(7)).is_err());
    }
}
