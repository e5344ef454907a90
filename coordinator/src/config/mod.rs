//! The federation's configuration file (TOML), one section per file.
//!
//! | section | file | type |
//! |---|---|---|
//! | `[server]` | `server.rs` | [`ServerConfig`] |
//! | `[model]` | `model.rs` | [`ModelConfig`] |
//! | `[rounds]` | `rounds.rs` | [`RoundsConfig`] |
//! | `[training]` | `training.rs` | [`TrainingConfig`] |
//! | `[privacy]` | `privacy.rs` | [`PrivacyConfig`] |
//! | `[secure_aggregation]` | `secure_aggregation.rs` | [`SecureAggregationConfig`] |
//! | `[strategy]` | `strategy.rs` | [`StrategyConfig`] |
//! | `[scaling]` | here | [`FeatureScaling`] (declared public constants) |
//!
//! Unknown keys are refused (`deny_unknown_fields`) so a typo cannot silently
//! fall back to a default; impossible values are refused by each section's
//! `validate`, and combinations of sections that cannot work together by
//! [`FederationConfig::validate`], always with the key named.

mod model;
mod privacy;
mod rounds;
mod secure_aggregation;
mod server;
mod strategy;
#[cfg(test)]
pub(crate) mod tests;
mod training;

use std::path::{Path, PathBuf};

use cohort_crypto::tls::TlsFiles;
use cohort_proto::model::SavedSpec;
use cohort_proto::scaling::FeatureScaling;
use serde::{Deserialize, Serialize};

pub use model::{InitialModel, ModelConfig};
pub use privacy::{AccountantKind, AdaptiveClippingConfig, NoisePlacement, PrivacyConfig};
pub use rounds::RoundsConfig;
pub use secure_aggregation::SecureAggregationConfig;
pub use server::{
    ServerConfig, default_coordinator_lease_ms, default_max_connections, default_request_burst,
    default_requests_per_second, default_withdrawal_patience_hours,
};
pub use strategy::{AdaptiveOptions, AveragingOptions, StrategyConfig};
pub use training::TrainingConfig;

use crate::strategy::dp_mechanism;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML of this schema (a syntax error, a missing or
    /// unknown key, a value of the wrong type).
    #[error("{path}: {message}")]
    Parse {
        /// The file (`<config>` for text parsed without one).
        path: PathBuf,
        /// The parser's message, naming the key.
        message: String,
    },
    /// A value that cannot work, or sections that cannot work together.
    #[error("`{key}` {problem}")]
    Invalid {
        /// The key refused, dotted (`rounds.fraction`).
        key: &'static str,
        /// Why, and what it would take.
        problem: String,
    },
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

/// Refuses a value that is not finite and positive.
fn positive(key: &'static str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(invalid(key, format!("must be positive, got {value}")))
    }
}

fn one() -> f64 {
    1.0
}

/// A whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// Carried in every request; a node of another federation is refused.
    pub federation_id: String,
    /// Where the coordinator listens, its files, its limits.
    pub server: ServerConfig,
    /// The architecture every node trains.
    pub model: ModelConfig,
    /// How many rounds, whom they sample, how long they wait.
    pub rounds: RoundsConfig,
    /// The nodes' local training.
    pub training: TrainingConfig,
    /// Client-level differential privacy; absent means none.
    #[serde(default)]
    pub privacy: Option<PrivacyConfig>,
    /// Secure aggregation; absent means nodes send their models in the clear
    /// (over TLS) and the coordinator sees each one.
    #[serde(default)]
    pub secure_aggregation: Option<SecureAggregationConfig>,
    /// How results are aggregated; absent means FedAvg.
    #[serde(default)]
    pub strategy: StrategyConfig,
    /// Public feature scaling (`mean`, `std` per feature) the federation
    /// agreed on outside Cohort, e.g. from reference ranges. Absent means the
    /// nodes' statistics are combined in a round 0, in the clear: each node's
    /// exact per-feature count, sum and sum of squares reach the coordinator,
    /// and an erasure re-runs that round. So it is required under
    /// `[secure_aggregation]` and `[privacy]`, whose promises that would break.
    #[serde(default)]
    pub scaling: Option<FeatureScaling>,
}

