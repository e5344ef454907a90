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
//! Modules, top down (each uses only those below it; see
//! `docs/ARCHITECTURE.md` for the graph): [`service`] (the gRPC APIs and who
//! may call them), [`rounds`] (the round engine, its phases, the round in
//! flight, unlearning), [`federation`] (the state service and engine share),
//! [`audit`] (the tamper-evident log, lineage, erasure statuses), [`store`]
//! (sled); beside them [`config`] (the TOML file) and [`strategy`]
//! (aggregation); for people, [`observability`] (health, metrics) and
//! [`console`] (the read-only web console). Mutual TLS in front of tonic is
//! [`cohort_crypto::tls::acceptor`], shared with a node's inference service.

#![warn(missing_docs)]

pub mod audit;
pub mod config;
pub mod console;
pub mod export;
pub mod failover;
pub mod federation;
pub mod migrate;
pub mod observability;
pub mod rounds;
pub mod service;
pub mod store;
pub mod strategy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cohort_proto::audit_v1::audit_server::AuditServer;
use cohort_proto::export::ModelFile;
use cohort_proto::model::{ModelDescriptor, encode_f32, initial_parameters, model_version};
use cohort_proto::v1::federation_server::FederationServer;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use audit::AuditLog;
use cohort_crypto::authz::{AuthorizationLayer, Authorizer, ServingDeadline};
use cohort_crypto::health::{HealthGrpcService, ServerHealth};
use config::{FederationConfig, InitialModel};
use federation::{Federation, FederationEvent};
use observability::live::LiveMetrics;
use rounds::engine::EngineError;
use rounds::live::LiveRound;
use service::access::RefusalLog;
use store::records::FederationHead;
use store::{FederationDefinition, SledStore, Store, StoreError, StoreLocation};
use strategy::Strategy;

