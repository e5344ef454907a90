//! What the gRPC service and the round engine share: the durable store, and the
//! in-memory view of the live federation (which nodes are connected, which stage
//! is open, what has come back). Each change wakes whoever waits on it through a
//! `watch` channel, so nothing polls and nothing sleeps to synchronize.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use cohort_proto::model::ParameterLayout;
use cohort_proto::v1;
use tokio::sync::{broadcast, watch};

use crate::audit::refusals::{RefusalQueue, RefusalWriter};
use crate::audit::{AuditEvent, AuditLog};

use crate::config::FederationConfig;
use crate::rounds::secure::{SecAggMessage, SecAggStep};
use crate::rounds::stage::{ActiveStage, StageResult, SubmissionError};
use crate::service::rate_limit::RequestRateLimiter;
use crate::store::Store;
use crate::store::records::RoundRecord;

/// What the engine reports as the federation moves on.
#[derive(Debug, Clone)]
pub enum FederationEvent {
    RoundCompleted(RoundRecord),
    RoundFailed(RoundRecord),
    Finished {
        completed_rounds: u64,
        model_version: String,
        /// Why it stopped before `rounds.count`, if it did.
        stop_reason: Option<String>,
    },
    /// An erasure request tainted the final model of the finished federation
    /// (serving after finish): it rolls back and retrains, and says `Finished`
    /// again once the retrained rounds are done.
    Reopened {
        /// The final model withdrawn.
        model_version: String,
    },
    /// A node registered, with the data set version it trains on.
    NodeRegistered {
        node_id: String,
        dataset: Option<crate::store::records::DatasetRef>,
    },
    /// A TLS connection was refused before reaching the service.
    ConnectionRefused {
        remote_addr: std::net::SocketAddr,
        reason: String,
    },
}

/// What a node's poll comes back with.
#[derive(Debug)]
pub enum PollOutcome {
    Task(Box<v1::Task>),
    Idle,
    Finished(v1::Finished),
    /// The coordinator is shutting down.
    ShuttingDown,
}

/// A node registered with this process.
#[derive(Debug, Clone, Copy)]
struct LiveNode {
    last_seen: Instant,
    /// It has a held-out split to evaluate on.
    evaluates: bool,
    /// Its last poll told it the federation finished, so it has stopped
    /// (`cohort-node run` does): not sampled for a retrain until it polls or
    /// registers again.
    heard_finished: bool,
}

#[derive(Debug, Default)]
struct LiveState {
    nodes: BTreeMap<String, LiveNode>,
    stage: Option<ActiveStage>,
    /// Set by [`Federation::rollback_queued`] until a rollback clears it: the
    /// round in flight opens no further stage.
    interrupted: bool,
}

#[derive(Debug)]
pub struct Federation {
    pub config: FederationConfig,
    pub layout: ParameterLayout,
    pub fingerprint: [u8; 32],
    pub store: Store,
    live: Mutex<LiveState>,
    tasks_changed: watch::Sender<u64>,
    results_changed: watch::Sender<u64>,
    nodes_changed: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    /// What every poll answers once the rounds are done; `None` while they
    /// run (again, after an erasure reopened the federation).
    finished: watch::Sender<Option<v1::Finished>>,
    /// Bumped when an erasure request queues a rollback: wakes the engine of
    /// a finished federation that serves after finish.
    rollbacks_queued: watch::Sender<u64>,
    events: broadcast::Sender<FederationEvent>,
    pub audit_log: Arc<AuditLog>,
    /// Per-node request rate limits, checked on every training-API request.
    pub rate_limiter: RequestRateLimiter,
    /// Fingerprints (hex SHA-256) of revoked certificates, refused on every request.
    pub revoked_certificates: std::collections::BTreeSet<String>,
    /// Refusals for the audit writer task (they cannot wait for a flush).
    refusals: RefusalQueue,
    /// Held by the engine from "may this round commit?" to its commit, and by
    /// erasure handling while it reads the head and taints models, so no round
    /// slips in between (see [`crate::audit::erasure`]).
    pub commit_lock: tokio::sync::Mutex<()>,
}

fn bump(tx: &watch::Sender<u64>) {
    tx.send_modify(|n| *n = n.wrapping_add(1));
}

