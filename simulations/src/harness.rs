//! A whole federation on one machine: a fresh PKI, a coordinator, and nodes as
//! tasks of this process, all talking mutual-TLS gRPC over real loopback sockets.
//! Nothing here takes a shortcut around the protocol.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cohort_client::data::{
    Dataset, FeatureScaling, FeatureStats, ScalingError, feature_stats, train_holdout_split,
};
use cohort_client::fault::FaultPlan;
use cohort_client::node::{LocalData, Node, NodeConfig, NodeError, NodeSummary};
use cohort_client::training::Trainable;
use cohort_coordinator::config::{
    FederationConfig, ModelConfig, PrivacyConfig, RoundsConfig, SecureAggregationConfig,
    ServerConfig, StrategyConfig, TrainingConfig,
};
use cohort_crypto::pki::{PkiDir, PkiError, Validity};
use cohort_crypto::tls::TlsFiles;
use cohort_crypto::tls::connector::ServerAddress;
use cohort_crypto::{PeerIdentity, Role};
use tokio::task::JoinHandle;

/// The coordinator's name in the PKI; its certificate is valid for loopback.
pub const COORDINATOR_NAME: &str = "main";

/// A PKI folder with a CA, the coordinator's certificate and one per node.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The PKI folder: the CA and every certificate issued from it.
    pub pki: PkiDir,
    /// The coordinator's CA certificate, certificate and private key.
    pub coordinator: TlsFiles,
}

impl Provisioned {
    /// Makes the CA and the coordinator's certificate in `dir`, valid for loopback.
    pub fn new(dir: &Path, federation_id: &str) -> Result<Self, PkiError> {
        Self::with_names(dir, federation_id, &[])
    }

