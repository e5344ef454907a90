#![allow(clippy::expect_used, clippy::unwrap_used)] // Fixtures: a failure here is a failed test.

//! Fixtures for Cohort's end-to-end tests: real coordinators and nodes on
//! loopback, over mutual-TLS gRPC, with a fresh PKI per test.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cohort_client::data::{
    CsvOptions, Dataset, FeatureScaling, FeatureStats, feature_stats, load_csv,
};
use cohort_client::node::{LocalData, NodeError, NodeSummary};
use cohort_coordinator::Coordinator;
use cohort_coordinator::config::{
    FederationConfig, ModelConfig, RoundsConfig, StrategyConfig, TrainingConfig,
};
use cohort_coordinator::federation::FederationEvent;
use cohort_crypto::tls::ExpectedServer;
use cohort_crypto::tls::TlsFiles;
use cohort_crypto::tls::connector::{ServerAddress, connect};
use cohort_proto::model::SavedSpec;
use cohort_proto::v1::federation_client::FederationClient;
use cohort_proto::{PROTOCOL_VERSION, v1};
use cohort_sim::harness::{FederationPlan, Provisioned, local_data, spawn_node};
use cohort_sim::partition::iid;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub use cohort_sim::harness;

pub mod backend;
pub mod console;
pub mod deployment;
pub mod replay;
pub mod secagg;
pub mod stages;
pub mod unlearning;

/// Generous bound on any single wait in a test: hitting it means a hang, not slowness.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Awaits `future`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// The bundled breast-cancer data (569 rows, 30 features, 2 classes).
pub fn breast_cancer() -> Dataset {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/breast_cancer.csv");
    let options = CsvOptions {
        header_lines: 1,
        ..CsvOptions::default()
    };
    match load_csv(&path, &options) {
        Ok(loaded) => loaded.dataset,
        Err(e) => panic!("bundled data set: {e}"),
    }
}

pub const FEDERATION: &str = "e2e";

/// A node running as a task of the test.
pub type NodeHandle = JoinHandle<Result<NodeSummary, NodeError>>;

/// Waits for `coordinator`'s federation and then its `nodes` to finish, shuts
/// the coordinator down, and returns the final head and the nodes' summaries.
pub async fn finish(
    mut coordinator: Coordinator,
    nodes: Vec<NodeHandle>,
) -> (
    cohort_coordinator::store::records::FederationHead,
    Vec<NodeSummary>,
) {
    let finished = wait_finished(&mut coordinator, nodes).await;
    coordinator.shutdown().await;
    finished
}

/// Waits for `coordinator`'s federation and then its `nodes` to finish
/// (the coordinator keeps serving); returns the final head and the nodes'
/// summaries.
pub async fn wait_finished(
    coordinator: &mut Coordinator,
    nodes: Vec<NodeHandle>,
) -> (
    cohort_coordinator::store::records::FederationHead,
    Vec<NodeSummary>,
) {
    let head = within("the federation to finish", coordinator.wait())
        .await
        .unwrap();
    let mut summaries = Vec::with_capacity(nodes.len());
    for node in nodes {
        summaries.push(within("a node to finish", node).await.unwrap().unwrap());
    }
    (head, summaries)
}

/// FedAdam as the stateful-strategy tests run it: moments that a restart or
/// a rollback must carry.
pub fn fedadam() -> StrategyConfig {
    StrategyConfig::FedAdam {
        server_learning_rate: 0.05,
        beta1: 0.9,
        beta2: 0.99,
        tau: 1e-3,
        max_update_norm: None,
    }
}

/// A logistic-regression plan on breast cancer.
pub fn plan(rounds: u64, min_clients: usize) -> FederationPlan {
    FederationPlan {
        federation_id: FEDERATION.into(),
        model: ModelConfig::dense(SavedSpec::logistic_regression(30, 2), 1),
        rounds: RoundsConfig {
            count: rounds,
            fraction: 1.0,
            min_clients,
            min_results: None,
            deadline_secs: 60.0,
            seed: 3,
            max_failed_attempts: 3,
        },
        training: TrainingConfig {
            local_epochs: 1,
            batch_size: 16,
            learning_rate: 0.02,
        },
        privacy: None,
        secure_aggregation: None,
        strategy: StrategyConfig::default(),
        scaling: None,
        poll_timeout_ms: 2_000,
    }
}