impl Federation {
    /// The federation and the writer of its refusals, to be run.
    pub fn new(
        config: FederationConfig,
        layout: ParameterLayout,
        store: Store,
        audit_log: Arc<AuditLog>,
    ) -> (Self, RefusalWriter) {
        let fingerprint = layout.fingerprint();
        let (refusals, refusal_writer) = RefusalQueue::new();
        let rate_limiter = RequestRateLimiter::new(
            config.server.requests_per_second,
            config.server.request_burst,
        );
        let federation = Self {
            config,
            layout,
            fingerprint,
            store,
            live: Mutex::default(),
            tasks_changed: watch::channel(0).0,
            results_changed: watch::channel(0).0,
            nodes_changed: watch::channel(0).0,
            shutdown: watch::channel(false).0,
            finished: watch::channel(None).0,
            rollbacks_queued: watch::channel(0).0,
            events: broadcast::channel(1024).0,
            audit_log,
            rate_limiter,
            revoked_certificates: std::collections::BTreeSet::new(),
            refusals,
            commit_lock: tokio::sync::Mutex::new(()),
        };
        (federation, refusal_writer)
    }

    /// Logs a refusal without waiting ([`RefusalQueue`]). What is answered
    /// only once logged goes through `audit_log.append`.
    pub fn audit(&self, refusal: AuditEvent) {
        self.refusals.push(refusal);
    }

