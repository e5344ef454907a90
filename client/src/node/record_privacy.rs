//! The node's own privacy promise to its data subjects: record-level DP-SGD
//! (see `crate::training::DpSgdConfig`) under an (ε, δ) budget that the node
//! enforces itself, whatever the coordinator asks. Before each round it asks
//! its ledger whether one more round of DP-SGD fits; if not, it does not
//! train, says why in its log, and the federation goes on without it. The
//! ledger is a JSON file written after each round's training, before the
//! update leaves: to a temporary file that is fsynced, renamed over the
//! ledger, and the folder fsynced, so neither a restart nor a power cut
//! forgets a spend or leaves a torn file. The node samples its own rows, so
//! the coordinator sees the same events as everyone else.

use std::path::{Path, PathBuf};

use cohort_privacy::{
    Conversion, DpEvent, PrivacyBudget, PrivacyError, PrivacyLedger, RdpAccountant, RoundSpend,
};

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

/// Why the record-level privacy ledger could not be opened, charged or saved.
#[derive(Debug, thiserror::Error)]
pub enum RecordPrivacyError {
    /// The ledger file could not be read, parsed or written.
    #[error("privacy ledger {path}: {reason}")]
    Ledger {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A DP-SGD parameter is invalid, or the accounting failed.
    #[error(transparent)]
    Privacy(#[from] PrivacyError),
}

/// The node's ledger and accountant.
#[derive(Debug)]
pub struct RecordLedger {
    /// The DP-SGD settings training runs with.
    pub dp: DpSgdConfig,
    ledger: PrivacyLedger,
    path: PathBuf,
    accountant: RdpAccountant,
}

impl RecordLedger {
    /// The ledger at `config.ledger_path` (a new one if the file does not
    /// exist), under the configured budget.
    pub fn open(config: &RecordPrivacy) -> Result<Self, RecordPrivacyError> {
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
        let path = config.ledger_path.clone();
        let ledger_error = |reason: String| RecordPrivacyError::Ledger {
            path: path.clone(),
            reason,
        };
        let ledger = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut stored: PrivacyLedger =
                    serde_json::from_str(&text).map_err(|e| ledger_error(e.to_string()))?;
                stored.budget = config.budget;
                stored
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                PrivacyLedger::new(config.budget)?
            }
            Err(e) => return Err(ledger_error(e.to_string())),
        };
        Ok(Self {
            dp: config.dp,
            ledger,
            path,
            accountant: RdpAccountant::new(Conversion::Improved),
        })
    }

    /// Ok if one more round costing `event` stays within the budget; else why not.
    pub fn admit(&self, event: &DpEvent) -> Result<(), String> {
        let budget = self.ledger.budget;
        match self
            .ledger
            .check(std::slice::from_ref(event), &self.accountant)
        {
            Ok(check) if !check.exceeds() => Ok(()),
            Ok(check) => Err(format!(
                "record-level privacy budget: ε = {:.4} spent of {} (δ = {}); one more round would bring it to {:.4}",
                check.epsilon_spent, budget.epsilon, budget.delta, check.epsilon_after
            )),
            Err(e) => Err(format!("record-level privacy budget: {e}")),
        }
    }

    /// Records round `round`'s spend and writes the ledger; returns ε spent.
    pub fn record(&mut self, round: u64, event: DpEvent) -> Result<f64, RecordPrivacyError> {
        self.ledger.record_spend(
            RoundSpend::same_for_all(round, vec![event]),
            &self.accountant,
        )?;
        write_atomically(&self.path, &self.ledger).map_err(|reason| {
            RecordPrivacyError::Ledger {
                path: self.path.clone(),
                reason,
            }
        })?;
        Ok(self.ledger.epsilon_spent(&self.accountant)?)
    }
}

/// Writes `ledger` durably: temporary file, fsync, rename, fsync of the folder.
fn write_atomically(path: &Path, ledger: &PrivacyLedger) -> Result<(), String> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(ledger).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())?;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::File::open(folder)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| format!("syncing the folder {}: {e}", folder.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cohort_privacy::Accountant;

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
        let reason = ledger.admit(&event).unwrap_err();
        assert!(reason.contains("would bring it to"), "{reason}");
        // A restart finds the same spend.
        let reopened = RecordLedger::open(&config).unwrap();
        assert!(reopened.admit(&event).is_err());
    }
}
