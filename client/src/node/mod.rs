//! The node's federation client: it dials the coordinator (never the other way),
//! registers, long-polls for tasks and answers them with work on its own data.
//! Raw rows never leave the node; only feature statistics, trained parameters and
//! evaluation metrics do.
//!
//! With [`NodeConfig::models_dir`] the node keeps every global model it fetches,
//! and the federation's final model, as a [`crate::model::SavedModel`] (with the
//! feature scaling its inputs need), so that it can serve encrypted predictions
//! with them afterwards (`crate::inference`, feature `he`).
//!
//! When the coordinator is unreachable the node reconnects with exponential
//! backoff and registers again, so a coordinator restart costs at most the round
//! in flight.

pub mod distributed_privacy;
mod ledger_file;
pub mod metrics;
pub mod record_privacy;
pub mod secure_aggregation;
mod session;
mod work;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cohort_crypto::PeerIdentity;
use cohort_crypto::authz::RefusalReason;
use cohort_crypto::tls::TlsFiles;
use cohort_proto::v1::poll_task_response::Outcome;
use tonic::Code;

use crate::data::{Dataset, DatasetDescriptor};
use crate::training::Trainable;
use cohort_crypto::tls::ExpectedServer;
use cohort_crypto::tls::connector::{ConnectError, ServerAddress};
use session::Session;
use work::Workbench;

/// How a node reaches its federation.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The coordinator's address and TLS server name.
    pub coordinator: ServerAddress,
    /// The federation's other coordinators, when it runs several over one
    /// database (one active, the others standing by): tried in turn after
    /// `coordinator` whenever the one in use is unreachable or answers that
    /// it is a standby ([`RefusalReason::NotActive`]).
    pub standby_coordinators: Vec<ServerAddress>,
    /// This node's certificate, key and the federation's CA.
    pub tls: TlsFiles,
    /// The federation this node belongs to; the coordinator refuses a mismatch.
    pub federation_id: String,
    /// Stop retrying after the coordinator has been unreachable this long.
    pub give_up_after: Duration,
    /// Keep the global models (fetched and final) here, if set.
    pub models_dir: Option<std::path::PathBuf>,
}

/// The node's data, already split; the holdout is only ever evaluated on.
#[derive(Debug, Clone)]
pub struct LocalData {
    /// The rows the node trains on.
    pub train: Dataset,
    /// The rows the node evaluates global models on.
    pub holdout: Dataset,
}

/// Why a node stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The TLS files could not be loaded.
    #[error(transparent)]
    Tls(#[from] cohort_crypto::tls::TlsError),
    /// This node's certificate or key gives it no node identity or no
    /// secure-aggregation credentials.
    #[error("own certificate {path}: {reason}")]
    Identity {
        /// The certificate file, or the private key's for a credentials failure.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server at the coordinator's address is a member of the federation
    /// but not its coordinator (its certificate's `cohort://` identity is
    /// another role): the node sent it nothing.
    #[error("not the coordinator: {0}")]
    NotCoordinator(#[source] cohort_crypto::tls::UnexpectedServer),
    /// The coordinator refused this node in a way retrying cannot fix
    /// (identity, protocol or federation mismatch), or its address or server
    /// name is invalid.
    #[error("the coordinator refused this node: {0}")]
    Refused(String),
    /// The federation's model does not fit this node's data.
    #[error("the federation's model does not fit this node: {0}")]
    Incompatible(String),
    /// The coordinator stayed unreachable longer than
    /// [`NodeConfig::give_up_after`].
    #[error("coordinator unreachable for {seconds:.0} s, giving up; last error: {last_error}")]
    Unreachable {
        /// How long it was unreachable.
        seconds: f64,
        /// The last connection or call error.
        last_error: String,
    },
    /// Local training or evaluation failed.
    #[error("local work failed: {0}")]
    Work(String),
}

/// What a node did before the federation finished.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSummary {
    /// Rounds the federation completed.
    pub completed_rounds: u64,
    /// Why the federation stopped before its configured rounds, if it did.
    pub stop_reason: Option<String>,
    /// The federation's final model version.
    pub final_model_version: String,
    /// Model updates this node sent (secure-aggregation advertisements
    /// included).
    pub updates_sent: u64,
    /// Evaluations this node sent.
    pub evaluations_sent: u64,
}

/// A federation node: registers with the coordinator, polls for tasks and
/// trains or evaluates on its local data until the federation finishes.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    identity: PeerIdentity,
    tls: Arc<rustls::ClientConfig>,
    workbench: Workbench,
    /// The training data's version, sent at every registration.
    dataset: cohort_proto::v1::DatasetVersion,
}