/// Why the coordinator could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The configured model has no valid layout.
    #[error("invalid model: {0}")]
    Model(String),
    /// The file of the federation's first model (`[model]
    /// initial_parameters`) cannot be read or is not of the configured model.
    #[error("initial model {path}: {reason}")]
    InitialModel {
        /// The file.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// The state store could not be opened or does not match the config.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configured strategy could not be built or resumed.
    #[error("strategy: {0}")]
    Strategy(#[from] strategy::StrategyError),
    /// The TLS files could not be loaded.
    #[error(transparent)]
    Tls(#[from] cohort_crypto::tls::TlsError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The round engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The audit log could not be opened or does not verify.
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    /// The revocation list could not be read.
    #[error(transparent)]
    Revocations(#[from] cohort_crypto::authz::RevocationListUnreadable),
    /// The TensorBoard event file (`server.tensorboard_dir`) cannot be created.
    #[error("TensorBoard event file: {0}")]
    Tensorboard(#[from] cohort_proto::tensorboard::EventFileError),
    /// The web console (`server.console_listen`) could not start.
    #[error(transparent)]
    Console(#[from] console::ConsoleError),
    /// On PostgreSQL, this coordinator's settings differ from those the
    /// federation ran with: taking it over (at a failover, or a restart)
    /// would change them.
    #[error(
        "these settings differ from those the federation ran with: {0}. Every coordinator \
         of a federation runs its federation.toml (only the host's own [server] settings may \
         differ); to change them on purpose, stop every coordinator and start one with \
         `serve --change-settings`"
    )]
    SettingsChanged(String),
    /// Another coordinator took the database lease over (this one was paused
    /// or cut off past its expiry), or it could not be renewed: this one is
    /// no longer the active coordinator and must stop (see [`failover`]).
    #[error("no longer the active coordinator: {0}")]
    LeaseLost(String),
    /// The round engine's task panicked or was cancelled.
    #[error("the round engine stopped unexpectedly: {0}")]
    EngineCrashed(String),
    /// The state folder (`server.state_dir`) cannot be created.
    #[error("state folder {path}: {source}")]
    StateFolder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// How long a request may take beyond the long-poll's hold: room for a model
/// upload of the largest size the protocol allows on a slow link.
const REQUEST_GRACE: Duration = Duration::from_secs(120);
/// Requests one connection may have in flight at once.
const MAX_REQUESTS_PER_CONNECTION: usize = 64;
/// How long [`Coordinator::shutdown`] waits for a sled store to be released
/// (sled lets go of its files from its own threads, just after the last
/// handle is dropped).
const RELEASE_PATIENCE: Duration = Duration::from_secs(30);

/// A running coordinator: the gRPC server and the round engine.
#[derive(Debug)]
pub struct Coordinator {
    federation: Arc<Federation>,
    live: Arc<LiveRound>,
    local_addr: SocketAddr,
    /// `None` once [`Coordinator::engine_stopped`] has seen it stop.
    engine: Option<JoinHandle<Result<FederationHead, EngineError>>>,
    server: JoinHandle<()>,
    audit_writer: JoinHandle<()>,
    /// The health and metrics endpoint's address and task, if configured.
    observability: Option<(SocketAddr, JoinHandle<()>)>,
    /// The web console's address and task, if configured.
    console: Option<(SocketAddr, JoinHandle<()>)>,
    /// The TensorBoard event file's writer, if configured.
    tensorboard: Option<JoinHandle<()>>,
    /// What the gRPC health service (`grpc.health.v1`) reports.
    health: ServerHealth,
    /// The database lease that makes this coordinator the active one (on
    /// PostgreSQL; see [`failover`]).
    lease: Option<failover::ActiveLease>,
}

/// A coordinator that is up but not yet running rounds
/// ([`Coordinator::prepare`]): its store is open, its audit log verified,
/// its gRPC server answers — the health service says NOT_SERVING — but its
/// round engine has not started. [`Prepared::run`] starts it.
#[derive(Debug)]
pub struct Prepared {
    coordinator: Coordinator,
    strategy: Box<dyn Strategy>,
}

impl Prepared {
    /// The address the server is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.coordinator.local_addr
    }

    /// Starts the round engine, then reports SERVING.
    pub async fn run(self) -> Coordinator {
        let Self {
            mut coordinator,
            strategy,
        } = self;
        coordinator.engine = Some(tokio::spawn(rounds::engine::run(
            coordinator.federation.clone(),
            coordinator.live.clone(),
            strategy,
        )));
        tokio::spawn(rounds::unlearning::watch_withdrawal_patience(
            coordinator.federation.clone(),
            coordinator.live.clone(),
        ));
        coordinator.health.serving().await;
        coordinator
    }
}

/// What a start finds in the store: the model's descriptor (which must be
/// the one the federation started with) and the strategy with the state
/// committed with the head.
async fn open_state(
    config: &FederationConfig,
    store: &Store,
) -> Result<(ModelDescriptor, Box<dyn Strategy>), CoordinatorError> {
    let model = (config.model.validate()).map_err(|e| CoordinatorError::Model(e.to_string()))?;
    let mut strategy = strategy::for_config(config)?;
    store
        .check_definition(&FederationDefinition {
            federation_id: config.federation_id.clone(),
            model_fingerprint: hex::encode(model.fingerprint()),
            // Names the descriptor, so that a state written before descriptors
            // (protocol version 1) reads as another model.
            model_description: format!(
                "{} with {} parameters in {} tensors",
                model.label(),
                model.num_parameters(),
                model.tensors.len()
            ),
        })
        .await?;
    store.put_config(config).await?;
    strategy::resume(strategy.as_mut(), store.strategy_state().await?)?;
    Ok((model, strategy))
}

/// The federation's head; at its first start, its first model: drawn from
/// the seed of a built-in model, or read from the owner's file
/// (`[model] initial_parameters`), whose content address and SHA-256 are
/// logged durably before it becomes the head.
async fn open_head(
    config: &FederationConfig,
    model: &ModelDescriptor,
    store: &Store,
    audit_log: &AuditLog,
) -> Result<FederationHead, CoordinatorError> {
    let head = match store.head().await? {
        Some(head) => head,
        None => match (config.model.initial_model())
            .map_err(|e| CoordinatorError::Model(e.to_string()))?
        {
            InitialModel::Seeded { layout, seed } => {
                let encoded = encode_f32(&initial_parameters(&layout, seed));
                let version = model_version(&layout.fingerprint(), &encoded);
                store.init_head(&version, &encoded).await?
            }
            InitialModel::File(path) => {
                let (file, sha256) = read_initial_model(path, model)?;
                let initialized = audit::AuditEvent::ModelInitialized {
                    model_version: file.model_version().to_owned(),
                    file_sha256: sha256,
                };
                // A start that crashed between the entry and the head logged
                // this very file already: one entry for it.
                let logged = (audit::stored_entries(store).await?)
                    .iter()
                    .any(|entry| entry.event == initialized);
                if !logged {
                    audit_log.append(store, vec![initialized]).await?;
                }
                let encoded = encode_f32(file.parameters());
                store.init_head(file.model_version(), &encoded).await?
            }
        },
    };
    tracing::info!(
        federation = %config.federation_id,
        store = %config.server.store_location(),
        completed_rounds = head.completed_rounds,
        model = %head.model_version,
        "state loaded"
    );
    Ok(head)
}

/// The owner's first model from `path`, which must be of `model`, and the
/// file's hex SHA-256.
fn read_initial_model(
    path: &Path,
    model: &ModelDescriptor,
) -> Result<(ModelFile, String), CoordinatorError> {
    let refused = |reason: String| CoordinatorError::InitialModel {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| refused(e.to_string()))?;
    let (file, _) = ModelFile::from_safetensors(&bytes).map_err(|e| refused(e.to_string()))?;
    if file.descriptor() != model {
        return Err(refused(format!(
            "it holds {} (fingerprint {}), but [model] descriptor is {} (fingerprint {})",
            file.descriptor().label(),
            hex::encode(file.descriptor().fingerprint()),
            model.label(),
            hex::encode(model.fingerprint())
        )));
    }
    let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes));
    Ok((file, sha256))
}

/// The listener on `listen`, and the address it got.
pub(crate) async fn bind(
    listen: SocketAddr,
) -> Result<(TcpListener, SocketAddr), CoordinatorError> {
    let failed = |source| CoordinatorError::Listen {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(failed)?;
    let local_addr = listener.local_addr().map_err(failed)?;
    Ok((listener, local_addr))
}

/// The audit log over `store`; the refusal log and the writer of its
/// refusals; and the authorization layer's decision (every call refused
/// past `serving`), with the revocation list read (revocations new since the
/// last start logged; later ones are logged as the live list picks them up).
async fn open_audit(
    config: &FederationConfig,
    store: &Store,
    serving: Option<ServingDeadline>,
) -> Result<
    (
        Arc<AuditLog>,
        Arc<RefusalLog>,
        audit::refusals::RefusalWriter,
        Arc<Authorizer>,
    ),
    CoordinatorError,
> {
    let audit_key = config.server.state_dir.join(audit::SIGNING_KEY_FILE);
    let audit_log = Arc::new(AuditLog::open(store, &audit_key, &config.federation_id).await?);
    tracing::info!(
        public_key = %hex::encode(audit_log.public_key()),
        federation_id = %config.federation_id,
        "audit log verified; tree heads name this federation and are signed with this Ed25519 key"
    );
    let (refusals, refusal_writer) = RefusalLog::new();
    let refusals = Arc::new(refusals);
    let revocations = service::access::revocations(&config.server, &refusals)?;
    let revoked = revocations.current()?;
    audit::log_new_revocations(&audit_log, store, &revoked).await?;
    let mut authorizer = service::access::authorizer(&config.server, Arc::new(revocations));
    if let Some(serving) = serving {
        authorizer = authorizer.serving_until(serving);
    }
    Ok((audit_log, refusals, refusal_writer, Arc::new(authorizer)))
}

/// Serves the training and auditor APIs and the health service on
/// `listener` behind mutual TLS until the federation shuts down.
fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    federation: &Arc<Federation>,
    live: &Arc<LiveRound>,
    access: (&Arc<RefusalLog>, &Arc<Authorizer>),
    health: HealthGrpcService,
) -> JoinHandle<()> {
    let (refusals, authorizer) = access;
    let authorization = AuthorizationLayer::new(authorizer.clone(), refusals.observer());
    let auditor = AuditServer::new(service::auditor::AuditService::new(federation.clone()))
        .max_encoding_message_size(cohort_proto::MAX_MESSAGE_BYTES);
    let training =
        service::FederationService::new(federation.clone(), live.clone(), refusals.clone());
    let training = FederationServer::new(training)
        .max_decoding_message_size(cohort_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(cohort_proto::MAX_MESSAGE_BYTES);
    // The acceptor's tasks may outlive the coordinator: they hold no store.
    let (observer, events) = (refusals.clone(), federation.event_sender());
    let config = &federation.config.server;
    let incoming = cohort_crypto::tls::acceptor::mutual_tls_incoming(
        listener,
        tls,
        config.max_connections,
        move |remote_addr, reason| {
            let source = observability::live::RefusalSource::Connection;
            observer.counts().refused(source, "handshake");
            observer.log(audit::AuditEvent::ConnectionRefused {
                remote_addr: remote_addr.to_string(),
                reason: reason.clone(),
                count: 1,
            });
            let _ = events.send(FederationEvent::ConnectionRefused {
                remote_addr,
                reason,
            });
        },
    );
    let request_timeout = Duration::from_millis(config.poll_timeout_ms) + REQUEST_GRACE;
    let mut shutdown = federation.shutdown_signal();
    tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            // Every request, streams included, ends within the long-poll's
            // hold plus a grace for the largest upload: a stalled peer
            // cannot hold a handler (or its memory) forever.
            .timeout(request_timeout)
            // In-flight requests per connection (HTTP/2 streams).
            .concurrency_limit_per_connection(MAX_REQUESTS_PER_CONNECTION)
            // Every call of every service, before routing (see `service::access`).
            .layer(authorization)
            .add_service(training)
            .add_service(auditor)
            .add_service(health)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "gRPC server stopped");
        }
    })
}

