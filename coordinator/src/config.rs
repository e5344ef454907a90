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
    /// Secure aggregation; absent means nodes send their models in the clear
    /// (over TLS) and the coordinator sees each one.
    #[serde(default)]
    pub secure_aggregation: Option<SecureAggregationConfig>,
    /// How results are aggregated; absent means FedAvg.
    #[serde(default)]
    pub strategy: StrategyConfig,
}

/// Secure aggregation (SecAgg+, Bell et al. CCS 2020): the coordinator learns only
/// the weighted sum of the sampled nodes' model changes. Each node sends
/// `weight · clip(change)` and its `weight`, quantized and masked; the coordinator
/// unmasks the two sums and divides.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecureAggregationConfig {
    /// Each coordinate of a node's model change is clipped to ±clip_range.
    #[serde(default = "one")]
    pub clip_range: f64,
    /// Arithmetic modulo 2^bits; more bits, finer quantization.
    #[serde(default = "default_secagg_bits")]
    pub bits: u32,
    /// k: neighbours each node masks with; default min(40, n − 1).
    #[serde(default)]
    pub neighbours: Option<usize>,
    /// t: neighbours needed to rebuild a node's secret; default a bare majority.
    #[serde(default)]
    pub threshold: Option<usize>,
    /// A node's weight is min(examples, weight_cap) / weight_cap: a public cap,
    /// so that the weight fits the quantizer's [0, 1]. With the cap at least the
    /// largest node's example count, the result is FedAvg's example weighting.
    #[serde(default = "default_weight_cap")]
    pub weight_cap: u64,
    /// Deadline of each key-exchange and unmasking stage; default `rounds.deadline_secs`.
    #[serde(default)]
    pub stage_deadline_secs: Option<f64>,
}

impl Default for SecureAggregationConfig {
    fn default() -> Self {
        Self {
            clip_range: one(),
            bits: default_secagg_bits(),
            neighbours: None,
            threshold: None,
            weight_cap: default_weight_cap(),
            stage_deadline_secs: None,
        }
    }
}

impl SecureAggregationConfig {
    /// The protocol parameters for a round of `n` participants.
    pub fn for_round(&self, n: usize) -> cohort_crypto::secagg::SecAggConfig {
        let base = cohort_crypto::secagg::SecAggConfig {
            // SecAgg+'s default neighbourhood, from the protocol's own defaults.
            neighbours: self
                .neighbours
                .unwrap_or(cohort_crypto::secagg::SecAggConfig::default().neighbours),
            threshold: 0,
            clip_range: self.clip_range,
            bits: self.bits,
        };
        let k = base.neighbourhood_size(n);
        cohort_crypto::secagg::SecAggConfig {
            threshold: self.threshold.unwrap_or(k / 2 + 1),
            ..base
        }
    }
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
    /// Who adds the noise: the coordinator (`central`) or the nodes, in
    /// shares that only sum to the full noise (`distributed`, needs
    /// `[secure_aggregation]`).
    #[serde(default)]
    pub placement: NoisePlacement,
    /// Adaptive clipping: `clip_norm` is only the start, and the clip norm
    /// follows a quantile of the nodes' update norms. Central placement only.
    #[serde(default)]
    pub adaptive_clipping: Option<AdaptiveClippingConfig>,
}

/// Adaptive clipping by private quantile tracking (Andrew, Thakkar, McMahan,
/// Ramaswamy, NeurIPS 2021): each round the coordinator counts the nodes whose
/// change was within the clip norm, adds N(0, σ_b²) to the count, and moves
/// the clip norm geometrically towards the `target_quantile` of the norms. The
/// count's privacy cost comes out of `noise_multiplier`: the update sum gets
/// σ_Δ = (σ⁻² − (2σ_b)⁻²)^(−1/2), so the round is accounted as before.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveClippingConfig {
    /// γ: the quantile of update norms to track.
    #[serde(default = "default_target_quantile")]
    pub target_quantile: f64,
    /// η: C ← C·exp(−η(b̃ − γ)) each round.
    #[serde(default = "default_clip_learning_rate")]
    pub learning_rate: f64,
    /// σ_b: noise on the clipped count (the paper suggests expected nodes / 20).
    pub count_noise_stddev: f64,
}

