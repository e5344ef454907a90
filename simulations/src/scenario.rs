//! A simulation scenario: one TOML file that says which data, how many nodes,
//! how the data is split among them, and how the federation trains.
//!
//! As with the coordinator's config (`cohort_coordinator::config`), unknown keys
//! are refused (`deny_unknown_fields`) so a typo cannot silently fall back to a
//! default, and [`Scenario::validate`] refuses impossible values naming the key.
//! The federation-level checks (rounds, training, model kind, privacy) are the
//! coordinator's own, run on the config the scenario turns into.
//!
//! ```toml
//! seed = 7
//! nodes = 10
//! holdout = 0.2
//! mode = "tasks"               # or "processes": nodes as `cohort-node` processes
//! data = "digits"              # or "breast_cancer", or
//!                              # data = { csv = { path = "x.csv", label_column = 4, header_lines = 1 } }
//! partition = { kind = "dirichlet", alpha = 0.1 }
//!
//! [rounds]
//! count = 20
//! min_clients = 10
//! deadline_secs = 60
//!
//! [training]
//! local_epochs = 2
//! batch_size = 16
//! learning_rate = 0.05
//!
//! [model]
//! kind = "mlp"
//! hidden_layers = [64]
//!
//! [strategy]                   # optional: the coordinator's [strategy]; default fedavg
//! name = "trimmed_mean"
//! trim_fraction = 0.2
//!
//! [faults]                     # optional: see `crate::faults`
//! malicious = { fraction = 0.2, attack = { kind = "sign_flip" } }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cohort_client::data::{CsvOptions, Dataset, FeatureScaling, LabelColumn};
use cohort_client::model::{FederatedModel, SavedSpec, with_random_state};
use cohort_client::sdk::{self, SdkError};
use cohort_client::training::Trainable;
use cohort_client::zoo::{DigitsCnn, FraudConv1d};
use cohort_coordinator::config::{
    ConfigError, FederationConfig, ModelConfig, PrivacyConfig, RoundsConfig,
    SecureAggregationConfig, ServerConfig, StrategyConfig, TrainingConfig,
};
use cohort_coordinator::store::postgres::PostgresSettings;
use cohort_proto::export::ModelFile;
use cohort_proto::model::ModelDescriptor;
use serde::{Deserialize, Serialize};

use crate::faults::Faults;
use crate::partition::{self, Partition, PartitionError};

/// Why a scenario was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The scenario file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The scenario file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not TOML of a scenario's shape (e.g. an unknown key).
    #[error("{path}: {message}")]
    Parse {
        /// The scenario file; `<scenario>` for text parsed directly.
        path: PathBuf,
        /// The TOML parser's message.
        message: String,
    },
    /// A setting is impossible, or cannot be acted out in this mode.
    #[error("`{key}` {problem}")]
    Invalid {
        /// The offending key, e.g. `rounds.min_clients`.
        key: String,
        /// What is wrong with its value.
        problem: String,
    },
}

fn invalid(key: &str, problem: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        key: key.to_owned(),
        problem: problem.into(),
    }
}

/// A simulation scenario as read from its TOML file, defaults filled in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seeds the partition, the holdout splits, the initial model and sampling.
    #[serde(default)]
    pub seed: u64,
    /// Simulated nodes, each with its own certificate (a task or a process: `mode`).
    pub nodes: usize,
    /// Fraction of each node's rows (per class) it holds out for evaluation, in (0, 1).
    #[serde(default = "default_holdout")]
    pub holdout: f64,
    /// The data set split among the nodes.
    pub data: DataSource,
    /// How its rows are split among the nodes.
    pub partition: Partitioner,
    /// The rounds the federation runs and whom each samples.
    pub rounds: ScenarioRounds,
    /// Each node's local training (the coordinator's `[training]`).
    pub training: TrainingConfig,
    /// The model trained; its sizes come from the data.
    pub model: ScenarioModel,
    /// Client-level DP-FedAvg; absent means none.
    #[serde(default)]
    pub privacy: Option<PrivacyConfig>,
    /// Secure aggregation (the coordinator's `[secure_aggregation]`); absent means none.
    #[serde(default)]
    pub secure_aggregation: Option<SecureAggregationConfig>,
    /// The coordinator's `[strategy]`; absent means FedAvg.
    #[serde(default)]
    pub strategy: StrategyConfig,
    /// Simulated dropouts, stragglers and attackers; absent means none.
    #[serde(default)]
    pub faults: Faults,
    /// Nodes as tasks of this process (the default) or as `cohort-node` processes.
    #[serde(default)]
    pub mode: Mode,
    /// Serve the operator's endpoints during the run and scrape them as a
    /// monitoring system would (to measure what they cost); absent: off.
    #[serde(default)]
    pub observe: Option<Observe>,
    /// Keep the coordinator's state in this (empty) PostgreSQL database
    /// instead of a sled folder (`cohort-sim run --postgres`). Never read from
    /// or written to a scenario file: the URL may carry a password.
    #[serde(skip)]
    pub postgres: Option<PostgresSettings>,
}