/// Failures of one connection: whether to reconnect or stop.
#[derive(Debug)]
enum SessionEnd {
    Finished(NodeSummary),
    Reconnect(String),
    Fatal(NodeError),
    /// The address does not lead to a coordinator of this federation (another
    /// role's certificate, a bad address or server name): fatal unless
    /// another address does.
    WrongServer(NodeError),
}

impl Node {
    /// A node for `config` with `data`. Fails if the TLS files cannot be
    /// loaded, or if the certificate is not a node's or its key gives no
    /// secure-aggregation credentials.
    pub fn new(config: NodeConfig, data: LocalData) -> Result<Self, NodeError> {
        let tls = cohort_crypto::tls::client_config(&config.tls, ExpectedServer::coordinator())?;
        let identity =
            crate::identity::own_identity(&config.tls).map_err(|e| NodeError::Identity {
                path: e.path,
                reason: e.reason,
            })?;
        let credentials =
            secure_aggregation::SecAggCredentials::load(&config.tls, &config.federation_id)
                .map_err(|reason| NodeError::Identity {
                    path: config.tls.private_key.display().to_string(),
                    reason,
                })?;
        let node_id = identity.name().to_owned();
        let dataset = DatasetDescriptor::default().version_of(&data.train);
        let workbench = Workbench::new(data, config.models_dir.clone(), &node_id, credentials)
            .map_err(|e| NodeError::Work(e.to_string()))?;
        Ok(Self {
            dataset,
            config,
            identity,
            tls,
            workbench,
        })
    }

    /// Takes part only in secure-aggregation rounds that meet `requirements`
    /// (at least so many participants, a threshold at least so high, and under
    /// distributed DP at least so much noise), whatever the coordinator asks;
    /// the default is [`secure_aggregation::RoundRequirements::default`].
    pub fn with_round_requirements(
        mut self,
        requirements: secure_aggregation::RoundRequirements,
    ) -> Self {
        self.workbench.set_round_requirements(requirements);
        self
    }

    /// Trains with record-level DP-SGD under the node's own (ε, δ) budget: a
    /// round that would exceed it is not trained (see [`record_privacy`]).
    pub fn with_record_privacy(
        mut self,
        config: &record_privacy::RecordPrivacy,
    ) -> Result<Self, record_privacy::LedgerError> {
        self.workbench
            .set_record_privacy(record_privacy::RecordLedger::open(config)?);
        Ok(self)
    }

    /// Bounds what the coordinator learns about this node under distributed
    /// DP: each round is charged to the node's own ledger before its masked
    /// change leaves, and refused past the budget (see [`distributed_privacy`]).
    /// Survivor sets below the minimum cohort are not signed.
    pub fn with_distributed_privacy(
        mut self,
        config: &distributed_privacy::DistributedPrivacy,
    ) -> Result<Self, record_privacy::LedgerError> {
        self.workbench
            .set_distributed_privacy(distributed_privacy::DistributedLedger::open(config)?);
        Ok(self)
    }

    /// Trains `model`, the node's own (a node SDK model, see
    /// [`crate::sdk`]), instead of building the federation's built-in dense
    /// model: registration states its fingerprint, and a federation of
    /// another model refuses the node (`model-mismatch`).
    pub fn with_model(mut self, model: Arc<dyn Trainable>) -> Self {
        self.workbench.set_own_model(model);
        self
    }

    /// Makes this node act out simulated faults (dropouts, delays, attacks).
    /// For the simulation harness only; `cohort-node` never calls it.
    pub fn with_faults(mut self, plan: crate::fault::FaultPlan) -> Self {
        self.workbench.set_faults(plan);
        self
    }

    /// Describes the training data (name, legal basis, categories) for the
    /// coordinator's audit log; the version is the rows' content hash.
    pub fn with_dataset(mut self, descriptor: &DatasetDescriptor) -> Self {
        self.dataset.dataset_id = descriptor.dataset_id.clone();
        self.dataset.legal_basis = descriptor.legal_basis.as_str().to_owned();
        self.dataset.data_categories = descriptor.data_categories.clone();
        self
    }

    /// The training data's version as registered with the coordinator.
    pub fn dataset(&self) -> &cohort_proto::v1::DatasetVersion {
        &self.dataset
    }

