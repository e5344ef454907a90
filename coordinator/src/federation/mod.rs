//! What the gRPC service and the round engine both see: the configuration and
//! model layout, the durable store and audit log, the nodes connected to this
//! process, whether the rounds are finished, and the events observers hear;
//! and [`summary`], the line a finished federation reports.
//! The round in flight is [`crate::rounds::live`]; who may call the service
//! is [`crate::service::access`].

mod event;
pub mod models;
pub mod nodes;
pub mod summary;

use std::sync::Arc;
use std::time::Duration;

use cohort_proto::model::ModelDescriptor;
use cohort_proto::v1;
use tokio::sync::{broadcast, watch};

pub use event::FederationEvent;
use models::RecentModels;
use nodes::LiveNodes;

use crate::audit::AuditLog;
use crate::config::FederationConfig;
use crate::observability::live::LiveMetrics;
use crate::store::Store;

/// The state the service and the engine share (see the module docs). Built
/// once by [`crate::Coordinator::start`] and shared behind an `Arc`.
#[derive(Debug)]
pub struct Federation {
    /// The configuration this process runs with.
    pub config: FederationConfig,
    /// The model the federation trains: the parameter vector's length and
    /// what nodes build; the coordinator runs no model code.
    pub model: ModelDescriptor,
    /// SHA-256 of `model`: what nodes check their model against.
    pub fingerprint: [u8; 32],
    /// The durable state.
    pub store: Store,
    /// The tamper-evident log, over `store`.
    pub audit_log: Arc<AuditLog>,
    /// The nodes connected to this process.
    pub nodes: LiveNodes,
    /// The model versions nodes are fetching, in memory.
    pub models: RecentModels,
    /// What `/metrics` counts since start (round timings, refusals, audit
    /// append latency); the rest it reads from `store`.
    pub metrics: LiveMetrics,
    /// What every poll answers once the rounds are done; `None` while they
    /// run (again, after an erasure reopened the federation).
    finished: watch::Sender<Option<v1::Finished>>,
    shutdown: watch::Sender<bool>,
    events: broadcast::Sender<FederationEvent>,
}

impl Federation {
    /// The federation of `config`, over `store` and `audit_log`: no node
    /// connected, not finished.
    pub fn new(
        config: FederationConfig,
        model: ModelDescriptor,
        store: Store,
        audit_log: Arc<AuditLog>,
        metrics: LiveMetrics,
    ) -> Self {
        let fingerprint = model.fingerprint();
        let nodes = LiveNodes::new(Duration::from_millis(config.server.liveness_ms));
        Self {
            config,
            model,
            fingerprint,
            store,
            audit_log,
            nodes,
            models: RecentModels::default(),
            metrics,
            finished: watch::channel(None).0,
            shutdown: watch::channel(false).0,
            events: broadcast::channel(1024).0,
        }
    }

    /// Every event from now on (a subscriber that falls 1024 behind loses the
    /// oldest).
    pub fn subscribe(&self) -> broadcast::Receiver<FederationEvent> {
        self.events.subscribe()
    }

    /// Tells observers; no subscriber is fine.
    pub(crate) fn emit(&self, event: FederationEvent) {
        let _ = self.events.send(event);
    }

    /// A sender of events that holds nothing else of the federation (for
    /// tasks that may outlive it, such as the TLS acceptor's).
    pub(crate) fn event_sender(&self) -> broadcast::Sender<FederationEvent> {
        self.events.clone()
    }

    /// The federation has finished: every poll from now on says so.
    pub fn finish(&self, finished: v1::Finished) {
        self.finished.send_replace(Some(finished));
    }

    /// An erasure tainted the final model: the federation is no longer
    /// finished, and polls wait for the retrain's tasks again.
    pub fn reopen(&self) {
        self.finished.send_replace(None);
    }

    /// What polls answer now: `Some` while the federation is finished.
    pub fn finished(&self) -> Option<v1::Finished> {
        self.finished.borrow().clone()
    }

    /// The finished state: `Some` with what polls answer while the federation
    /// is finished.
    pub fn finished_signal(&self) -> watch::Receiver<Option<v1::Finished>> {
        self.finished.subscribe()
    }

    /// Makes every pending and future poll return at once, and stops the
    /// server and the audit writer.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// True once [`Self::begin_shutdown`] was called.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}