impl Coordinator {
    /// Opens the store, binds the listener and starts serving and running
    /// rounds ([`Coordinator::prepare`], then [`Prepared::run`]). Fails if the
    /// store belongs to another federation or model, is in use by another
    /// process, or its audit log does not verify; if the TLS files or
    /// revocation list cannot be read; or if the address cannot be bound.
    pub async fn start(config: FederationConfig) -> Result<Self, CoordinatorError> {
        Ok(Self::prepare(config).await?.run().await)
    }

    /// Opens the store, binds the listener and starts serving, with the
    /// health service saying NOT_SERVING and no round engine yet. Fails as
    /// [`Coordinator::start`] does.
    pub async fn prepare(config: FederationConfig) -> Result<Prepared, CoordinatorError> {
        let tls = cohort_crypto::tls::server_config(&config.tls_files())?;
        // The audit key lives in the state folder whichever backend holds the
        // state; sled creates the folder itself, PostgreSQL does not.
        let folder = &config.server.state_dir;
        std::fs::create_dir_all(folder).map_err(|source| CoordinatorError::StateFolder {
            path: folder.clone(),
            source,
        })?;
        let failover::Activation { store, lease } = failover::activate(&config, &tls).await?;
        let serving = lease.as_ref().map(failover::ActiveLease::serving);
        match Self::prepare_active(config, tls, store, serving).await {
            Ok(mut prepared) => {
                prepared.coordinator.lease = lease;
                Ok(prepared)
            }
            Err(error) => {
                // A start that failed gives the lease up: a standby takes over at once.
                if let Some(lease) = lease {
                    lease.release().await;
                }
                Err(error)
            }
        }
    }

