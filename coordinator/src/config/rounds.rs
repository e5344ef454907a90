//! `[rounds]`: how many rounds, whom each samples, how long a stage waits.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid, one};

/// The `[rounds]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoundsConfig {
    /// Completed rounds after which the federation finishes.
    pub count: u64,
    /// Fraction of available nodes sampled per round, in (0, 1].
    #[serde(default = "one")]
    pub fraction: f64,
    /// Nodes sampled at least (and available before a round starts).
    pub min_clients: usize,
    /// Results needed for a round to count; defaults to `min_clients`.
    #[serde(default)]
    pub min_results: Option<usize>,
    /// Time a stage waits for results before going on with what it has.
    pub deadline_secs: f64,
    /// Seed of client sampling and of the nodes' shuffling, so that runs
    /// repeat. Not used under differential privacy: there the sample and the
    /// training seeds come from the OS, because amplification by subsampling
    /// holds only while the sample is secret.
    #[serde(default)]
    pub seed: u64,
    /// Consecutive failed attempts of one round before the federation stops.
    #[serde(default = "default_max_failed_attempts")]
    pub max_failed_attempts: u32,
}

fn default_max_failed_attempts() -> u32 {
    3
}

impl RoundsConfig {
    /// Results a round needs to count: `min_results`, else `min_clients`.
    pub fn min_results(&self) -> usize {
        self.min_results.unwrap_or(self.min_clients)
    }

    /// Refuses zero rounds, clients or attempts, a fraction outside (0, 1],
    /// `min_results` outside 1..=`min_clients` and a deadline that is not a
    /// positive number of seconds.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.count == 0 {
            return Err(invalid("rounds.count", "must be at least 1"));
        }
        if !(self.fraction > 0.0 && self.fraction <= 1.0) {
            return Err(invalid(
                "rounds.fraction",
                format!("must be in (0, 1], got {}", self.fraction),
            ));
        }
        if self.min_clients == 0 {
            return Err(invalid("rounds.min_clients", "must be at least 1"));
        }
        if let Some(min_results) = self.min_results
            && (min_results == 0 || min_results > self.min_clients)
        {
            return Err(invalid(
                "rounds.min_results",
                format!("must be in 1..={}, got {min_results}", self.min_clients),
            ));
        }
        if !(self.deadline_secs.is_finite() && self.deadline_secs > 0.0) {
            return Err(invalid(
                "rounds.deadline_secs",
                format!(
                    "must be a positive number of seconds, got {}",
                    self.deadline_secs
                ),
            ));
        }
        if self.max_failed_attempts == 0 {
            return Err(invalid("rounds.max_failed_attempts", "must be at least 1"));
        }
        Ok(())
    }
}
