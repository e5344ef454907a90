//! The node's own privacy promise to its data subjects: record-level DP-SGD
//! (see `crate::training::DpSgdConfig`) under an (ε, δ) budget that the node
//! enforces itself, whatever the coordinator asks. Before each round it asks
//! its ledger whether one more round fits; if not, it does not train, says
//! why in its log, and the federation goes on without it. The ledger
//! ([`LedgerFile`]) is written after each round's training, before the update
//! leaves. The node samples its own rows, so the coordinator sees the same
//! events as everyone else.
//!
//! A round releases two things: the DP-SGD model change and the example
//! count and mean loss reported beside it. Exact, those would say whether a
//! row is in the training set, so they go through [`TrainingStatsRelease`]
//! (discrete Gaussian on the count and on the clamped loss sum) and a round
//! is charged for both ([`RecordLedger::round_events`]). Adversary: whoever
//! sees the node's report — the coordinator and everyone it shares round
//! records with.

use std::path::PathBuf;

use cohort_privacy::reported_stats::{NoisyTrainingStats, TrainingStatsRelease};
use cohort_privacy::{DpEvent, PrivacyBudget, PrivacyError};

use super::ledger_file::LedgerFile;
pub use super::ledger_file::{BudgetRefusal, LedgerError};
use crate::data::Dataset;
use crate::training::{DpSgdConfig, LocalTrainingConfig, Trainable, TrainingError};

/// What `cohort-node run --dp-sgd-*` configures.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPrivacy {
    /// DP-SGD's noise multiplier and per-row clip norm.
    pub dp: DpSgdConfig,
    /// How the reported example count and mean loss are noised.
    pub stats: TrainingStatsRelease,
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
    stats: TrainingStatsRelease,
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
        config.stats.event()?;
        Ok(Self {
            dp: config.dp,
            stats: config.stats.clone(),
            ledger: LedgerFile::open("record-level", &config.ledger_path, config.budget)?,
        })
    }

    /// What one round on `rows` rows costs: its DP-SGD steps, and its
    /// reported statistics when they leave the node (`with_statistics`).
    pub fn round_events(
        &self,
        config: &LocalTrainingConfig,
        rows: usize,
        with_statistics: bool,
    ) -> Result<Vec<DpEvent>, PrivacyError> {
        let mut events = vec![self.dp.round_event(config, rows)?];
        if with_statistics {
            events.push(self.stats.event()?);
        }
        Ok(events)
    }

    /// Ok if one more round costing `events` stays within the budget; else why not.
    pub fn admit(&self, events: &[DpEvent]) -> Result<(), BudgetRefusal> {
        self.ledger.admit(events)
    }

    /// Records round `round`'s spend and writes the ledger; returns ε spent.
    pub fn record(&mut self, round: u64, events: Vec<DpEvent>) -> Result<f64, LedgerError> {
        self.ledger.record(round, events)
    }

    /// The example count and mean loss to report for the trained
    /// `parameters` on `train`, noised as [`TrainingStatsRelease`] says.
    pub fn report(
        &self,
        trainable: &dyn Trainable,
        parameters: &[f32],
        train: &Dataset,
    ) -> Result<NoisyTrainingStats, TrainingError> {
        let losses = trainable.per_row_losses(parameters, train)?;
        self.stats
            .release(&losses, &mut rand::rng())
            .map_err(|e| TrainingError::Config {
                field: "dp_sgd",
                problem: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cohort_privacy::{Accountant, Conversion, RdpAccountant};

    fn config(dir: &std::path::Path, epsilon: f64) -> RecordPrivacy {
        RecordPrivacy {
            dp: DpSgdConfig {
                noise_multiplier: 1.0,
                clip_norm: 1.0,
            },
            stats: TrainingStatsRelease::new(10.0, 5.0).unwrap(),
            budget: PrivacyBudget::new(epsilon, 1e-5).unwrap(),
            ledger_path: dir.join("ledger.json"),
        }
    }

    fn local() -> LocalTrainingConfig {
        LocalTrainingConfig {
            epochs: 3,
            batch_size: 10,
            learning_rate: 0.1,
            seed: 0,
            proximal_mu: 0.0,
            max_update_norm: None,
        }
    }

    #[test]
    fn the_ledger_admits_until_the_budget_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let accountant = RdpAccountant::new(Conversion::Improved);
        let probe = RecordLedger::open(&config(dir.path(), 1e6)).unwrap();
        let events = probe.round_events(&local(), 200, true).unwrap();
        let rounds = |n: usize| {
            let all: Vec<DpEvent> = (0..n).flat_map(|_| events.clone()).collect();
            accountant.epsilon(&all, 1e-5).unwrap()
        };
        let config = config(dir.path(), (rounds(2) + rounds(3)) / 2.0);
        let mut ledger = RecordLedger::open(&config).unwrap();
        for round in 1..=2 {
            ledger.admit(&events).unwrap();
            ledger.record(round, events.clone()).unwrap();
        }
        let refusal = ledger.admit(&events).unwrap_err();
        assert_eq!(refusal.ledger, "record-level");
        // A restart finds the same spend.
        let reopened = RecordLedger::open(&config).unwrap();
        assert!(reopened.admit(&events).is_err());
    }

    #[test]
    fn a_round_pays_for_its_reported_statistics_as_well_as_its_steps() {
        let dir = tempfile::tempdir().unwrap();
        let accountant = RdpAccountant::new(Conversion::Improved);
        let mut ledger = RecordLedger::open(&config(dir.path(), 1e6)).unwrap();
        let events = ledger.round_events(&local(), 200, true).unwrap();
        let steps = ledger.dp.round_event(&local(), 200).unwrap();
        let stats = TrainingStatsRelease::new(10.0, 5.0)
            .unwrap()
            .event()
            .unwrap();
        assert_eq!(events, vec![steps, stats]);
        let spent = ledger.record(1, events).unwrap();
        let steps_only = accountant.epsilon(&[steps], 1e-5).unwrap();
        let both = accountant.epsilon(&[steps, stats], 1e-5).unwrap();
        assert!((spent - both).abs() < 1e-9 * both, "{spent} vs {both}");
        assert!(spent > steps_only * 1.01, "{spent} vs {steps_only}");
    }
}
