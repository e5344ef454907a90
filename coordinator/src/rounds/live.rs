//! The round in flight, as the engine and the service both see it: the open
//! stage (at most one), whether an erasure request interrupted the round, and
//! the lock a round's commit holds. Each change wakes whoever waits on it
//! through a `watch` channel, so nothing polls and nothing sleeps to
//! synchronize; a stage's deadline is the one timer.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use cohort_crypto::authz::ServingDeadline;
use cohort_proto::v1;
use tokio::sync::watch;

use super::secure::{SecAggMessage, SecAggStep};
use super::stage::{ActiveStage, StageKind, StageResult, SubmissionError};
use super::timing::StagePart;

/// The open stage as an observer sees it (see [`LiveRound::open_stage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageView {
    /// Distinct for every stage opened by this process: what
    /// [`LiveRound::end_stage`] names.
    pub id: u64,
    /// The stage's round.
    pub round: u64,
    /// What it asks.
    pub kind: StageKind,
    /// The participants that have not answered yet.
    pub waiting_for: BTreeSet<String>,
    /// When it closes with the answers it has.
    pub deadline: SystemTime,
}

#[derive(Debug, Default)]
struct LiveState {
    stage: Option<ActiveStage>,
    /// The id of the last stage opened.
    stage_id: u64,
    /// Set by [`LiveRound::interrupt`] until [`LiveRound::resume`]: the round
    /// in flight opens no further stage.
    interrupted: bool,
    /// The last model release the audit log holds durably (see
    /// [`LiveRound::release`]).
    release: Option<ModelRelease>,
}

/// A model version and the nodes a durable audit entry names as receiving it
/// (`RoundStarted`: the round's sampled nodes train from its `model_in`).
#[derive(Debug)]
struct ModelRelease {
    model_version: String,
    nodes: BTreeSet<String>,
}

/// Ends a release when dropped: once the round's training is over (however it
/// ends), a download of its starting model is logged on its own again.
#[derive(Debug)]
pub(crate) struct ReleaseGuard<'a> {
    live: &'a LiveRound,
}

impl Drop for ReleaseGuard<'_> {
    fn drop(&mut self) {
        self.live.state().release = None;
    }
}

/// The round in flight (see the module docs). Shared by the engine, which
/// opens and closes stages, and the service, which polls and submits.
#[derive(Debug)]
pub struct LiveRound {
    state: Mutex<LiveState>,
    /// Bumped when a stage opens or closes: wakes polls.
    tasks_changed: watch::Sender<u64>,
    /// Bumped when a stage opens, takes a result, ends or closes: wakes the
    /// engine waiting for results, and observers.
    results_changed: watch::Sender<u64>,
    /// Bumped by [`Self::interrupt`].
    interrupts: watch::Sender<u64>,
    /// Held by the engine from "may this round commit?" to its commit, and by
    /// an erasure request while it reads the head and taints models, so no
    /// round slips in between (see [`super::unlearning`]).
    commit_lock: tokio::sync::Mutex<()>,
    /// The timed parts of the round in flight so far (`super::timing`): the
    /// closed stages' and the engine's own.
    parts: Mutex<Vec<StagePart>>,
    /// Until when this coordinator is sure it holds its lease (PostgreSQL);
    /// past it no download counts as released (see [`Self::release_covers`]).
    serving: Option<ServingDeadline>,
}

fn bump(tx: &watch::Sender<u64>) {
    tx.send_modify(|n| *n = n.wrapping_add(1));
}

impl LiveRound {
    /// No stage open; `interrupted` if a rollback is pending in the store (it
    /// must be applied before any round runs).
    pub fn new(interrupted: bool) -> Self {
        Self {
            state: Mutex::new(LiveState {
                interrupted,
                ..LiveState::default()
            }),
            tasks_changed: watch::channel(0).0,
            results_changed: watch::channel(0).0,
            interrupts: watch::channel(0).0,
            commit_lock: tokio::sync::Mutex::new(()),
            parts: Mutex::new(Vec::new()),
            serving: None,
        }
    }

    /// This round state for a coordinator that serves only until `serving`.
    pub fn serving_until(self, serving: Option<ServingDeadline>) -> Self {
        Self { serving, ..self }
    }

