//! The node's own privacy promise to its data subjects: record-level DP-SGD
//! (see `crate::training::DpSgdConfig`) under an (ε, δ) budget that the node
//! enforces itself, whatever the coordinator asks. Before each round it asks
//! its ledger whether one more round of DP-SGD fits; if not, it does not
//! train, says why in its log, and the federation goes on without it. The
//! ledger ([`LedgerFile`]) is written after each round's training, before the
//! update leaves. The node samples its own rows, so the coordinator sees the
//! same events as everyone else.

use std::path::PathBuf;

use cohort_privacy::{DpEvent, PrivacyBudget, PrivacyError};

use super::ledger_file::LedgerFile;
pub use super::ledger_file::{BudgetRefusal, LedgerError};
use crate::training::DpSgdConfig;

/// What `cohort-node run --dp-sgd-*` configures.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPrivacy {
    /// DP-SGD's noise multiplier and per-row clip norm.
    pub dp: DpSgdConfig,
    /// The node's own (ε, δ) budget over all its training.
    pub budget: PrivacyBudget,
    /// Where the spend is kept across runs.
    pub ledger_path: PathBuf,
}

/// The node's DP-SGD settings and ledger.
#[derive(Debug)]
pub struct RecordLedger {
    /// The DP-SGD settings training runs with.
    pub dp: DpSgdConfig,
    ledger: LedgerFile,
}

impl RecordLedger {
    /// The ledger at `config.ledger_path` (a new one if the file does not
    /// exist), under the configured budget.
    pub fn open(config: &RecordPrivacy) -> Result<Self, LedgerError> {
        // σ is checked by building an event with it; C here.
        DpEvent::poisson_sampled_gaussian(0.5, config.dp.noise_multiplier, 1)?;
        if !(config.dp.clip_norm.is_finite() && config.dp.clip_norm > 0.0) {
            return Err(PrivacyError::InvalidParameter {
                parameter: "clip_norm",
                value: config.dp.clip_norm,
                requirement: "finite and positive",
            }
            .into());
        }
        Ok(Self {
            dp: config.dp,
            ledger: LedgerFile::open("record-level", &config.ledger_path, config.budget)?,
        })
    }

    /// Ok if one more round costing `event` stays within the budget; else why not.
    pub fn admit(&self, event: &DpEvent) -> Result<(), BudgetRefusal> {
        self.ledger.admit(event)
    }

    /// Records round `round`'s spend and writes the ledger; returns ε spent.
    pub fn record(&mut self, round: u64, event: DpEvent) -> Result<f64, LedgerError> {
        self.ledger.record(round, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cohort_privacy::{Accountant, Conversion, RdpAccountant};

    #[test]
    fn the_ledger_admits_until_the_budget_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let dp = DpSgdConfig {
            noise_multiplier: 1.0,
            clip_norm: 1.0,
        };
        let event = DpEvent::poisson_sampled_gaussian(0.05, 1.0, 60).unwrap();
        let accountant = RdpAccountant::new(Conversion::Improved);
        let two = DpEvent::poisson_sampled_gaussian(0.05, 1.0, 120).unwrap();
        let three = DpEvent::poisson_sampled_gaussian(0.05, 1.0, 180).unwrap();
        let (e2, e3) = (
            accountant.epsilon(&[two], 1e-5).unwrap(),
            accountant.epsilon(&[three], 1e-5).unwrap(),
        );
        let config = RecordPrivacy {
            dp,
            budget: PrivacyBudget::new((e2 + e3) / 2.0, 1e-5).unwrap(),
            ledger_path: dir.path().join("ledger.json"),
        };
        let mut ledger = RecordLedger::open(&config).unwrap();
        for round in 1..=2 {
            ledger.admit(&event).unwrap();
            ledger.record(round, event).unwrap();
        }
        let refusal = ledger.admit(&event).unwrap_err();
        assert_eq!(refusal.ledger, "record-level");
        // A restart finds the same spend.
        let reopened = RecordLedger::open(&config).unwrap();
        assert!(reopened.admit(&event).is_err());
    }
}