impl FederationConfig {
    /// Reads and validates a config file; relative paths in it are resolved
    /// against its folder.
    ///
    /// # Errors
    /// [`ConfigError::Read`], [`ConfigError::Parse`] (with the file's path) or
    /// [`ConfigError::Invalid`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        Ok(config.relative_to(path.parent().unwrap_or(Path::new("."))))
    }

    /// Parses and validates TOML text.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] or [`ConfigError::Invalid`].
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Resolves relative paths against the config file's folder.
    fn relative_to(mut self, base: &Path) -> Self {
        for path in [
            &mut self.server.state_dir,
            &mut self.server.ca_certificate,
            &mut self.server.certificate,
            &mut self.server.private_key,
        ]
        .into_iter()
        .chain(self.server.revocation_list.as_mut())
        .chain(self.server.tensorboard_dir.as_mut())
        .chain(self.model.initial_parameters.as_mut())
        .chain((self.server.store.as_mut()).and_then(|store| store.ca_certificate.as_mut()))
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        self
    }

    /// Each section's own checks, then the checks of sections that must fit
    /// together (privacy with secure aggregation, either with the strategy).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.federation_id.trim().is_empty() {
            return Err(invalid("federation_id", "must not be empty"));
        }
        let num_parameters = self.model.validate()?.num_parameters();
        self.rounds.validate()?;
        self.training.validate()?;
        if let Some(privacy) = &self.privacy {
            privacy.validate()?;
            self.check_noise_placement(privacy, num_parameters)?;
        }
        if let Some(secagg) = &self.secure_aggregation {
            self.check_secure_aggregation()?;
            secagg.validate(self.rounds.min_clients, num_parameters)?;
        }
        self.strategy.validate(self.min_results())?;
        self.check_strategy_under_privacy()?;
        self.check_scaling()?;
        self.server.validate()
    }

    /// A declared scaling must fit the model's features; under secure
    /// aggregation or DP one must be declared, because the statistics round
    /// that would otherwise run sends each node's exact sums in the clear,
    /// outside the ledger (and an erasure would re-run it: the difference of
    /// the two rounds' sums is the erased rows, exactly).
    fn check_scaling(&self) -> Result<(), ConfigError> {
        match &self.scaling {
            Some(scaling) => scaling
                .validate(self.model.num_features as usize)
                .map_err(|e| invalid("scaling", e.to_string())),
            None if self.secure_aggregation.is_some() || self.privacy.is_some() => Err(invalid(
                "scaling",
                "must be declared (`[scaling]` with `mean` and `std` per feature) under \
                 [secure_aggregation] or [privacy]: without it a statistics round sends each \
                 node's exact per-feature sums to the coordinator in the clear, outside the \
                 privacy ledger, and an erasure re-runs it, which reveals the erased rows",
            )),
            None => Ok(()),
        }
    }

    /// Distributed noise needs secure aggregation, and its mechanism must be
    /// one for the fewest results a round releases and this model's size.
    fn check_noise_placement(
        &self,
        privacy: &PrivacyConfig,
        num_parameters: usize,
    ) -> Result<(), ConfigError> {
        if privacy.placement != NoisePlacement::Distributed {
            return Ok(());
        }
        if self.secure_aggregation.is_none() {
            return Err(invalid(
                "privacy.placement",
                "\"distributed\" needs [secure_aggregation]: without it the coordinator sees each node's noised change, and one node's noise share is too small to protect it",
            ));
        }
        dp_mechanism::distributed(privacy, self.min_results(), num_parameters)
            .validate()
            .map_err(|e| invalid("privacy", e.to_string()))
    }

    /// Secure aggregation needs two nodes a round, noise the coordinator
    /// never sees the sum without, and a strategy that works on a sum.
    fn check_secure_aggregation(&self) -> Result<(), ConfigError> {
        if self.rounds.min_clients < 2 {
            return Err(invalid(
                "rounds.min_clients",
                "must be at least 2 under secure aggregation: the sum of one node is that node's update",
            ));
        }
        if let Some(privacy) = &self.privacy
            && privacy.placement == NoisePlacement::Central
        {
            return Err(invalid(
                "privacy.placement",
                "must be \"distributed\" under secure aggregation: with central noise the coordinator would see the noise-free sum",
            ));
        }
        self.strategy.check_secure_aggregation()
    }

    /// Under `[privacy]` the coordinator runs DP-FedAvg: no other strategy.
    fn check_strategy_under_privacy(&self) -> Result<(), ConfigError> {
        if self.privacy.is_some() && self.strategy != StrategyConfig::default() {
            return Err(invalid(
                "strategy.name",
                format!(
                    "is `{}`, but under [privacy] the coordinator runs DP-FedAvg, whose noise \
                     and accounting assume plain clipped averaging; leave [strategy] out",
                    self.strategy.name()
                ),
            ));
        }
        Ok(())
    }

    /// Deadline of the secure-aggregation stages after the first.
    pub fn secagg_stage_deadline_secs(&self) -> f64 {
        self.secure_aggregation
            .as_ref()
            .and_then(|s| s.stage_deadline_secs)
            .unwrap_or(self.rounds.deadline_secs)
    }

    /// The built-in dense architecture of `[model]`, if it names one.
    pub fn dense_spec(&self) -> Option<SavedSpec> {
        self.model.dense_spec()
    }

    /// The coordinator's CA, certificate and key files.
    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca_certificate: self.server.ca_certificate.clone(),
            certificate: self.server.certificate.clone(),
            private_key: self.server.private_key.clone(),
        }
    }

    /// Results a round needs to count (`rounds.min_results`, else `rounds.min_clients`).
    pub fn min_results(&self) -> usize {
        self.rounds.min_results()
    }
}