    /// As [`Provisioned::new`], the coordinator's certificate also valid for
    /// `names` (host names or IP addresses other machines reach it by).
    pub fn with_names(dir: &Path, federation_id: &str, names: &[String]) -> Result<Self, PkiError> {
        let pki = PkiDir::new(dir);
        let validity = Validity::days_from_now(30)?;
        pki.init(federation_id, validity)?;
        let identity = PeerIdentity::new(Role::Coordinator, COORDINATOR_NAME)?;
        let mut sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        sans.extend(
            names
                .iter()
                .filter(|n| !sans.contains(n))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let files = pki.issue(&identity, &sans, validity)?;
        let coordinator = TlsFiles {
            ca_certificate: pki.ca_certificate(),
            certificate: files.certificate,
            private_key: files.private_key,
        };
        Ok(Self { pki, coordinator })
    }

    /// Issues (or reuses) a node's certificate.
    pub fn node(&self, node_id: &str) -> Result<TlsFiles, PkiError> {
        self.member(&PeerIdentity::new(Role::Node, node_id)?)
    }

    /// Issues (or reuses) an auditor's certificate.
    pub fn auditor(&self, auditor_id: &str) -> Result<TlsFiles, PkiError> {
        self.member(&PeerIdentity::new(Role::Auditor, auditor_id)?)
    }

    /// Issues (or reuses) an operator's certificate (the web console's).
    pub fn operator(&self, operator_id: &str) -> Result<TlsFiles, PkiError> {
        self.member(&PeerIdentity::new(Role::Operator, operator_id)?)
    }

    fn member(&self, identity: &PeerIdentity) -> Result<TlsFiles, PkiError> {
        let files = self.pki.files_of(identity);
        let files = if files.certificate.exists() {
            files
        } else {
            self.pki
                .issue(identity, &[], Validity::days_from_now(30)?)?
        };
        Ok(TlsFiles {
            ca_certificate: self.pki.ca_certificate(),
            certificate: files.certificate,
            private_key: files.private_key,
        })
    }
}

/// What a simulated federation trains, and how.
#[derive(Debug, Clone)]
pub struct FederationPlan {
    /// The federation's name, shared by the coordinator and every node.
    pub federation_id: String,
    /// The model: its kind, sizes and initial seed.
    pub model: ModelConfig,
    /// How many rounds, whom each samples, and when a round succeeds.
    pub rounds: RoundsConfig,
    /// Local training on each node: epochs, batch size, learning rate.
    pub training: TrainingConfig,
    /// Client-level differential privacy, if any.
    pub privacy: Option<PrivacyConfig>,
    /// Secure aggregation of the updates, if any.
    pub secure_aggregation: Option<SecureAggregationConfig>,
    /// How the coordinator aggregates the updates.
    pub strategy: StrategyConfig,
    /// Declared public feature scaling (required under secure aggregation or
    /// DP); `None` runs the clear-text statistics round.
    pub scaling: Option<FeatureScaling>,
    /// How long the coordinator holds a node's poll open without a task; a node
    /// silent for six times this is not sampled.
    pub poll_timeout_ms: u64,
}

impl FederationPlan {
    /// The coordinator config for this plan, serving on `listen`.
    pub fn coordinator_config(
        &self,
        provisioned: &Provisioned,
        listen: SocketAddr,
        state_dir: PathBuf,
    ) -> FederationConfig {
        FederationConfig {
            federation_id: self.federation_id.clone(),
            server: ServerConfig {
                listen,
                state_dir,
                store: None,
                ca_certificate: provisioned.coordinator.ca_certificate.clone(),
                certificate: provisioned.coordinator.certificate.clone(),
                private_key: provisioned.coordinator.private_key.clone(),
                poll_timeout_ms: self.poll_timeout_ms,
                liveness_ms: self.poll_timeout_ms * 6,
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
            model: self.model.clone(),
            rounds: self.rounds.clone(),
            training: self.training.clone(),
            privacy: self.privacy.clone(),
            secure_aggregation: self.secure_aggregation.clone(),
            strategy: self.strategy.clone(),
            scaling: self.scaling.clone(),
        }
    }
}

/// The scaling the nodes' pooled training rows give, for the simulator to
/// declare as a federation's public constants (`FederationConfig::scaling`)
/// where secure aggregation or DP forbid the clear-text statistics round. The
/// simulator holds every node's rows anyway; it stands in for the reference
/// ranges a real federation declares, and equals what that round would agree.
pub fn pooled_training_scaling<'a>(
    training: impl IntoIterator<Item = &'a Dataset>,
) -> Result<FeatureScaling, ScalingError> {
    let stats: Vec<FeatureStats> = training.into_iter().map(feature_stats).collect();
    FeatureStats::combine(&stats)
}

/// Splits a node's rows into training and held-out parts.
pub fn local_data(data: &Dataset, holdout: f64, seed: u64) -> anyhow::Result<LocalData> {
    let (train, holdout) = train_holdout_split(data, holdout, seed)?;
    Ok(LocalData { train, holdout })
}

/// Starts a node as a task of this process; with `faults`, it acts them out
/// (see `cohort_client::fault`).
pub fn spawn_node(
    provisioned: &Provisioned,
    node_id: &str,
    federation_id: &str,
    coordinator: SocketAddr,
    data: LocalData,
    faults: Option<FaultPlan>,
    model: Option<Arc<dyn Trainable>>,
) -> anyhow::Result<JoinHandle<Result<NodeSummary, NodeError>>> {
    let config = NodeConfig {
        coordinator: ServerAddress {
            address: coordinator.to_string(),
            server_name: "localhost".into(),
        },
        tls: provisioned.node(node_id)?,
        standby_coordinators: Vec::new(),
        federation_id: federation_id.to_owned(),
        give_up_after: Duration::from_secs(120),
        models_dir: None,
    };
    let mut node = Node::new(config, data)?;
    if let Some(plan) = faults {
        node = node.with_faults(plan);
    }
    if let Some(model) = model {
        node = node.with_model(model);
    }
    Ok(tokio::spawn(node.run()))
}