/// The coordinator's operator endpoints (`/metrics` and the web console) on,
/// and a scraper reading them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Observe {
    /// How often `/metrics`, the console's operator page and its rounds are
    /// read, in milliseconds (Prometheus' default is 15 000).
    pub scrape_interval_ms: u64,
}

/// How the nodes of a run are executed; the protocol is the same either way.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every node a task of the simulating process.
    #[default]
    Tasks,
    /// Every node a `cohort-node run` process reading its own CSV file.
    Processes,
}

/// The data every node's rows come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSource {
    /// data/breast_cancer.csv: 569 rows, 30 features, 2 classes.
    BreastCancer,
    /// data/digits.csv.gz: 1797 rows, 64 features, 10 classes.
    Digits,
    /// data/fraud_sequences.csv.gz (synthetic, [`crate::synthetic`]): 4000
    /// accounts' last ten transactions, 40 features, 2 classes.
    FraudSequences,
    /// Any CSV (plain or gzip) of numeric features and an integer label.
    Csv(CsvSource),
}

/// A CSV data file named in the scenario (`data = { csv = { … } }`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CsvSource {
    /// Relative to the scenario file's folder.
    pub path: PathBuf,
    /// 0-based column of the label; absent means the last column.
    #[serde(default)]
    pub label_column: Option<usize>,
    /// Lines to skip at the top of the file; absent means none.
    #[serde(default)]
    pub header_lines: usize,
}

/// How the rows are split among the nodes (see [`crate::partition`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Partitioner {
    /// IID: a seeded shuffle dealt round-robin.
    Iid,
    /// Label skew: each class's rows shared among the nodes by a Dirichlet draw.
    Dirichlet {
        /// Concentration α, positive and finite: the smaller, the more skewed.
        alpha: f64,
        /// Rows every node must get (the draw is repeated until it does); default 10.
        #[serde(default = "default_min_rows")]
        min_rows: usize,
    },
    /// Pathological label skew: each node gets this many single-class shards.
    Shards {
        /// Shards per node, at least 1; a node holds at most this many classes.
        classes_per_node: usize,
    },
    /// IID rows, node sizes following a power law.
    QuantitySkew {
        /// Power-law exponent, finite and non-negative: 0 gives equal sizes.
        exponent: f64,
        /// Rows every node must get; default 10.
        #[serde(default = "default_min_rows")]
        min_rows: usize,
    },
}

/// The coordinator's `[rounds]`, its sampling seed being the scenario's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScenarioRounds {
    /// Completed rounds after which the federation finishes.
    pub count: u64,
    /// Fraction of the available nodes sampled per round, in (0, 1]; default 1.
    #[serde(default = "one")]
    pub fraction: f64,
    /// Nodes sampled at least, and available before a round starts; at most `nodes`.
    pub min_clients: usize,
    /// Results a round needs to count; absent means `min_clients`.
    #[serde(default)]
    pub min_results: Option<usize>,
    /// How long a stage waits for results before going on with what it has.
    pub deadline_secs: f64,
}

/// The coordinator's `[model]` without the sizes, which come from the data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScenarioModel {
    /// `logistic_regression` or `mlp` (built-in), or `digits_cnn` or
    /// `fraud_conv1d` (the node SDK's zoo, [`ZooModel`]).
    pub kind: String,
    /// Widths of an `mlp`'s hidden layers; absent means none.
    #[serde(default)]
    pub hidden_layers: Vec<u32>,
}

/// The file, in the run's work folder, of a zoo model's first parameters.
pub const FIRST_MODEL_FILE: &str = "first-model.safetensors";