    /// [`Coordinator::prepare`] once this coordinator is the active one, on
    /// `store`, answering calls until `serving` (its lease's, on PostgreSQL).
    async fn prepare_active(
        config: FederationConfig,
        tls: Arc<rustls::ServerConfig>,
        store: Store,
        serving: Option<ServingDeadline>,
    ) -> Result<Prepared, CoordinatorError> {
        let (model, strategy) = open_state(&config, &store).await?;
        let (listener, local_addr) = bind(config.server.listen).await?;
        let (audit_log, refusals, refusal_writer, authorizer) =
            open_audit(&config, &store, serving.clone()).await?;
        open_head(&config, &model, &store, &audit_log).await?;
        // A rollback left pending by the last run is applied before any round.
        let live = Arc::new(
            LiveRound::new(rounds::unlearning::rollback_pending(&store).await?)
                .serving_until(serving),
        );
        let metrics = LiveMetrics::new(refusals.counts().clone(), audit_log.append_latency());
        let federation = Arc::new(Federation::new(
            config,
            model,
            store.clone(),
            audit_log.clone(),
            metrics,
        ));
        let audit_writer =
            tokio::spawn(refusal_writer.run(audit_log, store, federation.shutdown_signal()));
        // Subscribed before the engine starts, so no round is missed.
        let tensorboard = match &federation.config.server.tensorboard_dir {
            None => None,
            Some(dir) => Some(observability::tensorboard::spawn(dir, &federation)?),
        };
        let (health, health_service) = ServerHealth::new(&service::access::SERVICES).await;
        let access = (&refusals, &authorizer);
        let console_tls = console::ConsoleTls {
            server: tls.clone(),
            revocations: authorizer.revocations().clone(),
        };
        let server = serve(listener, tls, &federation, &live, access, health_service);
        let observability = match federation.config.server.observability_listen {
            None => None,
            Some(addr) => Some(
                observability::serve(addr, federation.clone())
                    .await
                    .map_err(|source| CoordinatorError::Listen { addr, source })?,
            ),
        };
        let console = match federation.config.server.console_listen {
            None => None,
            Some(address) => Some(
                console::serve(address, federation.clone(), live.clone(), Some(console_tls))
                    .await?,
            ),
        };
        tracing::info!(%local_addr, "coordinator listening (mutual TLS 1.3)");
        let coordinator = Self {
            federation,
            live,
            local_addr,
            engine: None,
            server,
            audit_writer,
            observability,
            console,
            tensorboard,
            health,
            lease: None,
        };
        Ok(Prepared {
            coordinator,
            strategy,
        })
    }