    /// The node's own metrics, for [`metrics::serve`] (or a test) to read.
    pub fn metrics(&self) -> Arc<metrics::NodeMetrics> {
        self.workbench.metrics.clone()
    }

    /// This node's name, from its certificate.
    pub fn node_id(&self) -> &str {
        self.identity.name()
    }

    /// Takes part in the federation until it finishes.
    pub async fn run(mut self) -> Result<NodeSummary, NodeError> {
        let mut summary = NodeSummary::default();
        let mut backoff = Duration::from_millis(100);
        let mut unreachable_since: Option<Instant> = None;
        // Every address that may lead to a coordinator of this federation.
        let mut addresses: Vec<ServerAddress> = std::iter::once(self.config.coordinator.clone())
            .chain(self.config.standby_coordinators.iter().cloned())
            .collect();
        let mut index = 0;
        // Addresses tried since the last pause.
        let mut tried = 0;
        loop {
            index %= addresses.len();
            let address = addresses[index].clone();
            let reason = match self
                .session_with(&address, &mut summary, &mut unreachable_since)
                .await
            {
                SessionEnd::Finished(summary) => return Ok(summary),
                SessionEnd::Fatal(error) => return Err(error),
                // One wrong address among several ends only its own use; the
                // next one takes its place.
                SessionEnd::WrongServer(error) => {
                    addresses.remove(index);
                    if addresses.is_empty() {
                        return Err(error);
                    }
                    tracing::error!(node = %self.node_id(), coordinator = %address.address, %error, "skipping this coordinator address from now on");
                    continue;
                }
                SessionEnd::Reconnect(reason) => reason,
            };
            let since = *unreachable_since.get_or_insert_with(Instant::now);
            if since.elapsed() > self.config.give_up_after {
                return Err(NodeError::Unreachable {
                    seconds: since.elapsed().as_secs_f64(),
                    last_error: reason,
                });
            }
            tracing::info!(node = %self.node_id(), coordinator = %address.address, %reason, "coordinator unreachable");
            // The next address at once; a pause only once all were tried.
            index += 1;
            tried += 1;
            if tried >= addresses.len() {
                tried = 0;
                tracing::info!(node = %self.node_id(), retry_in = ?backoff, "no coordinator answered; waiting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }

    /// Connects to the coordinator at `address` and serves until the
    /// connection ends.
    async fn session_with(
        &mut self,
        address: &ServerAddress,
        summary: &mut NodeSummary,
        unreachable_since: &mut Option<Instant>,
    ) -> SessionEnd {
        match cohort_crypto::tls::connector::connect(address, self.tls.clone()).await {
            Ok(channel) => {
                let session = Session::new(channel, &self.config.federation_id, self.node_id());
                self.serve(session, summary, unreachable_since).await
            }
            Err(ConnectError::Connect { reason, .. }) => SessionEnd::Reconnect(reason),
            Err(ConnectError::UnexpectedServer { source, .. }) => {
                SessionEnd::WrongServer(NodeError::NotCoordinator(source))
            }
            Err(other) => SessionEnd::WrongServer(NodeError::Refused(other.to_string())),
        }
    }

    /// One connection: register, then poll and work until something ends it.
    async fn serve(
        &mut self,
        mut session: Session,
        summary: &mut NodeSummary,
        unreachable_since: &mut Option<Instant>,
    ) -> SessionEnd {
        let (train_rows, holdout_rows) = self.workbench.rows();
        let num_features = self.workbench.num_features();
        let registration = match session
            .register(
                num_features,
                train_rows,
                holdout_rows,
                &self.dataset,
                self.workbench.own_fingerprint(),
            )
            .await
        {
            Ok(registration) => registration,
            Err(status) => return classify(status),
        };
        if let Err(problem) = self.workbench.adopt_model(&registration) {
            return SessionEnd::Fatal(NodeError::Incompatible(problem));
        }
        *unreachable_since = None;
        tracing::info!(node = %self.node_id(), "registered");
        // The taint list heard last; acknowledged (once withdrawn) with the next poll.
        let mut tainted: Vec<String> = Vec::new();
        loop {
            let acknowledged = self.workbench.acknowledgement(&tainted);
            let outcome;
            (outcome, tainted) = match session.poll(acknowledged).await {
                Ok(answer) => answer,
                Err(status) => return classify(status),
            };
            if let Err(e) = self.workbench.withdraw(&tainted) {
                // Keeping a model an erasure withdrew is not an option.
                return SessionEnd::Fatal(NodeError::Work(e.to_string()));
            }
            let task = match outcome {
                Outcome::Task(task) => task,
                Outcome::Idle(_) => continue,
                Outcome::Finished(finished) => {
                    self.acknowledge_before_leaving(&mut session, &tainted)
                        .await;
                    match self
                        .workbench
                        .keep_final_model(&mut session, &finished.final_model_version)
                        .await
                    {
                        Ok(()) => {}
                        Err(work::WorkError::Rpc(status)) => return classify(status),
                        Err(work::WorkError::Local(reason)) => {
                            return SessionEnd::Fatal(NodeError::Work(reason));
                        }
                    }
                    summary.completed_rounds = finished.completed_rounds;
                    summary.final_model_version = finished.final_model_version;
                    summary.stop_reason =
                        Some(finished.stop_reason).filter(|reason| !reason.is_empty());
                    return SessionEnd::Finished(summary.clone());
                }
            };
            match self.workbench.perform(&mut session, task, summary).await {
                Ok(()) => {}
                Err(work::WorkError::Rpc(status)) => match status.code() {
                    // The coordinator refused this result (late, stale, …): the
                    // refusal is already logged there; go on with the next task.
                    Code::FailedPrecondition | Code::InvalidArgument | Code::NotFound => {
                        tracing::warn!(node = %self.node_id(), reason = status.message(), "result refused");
                    }
                    _ => return classify(status),
                },
                Err(work::WorkError::Local(reason)) => {
                    return SessionEnd::Fatal(NodeError::Work(reason));
                }
            }
        }
    }

    /// A finished node polls no more: it acknowledges the withdrawals of the
    /// last taint list it heard with one last poll (answered `Finished`
    /// again), so that an erasure request waiting for them can close. A
    /// failure is logged; the coordinator waits for a later acknowledgement
    /// or records the node as unreachable.
    async fn acknowledge_before_leaving(&self, session: &mut Session, tainted: &[String]) {
        let acknowledged = self.workbench.acknowledgement(tainted);
        if acknowledged.is_empty() {
            return;
        }
        if let Err(status) = session.poll(acknowledged).await {
            tracing::warn!(node = %self.node_id(), reason = status.message(), "acknowledging withdrawn models failed");
        }
    }
}

/// Whether the coordinator's refusal ends the node (retrying cannot help) or
/// only this connection: by the refusal's typed reason
/// ([`RefusalReason::is_permanent`]: revoked, wrong role, protocol or
/// federation mismatch, …), and for a status without one by its code.
fn classify(status: tonic::Status) -> SessionEnd {
    let fatal = match RefusalReason::of(&status) {
        Some(reason) => reason.is_permanent(),
        None => matches!(
            status.code(),
            Code::PermissionDenied | Code::Unauthenticated | Code::InvalidArgument
        ),
    };
    if fatal {
        SessionEnd::Fatal(NodeError::Refused(status.message().to_owned()))
    } else {
        SessionEnd::Reconnect(format!("{:?}: {}", status.code(), status.message()))
    }
}

#[cfg(test)]
mod tests {
    use cohort_crypto::authz::Refusal;

    use super::*;

    fn ends_the_node(status: tonic::Status) -> bool {
        matches!(classify(status), SessionEnd::Fatal(_))
    }

    #[test]
    fn a_refusal_is_fatal_by_its_reason_not_its_wording() {
        let refused = |reason, message: &str| tonic::Status::from(Refusal::new(reason, message));
        for reason in [
            RefusalReason::ProtocolVersionUnsupported,
            RefusalReason::WrongFederation,
            RefusalReason::CertificateRevoked,
            RefusalReason::WrongRole,
            RefusalReason::ModelMismatch,
        ] {
            assert!(ends_the_node(refused(reason, "reworded")), "{reason}");
        }
        for reason in [
            RefusalReason::RateLimited,
            RefusalReason::RevocationListUnreadable,
            RefusalReason::NotActive,
        ] {
            assert!(
                !ends_the_node(refused(reason, "protocol version")),
                "{reason}"
            );
        }
        // The old wording without a reason is just a failed precondition.
        let untyped = tonic::Status::failed_precondition("protocol version 9 is not supported");
        assert!(!ends_the_node(untyped));
        assert!(ends_the_node(tonic::Status::permission_denied("no")));
        assert!(!ends_the_node(tonic::Status::unavailable("restarting")));
    }
}