/// A model of the node SDK's zoo (`cohort_client::zoo`) a scenario trains:
/// the coordinator knows it by its descriptor, its first parameters come
/// from a file drawn with the scenario's seed, and its nodes join through
/// the SDK (in-process nodes only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZooModel {
    /// `digits_cnn`: [`DigitsCnn`] over the 8×8 digits.
    DigitsCnn,
    /// `fraud_conv1d`: [`FraudConv1d`] over transaction sequences.
    FraudConv1d,
}

impl ZooModel {
    /// The model's descriptor.
    ///
    /// # Errors
    /// [`SdkError`] if the module makes no descriptor (a bug in the zoo).
    pub fn descriptor(self) -> Result<ModelDescriptor, SdkError> {
        match self {
            Self::DigitsCnn => Ok(with_random_state(None, DigitsCnn::new).descriptor()?),
            Self::FraudConv1d => Ok(with_random_state(None, FraudConv1d::new).descriptor()?),
        }
    }

    /// The federation's first model, drawn from `seed`.
    ///
    /// # Errors
    /// As [`cohort_client::sdk::initial_model`].
    pub fn first_model(self, seed: u64) -> Result<ModelFile, SdkError> {
        match self {
            Self::DigitsCnn => sdk::initial_model(DigitsCnn::new, seed),
            Self::FraudConv1d => sdk::initial_model(FraudConv1d::new, seed),
        }
    }

    /// The model a node trains on rows like `train`'s.
    ///
    /// # Errors
    /// As [`cohort_client::sdk::own_model`].
    pub fn trainable(self, train: &Dataset) -> Result<Arc<dyn Trainable>, SdkError> {
        match self {
            Self::DigitsCnn => sdk::own_model(DigitsCnn::new, train),
            Self::FraudConv1d => sdk::own_model(FraudConv1d::new, train),
        }
    }
}

impl ScenarioModel {
    /// The zoo model `kind` names, if it names one.
    pub fn zoo(&self) -> Option<ZooModel> {
        match self.kind.as_str() {
            "digits_cnn" => Some(ZooModel::DigitsCnn),
            "fraud_conv1d" => Some(ZooModel::FraudConv1d),
            _ => None,
        }
    }
}

fn default_holdout() -> f64 {
    0.2
}
fn default_min_rows() -> usize {
    10
}
fn one() -> f64 {
    1.0
}

impl DataSource {
    /// The file to load, and how. Bundled sets are found as [`crate::demo::bundled`] does.
    pub fn file(&self) -> (PathBuf, CsvOptions) {
        match self {
            Self::BreastCancer => (
                crate::demo::bundled("breast_cancer.csv"),
                CsvOptions {
                    header_lines: 1,
                    ..CsvOptions::default()
                },
            ),
            Self::Digits => (crate::demo::bundled("digits.csv.gz"), CsvOptions::default()),
            Self::FraudSequences => (
                crate::demo::bundled("fraud_sequences.csv.gz"),
                CsvOptions::default(),
            ),
            Self::Csv(csv) => (
                csv.path.clone(),
                CsvOptions {
                    label_column: csv
                        .label_column
                        .map_or(LabelColumn::Last, LabelColumn::Index),
                    header_lines: csv.header_lines,
                    ..CsvOptions::default()
                },
            ),
        }
    }

    /// A short name for reports.
    pub fn name(&self) -> String {
        match self {
            Self::BreastCancer => "breast_cancer".into(),
            Self::Digits => "digits".into(),
            Self::FraudSequences => "fraud_sequences".into(),
            Self::Csv(csv) => csv.path.display().to_string(),
        }
    }
}

impl Partitioner {
    /// Splits rows with these `labels` among `nodes` nodes.
    pub fn split(
        &self,
        labels: &[u32],
        nodes: usize,
        seed: u64,
    ) -> Result<Partition, PartitionError> {
        match *self {
            Self::Iid => partition::iid(labels.len(), nodes, seed),
            Self::Dirichlet { alpha, min_rows } => {
                partition::dirichlet(labels, nodes, alpha, min_rows, seed)
            }
            Self::Shards { classes_per_node } => {
                partition::shards(labels, nodes, classes_per_node, seed)
            }
            Self::QuantitySkew { exponent, min_rows } => {
                partition::quantity_skew(labels.len(), nodes, exponent, min_rows, seed)
            }
        }
    }

