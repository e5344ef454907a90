//! Ending stages without a clock. A test that makes a node fall silent would
//! otherwise wait for the stage's deadline, and a deadline short enough to
//! wait for is one a loaded machine can miss. The test says which node will
//! not answer which stage; a [`StageCloser`] ends that stage (as its deadline
//! would: `LiveRound::end_stage`) the moment every participant it still waits
//! for is one of those. The deadline itself stays long, a bound on a hang.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use cohort_coordinator::Coordinator;
use cohort_coordinator::rounds::live::LiveRound;
use cohort_coordinator::rounds::stage::StageKind;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// (node, stage, round): a node that will not answer that stage.
type Silence = (String, StageKind, u64);

/// Ends each stage of a coordinator once only silent nodes are left (see the
/// module docs). Stops when dropped.
#[derive(Debug)]
pub struct StageCloser {
    silent: Arc<Mutex<BTreeSet<Silence>>>,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl StageCloser {
    /// Watches `coordinator`'s stages.
    pub fn start(coordinator: &Coordinator) -> Self {
        let silent = Arc::new(Mutex::new(BTreeSet::new()));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(close_stages(
            coordinator.live_round().clone(),
            silent.clone(),
            wake.clone(),
        ));
        Self { silent, wake, task }
    }

    /// `node` will not answer the `kind` stage of `round`. Holds for the
    /// next such stage only: a retry of the round needs it said again.
    pub fn silent(&self, node: &str, kind: StageKind, round: u64) {
        self.silent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((node.to_owned(), kind, round));
        self.wake.notify_one();
    }
}

impl Drop for StageCloser {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn close_stages(
    live: Arc<LiveRound>,
    silent: Arc<Mutex<BTreeSet<Silence>>>,
    wake: Arc<Notify>,
) {
    let mut changes = live.changes();
    loop {
        changes.borrow_and_update();
        if let Some(stage) = live.open_stage() {
            let mut silent = silent.lock().unwrap_or_else(PoisonError::into_inner);
            let key = |node: &String| (node.clone(), stage.kind, stage.round);
            let only_silent_left = !stage.waiting_for.is_empty()
                && stage
                    .waiting_for
                    .iter()
                    .all(|node| silent.contains(&key(node)));
            if only_silent_left && live.end_stage(stage.id) {
                for node in &stage.waiting_for {
                    silent.remove(&key(node));
                }
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = wake.notified() => {}
        }
    }
}
