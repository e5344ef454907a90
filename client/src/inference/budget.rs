//! How many predictions (rows) each requester may get from the node, in all.
//!
//! Why: every prediction is a query to the model. A logistic regression on `d`
//! features answers `d + 1` well-chosen queries with enough to solve for every
//! weight (Tramèr et al., *Stealing Machine Learning Models via Prediction APIs*,
//! USENIX Security 2016), whether the answers travel encrypted or not, and an
//! MLP gives way to more queries. A node serving in class mode answers only the
//! class, which raises the number of queries extraction needs (label-only
//! attacks: Lowd and Meek, KDD 2005; Tramèr et al. §5) but does not bound it. The encryption hides the model only per query
//! (`cohort_crypto::he::sanitize`); the number of queries must be bounded
//! separately. So each requester (the identity of its mTLS certificate) has a
//! budget of encrypted inputs; a `Predict` whose batch would take it past the
//! budget is refused whole, before anything is evaluated.
//!
//! What it does not do: the counts live in memory and start again from zero when
//! the node restarts (the request log keeps every `Predict` with its row count,
//! for an operator who needs the history); and a party with several requester
//! certificates has several budgets (the federation's CA decides who gets one).

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Mutex;

use cohort_crypto::PeerIdentity;

/// Default of the per-requester budget: 10 000 rows.
pub const DEFAULT_ROWS_PER_REQUESTER: NonZeroU64 = match NonZeroU64::new(10_000) {
    Some(rows) => rows,
    None => panic!("10 000 is not 0"),
};

/// A batch would take its requester past its budget of predictions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{requester} has used {used} of its {limit} predictions on this node; a batch of \
     {requested} would exceed its query budget"
)]
pub struct QueryBudgetExhausted {
    /// The requester refused.
    pub requester: PeerIdentity,
    /// Rows one requester may have evaluated.
    pub limit: NonZeroU64,
    /// Rows already charged to it.
    pub used: u64,
    /// Rows in the refused batch.
    pub requested: u64,
}

/// Rows charged per requester, against one limit.
#[derive(Debug)]
pub struct QueryBudget {
    limit: NonZeroU64,
    used: Mutex<HashMap<PeerIdentity, u64>>,
}

impl QueryBudget {
    /// At most `limit` rows per requester.
    pub fn new(limit: NonZeroU64) -> Self {
        Self {
            limit,
            used: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PeerIdentity, u64>> {
        // Every mutation is one map update: a poisoned lock holds consistent counts.
        self.used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Charges `rows` to `requester` and returns what it has left, or refuses
    /// (and charges nothing) if they do not all fit.
    pub fn charge(&self, requester: &PeerIdentity, rows: u64) -> Result<u64, QueryBudgetExhausted> {
        let mut used = self.lock();
        let already = used.get(requester).copied().unwrap_or(0);
        let after = already.saturating_add(rows);
        if after > self.limit.get() {
            return Err(QueryBudgetExhausted {
                requester: requester.clone(),
                limit: self.limit,
                used: already,
                requested: rows,
            });
        }
        used.insert(requester.clone(), after);
        Ok(self.limit.get() - after)
    }

    /// Rows charged to `requester` so far.
    pub fn used(&self, requester: &PeerIdentity) -> u64 {
        self.lock().get(requester).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use cohort_crypto::Role;

    use super::*;

    fn requester(name: &str) -> PeerIdentity {
        PeerIdentity::new(Role::Requester, name).unwrap()
    }

    fn budget(limit: u64) -> QueryBudget {
        QueryBudget::new(NonZeroU64::new(limit).unwrap())
    }

    #[test]
    fn rows_are_charged_until_the_budget_and_a_batch_past_it_is_refused_whole() {
        let budget = budget(10);
        let clinic = requester("clinic-x");
        assert_eq!(budget.charge(&clinic, 4), Ok(6));
        assert_eq!(budget.charge(&clinic, 6), Ok(0));
        let refused = budget.charge(&clinic, 1).unwrap_err();
        assert_eq!(
            refused,
            QueryBudgetExhausted {
                requester: clinic.clone(),
                limit: NonZeroU64::new(10).unwrap(),
                used: 10,
                requested: 1,
            }
        );
        assert_eq!(
            refused.to_string(),
            "cohort://requester/clinic-x has used 10 of its 10 predictions on this node; a \
             batch of 1 would exceed its query budget"
        );
        assert_eq!(budget.used(&clinic), 10);
    }

    #[test]
    fn a_refused_batch_charges_nothing_and_a_smaller_one_still_fits() {
        let budget = budget(10);
        let clinic = requester("clinic-x");
        budget.charge(&clinic, 7).unwrap();
        assert!(budget.charge(&clinic, 4).is_err());
        assert_eq!(budget.used(&clinic), 7, "the refusal charged nothing");
        assert_eq!(budget.charge(&clinic, 3), Ok(0));
        assert!(budget.charge(&clinic, u64::MAX).is_err(), "no overflow");
    }

    #[test]
    fn each_requester_has_a_budget_of_its_own() {
        let budget = budget(2);
        let x = requester("clinic-x");
        let y = requester("clinic-y");
        budget.charge(&x, 2).unwrap();
        assert!(budget.charge(&x, 1).is_err());
        assert_eq!(budget.charge(&y, 2), Ok(0));
        assert_eq!((budget.used(&x), budget.used(&y)), (2, 2));
    }
}