/// Public scaling for plans under secure aggregation or DP, which must
/// declare one: the whole breast-cancer file's mean and standard deviation
/// (constants published with the data set, as a real federation would use).
pub fn public_scaling() -> FeatureScaling {
    FeatureStats::combine(&[feature_stats(&breast_cancer())]).expect("breast-cancer statistics")
}

/// [`public_scaling`] as a config file's `[scaling]` section.
pub fn public_scaling_toml() -> String {
    let scaling = public_scaling();
    format!(
        "[scaling]\nmean = {:?}\nstd = {:?}\n",
        scaling.mean, scaling.std
    )
}

/// A PKI, a state folder and a plan: everything but the processes.
#[derive(Debug)]
pub struct Testbed {
    pub dir: tempfile::TempDir,
    pub provisioned: Provisioned,
    pub plan: FederationPlan,
    /// The database the coordinator keeps its state in, if not the folder.
    pub database: Option<backend::ScratchDatabase>,
}

impl Testbed {
    pub fn new(plan: FederationPlan) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let provisioned =
            Provisioned::new(&dir.path().join("pki"), &plan.federation_id).expect("PKI");
        Self {
            dir,
            provisioned,
            plan,
            database: None,
        }
    }

    /// As [`Testbed::new`], the state in a scratch PostgreSQL database
    /// (`None`: skipped, see [`backend::ScratchDatabase::start`]).
    pub fn on_postgres(plan: FederationPlan) -> Option<Self> {
        let database = backend::ScratchDatabase::start()?;
        Some(Self {
            database: Some(database),
            ..Self::new(plan)
        })
    }

    /// The stopped coordinator's store (its folder, or its database).
    pub async fn store(&self) -> cohort_coordinator::store::Store {
        backend::open(self.database.as_ref(), &self.dir.path().join("state")).await
    }

    /// Starts a coordinator and `count` nodes, and shuts the coordinator down as
    /// soon as round `round` is completed (committed and evaluated). Returns its
    /// address and the nodes, which keep trying to reach a coordinator there.
    pub async fn run_until_round(&self, round: u64, count: usize) -> (SocketAddr, Vec<NodeHandle>) {
        self.run_until_round_on(round, shares(count)).await
    }

    /// As [`Testbed::run_until_round`], with one node `hospital-i` per entry
    /// of `shares`, on that data.
    pub async fn run_until_round_on(
        &self,
        round: u64,
        shares: Vec<LocalData>,
    ) -> (SocketAddr, Vec<NodeHandle>) {
        let coordinator = self.start_coordinator("127.0.0.1:0".parse().unwrap()).await;
        let address = coordinator.local_addr();
        let mut events = coordinator.events();
        let nodes = self.start_nodes_on(address, shares);
        next_event(&mut events, |event| match event {
            FederationEvent::RoundCompleted(record) if record.round == round => Some(()),
            _ => None,
        })
        .await;
        coordinator.shutdown().await;
        (address, nodes)
    }

    /// Starts a coordinator on `listen` (port 0 for any) with this testbed's state.
    pub async fn start_coordinator(&self, listen: SocketAddr) -> Coordinator {
        self.start_coordinator_with(listen, |_| {}).await
    }

    /// The plan's coordinator config, listening on `listen`, on this
    /// testbed's state folder or database.
    pub fn coordinator_config(&self, listen: SocketAddr) -> FederationConfig {
        let mut config =
            self.plan
                .coordinator_config(&self.provisioned, listen, self.dir.path().join("state"));
        config.server.store = self.database.as_ref().map(|d| d.settings.clone());
        config
    }

    /// As [`Testbed::start_coordinator`], with the config changed by `tune`
    /// first (settings the plan does not carry).
    pub async fn start_coordinator_with(
        &self,
        listen: SocketAddr,
        tune: impl FnOnce(&mut FederationConfig),
    ) -> Coordinator {
        let mut config = self.coordinator_config(listen);
        tune(&mut config);
        Coordinator::start(config)
            .await
            .expect("coordinator starts")
    }

    /// Starts `count` nodes `hospital-0..` with IID shares of breast cancer.
    pub fn start_nodes(
        &self,
        coordinator: SocketAddr,
        count: usize,
    ) -> Vec<JoinHandle<Result<NodeSummary, NodeError>>> {
        self.start_nodes_on(coordinator, shares(count))
    }

    /// Starts one node `hospital-i` per entry of `shares`, on that data.
    pub fn start_nodes_on(
        &self,
        coordinator: SocketAddr,
        shares: Vec<LocalData>,
    ) -> Vec<NodeHandle> {
        shares
            .into_iter()
            .enumerate()
            .map(|(i, local)| {
                spawn_node(
                    &self.provisioned,
                    &format!("hospital-{i}"),
                    &self.plan.federation_id,
                    coordinator,
                    local,
                    None,
                    None,
                )
                .expect("node starts")
            })
            .collect()
    }

    /// TLS files for a node identity of this testbed's CA.
    pub fn node_tls(&self, node_id: &str) -> TlsFiles {
        self.provisioned.node(node_id).expect("node certificate")
    }
}

