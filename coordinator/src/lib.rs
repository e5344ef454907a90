//! Cohort's coordinator: runs federated rounds (FedAvg or another [`strategy`])
//! for a federation of nodes over mutual-TLS gRPC and keeps the federation's
//! state in sled.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use cohort_coordinator::{Coordinator, config::FederationConfig};
//! let config = FederationConfig::load("federation.toml".as_ref())?;
//! let mut coordinator = Coordinator::start(config).await?;
//! let head = coordinator.wait().await?;
//! println!("finished after {} rounds: model {}", head.completed_rounds, head.model_version);
//! # Ok(()) }
//! ```
//!
//! Modules: [`config`] (the TOML file), [`service`] (the gRPC API), [`federation`] (state shared by service and
//! engine), [`rounds`] (the round engine), [`strategy`] (aggregation), [`store`]
//! (sled). Mutual TLS in front of tonic is
//! [`cohort_crypto::tls::acceptor`], shared with a node's inference service.

pub mod audit;
pub mod config;
pub mod federation;
pub mod rounds;
pub mod service;
pub mod store;
pub mod strategy;

use std::net::SocketAddr;
use std::sync::Arc;

use cohort_proto::audit_v1::audit_server::AuditServer;
use cohort_proto::model::{ParameterLayout, encode_f32, initial_parameters, model_version};
use cohort_proto::v1::federation_server::FederationServer;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use config::FederationConfig;
use federation::{Federation, FederationEvent};
use rounds::engine::EngineError;
use store::records::FederationHead;
use store::{FederationDefinition, Store, StoreError};