    fn live(&self) -> MutexGuard<'_, LiveState> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<FederationEvent> {
        self.events.subscribe()
    }

    pub(crate) fn emit(&self, event: FederationEvent) {
        // No subscriber is fine: events are for observers.
        let _ = self.events.send(event);
    }

    /// Marks a node as connected to this process.
    pub fn node_registered(&self, node_id: &str, evaluates: bool) {
        self.live().nodes.insert(
            node_id.to_owned(),
            LiveNode {
                last_seen: Instant::now(),
                evaluates,
                heard_finished: false,
            },
        );
        bump(&self.nodes_changed);
    }

    /// A node left the federation: it is no longer sampled.
    pub fn node_left(&self, node_id: &str) {
        self.live().nodes.remove(node_id);
        bump(&self.nodes_changed);
    }

    pub fn is_registered(&self, node_id: &str) -> bool {
        self.live().nodes.contains_key(node_id)
    }

    /// Registered nodes heard from within the liveness window (and not told
    /// since that the federation finished), sorted.
    pub fn available_nodes(&self) -> Vec<String> {
        self.live_nodes(|_| true)
    }

    /// Available nodes that have a held-out split, sorted.
    pub fn evaluating_nodes(&self) -> Vec<String> {
        self.live_nodes(|node| node.evaluates)
    }

    fn live_nodes(&self, keep: impl Fn(&LiveNode) -> bool) -> Vec<String> {
        let window = Duration::from_millis(self.config.server.liveness_ms);
        self.live()
            .nodes
            .iter()
            .filter(|(_, node)| {
                node.last_seen.elapsed() <= window && !node.heard_finished && keep(node)
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Waits until at least `count` nodes are available.
    pub async fn wait_for_nodes(&self, count: usize) {
        let mut changed = self.nodes_changed.subscribe();
        loop {
            changed.borrow_and_update();
            if self.available_nodes().len() >= count {
                return;
            }
            if changed.changed().await.is_err() {
                return;
            }
        }
    }

    /// Opens a stage: its participants' polls return their tasks.
    /// While the round in flight is interrupted, the stage is not opened
    /// (its wait returns at once, with no results).
    pub fn open_stage(&self, stage: ActiveStage) {
        let mut live = self.live();
        if !live.interrupted {
            live.stage = Some(stage);
        }
        drop(live);
        bump(&self.tasks_changed);
    }

    /// Closes the open stage and returns it with its results.
    pub fn close_stage(&self) -> Option<ActiveStage> {
        let stage = self.live().stage.take();
        bump(&self.tasks_changed);
        stage
    }

    /// An erasure request queued a rollback (see [`crate::audit::erasure`]).
    /// The round in flight started from a tainted model, so it ends: its open
    /// stage closes now, as if its deadline had passed, and it opens no other
    /// until [`Self::resume_stages`]. An engine waiting after finish wakes to
    /// retrain.
    pub fn rollback_queued(&self) {
        let mut live = self.live();
        live.interrupted = true;
        live.stage = None;
        drop(live);
        bump(&self.tasks_changed);
        bump(&self.results_changed);
        bump(&self.rollbacks_queued);
    }

    /// Changes whenever [`Self::rollback_queued`] is called.
    pub fn rollback_signal(&self) -> watch::Receiver<u64> {
        self.rollbacks_queued.subscribe()
    }

    /// The rollback is done: rounds may open stages again.
    pub fn resume_stages(&self) {
        self.live().interrupted = false;
    }

    /// Waits until every participant answered or the deadline passed.
    pub async fn wait_for_results(&self, deadline: SystemTime) {
        let mut changed = self.results_changed.subscribe();
        loop {
            changed.borrow_and_update();
            let complete = self
                .live()
                .stage
                .as_ref()
                .is_none_or(ActiveStage::is_complete);
            if complete {
                return;
            }
            let remaining = deadline
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            if remaining.is_zero() {
                return;
            }
            match tokio::time::timeout(remaining, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return,
            }
        }
    }

    /// Checks a submission against the open stage without keeping it: lets the
    /// service refuse early, before reading a large upload.
    pub fn check_submission(
        &self,
        node_id: &str,
        round: u64,
        stage: &'static str,
        model_version: Option<&str>,
    ) -> Result<(), SubmissionError> {
        match &self.live().stage {
            Some(open) => open.check(node_id, round, stage, model_version, SystemTime::now()),
            None => Err(SubmissionError::NoOpenStage { expected: stage }),
        }
    }

    /// Keeps a submission in the open stage.
    pub fn submit(
        &self,
        node_id: &str,
        round: u64,
        result: StageResult,
    ) -> Result<(), SubmissionError> {
        let expected = result.stage_name();
        {
            let mut live = self.live();
            let stage = live
                .stage
                .as_mut()
                .ok_or(SubmissionError::NoOpenStage { expected })?;
            stage.accept(node_id, round, result, SystemTime::now())?;
        }
        bump(&self.results_changed);
        Ok(())
    }

    /// Hands a secure-aggregation message to the open stage's aggregator, and
    /// keeps `certificate` (the sender's, from its TLS session) to relay with its
    /// key advertisement.
    pub fn submit_secure_aggregation(
        &self,
        node_id: &str,
        round: u64,
        message: SecAggMessage,
        certificate: Option<Arc<[u8]>>,
    ) -> Result<(), SubmissionError> {
        let step = message.step();
        {
            let mut live = self.live();
            let stage = live.stage.as_mut().ok_or(SubmissionError::NoOpenStage {
                expected: step.name(),
            })?;
            let now = SystemTime::now();
            stage.check(node_id, round, step.name(), None, now)?;
            stage
                .secure_aggregation
                .as_mut()
                .ok_or(SubmissionError::NoOpenStage {
                    expected: step.name(),
                })?
                .receive(node_id, message)?;
            let certificate = certificate.filter(|_| step == SecAggStep::AdvertiseKeys);
            stage.accept(
                node_id,
                round,
                StageResult::SecureAggregation { step, certificate },
                now,
            )?;
        }
        bump(&self.results_changed);
        Ok(())
    }

    /// The federation has finished: every poll from now on says so.
    pub fn finish(&self, finished: v1::Finished) {
        self.finished.send_replace(Some(finished));
        bump(&self.tasks_changed);
    }

    /// An erasure tainted the final model: the federation is no longer
    /// finished, and polls wait for the retrain's tasks again.
    pub fn reopen(&self) {
        self.finished.send_replace(None);
    }

    /// The finished state: `Some` with what polls answer while the federation
    /// is finished.
    pub fn finished_signal(&self) -> watch::Receiver<Option<v1::Finished>> {
        self.finished.subscribe()
    }

    /// Makes every pending and future poll return at once.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    fn poll_now(&self, node_id: &str) -> Option<PollOutcome> {
        let finished = self.finished.borrow().clone();
        let mut live = self.live();
        if let Some(node) = live.nodes.get_mut(node_id) {
            node.last_seen = Instant::now();
            node.heard_finished = finished.is_some();
        }
        if let Some(finished) = finished {
            return Some(PollOutcome::Finished(finished));
        }
        live.stage
            .as_ref()
            .and_then(|stage| stage.task_for(node_id))
            .map(|task| PollOutcome::Task(Box::new(task)))
    }

    /// A node's long-poll: its task as soon as there is one, else `Idle` after
    /// the configured poll timeout.
    pub async fn poll(&self, node_id: &str) -> PollOutcome {
        let timeout = Duration::from_millis(self.config.server.poll_timeout_ms);
        let give_up = tokio::time::Instant::now() + timeout;
        let mut tasks = self.tasks_changed.subscribe();
        let mut shutdown = self.shutdown.subscribe();
        loop {
            tasks.borrow_and_update();
            if *shutdown.borrow_and_update() {
                return PollOutcome::ShuttingDown;
            }
            if let Some(outcome) = self.poll_now(node_id) {
                return outcome;
            }
            tokio::select! {
                changed = tasks.changed() => if changed.is_err() { return PollOutcome::Idle },
                _ = shutdown.changed() => return PollOutcome::ShuttingDown,
                () = tokio::time::sleep_until(give_up) => {
                    return self.poll_now(node_id).unwrap_or(PollOutcome::Idle);
                }
            }
        }
    }
}