/// The rows of breast cancer [`Testbed::start_nodes`] gives each of `count`
/// nodes: IID shares, drawn with seed 11.
pub fn share_rows(count: usize) -> Vec<Vec<usize>> {
    iid(breast_cancer().len(), count, 11).expect("partition")
}

/// The local data [`Testbed::start_nodes`] gives each of `count` nodes.
pub fn shares(count: usize) -> Vec<LocalData> {
    let data = breast_cancer();
    (share_rows(count).iter().enumerate())
        .map(|(i, rows)| share_data(&data, rows, i))
        .collect()
}

/// Node `index`'s local data from `rows` of `data`, as [`Testbed::start_nodes`]
/// makes it: a quarter held out, split with the node's index as seed.
pub fn share_data(data: &Dataset, rows: &[usize], index: usize) -> LocalData {
    local_data(&data.subset(rows).expect("subset"), 0.25, index as u64).expect("split")
}

/// A raw gRPC client speaking as `node_id`: for tests that send what a real
/// node never would.
pub async fn raw_client(
    tls: &TlsFiles,
    coordinator: SocketAddr,
) -> Result<FederationClient<Channel>, String> {
    let config = cohort_crypto::tls::client_config(tls, ExpectedServer::coordinator())
        .map_err(|e| e.to_string())?;
    raw_client_with(config, coordinator).await
}

/// A raw gRPC client with any rustls client configuration.
pub async fn raw_client_with(
    config: Arc<rustls::ClientConfig>,
    coordinator: SocketAddr,
) -> Result<FederationClient<Channel>, String> {
    Ok(FederationClient::new(
        raw_channel(config, coordinator).await?,
    ))
}

/// A mutual-TLS channel to the coordinator, for any of its gRPC services.
pub async fn raw_channel(
    config: Arc<rustls::ClientConfig>,
    coordinator: SocketAddr,
) -> Result<Channel, String> {
    let address = ServerAddress {
        address: coordinator.to_string(),
        server_name: "localhost".into(),
    };
    connect(&address, config).await.map_err(|e| e.to_string())
}

pub fn header(node_id: &str) -> Option<v1::RequestHeader> {
    Some(v1::RequestHeader {
        protocol_version: PROTOCOL_VERSION,
        federation_id: FEDERATION.into(),
        node_id: node_id.into(),
    })
}