    /// Where `/healthz`, `/readyz` and `/metrics` are served, if configured.
    pub fn observability_addr(&self) -> Option<SocketAddr> {
        self.observability.as_ref().map(|(addr, _)| *addr)
    }

    /// Where the web console is served, if configured.
    pub fn console_addr(&self) -> Option<SocketAddr> {
        self.console.as_ref().map(|(addr, _)| *addr)
    }

    /// The address the server is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Every [`FederationEvent`] from now on.
    pub fn events(&self) -> broadcast::Receiver<FederationEvent> {
        self.federation.subscribe()
    }

    /// The state the service and the engine share (its store, audit log,
    /// configuration).
    pub fn federation(&self) -> &Arc<Federation> {
        &self.federation
    }

    /// The round in flight: its open stage, for observers, and
    /// [`LiveRound::end_stage`] for whoever knows no further answer will come.
    pub fn live_round(&self) -> &Arc<LiveRound> {
        &self.live
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
    /// not hidden behind a server that still answers. On PostgreSQL it also
    /// returns, with [`CoordinatorError::LeaseLost`], once another
    /// coordinator has taken the lease over.
    ///
    /// Cancel-safe: may be raced against other futures; once it has returned,
    /// later calls fail.
    pub async fn engine_stopped(&mut self) -> Result<FederationHead, CoordinatorError> {
        let Some(engine) = self.engine.as_mut() else {
            return Err(CoordinatorError::EngineCrashed(
                "the round engine has already stopped".into(),
            ));
        };
        let lost = self.lease.as_ref().map(failover::ActiveLease::lost);
        let lost = async move {
            match lost {
                Some(lost) => lost.await,
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            outcome = engine => outcome,
            reason = lost => {
                self.health.not_serving().await;
                return Err(CoordinatorError::LeaseLost(reason));
            }
        };
        self.engine = None;
        let outcome = match outcome {
            Ok(result) => result.map_err(CoordinatorError::from),
            Err(join) => Err(CoordinatorError::EngineCrashed(join.to_string())),
        };
        if outcome.is_err() {
            // No more rounds can run: a probe should say so.
            self.health.not_serving().await;
        }
        outcome
    }

    /// Stops the engine and the server, and waits until the store is
    /// released (so it can be opened again at once, e.g. by a restarted
    /// coordinator); a handle kept outside the coordinator (a clone of
    /// `federation().store`) must be dropped first, or this waits for it
    /// (at most 30 s, then warns).
    pub async fn shutdown(self) {
        // Probes hear of the stop first; their `Watch` streams end with it.
        self.health.stopping().await;
        if let Some(engine) = self.engine {
            engine.abort();
            let _ = engine.await;
        }
        self.federation.begin_shutdown();
        let _ = self.server.await;
        if let Some((_, endpoint)) = self.observability {
            let _ = endpoint.await;
        }
        if let Some((_, console)) = self.console {
            let _ = console.await;
        }
        if let Some(tensorboard) = self.tensorboard {
            let _ = tensorboard.await;
        }
        let _ = self.audit_writer.await;
        // Group commits run in tasks of their own; each holds the store.
        let federation = self.federation;
        federation.audit_log.drain(&federation.store).await;
        let location = federation.config.server.store_location();
        drop((federation, self.live));
        if let Some(lease) = self.lease {
            lease.release().await;
        }
        // Only a sled folder is held by one process at a time; a database's
        // pooled connections close as the last handle drops, and a coordinator
        // starting after this one connects alongside them.
        if let StoreLocation::Folder(state_dir) = location
            && !SledStore::released(&state_dir, RELEASE_PATIENCE).await
        {
            tracing::warn!(state = %state_dir.display(), "the state store is still held after shutdown");
        }
    }
}