    fn parts(&self) -> MutexGuard<'_, Vec<StagePart>> {
        // Plain data: a panic while holding it leaves a timing, nothing more.
        self.parts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a timed part to the round in flight's timing.
    pub(crate) fn record(&self, part: StagePart) {
        self.parts().push(part);
    }

    /// The timed parts so far, leaving none: what the engine reads at a
    /// round's end (and clears at its start).
    pub(crate) fn take_parts(&self) -> Vec<StagePart> {
        std::mem::take(&mut *self.parts())
    }

    /// Marks on the open stage's clock, if `node_id` takes part in it.
    fn mark(&self, node_id: &str, mark: impl FnOnce(&mut super::timing::StageClock)) {
        if let Some(stage) = self.state().stage.as_mut()
            && stage.participants.contains(node_id)
        {
            mark(&mut stage.clock);
        }
    }

    /// Notes that the audit log now holds, durably, that `nodes` receive
    /// `model_version` (the round's `RoundStarted` entry): while the returned
    /// guard lives (the round's training), their downloads of it are on
    /// record already and need no entry each. At a thousand nodes a round
    /// that is one durable entry instead of a thousand.
    pub(crate) fn release(&self, model_version: &str, nodes: &[String]) -> ReleaseGuard<'_> {
        self.state().release = Some(ModelRelease {
            model_version: model_version.to_owned(),
            nodes: nodes.iter().cloned().collect(),
        });
        ReleaseGuard { live: self }
    }

    /// Whether a release in force names `node_id` as receiving
    /// `model_version`, and this coordinator is still sure of its lease: if
    /// not, the download must be logged (a write the lease fences) before
    /// the model leaves.
    pub fn release_covers(&self, node_id: &str, model_version: &str) -> bool {
        if self
            .serving
            .as_ref()
            .is_some_and(ServingDeadline::has_passed)
        {
            return false;
        }
        self.state().release.as_ref().is_some_and(|release| {
            release.model_version == model_version && release.nodes.contains(node_id)
        })
    }

    /// `node_id`'s poll returned its task, `bytes` encoded (for the timing).
    pub fn note_delivered(&self, node_id: &str, bytes: usize) {
        self.mark(node_id, |clock| clock.delivered(node_id, bytes));
    }

    /// `node_id` was handed the last chunk of a model of `bytes` (for the timing).
    pub fn note_fetched(&self, node_id: &str, bytes: usize) {
        self.mark(node_id, |clock| clock.fetched(node_id, bytes));
    }

    /// `node_id`'s upload of `bytes`, which began at `started`, was read (for
    /// the timing).
    pub fn note_uploaded(&self, node_id: &str, started: Instant, bytes: usize) {
        self.mark(node_id, |clock| clock.uploaded(node_id, started, bytes));
    }

    fn state(&self) -> MutexGuard<'_, LiveState> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens `stage`, waits until every participant has answered, its
    /// deadline has passed or the round is interrupted, closes it, and returns
    /// what `pick` keeps of its results. `None` if the round was interrupted
    /// (the stage then never opens, or closes at once).
    pub(crate) async fn run_stage<T>(
        &self,
        stage: ActiveStage,
        pick: impl FnMut((String, StageResult)) -> Option<T>,
    ) -> Option<Vec<T>> {
        self.open(stage);
        self.wait_for_results().await;
        let closed = self.close()?;
        Some(closed.results.into_iter().filter_map(pick).collect())
    }

    /// Opens a stage: its participants' polls return their tasks. While the
    /// round in flight is interrupted, the stage is not opened.
    fn open(&self, stage: ActiveStage) {
        let mut state = self.state();
        if !state.interrupted {
            state.stage_id += 1;
            state.stage = Some(stage);
        }
        drop(state);
        bump(&self.tasks_changed);
        bump(&self.results_changed);
    }

    /// Closes the open stage and returns it with its results; its timed
    /// parts join the round's.
    fn close(&self) -> Option<ActiveStage> {
        let stage = self.state().stage.take();
        let closed = Instant::now();
        bump(&self.tasks_changed);
        bump(&self.results_changed);
        if let Some(stage) = &stage {
            self.parts().extend(stage.clock.parts(stage.kind(), closed));
        }
        stage
    }

    /// Waits until the open stage is complete or its deadline has passed (at
    /// once if none is open).
    async fn wait_for_results(&self) {
        let mut changed = self.results_changed.subscribe();
        loop {
            changed.borrow_and_update();
            let deadline = match &self.state().stage {
                Some(stage) if !stage.is_complete() => stage.deadline,
                _ => return,
            };
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

    /// The open stage, if any, for observers: which it is and whom it waits for.
    pub fn open_stage(&self) -> Option<StageView> {
        let state = self.state();
        state.stage.as_ref().map(|stage| StageView {
            id: state.stage_id,
            round: stage.round,
            kind: stage.kind(),
            waiting_for: stage.waiting_for(),
            deadline: stage.deadline,
        })
    }

    /// Changes whenever a stage opens, takes a result, ends or closes: what an
    /// observer of [`Self::open_stage`] waits on.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.results_changed.subscribe()
    }

    /// Ends stage `id` now, as its deadline would: later submissions are
    /// refused as late and the engine closes it with the answers it has. For
    /// whoever knows no further answer will come (the end-to-end tests, which
    /// so never wait for a clock). False if `id` is not the open stage.
    pub fn end_stage(&self, id: u64) -> bool {
        let mut state = self.state();
        let open = state.stage_id == id;
        let ended = match state.stage.as_mut() {
            Some(stage) if open => {
                stage.deadline = stage.deadline.min(SystemTime::now());
                true
            }
            _ => false,
        };
        drop(state);
        if ended {
            bump(&self.results_changed);
        }
        ended
    }

    /// The task the open stage has for `node_id`, if it is a participant that
    /// has not answered.
    pub fn task_for(&self, node_id: &str) -> Option<v1::Task> {
        self.state()
            .stage
            .as_ref()
            .and_then(|stage| stage.task_for(node_id))
    }

    /// Changes whenever a stage opens or closes: what a poll waits on.
    pub fn task_changes(&self) -> watch::Receiver<u64> {
        self.tasks_changed.subscribe()
    }

    /// Checks a submission against the open stage without keeping it: lets the
    /// service refuse early, before reading a large upload.
    pub fn check_submission(
        &self,
        node_id: &str,
        round: u64,
        kind: StageKind,
        model_version: Option<&str>,
    ) -> Result<(), SubmissionError> {
        match &self.state().stage {
            Some(open) => open.check(node_id, round, kind, model_version, SystemTime::now()),
            None => Err(SubmissionError::NoOpenStage { expected: kind }),
        }
    }

    /// Keeps a submission in the open stage.
    pub fn submit(
        &self,
        node_id: &str,
        round: u64,
        result: StageResult,
    ) -> Result<(), SubmissionError> {
        let expected = result.kind();
        self.state()
            .stage
            .as_mut()
            .ok_or(SubmissionError::NoOpenStage { expected })?
            .accept(node_id, round, result, SystemTime::now())?;
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
        let kind = StageKind::SecureAggregation(step);
        {
            let mut state = self.state();
            let stage = state
                .stage
                .as_mut()
                .ok_or(SubmissionError::NoOpenStage { expected: kind })?;
            let now = SystemTime::now();
            stage.check(node_id, round, kind, None, now)?;
            stage
                .secure_aggregation
                .as_ref()
                .ok_or(SubmissionError::NoOpenStage { expected: kind })?
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .receive(node_id, message)?;
            // Only a key advertisement's certificate is relayed (with it).
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

    /// An erasure request queued a rollback (see [`super::unlearning`]). The
    /// round in flight started from a tainted model, so it ends: its open
    /// stage closes now, as if its deadline had passed, and it opens no other
    /// until [`Self::resume`]. An engine waiting after finish wakes to retrain.
    pub fn interrupt(&self) {
        let mut state = self.state();
        state.interrupted = true;
        state.stage = None;
        drop(state);
        bump(&self.tasks_changed);
        bump(&self.results_changed);
        bump(&self.interrupts);
    }

    /// The rollback is done: rounds may open stages again.
    pub fn resume(&self) {
        self.state().interrupted = false;
    }

    /// Whether a rollback waits for the engine: the round in flight then
    /// started from a tainted model and must not be committed. Exact under
    /// [`Self::lock_commits`].
    pub fn is_interrupted(&self) -> bool {
        self.state().interrupted
    }

    /// Takes the commit lock (see the field's docs).
    pub async fn lock_commits(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.commit_lock.lock().await
    }

    /// For the engine of a finished federation that serves after finish:
    /// waits until an erasure request has queued a rollback (true), or
    /// `shutdown` turns true (false). A rollback queued before the call counts.
    pub async fn wait_for_interrupt(&self, mut shutdown: watch::Receiver<bool>) -> bool {
        let mut interrupts = self.interrupts.subscribe();
        loop {
            interrupts.borrow_and_update();
            if *shutdown.borrow_and_update() {
                return false;
            }
            if self.is_interrupted() {
                return true;
            }
            let changed = tokio::select! {
                changed = interrupts.changed() => changed,
                changed = shutdown.changed() => changed,
            };
            if changed.is_err() {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rounds::stage::StageTask;
    use crate::rounds::stage::tests::stats;

    fn stage(deadline: Duration) -> ActiveStage {
        ActiveStage::new(
            0,
            StageTask::FeatureStats,
            SystemTime::now() + deadline,
            ["a".to_string(), "b".to_string()],
        )
    }

    #[test]
    fn a_release_covers_its_nodes_and_model_while_its_guard_lives_and_the_lease_holds() {
        let serving = ServingDeadline::new(Instant::now() + Duration::from_secs(3600));
        let live = LiveRound::new(false).serving_until(Some(serving.clone()));
        assert!(!live.release_covers("a", "m1"), "nothing released yet");
        let release = live.release("m1", &["a".to_string(), "b".to_string()]);
        assert!(live.release_covers("a", "m1"));
        assert!(live.release_covers("b", "m1"));
        assert!(!live.release_covers("c", "m1"), "not sampled");
        assert!(!live.release_covers("a", "m2"), "another version");
        serving.close();
        assert!(
            !live.release_covers("a", "m1"),
            "past the lease, every download is a fenced write again"
        );
        serving.extend_to(Instant::now() + Duration::from_secs(3600));
        assert!(live.release_covers("a", "m1"));
        drop(release);
        assert!(
            !live.release_covers("a", "m1"),
            "the round's training is over"
        );
    }

    #[tokio::test]
    async fn a_stage_closes_at_its_deadline_with_the_answers_it_has() {
        let live = LiveRound::new(false);
        // "a" answered at once; "b" never does: only the deadline ends it,
        // however fast or slow the machine.
        let mut stage = stage(Duration::from_millis(100));
        let before_deadline = stage.deadline - Duration::from_millis(100);
        stage.accept("a", 0, stats(), before_deadline).unwrap();
        let kept = live.run_stage(stage, |(node, _)| Some(node)).await;
        assert_eq!(kept, Some(vec!["a".to_string()]));
        assert_eq!(live.open_stage(), None, "closed");
    }

    #[tokio::test]
    async fn an_ended_stage_closes_at_once_and_refuses_latecomers() {
        let live = Arc::new(LiveRound::new(false));
        let running = tokio::spawn({
            let live = live.clone();
            async move {
                live.run_stage(stage(Duration::from_secs(3600)), |(node, _)| Some(node))
                    .await
            }
        });
        let mut changes = live.changes();
        changes
            .wait_for(|_| live.open_stage().is_some())
            .await
            .unwrap();
        live.submit("a", 0, stats()).unwrap();
        let view = live.open_stage().unwrap();
        assert_eq!(view.waiting_for, ["b".to_string()].into());
        assert!(!live.end_stage(view.id + 1), "only the open stage ends");
        assert!(live.end_stage(view.id));
        assert!(matches!(
            live.submit("b", 0, stats()),
            Err(SubmissionError::DeadlinePassed { .. } | SubmissionError::NoOpenStage { .. })
        ));
        assert_eq!(running.await.unwrap(), Some(vec!["a".to_string()]));
    }

    #[tokio::test]
    async fn an_interrupted_round_opens_no_stage_until_resumed() {
        let live = LiveRound::new(true);
        assert_eq!(
            live.run_stage(stage(Duration::from_secs(3600)), |(node, _)| Some(node))
                .await,
            None
        );
        let (_, shutdown) = watch::channel(false);
        assert!(live.wait_for_interrupt(shutdown).await);
        live.resume();
        assert!(!live.is_interrupted());
    }
}