/// Waits for the first event that `pick` maps to `Some`. If none comes within
/// [`PATIENCE`], the failure lists the last events seen instead (what the
/// federation was doing while the test waited).
pub async fn next_event<T>(
    events: &mut broadcast::Receiver<FederationEvent>,
    mut pick: impl FnMut(&FederationEvent) -> Option<T>,
) -> T {
    const KEPT: usize = 12;
    let mut seen: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let wait = async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(&event) {
                        return found;
                    }
                    if seen.len() == KEPT {
                        seen.pop_front();
                    }
                    seen.push_back(format!("{event:?}").chars().take(300).collect());
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("event stream closed"),
            }
        }
    };
    match tokio::time::timeout(PATIENCE, wait).await {
        Ok(found) => found,
        Err(_) => panic!("timed out waiting for a federation event; the last ones seen: {seen:#?}"),
    }
}

/// A node driven by hand, over the real protocol, to send what a real node never
/// would (or nothing at all).
#[derive(Debug)]
pub struct HandDrivenNode {
    pub node_id: String,
    pub client: FederationClient<Channel>,
    /// The federation's model, as registration answered.
    pub model: cohort_proto::model::ModelDescriptor,
}

impl HandDrivenNode {
    /// Registers `node_id` (with no held-out rows, so it is never asked to evaluate).
    pub async fn join(testbed: &Testbed, node_id: &str, coordinator: SocketAddr) -> Self {
        Self::join_stating(testbed, node_id, coordinator, Vec::new()).await
    }

    /// As [`HandDrivenNode::join`], stating the fingerprint of the model the
    /// node was built from (as a node SDK does).
    pub async fn join_stating(
        testbed: &Testbed,
        node_id: &str,
        coordinator: SocketAddr,
        model_fingerprint: Vec<u8>,
    ) -> Self {
        let mut client = raw_client(&testbed.node_tls(node_id), coordinator)
            .await
            .expect("connects");
        let registered = client
            .register(v1::RegisterRequest {
                header: header(node_id),
                num_features: 30,
                num_train_examples: 10,
                num_holdout_examples: 0,
                dataset: None,
                model_fingerprint,
            })
            .await
            .expect("registers")
            .into_inner();
        let model =
            cohort_proto::model::ModelDescriptor::from_proto(&registered.model.expect("model"))
                .expect("descriptor");
        Self {
            node_id: node_id.to_owned(),
            client,
            model,
        }
    }

    /// Downloads a global model version.
    pub async fn fetch_model(&mut self, version: &str) -> Vec<f32> {
        use tokio_stream::StreamExt;
        let mut stream = self
            .client
            .fetch_model(v1::FetchModelRequest {
                header: header(&self.node_id),
                model_version: version.to_owned(),
            })
            .await
            .expect("fetch model")
            .into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.expect("model chunk").data);
        }
        cohort_proto::model::decode_f32(&bytes, self.model.num_parameters()).expect("model")
    }

    /// Polls until this node's fit task arrives, answering the feature-statistics
    /// stage on the way with a harmless one-row summary.
    pub async fn next_fit_task(&mut self) -> (u64, v1::FitTask) {
        within("a fit task", async {
            loop {
                let polled = self
                    .client
                    .poll_task(v1::PollTaskRequest {
                        header: header(&self.node_id),
                        withdrawn_models: Vec::new(),
                    })
                    .await
                    .expect("poll")
                    .into_inner();
                let Some(v1::poll_task_response::Outcome::Task(task)) = polled.outcome else {
                    continue;
                };
                match task.stage {
                    Some(v1::task::Stage::FeatureStats(_)) => {
                        self.client
                            .submit_feature_stats(v1::FeatureStatsSubmission {
                                header: header(&self.node_id),
                                count: 1,
                                sum: vec![0.0; 30],
                                sum_of_squares: vec![0.0; 30],
                            })
                            .await
                            .expect("stats accepted");
                    }
                    Some(v1::task::Stage::Fit(fit)) => return (task.round, fit),
                    other => panic!("unexpected task {other:?}"),
                }
            }
        })
        .await
    }
}
