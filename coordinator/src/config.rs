//! The federation's configuration file (TOML).
//!
//! Unknown keys are refused (`deny_unknown_fields`) so a typo cannot silently
//! fall back to a default; impossible values are refused by [`FederationConfig::validate`]
//! with the key named.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cohort_crypto::tls::TlsFiles;
use cohort_proto::params::ParameterLayout;
use cohort_proto::v1::ModelSpec;
use serde::{Deserialize, Serialize};

pub use crate::strategy::StrategyConfig;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("`{key}` {problem}")]
    Invalid { key: &'static str, problem: String },
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// Carried in every request; a node of another federation is refused.
    pub federation_id: String,
    pub server: ServerConfig,
    pub model: ModelConfig,
    pub rounds: RoundsConfig,
    pub training: TrainingConfig,
    /// Client-level differential privacy; absent means none.
    #[serde(default)]
    pub privacy: Option<PrivacyConfig>,
    /// How results are aggregated; absent means FedAvg.
    #[serde(default)]
    pub strategy: StrategyConfig,
}

/// Client-level DP-FedAvg with central noise (McMahan et al., ICLR 2018): nodes
/// are Poisson-sampled with rate `rounds.fraction`, each node's model change is
/// clipped to `clip_norm`, and the coordinator adds N(0, (σ·C)²) to their sum.
/// The (ε, δ) budget is enforced: a round that would exceed it does not run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// σ: noise standard deviation in units of the clip norm.
    pub noise_multiplier: f64,
    /// C: bound on the L2 norm of one node's model change.
    pub clip_norm: f64,
    /// The federation's ε budget.
    pub epsilon: f64,
    pub delta: f64,
    #[serde(default)]
    pub accountant: AccountantKind,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AccountantKind {
    /// Rényi DP with the improved conversion to (ε, δ).
    #[default]
    Rdp,
    /// Privacy-loss distributions: tighter, slower.
    Pld,
}

impl PrivacyConfig {
    pub fn accountant(&self) -> Box<dyn cohort_privacy::Accountant + Send + Sync> {
        match self.accountant {
            AccountantKind::Rdp => Box::new(cohort_privacy::RdpAccountant::new(
                cohort_privacy::Conversion::Improved,
            )),
            AccountantKind::Pld => Box::new(cohort_privacy::PldAccountant::new()),
        }
    }

    pub fn budget(&self) -> Result<cohort_privacy::PrivacyBudget, cohort_privacy::PrivacyError> {
        cohort_privacy::PrivacyBudget::new(self.epsilon, self.delta)
    }

    /// One round's DP event: the Gaussian mechanism on a Poisson sample of nodes.
    pub fn round_event(
        &self,
        sampling_rate: f64,
    ) -> Result<cohort_privacy::DpEvent, cohort_privacy::PrivacyError> {
        cohort_privacy::DpEvent::poisson_sampled_gaussian(sampling_rate, self.noise_multiplier, 1)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Folder of the sled database.
    pub state_dir: PathBuf,
    pub ca_certificate: PathBuf,
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// How long a node's poll is held open when there is no task for it.
    #[serde(default = "default_poll_timeout_ms")]
    pub poll_timeout_ms: u64,
    /// A registered node that has not polled for this long is not sampled.
    #[serde(default = "default_liveness_ms")]
    pub liveness_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `logistic_regression` or `mlp`.
    pub kind: String,
    pub num_features: u32,
    pub num_classes: u32,
    #[serde(default)]
    pub hidden_layers: Vec<u32>,
    /// Seed of the initial model's weights.
    #[serde(default)]
    pub init_seed: u64,
}

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
    /// Seed of client sampling.
    #[serde(default)]
    pub seed: u64,
    /// Consecutive failed attempts of one round before the federation stops.
    #[serde(default = "default_max_failed_attempts")]
    pub max_failed_attempts: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    pub local_epochs: u32,
    pub batch_size: u32,
    pub learning_rate: f64,
}