/// Why the coordinator could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("invalid model: {0}")]
    Model(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("strategy: {0}")]
    Strategy(#[from] strategy::StrategyError),
    #[error(transparent)]
    Tls(#[from] cohort_crypto::tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error("revocation list: {0}")]
    Revocations(#[from] cohort_crypto::pki::PkiError),
    #[error("the round engine stopped unexpectedly: {0}")]
    EngineCrashed(String),
}

/// How long a request may take beyond the long-poll's hold: room for a model
/// upload of the largest size the protocol allows on a slow link.
const REQUEST_GRACE: std::time::Duration = std::time::Duration::from_secs(120);
/// Requests one connection may have in flight at once.
const MAX_REQUESTS_PER_CONNECTION: usize = 64;

/// A running coordinator: the gRPC server and the round engine.
#[derive(Debug)]
pub struct Coordinator {
    federation: Arc<Federation>,
    local_addr: SocketAddr,
    /// `None` once [`Coordinator::engine_stopped`] has seen it stop.
    engine: Option<JoinHandle<Result<FederationHead, EngineError>>>,
    server: JoinHandle<()>,
    audit_writer: JoinHandle<()>,
}

impl Coordinator {
    /// Opens the store, binds the listener and starts serving and running rounds.
    pub async fn start(config: FederationConfig) -> Result<Self, CoordinatorError> {
        let layout = ParameterLayout::of(&config.model_spec())
            .map_err(|e| CoordinatorError::Model(e.to_string()))?;
        let tls = cohort_crypto::tls::server_config(&config.tls_files())?;
        let mut strategy = strategy::for_config(&config)?;
        let store = Store::open(&config.server.state_dir)?;
        store.check_definition(&FederationDefinition {
            federation_id: config.federation_id.clone(),
            model_fingerprint: hex::encode(layout.fingerprint()),
            model_description: format!("{:?}", config.model_spec()),
        })?;
        store.put_config(&config)?;
        let encoded = encode_f32(&initial_parameters(&layout, config.model.init_seed));
        let head = store.init_head(&model_version(&layout.fingerprint(), &encoded), &encoded)?;
        strategy::resume(strategy.as_mut(), store.strategy_state()?)?;
        tracing::info!(
            federation = %config.federation_id,
            completed_rounds = head.completed_rounds,
            model = %head.model_version,
            "state loaded"
        );

        let listen = config.server.listen;
        let listener =
            TcpListener::bind(listen)
                .await
                .map_err(|source| CoordinatorError::Listen {
                    addr: listen,
                    source,
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| CoordinatorError::Listen {
                addr: listen,
                source,
            })?;
        let audit_key = config.server.state_dir.join("audit-signing.key");
        let audit_log = Arc::new(audit::AuditLog::open(&store, &audit_key)?);
        tracing::info!(
            public_key = %hex::encode(audit_log.public_key()),
            "audit log verified; tree heads are signed with this Ed25519 key"
        );
        let revoked = match &config.server.revocation_list {
            Some(path) => cohort_crypto::pki::load_revocations(path)?,
            None => Default::default(),
        };
        audit::log_new_revocations(&audit_log, &store, &revoked).await?;
        let (mut federation, refusal_writer) =
            Federation::new(config, layout, store.clone(), audit_log.clone());
        federation.revoked_certificates = revoked;
        let federation = Arc::new(federation);
        let audit_writer =
            tokio::spawn(refusal_writer.run(audit_log, store, federation.shutdown_signal()));

        let auditor = AuditServer::new(service::auditor::AuditService::new(federation.clone()))
            .max_encoding_message_size(cohort_proto::MAX_MESSAGE_BYTES);
        let service = FederationServer::new(service::FederationService::new(federation.clone()))
            .max_decoding_message_size(cohort_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(cohort_proto::MAX_MESSAGE_BYTES);
        let observer = federation.clone();
        let incoming = cohort_crypto::tls::acceptor::mutual_tls_incoming(
            listener,
            tls,
            federation.config.server.max_connections,
            move |remote_addr, reason| {
                observer.audit(audit::AuditEvent::ConnectionRefused {
                    remote_addr: remote_addr.to_string(),
                    reason: reason.clone(),
                    count: 1,
                });
                observer.emit(FederationEvent::ConnectionRefused {
                    remote_addr,
                    reason,
                });
            },
        );
        let request_timeout =
            std::time::Duration::from_millis(federation.config.server.poll_timeout_ms)
                + REQUEST_GRACE;
        let mut shutdown = federation.shutdown_signal();
        let server = tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
                // Every request, streams included, ends within the long-poll's
                // hold plus a grace for the largest upload: a stalled peer
                // cannot hold a handler (or its memory) forever.
                .timeout(request_timeout)
                // In-flight requests per connection (HTTP/2 streams).
                .concurrency_limit_per_connection(MAX_REQUESTS_PER_CONNECTION)
                .add_service(service)
                .add_service(auditor)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = shutdown.wait_for(|stop| *stop).await;
                })
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "gRPC server stopped");
            }
        });
        let engine = tokio::spawn(rounds::engine::run(federation.clone(), strategy));
        tracing::info!(%local_addr, "coordinator listening (mutual TLS 1.3)");
        Ok(Self {
            federation,
            local_addr,
            engine: Some(engine),
            server,
            audit_writer,
        })
    }

    /// The address the server is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn events(&self) -> broadcast::Receiver<FederationEvent> {
        self.federation.subscribe()
    }

    pub fn federation(&self) -> &Arc<Federation> {
        &self.federation
    }

    /// Waits until the federation has run all its rounds and returns its final
    /// head (at once if it is finished now). The coordinator keeps serving, so
    /// nodes learn that it finished and auditors can read on; call
    /// [`Coordinator::shutdown`] to stop it. Serving after finish, an erasure
    /// may reopen the federation later: called again then, this waits for the
    /// retrain to finish.
    ///
    /// Cancel-safe: may be raced against other futures and called again.
    pub async fn wait(&mut self) -> Result<FederationHead, CoordinatorError> {
        let mut finished = self.federation.finished_signal();
        let finished = async move {
            let finished = finished.wait_for(Option::is_some).await.ok()?;
            finished.clone()
        };
        tokio::select! {
            biased;
            Some(finished) = finished => Ok(FederationHead {
                schema: store::records::SCHEMA_VERSION,
                completed_rounds: finished.completed_rounds,
                model_version: finished.final_model_version,
            }),
            stopped = self.engine_stopped() => stopped,
        }
    }

    /// Waits until the round engine stops, and returns its last head: right
    /// after the rounds finish, or, serving after finish, only if it fails
    /// (say a retrain's round keeps failing). A coordinator serving after
    /// finish races this against its stop signal, so that a failed engine is
    /// not hidden behind a server that still answers.
    ///
    /// Cancel-safe: may be raced against other futures; once it has returned,
    /// later calls fail.
    pub async fn engine_stopped(&mut self) -> Result<FederationHead, CoordinatorError> {
        let Some(engine) = self.engine.as_mut() else {
            return Err(CoordinatorError::EngineCrashed(
                "the round engine has already stopped".into(),
            ));
        };
        let outcome = engine.await;
        self.engine = None;
        match outcome {
            Ok(result) => Ok(result?),
            Err(join) => Err(CoordinatorError::EngineCrashed(join.to_string())),
        }
    }

    /// Stops the engine and the server, and waits until both have let go of the
    /// store (so it can be opened again, e.g. by a restarted coordinator).
    pub async fn shutdown(self) {
        if let Some(engine) = self.engine {
            engine.abort();
            let _ = engine.await;
        }
        self.federation.begin_shutdown();
        let _ = self.server.await;
        let _ = self.audit_writer.await;
        // Group commits run in tasks of their own; each holds the store.
        let federation = &self.federation;
        federation.audit_log.drain(&federation.store).await;
    }
}