fn default_target_quantile() -> f64 {
    0.5
}
fn default_clip_learning_rate() -> f64 {
    0.2
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NoisePlacement {
    /// DP-FedAvg's Gaussian noise, added by the coordinator to the sum it sees.
    #[default]
    Central,
    /// The distributed discrete Gaussian (Kairouz, Liu, Steinke, ICML 2021):
    /// each node adds discrete Gaussian noise to its integer-rounded change
    /// before masking, so the coordinator never sees a noise-free sum.
    Distributed,
}

/// Each node's discrete Gaussian noise, in integer units, under distributed
/// placement. Large enough that rounding to integers (variance 1/4) is noise
/// next to it; small enough that the 32-bit sum of a thousand nodes' shares
/// stays far from wrapping.
const LOCAL_STDDEV_UNITS: f64 = 256.0;

/// β of conditional randomized rounding, the paper's choice: e^(−1/2).
fn rounding_beta() -> f64 {
    (-0.5f64).exp()
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

    /// One round's DP event on a Poisson sample of nodes: the Gaussian
    /// mechanism, or the distributed discrete Gaussian for `min_clients` nodes
    /// (the fewest whose noise a released sum carries) and `dimension` parameters.
    pub fn round_event(
        &self,
        sampling_rate: f64,
        min_clients: usize,
        dimension: usize,
    ) -> Result<cohort_privacy::DpEvent, cohort_privacy::PrivacyError> {
        match self.placement {
            NoisePlacement::Central => cohort_privacy::DpEvent::poisson_sampled_gaussian(
                sampling_rate,
                self.noise_multiplier,
                1,
            ),
            NoisePlacement::Distributed => cohort_privacy::DpEvent::distributed_discrete_gaussian(
                sampling_rate,
                self.distributed_mechanism(min_clients, dimension),
                1,
            ),
        }
    }

    /// The distributed discrete Gaussian that carries σ·C of noise in the sum
    /// of `min_clients` nodes' shares: each adds N_ℤ(0, s²) with s fixed in
    /// integer units, so the granularity is γ = σ·C / (s·√min_clients).
    pub fn distributed_mechanism(
        &self,
        min_clients: usize,
        dimension: usize,
    ) -> cohort_privacy::DistributedDiscreteGaussian {
        let clients = min_clients.max(1) as f64;
        cohort_privacy::DistributedDiscreteGaussian {
            clip_norm: self.clip_norm,
            granularity: self.noise_multiplier * self.clip_norm
                / (LOCAL_STDDEV_UNITS * clients.sqrt()),
            local_stddev: LOCAL_STDDEV_UNITS,
            clients: min_clients.max(1) as u64,
            dimension: dimension as u64,
            rounding_beta: rounding_beta(),
        }
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
    /// Connections open at once, handshakes included; more are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Requests one node may make per second, sustained (a round costs a node
    /// about ten); past it, requests are refused with RESOURCE_EXHAUSTED.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: u32,
    /// Requests one node may make at once above the sustained rate.
    #[serde(default = "default_request_burst")]
    pub request_burst: u32,
    /// Revoked certificates (`pki/revoked.txt`, written by `cohort-coordinator
    /// pki revoke`): refused even though they chain to the CA. Read at start.
    #[serde(default)]
    pub revocation_list: Option<PathBuf>,
    /// Keep serving once the rounds have finished (until Ctrl-C or SIGTERM):
    /// auditors can still read the log, nodes download models and report
    /// erasures, and an erasure that taints the final model is retrained at
    /// once by the nodes that start again. Off, the coordinator stops after
    /// the last round (what a simulation or a one-off run wants) and such an
    /// erasure is retrained at its next start.
    #[serde(default)]
    pub serve_after_finish: bool,
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
pub fn default_max_connections() -> usize {
    cohort_crypto::tls::acceptor::DEFAULT_MAX_CONNECTIONS
}
pub fn default_requests_per_second() -> u32 {
    200
}
pub fn default_request_burst() -> u32 {
    400
}
fn default_max_failed_attempts() -> u32 {
    3
}
fn default_secagg_bits() -> u32 {
    32
}
fn default_weight_cap() -> u64 {
    10_000
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
        ]
        .into_iter()
        .chain(self.server.revocation_list.as_mut())
        {
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
            if let Some(adaptive) = &privacy.adaptive_clipping {
                let key = "privacy.adaptive_clipping";
                if privacy.placement != NoisePlacement::Central {
                    return Err(invalid(key, "works with central placement only"));
                }
                if !(adaptive.target_quantile > 0.0 && adaptive.target_quantile < 1.0) {
                    return Err(invalid(
                        "privacy.adaptive_clipping.target_quantile",
                        format!("must be in (0, 1), got {}", adaptive.target_quantile),
                    ));
                }
                if !(adaptive.learning_rate.is_finite() && adaptive.learning_rate > 0.0) {
                    return Err(invalid(
                        "privacy.adaptive_clipping.learning_rate",
                        format!("must be positive, got {}", adaptive.learning_rate),
                    ));
                }
                cohort_privacy::update_noise_multiplier(
                    privacy.noise_multiplier,
                    adaptive.count_noise_stddev,
                )
                .map_err(|e| {
                    invalid(
                        "privacy.adaptive_clipping.count_noise_stddev",
                        e.to_string(),
                    )
                })?;
            }
            if privacy.placement == NoisePlacement::Distributed {
                if self.secure_aggregation.is_none() {
                    return Err(invalid(
                        "privacy.placement",
                        "\"distributed\" needs [secure_aggregation]: without it the coordinator sees each node's noised change, and one node's noise share is too small to protect it",
                    ));
                }
                if privacy.accountant == AccountantKind::Pld {
                    return Err(invalid(
                        "privacy.accountant",
                        "the distributed discrete Gaussian is accounted with RDP only (Kairouz et al. 2021 give RDP bounds); use \"rdp\"",
                    ));
                }
                let num_parameters = ParameterLayout::of(&self.model_spec())
                    .map_err(|e| invalid("model", e.to_string()))?
                    .num_parameters();
                privacy
                    .distributed_mechanism(self.min_results(), num_parameters)
                    .validate()
                    .map_err(|e| invalid("privacy", e.to_string()))?;
            }
        }
        if let Some(secagg) = &self.secure_aggregation {
            self.validate_secure_aggregation(secagg)?;
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
        for (key, value) in [
            ("server.max_connections", self.server.max_connections as u64),
            (
                "server.requests_per_second",
                u64::from(self.server.requests_per_second),
            ),
            ("server.request_burst", u64::from(self.server.request_burst)),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.server.liveness_ms <= self.server.poll_timeout_ms {
            return Err(invalid(
                "server.liveness_ms",
                "must exceed server.poll_timeout_ms, or polling nodes look dead",
            ));
        }
        Ok(())
    }

    fn validate_secure_aggregation(
        &self,
        secagg: &SecureAggregationConfig,
    ) -> Result<(), ConfigError> {
        let key = "secure_aggregation";
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
        self.strategy.check_secure_aggregation()?;
        if secagg.weight_cap == 0 {
            return Err(invalid(
                "secure_aggregation.weight_cap",
                "must be at least 1",
            ));
        }
        if let Some(secs) = secagg.stage_deadline_secs
            && !(secs.is_finite() && secs > 0.0)
        {
            return Err(invalid(
                "secure_aggregation.stage_deadline_secs",
                format!("must be a positive number of seconds, got {secs}"),
            ));
        }
        // The smallest round the federation runs; larger rounds shrink the
        // quantization scale so that their sums cannot wrap either.
        let num_parameters = ParameterLayout::of(&self.model_spec())
            .map_err(|e| invalid("model", e.to_string()))?
            .num_parameters();
        secagg
            .for_round(self.rounds.min_clients)
            .validate(self.rounds.min_clients, num_parameters)
            .map_err(|e| invalid(key, e.to_string()))
    }

    /// Deadline of the secure-aggregation stages after the first.
    pub fn secagg_stage_deadline_secs(&self) -> f64 {
        self.secure_aggregation
            .as_ref()
            .and_then(|s| s.stage_deadline_secs)
            .unwrap_or(self.rounds.deadline_secs)
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
        assert!(
            !config.server.serve_after_finish,
            "by default the coordinator stops after the last round"
        );
        let serving = EXAMPLE.replace(
            "private_key = \"pki/coordinator-main.key\"",
            "private_key = \"pki/coordinator-main.key\"\nserve_after_finish = true",
        );
        assert!(
            FederationConfig::parse(&serving)
                .unwrap()
                .server
                .serve_after_finish
        );
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
                "learning_rate = 0.1\n[secure_aggregation]\nbits = 1",
                "secure_aggregation",
            ),
            (
                "learning_rate = 0.1",
                "learning_rate = 0.1\n[privacy]\nnoise_multiplier = 1.0\nclip_norm = 1.0\nepsilon = 3.0\ndelta = 1e-5\n[privacy.adaptive_clipping]\ncount_noise_stddev = 0.1",
                "privacy.adaptive_clipping.count_noise_stddev",
            ),
            (
                "learning_rate = 0.1",
                "learning_rate = 0.1\n[secure_aggregation]\nweight_cap = 0",
                "secure_aggregation.weight_cap",
            ),
            (
                "learning_rate = 0.1",
                "learning_rate = 0.1\n[strategy]\nname = \"median\"\n[secure_aggregation]",
                "reveals only their sum",
            ),
            (
                "learning_rate = 0.1",
                "learning_rate = 0.1\n[secure_aggregation]\nthreshold = 1\nneighbours = 2",
                "threshold must exceed half",
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

    #[test]
    fn secure_aggregation_needs_two_clients_and_no_central_noise() {
        let secagg = format!("{EXAMPLE}\n[secure_aggregation]\nclip_range = 0.5\n");
        let config = FederationConfig::parse(&secagg).unwrap();
        let round = config.secure_aggregation.as_ref().unwrap().for_round(10);
        assert_eq!((round.neighbours, round.threshold), (40, 5));
        assert_eq!(round.neighbourhood_size(10), 9);
        let err = FederationConfig::parse(&secagg.replace("min_clients = 3", "min_clients = 1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rounds.min_clients"), "{err}");
        let with_privacy = format!(
            "{secagg}\n[privacy]\nnoise_multiplier = 1.0\nclip_norm = 1.0\nepsilon = 3.0\ndelta = 1e-5\n"
        );
        let err = FederationConfig::parse(&with_privacy)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`privacy.placement` must be \"distributed\""),
            "{err}"
        );
        let distributed =
            with_privacy.replace("delta = 1e-5", "delta = 1e-5\nplacement = \"distributed\"");
        let config = FederationConfig::parse(&distributed).unwrap();
        let mechanism = config
            .privacy
            .as_ref()
            .unwrap()
            .distributed_mechanism(3, 62);
        // σ·C of noise over the three nodes' shares: √3 · 256 · γ = 1.0.
        assert!((3f64.sqrt() * mechanism.local_stddev * mechanism.granularity - 1.0).abs() < 1e-12);
        let alone = distributed.replace("[secure_aggregation]\nclip_range = 0.5\n", "");
        let err = FederationConfig::parse(&alone).unwrap_err().to_string();
        assert!(err.contains("needs [secure_aggregation]"), "{err}");
    }
}