impl ModelConfig {
    /// The architecture as the protocol describes it.
    pub fn spec(&self) -> ModelSpec {
        ModelSpec {
            kind: self.kind.clone(),
            num_features: self.num_features,
            num_classes: self.num_classes,
            hidden_layers: self.hidden_layers.clone(),
        }
    }
}

fn default_poll_timeout_ms() -> u64 {
    10_000
}
fn default_liveness_ms() -> u64 {
    60_000
}
fn default_max_failed_attempts() -> u32 {
    3
}
fn one() -> f64 {
    1.0
}

impl FederationConfig {
    /// Reads and validates a config file.
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
        ] {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        self
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.federation_id.trim().is_empty() {
            return Err(invalid("federation_id", "must not be empty"));
        }
        ParameterLayout::of(&self.model_spec()).map_err(|e| invalid("model", e.to_string()))?;
        let r = &self.rounds;
        if r.count == 0 {
            return Err(invalid("rounds.count", "must be at least 1"));
        }
        if !(r.fraction > 0.0 && r.fraction <= 1.0) {
            return Err(invalid(
                "rounds.fraction",
                format!("must be in (0, 1], got {}", r.fraction),
            ));
        }
        if r.min_clients == 0 {
            return Err(invalid("rounds.min_clients", "must be at least 1"));
        }
        if let Some(min_results) = r.min_results
            && (min_results == 0 || min_results > r.min_clients)
        {
            return Err(invalid(
                "rounds.min_results",
                format!("must be in 1..={}, got {min_results}", r.min_clients),
            ));
        }
        if !(r.deadline_secs.is_finite() && r.deadline_secs > 0.0) {
            return Err(invalid(
                "rounds.deadline_secs",
                format!(
                    "must be a positive number of seconds, got {}",
                    r.deadline_secs
                ),
            ));
        }
        if r.max_failed_attempts == 0 {
            return Err(invalid("rounds.max_failed_attempts", "must be at least 1"));
        }
        let t = &self.training;
        if t.local_epochs == 0 {
            return Err(invalid("training.local_epochs", "must be at least 1"));
        }
        if t.batch_size == 0 {
            return Err(invalid("training.batch_size", "must be at least 1"));
        }
        if !(t.learning_rate.is_finite() && t.learning_rate > 0.0) {
            return Err(invalid(
                "training.learning_rate",
                format!("must be positive, got {}", t.learning_rate),
            ));
        }
        if let Some(privacy) = &self.privacy {
            if !(privacy.noise_multiplier.is_finite() && privacy.noise_multiplier > 0.0) {
                return Err(invalid(
                    "privacy.noise_multiplier",
                    format!("must be positive, got {}", privacy.noise_multiplier),
                ));
            }
            if !(privacy.clip_norm.is_finite() && privacy.clip_norm > 0.0) {
                return Err(invalid(
                    "privacy.clip_norm",
                    format!("must be positive, got {}", privacy.clip_norm),
                ));
            }
            privacy
                .budget()
                .map_err(|e| invalid("privacy.epsilon / privacy.delta", e.to_string()))?;
        }
        self.strategy.validate(self.min_results())?;
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
        if self.server.poll_timeout_ms == 0 {
            return Err(invalid("server.poll_timeout_ms", "must be at least 1"));
        }
        if self.server.liveness_ms <= self.server.poll_timeout_ms {
            return Err(invalid(
                "server.liveness_ms",
                "must exceed server.poll_timeout_ms, or polling nodes look dead",
            ));
        }
        Ok(())
    }

    pub fn model_spec(&self) -> ModelSpec {
        self.model.spec()
    }

    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca_certificate: self.server.ca_certificate.clone(),
            certificate: self.server.certificate.clone(),
            private_key: self.server.private_key.clone(),
        }
    }

    pub fn min_results(&self) -> usize {
        self.rounds.min_results.unwrap_or(self.rounds.min_clients)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const EXAMPLE: &str = r#"
federation_id = "breast-cancer"

[server]
listen = "127.0.0.1:7443"
state_dir = "state"
ca_certificate = "pki/ca.pem"
certificate = "pki/coordinator-main.pem"
private_key = "pki/coordinator-main.key"

[model]
kind = "logistic_regression"
num_features = 30
num_classes = 2

[rounds]
count = 20
fraction = 1.0
min_clients = 3
deadline_secs = 30

[training]
local_epochs = 2
batch_size = 16
learning_rate = 0.1
"#;

    #[test]
    fn example_parses() {
        let config = FederationConfig::parse(EXAMPLE).unwrap();
        assert_eq!(config.rounds.count, 20);
        assert_eq!(config.min_results(), 3);
    }

    #[test]
    fn strategy_section_defaults_to_fedavg_and_parses() {
        let config = FederationConfig::parse(EXAMPLE).unwrap();
        assert_eq!(config.strategy, StrategyConfig::default());
        let text =
            format!("{EXAMPLE}\n[strategy]\nname = \"fedadam\"\nserver_learning_rate = 0.03\n");
        let config = FederationConfig::parse(&text).unwrap();
        assert_eq!(
            config.strategy,
            StrategyConfig::FedAdam {
                server_learning_rate: 0.03,
                beta1: 0.9,
                beta2: 0.99,
                tau: 1e-3,
                max_update_norm: None,
            }
        );
        let typo = format!("{EXAMPLE}\n[strategy]\nname = \"fedadam\"\nserver_lr = 0.03\n");
        let err = FederationConfig::parse(&typo).unwrap_err().to_string();
        assert!(err.contains("server_lr"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let text = EXAMPLE.replace("fraction = 1.0", "fraction = 1.0\nfractoin = 0.5");
        let err = FederationConfig::parse(&text).unwrap_err().to_string();
        assert!(err.contains("fractoin"), "{err}");
    }

    #[test]
    fn impossible_values_are_named() {
        for (from, to, key) in [
            ("fraction = 1.0", "fraction = 1.5", "rounds.fraction"),
            ("count = 20", "count = 0", "rounds.count"),
            ("min_clients = 3", "min_clients = 0", "rounds.min_clients"),
            (
                "learning_rate = 0.1",
                "learning_rate = -1.0",
                "training.learning_rate",
            ),
            ("kind = \"logistic_regression\"", "kind = \"cnn\"", "model"),
            (
                "learning_rate = 0.1",
                "learning_rate = 0.1\n[privacy]\nnoise_multiplier = 0.0\nclip_norm = 1.0\nepsilon = 3.0\ndelta = 1e-5",
                "privacy.noise_multiplier",
            ),
            (
                "learning_rate = 0.1",
                "learning_rate = 0.1\n[privacy]\nnoise_multiplier = 1.0\nclip_norm = 1.0\nepsilon = 3.0\ndelta = 1.5",
                "privacy.epsilon / privacy.delta",
            ),
            (
                "learning_rate = 0.1",
                "learning_rate = 0.1\n[strategy]\nname = \"fedadam\"\nserver_learning_rate = -1.0",
                "strategy.server_learning_rate",
            ),
            (
                "learning_rate = 0.1",
                "learning_rate = 0.1\n[strategy]\nname = \"krum\"\nbyzantine = 1",
                "strategy.byzantine",
            ),
            (
                "learning_rate = 0.1",
                "learning_rate = 0.1\n[strategy]\nname = \"median\"\n[privacy]\nnoise_multiplier = 1.0\nclip_norm = 1.0\nepsilon = 3.0\ndelta = 1e-5",
                "strategy.name",
            ),
        ] {
            let err = FederationConfig::parse(&EXAMPLE.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{to}: {err}");
        }
    }
}