    /// A short description for reports, e.g. `dirichlet(alpha = 0.1)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Iid => "iid".into(),
            Self::Dirichlet { alpha, .. } => format!("dirichlet(alpha = {alpha})"),
            Self::Shards { classes_per_node } => {
                format!("shards(classes_per_node = {classes_per_node})")
            }
            Self::QuantitySkew { exponent, .. } => format!("quantity_skew(exponent = {exponent})"),
        }
    }
}

impl Scenario {
    /// Reads and validates a scenario file; a relative CSV path is taken relative
    /// to its folder (and made absolute).
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut scenario = Self::parse(&text).map_err(|e| match e {
            ScenarioError::Parse { message, .. } => ScenarioError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        if let DataSource::Csv(csv) = &mut scenario.data
            && csv.path.is_relative()
        {
            let joined = path.parent().unwrap_or(Path::new(".")).join(&csv.path);
            // Absolute, so the copy in a run folder still points at the data.
            csv.path = std::path::absolute(&joined).unwrap_or(joined);
        }
        Ok(scenario)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Self = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: PathBuf::from("<scenario>"),
            message: e.to_string(),
        })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks the scenario as a whole: fails with [`ScenarioError::Invalid`],
    /// naming the key, on no nodes, a holdout outside (0, 1), bad partitioner
    /// parameters, more `min_clients` than nodes, bad faults, faults in process
    /// mode, or settings the coordinator's own validation refuses.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.nodes == 0 {
            return Err(invalid("nodes", "must be at least 1"));
        }
        if !(self.holdout > 0.0 && self.holdout < 1.0) {
            return Err(invalid(
                "holdout",
                format!("must be in (0, 1), got {}", self.holdout),
            ));
        }
        match &self.partition {
            Partitioner::Iid => {}
            Partitioner::Dirichlet { alpha, .. } => {
                if !(alpha.is_finite() && *alpha > 0.0) {
                    return Err(invalid(
                        "partition.alpha",
                        format!("must be positive, got {alpha}"),
                    ));
                }
            }
            Partitioner::Shards { classes_per_node } => {
                if *classes_per_node == 0 {
                    return Err(invalid("partition.classes_per_node", "must be at least 1"));
                }
            }
            Partitioner::QuantitySkew { exponent, .. } => {
                if !(exponent.is_finite() && *exponent >= 0.0) {
                    return Err(invalid(
                        "partition.exponent",
                        format!("must be finite and non-negative, got {exponent}"),
                    ));
                }
            }
        }
        if self.rounds.min_clients > self.nodes {
            return Err(invalid(
                "rounds.min_clients",
                format!(
                    "is {} but there are only {} nodes: no round could start",
                    self.rounds.min_clients, self.nodes
                ),
            ));
        }
        self.faults.validate()?;
        if let Some(observe) = self.observe
            && observe.scrape_interval_ms < 10
        {
            return Err(invalid(
                "observe.scrape_interval_ms",
                format!("must be at least 10, got {}", observe.scrape_interval_ms),
            ));
        }
        if self.mode == Mode::Processes {
            self.check_processes()?;
        }
        // The rest is the coordinator's own validation; the model's sizes are
        // placeholders until the data is loaded (see `federation_config`).
        self.federation_config(1, 2, PathBuf::new())
            .validate()
            .map_err(|e| match e {
                ConfigError::Invalid { key, problem } => invalid(key, problem),
                other => invalid("scenario", other.to_string()),
            })
    }

    /// Refuses what node processes cannot act out: faults are played by
    /// in-process nodes only (`cohort_client::fault` hooks), and a node process
    /// is a plain `cohort-node run`.
    pub fn check_processes(&self) -> Result<(), ScenarioError> {
        let faults = [
            ("model.kind", self.model.zoo().is_some()),
            ("faults.dropout", self.faults.dropout.is_some()),
            ("faults.stragglers", self.faults.stragglers.is_some()),
            ("faults.malicious", self.faults.malicious.is_some()),
        ];
        match faults.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(invalid(
                key,
                "is acted out by in-process nodes only: remove it, or run the nodes \
                 as tasks (no --processes, `mode = \"tasks\"`)",
            )),
            None => Ok(()),
        }
    }

    /// The coordinator's `[model]` for data of this shape. A zoo model's
    /// first parameters are named [`FIRST_MODEL_FILE`], relative to the
    /// folder the run writes it into.
    pub fn model_config(&self, num_features: u32, num_classes: u32) -> ModelConfig {
        if let Some(zoo) = self.model.zoo() {
            return ModelConfig {
                kind: None,
                // A zoo model that makes no descriptor is refused by validation,
                // and so are hidden layers, which are the built-in MLP's.
                descriptor: zoo.descriptor().ok(),
                hidden_layers: self.model.hidden_layers.clone(),
                initial_parameters: Some(PathBuf::from(FIRST_MODEL_FILE)),
                ..ModelConfig::dense(SavedSpec::logistic_regression(num_features, num_classes), 0)
            };
        }
        let spec = SavedSpec {
            kind: self.model.kind.clone(),
            num_features,
            num_classes,
            hidden_layers: self.model.hidden_layers.clone(),
        };
        ModelConfig::dense(spec, self.seed)
    }

    /// The coordinator's `[rounds]`: this scenario's, sampling with its seed, the
    /// federation stopping after 3 failed attempts at one round.
    pub fn rounds_config(&self) -> RoundsConfig {
        RoundsConfig {
            count: self.rounds.count,
            fraction: self.rounds.fraction,
            min_clients: self.rounds.min_clients,
            min_results: self.rounds.min_results,
            deadline_secs: self.rounds.deadline_secs,
            seed: self.seed,
            max_failed_attempts: 3,
        }
    }

    /// A coordinator config for validation: real federation settings, dummy server.
    fn federation_config(
        &self,
        num_features: u32,
        num_classes: u32,
        dummy: PathBuf,
    ) -> FederationConfig {
        FederationConfig {
            federation_id: "scenario".into(),
            server: ServerConfig {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                state_dir: dummy.clone(),
                store: None,
                ca_certificate: dummy.clone(),
                certificate: dummy.clone(),
                private_key: dummy,
                poll_timeout_ms: 1_000,
                liveness_ms: 6_000,
                max_connections: cohort_coordinator::config::default_max_connections(),
                requests_per_second: cohort_coordinator::config::default_requests_per_second(),
                request_burst: cohort_coordinator::config::default_request_burst(),
                revocation_list: None,
                serve_after_finish: false,
                observability_listen: None,
                console_listen: None,
                tensorboard_dir: None,
                withdrawal_patience_hours:
                    cohort_coordinator::config::default_withdrawal_patience_hours(),
                coordinator_lease_ms: cohort_coordinator::config::default_coordinator_lease_ms(),
                change_settings: false,
            },
            model: self.model_config(num_features, num_classes),
            rounds: self.rounds_config(),
            training: self.training.clone(),
            privacy: self.privacy.clone(),
            secure_aggregation: self.secure_aggregation.clone(),
            strategy: self.strategy.clone(),
            // The run declares the pooled training rows' scaling under secure
            // aggregation or DP (`Shares::plan`); one of the right width
            // stands in for it here, where no data is loaded.
            scaling: (self.secure_aggregation.is_some() || self.privacy.is_some()).then(|| {
                FeatureScaling {
                    mean: vec![0.0; num_features as usize],
                    std: vec![1.0; num_features as usize],
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
seed = 3
nodes = 4
data = "breast_cancer"
partition = { kind = "dirichlet", alpha = 0.5 }

[rounds]
count = 5
fraction = 1.0
min_clients = 4
deadline_secs = 30

[training]
local_epochs = 1
batch_size = 16
learning_rate = 0.1

[model]
kind = "logistic_regression"
"#;

    fn shipped() -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn shipped_scenarios_parse_and_validate() {
        let files = shipped();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for expected in [
            "breast-cancer-dp.toml",
            "digits-dirichlet-0.1.toml",
            "digits-iid.toml",
        ] {
            assert!(names.iter().any(|n| n == expected), "{names:?}");
        }
        for file in files {
            let scenario = Scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
            let (data, _) = scenario.data.file();
            assert!(data.exists(), "{}", data.display());
        }
        let dp = Scenario::load(&shipped_file("breast-cancer-dp.toml")).unwrap();
        assert!(dp.privacy.is_some());
        let skewed = Scenario::load(&shipped_file("digits-dirichlet-0.1.toml")).unwrap();
        assert!(matches!(skewed.partition, Partitioner::Dirichlet { alpha, .. } if alpha == 0.1));
        let cnn = Scenario::load(&shipped_file("digits-dirichlet-0.5-cnn.toml")).unwrap();
        assert_eq!(cnn.model.zoo(), Some(ZooModel::DigitsCnn));
        let model = cnn.model_config(64, 10);
        assert_eq!(model.descriptor.unwrap().name, "cohort.zoo.digits-cnn");
        // A zoo model's nodes join through the SDK: not as cohort-node processes.
        let as_processes = Scenario {
            mode: Mode::Processes,
            ..cnn
        };
        let err = as_processes.validate().unwrap_err();
        assert!(err.to_string().contains("`model.kind`"), "{err}");
    }

    fn shipped_file(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(name)
    }

    #[test]
    fn example_parses_every_data_source_and_partitioner() {
        let s = Scenario::parse(EXAMPLE).unwrap();
        assert_eq!(s.holdout, 0.2);
        assert_eq!(s.rounds_config().seed, 3);
        for (data, partition, expected_data, expected_partition) in [
            (
                "\"digits\"",
                "{ kind = \"iid\" }",
                DataSource::Digits,
                Partitioner::Iid,
            ),
            (
                "{ csv = { path = \"x.csv\", label_column = 4, header_lines = 1 } }",
                "{ kind = \"shards\", classes_per_node = 2 }",
                DataSource::Csv(CsvSource {
                    path: "x.csv".into(),
                    label_column: Some(4),
                    header_lines: 1,
                }),
                Partitioner::Shards {
                    classes_per_node: 2,
                },
            ),
            (
                "{ csv = { path = \"x.csv\" } }",
                "{ kind = \"quantity_skew\", exponent = 1.5 }",
                DataSource::Csv(CsvSource {
                    path: "x.csv".into(),
                    label_column: None,
                    header_lines: 0,
                }),
                Partitioner::QuantitySkew {
                    exponent: 1.5,
                    min_rows: 10,
                },
            ),
        ] {
            let text = EXAMPLE
                .replace("\"breast_cancer\"", data)
                .replace("{ kind = \"dirichlet\", alpha = 0.5 }", partition);
            let s = Scenario::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(s.data, expected_data);
            assert_eq!(s.partition, expected_partition);
        }
    }

    #[test]
    fn a_relative_csv_path_is_taken_from_the_scenario_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/x.csv"), "1,2,0\n3,4,1\n").unwrap();
        let text = EXAMPLE.replace(
            "\"breast_cancer\"",
            "{ csv = { path = \"data/x.csv\", label_column = 2 } }",
        );
        let file = dir.path().join("s.toml");
        std::fs::write(&file, text).unwrap();
        let scenario = Scenario::load(&file).unwrap();
        let (path, options) = scenario.data.file();
        assert!(path.is_absolute() && path.exists(), "{}", path.display());
        assert_eq!(options.label_column, LabelColumn::Index(2));
        let err = Scenario::load(&dir.path().join("missing.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.toml"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        for (from, to, key) in [
            (
                "fraction = 1.0",
                "fraction = 1.0\nfractoin = 0.5",
                "fractoin",
            ),
            ("nodes = 4", "nodes = 4\nnode_count = 4", "node_count"),
            ("alpha = 0.5", "alpha = 0.5, beta = 1", "beta"),
            (
                "kind = \"dirichlet\"",
                "kind = \"pathological\"",
                "pathological",
            ),
            (
                "\"breast_cancer\"",
                "{ csv = { path = \"x\", sep = \";\" } }",
                "sep",
            ),
            ("\"breast_cancer\"", "\"mnist\"", "mnist"),
            (
                "kind = \"logistic_regression\"",
                "kind = \"logistic_regression\"\n[faults]\nmalicious = { fraction = 0.2, attack = { kind = \"sign_flip\" }, count = 2 }",
                "count",
            ),
            (
                "kind = \"logistic_regression\"",
                "kind = \"logistic_regression\"\n[faults]\ndropout = { probability = 0.1, stage = \"during_upload\" }",
                "during_upload",
            ),
            (
                "kind = \"logistic_regression\"",
                "kind = \"logistic_regression\"\n[faults]\nmalicious = { fraction = 0.2, attack = { kind = \"label_flip\" } }",
                "label_flip",
            ),
        ] {
            let err = Scenario::parse(&EXAMPLE.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{to}: {err}");
        }
    }

    #[test]
    fn impossible_values_are_named() {
        for (from, to, key) in [
            ("nodes = 4", "nodes = 0", "nodes"),
            ("alpha = 0.5", "alpha = 0.0", "partition.alpha"),
            ("alpha = 0.5", "alpha = -1.0", "partition.alpha"),
            (
                "{ kind = \"dirichlet\", alpha = 0.5 }",
                "{ kind = \"shards\", classes_per_node = 0 }",
                "partition.classes_per_node",
            ),
            (
                "{ kind = \"dirichlet\", alpha = 0.5 }",
                "{ kind = \"quantity_skew\", exponent = -2.0 }",
                "partition.exponent",
            ),
            ("fraction = 1.0", "fraction = 1.5", "rounds.fraction"),
            ("count = 5", "count = 0", "rounds.count"),
            ("min_clients = 4", "min_clients = 5", "rounds.min_clients"),
            ("seed = 3", "seed = 3\nholdout = 1.0", "holdout"),
            (
                "learning_rate = 0.1",
                "learning_rate = 0.0",
                "training.learning_rate",
            ),
            ("\"logistic_regression\"", "\"cnn\"", "model"),
            (
                "kind = \"logistic_regression\"",
                "kind = \"logistic_regression\"\n[privacy]\nnoise_multiplier = 0.0\nclip_norm = 1.0\nepsilon = 3.0\ndelta = 1e-5",
                "privacy.noise_multiplier",
            ),
            (
                "kind = \"logistic_regression\"",
                "kind = \"logistic_regression\"\n[strategy]\nname = \"krum\"\nbyzantine = 1",
                "strategy.byzantine",
            ),
            (
                "kind = \"logistic_regression\"",
                "kind = \"logistic_regression\"\n[faults]\nmalicious = { fraction = 1.5, attack = { kind = \"sign_flip\" } }",
                "faults.malicious.fraction",
            ),
            (
                "kind = \"logistic_regression\"",
                "kind = \"logistic_regression\"\n[faults]\nmalicious = { fraction = 0.2, attack = { kind = \"scale\", factor = inf } }",
                "faults.malicious.attack.factor",
            ),
            (
                "kind = \"logistic_regression\"",
                "kind = \"logistic_regression\"\n[faults]\nmalicious = { fraction = 0.2, attack = { kind = \"gaussian_noise\", std = -1.0 } }",
                "faults.malicious.attack.std",
            ),
            (
                "kind = \"logistic_regression\"",
                "kind = \"logistic_regression\"\n[faults]\ndropout = { probability = -0.1 }",
                "faults.dropout.probability",
            ),
            (
                "kind = \"logistic_regression\"",
                "kind = \"logistic_regression\"\n[faults]\nstragglers = { fraction = 2.0, latency = { distribution = \"fixed\", secs = 1.0 } }",
                "faults.stragglers.fraction",
            ),
            (
                "kind = \"logistic_regression\"",
                "kind = \"logistic_regression\"\n[faults]\nstragglers = { fraction = 0.5, latency = { distribution = \"exponential\", mean_secs = nan } }",
                "faults.stragglers.latency.mean_secs",
            ),
        ] {
            let text = EXAMPLE.replace(from, to);
            assert_ne!(text, EXAMPLE, "{from}");
            let err = Scenario::parse(&text).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{to}: {err}");
        }
    }
    #[test]
    fn node_processes_refuse_faults_naming_the_key() {
        let processes = EXAMPLE.replace("seed = 3", "seed = 3\nmode = \"processes\"");
        assert_eq!(Scenario::parse(&processes).unwrap().mode, Mode::Processes);
        for (fault, key) in [
            ("dropout = { probability = 0.1 }", "faults.dropout"),
            (
                "stragglers = { fraction = 0.5, latency = { distribution = \"fixed\", secs = 1.0 } }",
                "faults.stragglers",
            ),
            (
                "malicious = { fraction = 0.2, attack = { kind = \"sign_flip\" } }",
                "faults.malicious",
            ),
        ] {
            let text = format!("{processes}\n[faults]\n{fault}\n");
            let err = Scenario::parse(&text).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{fault}: {err}");
            assert!(err.contains("in-process nodes only"), "{err}");
            // The same faults with nodes as tasks are fine.
            let tasks = text.replace("mode = \"processes\"", "mode = \"tasks\"");
            let scenario = Scenario::parse(&tasks).unwrap();
            assert!(scenario.check_processes().is_err(), "{fault}");
        }
    }
}
