//! A privacy ledger the node keeps on its own disk, under a budget the node
//! enforces whatever the coordinator asks. Two use it: record-level DP-SGD
//! ([`super::record_privacy`]) and the distributed-DP rounds the node joined
//! ([`super::distributed_privacy`]).
//!
//! A spend is written before what it pays for leaves the node: to a temporary
//! file that is fsynced, renamed over the ledger, and the folder fsynced, so
//! neither a restart nor a power cut forgets a spend or leaves a torn file.

use std::path::{Path, PathBuf};

use cohort_privacy::{
    Conversion, DpEvent, PrivacyBudget, PrivacyError, PrivacyLedger, RdpAccountant, RoundSpend,
};

/// Why a node's ledger could not be opened, charged or saved.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The ledger file could not be read, parsed or written.
    #[error("privacy ledger {path}: {reason}")]
    Ledger {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A mechanism's parameter is invalid, or the accounting failed.
    #[error(transparent)]
    Privacy(#[from] PrivacyError),
}

/// One more round would exceed the node's budget (or could not be accounted).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{ledger} privacy budget: {reason}")]
pub struct BudgetRefusal {
    /// Which of the node's ledgers refused.
    pub ledger: &'static str,
    /// ε spent and what the round would bring it to, or why it cannot be accounted.
    pub reason: String,
}

/// A file-backed [`PrivacyLedger`] composed with the RDP accountant.
#[derive(Debug)]
pub struct LedgerFile {
    /// Names the ledger in refusals and logs (`record-level`, `distributed`).
    name: &'static str,
    ledger: PrivacyLedger,
    path: PathBuf,
    accountant: RdpAccountant,
}

impl LedgerFile {
    /// The ledger at `path` (a new one if the file does not exist), under `budget`.
    pub fn open(
        name: &'static str,
        path: &Path,
        budget: PrivacyBudget,
    ) -> Result<Self, LedgerError> {
        let ledger_error = |reason: String| LedgerError::Ledger {
            path: path.to_owned(),
            reason,
        };
        let ledger = match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut stored: PrivacyLedger =
                    serde_json::from_str(&text).map_err(|e| ledger_error(e.to_string()))?;
                stored.budget = budget;
                stored
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PrivacyLedger::new(budget)?,
            Err(e) => return Err(ledger_error(e.to_string())),
        };
        Ok(Self {
            name,
            ledger,
            path: path.to_owned(),
            accountant: RdpAccountant::new(Conversion::Improved),
        })
    }

    /// Ok if one more round costing `events` stays within the budget.
    pub fn admit(&self, events: &[DpEvent]) -> Result<(), BudgetRefusal> {
        let budget = self.ledger.budget;
        let refuse = |reason: String| BudgetRefusal {
            ledger: self.name,
            reason,
        };
        match self.ledger.check(events, &self.accountant) {
            Ok(check) if !check.exceeds() => Ok(()),
            Ok(check) => Err(refuse(format!(
                "ε = {:.4} spent of {} (δ = {}); one more round would bring it to {:.4}",
                check.epsilon_spent, budget.epsilon, budget.delta, check.epsilon_after
            ))),
            Err(e) => Err(refuse(e.to_string())),
        }
    }

    /// Records round `round`'s spend and writes the ledger durably; returns ε spent.
    pub fn record(&mut self, round: u64, events: Vec<DpEvent>) -> Result<f64, LedgerError> {
        self.ledger
            .record_spend(RoundSpend::same_for_all(round, events), &self.accountant)?;
        crate::durable::write_json_atomically(&self.path, &self.ledger).map_err(|reason| {
            LedgerError::Ledger {
                path: self.path.clone(),
                reason,
            }
        })?;
        Ok(self.ledger.epsilon_spent(&self.accountant)?)
    }

    /// The rounds recorded so far.
    #[cfg(test)]
    pub fn rounds(&self) -> usize {
        self.ledger.rounds.len()
    }
}
