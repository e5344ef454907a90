//! Where a committed round's wall time goes, as the coordinator measures it:
//! for benchmarks of the framework itself (`cohort-sim bench`), reported with
//! [`crate::federation::FederationEvent::RoundTimed`]. Nothing here changes
//! what a round does.
//!
//! A round's [`RoundTiming`] is a list of disjoint parts. The engine's own
//! steps (sampling, loading the model, aggregating, committing, the secure
//! aggregation's bookkeeping) are timed where they run. Each stage that waits
//! for the nodes is split along its critical path, the participant whose
//! answer came last (see [`StageClock::parts`]):
//!
//! ```text
//! delivery   stage opened → that node's poll returned the task
//! fetch      → it had fetched the model (zero if it fetched none in the stage)
//! work       → its upload began (training, evaluation, SecAgg crypto on the node)
//! upload     → its answer was accepted
//! close      → the stage closed (the engine woke up; or the deadline, if nobody answered)
//! ```
//!
//! Bytes are the stage's totals over all participants: tasks delivered (their
//! encoded size), models fetched, answers uploaded (model updates, masked
//! inputs and SecAgg messages; evaluations count 0). Whatever the parts miss
//! (code between the timed steps) is the [`RoundTiming::residual`].

use std::collections::BTreeMap;
use std::time::Instant;

use super::stage::StageKind;

/// One part of a round's wall time.
#[derive(Debug, Clone, PartialEq)]
pub struct StagePart {
    /// What it was, e.g. `sampling`, `fit work`, `commit store write`.
    pub name: String,
    /// How long it took.
    pub seconds: f64,
    /// Bytes it moved over the network (see the module docs); 0 if none or
    /// not measured.
    pub bytes: u64,
}

impl StagePart {
    /// A part that took from `started` until now and moved no bytes.
    pub fn since(name: impl Into<String>, started: Instant) -> Self {
        Self {
            name: name.into(),
            seconds: started.elapsed().as_secs_f64(),
            bytes: 0,
        }
    }
}

/// Where one committed round's wall time went.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundTiming {
    /// The round.
    pub round: u64,
    /// The attempt at it that committed.
    pub attempt: u32,
    /// The round's wall time, from loading its starting model to the end of
    /// its evaluation.
    pub seconds: f64,
    /// The disjoint parts, in the order they ended.
    pub parts: Vec<StagePart>,
}

impl RoundTiming {
    /// The seconds the parts account for.
    pub fn accounted(&self) -> f64 {
        self.parts.iter().map(|p| p.seconds).sum()
    }

    /// The seconds no part accounts for: `seconds − accounted()`.
    pub fn residual(&self) -> f64 {
        self.seconds - self.accounted()
    }
}

/// One participant's progress through a stage, as the service saw it.
#[derive(Debug, Clone, Default)]
struct Marks {
    delivered: Option<Instant>,
    fetched: Option<Instant>,
    upload_started: Option<Instant>,
    accepted: Option<Instant>,
}

/// A stage's clock: when it opened, each participant's marks, and the bytes
/// it moved (see the module docs).
#[derive(Debug, Clone)]
pub struct StageClock {
    opened: Instant,
    nodes: BTreeMap<String, Marks>,
    task_bytes: u64,
    fetched_bytes: u64,
    uploaded_bytes: u64,
}

impl Default for StageClock {
    fn default() -> Self {
        Self::new()
    }
}

impl StageClock {
    /// A clock started now.
    pub fn new() -> Self {
        Self {
            opened: Instant::now(),
            nodes: BTreeMap::new(),
            task_bytes: 0,
            fetched_bytes: 0,
            uploaded_bytes: 0,
        }
    }

    fn marks(&mut self, node_id: &str) -> &mut Marks {
        self.nodes.entry(node_id.to_owned()).or_default()
    }

    /// `node_id`'s poll returned its task of `bytes` (the first time counts
    /// for the time; every delivery for the bytes).
    pub fn delivered(&mut self, node_id: &str, bytes: usize) {
        self.task_bytes += bytes as u64;
        let now = Instant::now();
        self.marks(node_id).delivered.get_or_insert(now);
    }

    /// `node_id` was handed the last chunk of a model of `bytes`.
    pub fn fetched(&mut self, node_id: &str, bytes: usize) {
        self.fetched_bytes += bytes as u64;
        self.marks(node_id).fetched = Some(Instant::now());
    }

    /// `node_id`'s upload of `bytes`, which began at `started`, was read.
    pub fn uploaded(&mut self, node_id: &str, started: Instant, bytes: usize) {
        self.uploaded_bytes += bytes as u64;
        self.marks(node_id).upload_started = Some(started);
    }

    /// `node_id`'s answer was accepted.
    pub fn accepted(&mut self, node_id: &str) {
        self.marks(node_id).accepted = Some(Instant::now());
    }

    /// The stage's five parts (delivery, fetch, work, upload, close) along its
    /// critical path, for a stage of `kind` that closed at `closed`. They add
    /// up to the stage's open time exactly; a mark out of order counts as zero.
    pub fn parts(&self, kind: StageKind, closed: Instant) -> Vec<StagePart> {
        let last = self
            .nodes
            .values()
            .filter(|m| m.accepted.is_some())
            .max_by_key(|m| m.accepted)
            .cloned()
            .unwrap_or_default();
        let marks = [
            ("delivery", last.delivered, self.task_bytes),
            ("fetch", last.fetched, self.fetched_bytes),
            ("work", last.upload_started, 0),
            ("upload", last.accepted, self.uploaded_bytes),
            ("close", Some(closed), 0),
        ];
        let mut cursor = self.opened;
        marks
            .into_iter()
            .map(|(segment, mark, bytes)| {
                let end = mark.map_or(cursor, |m| m.max(cursor));
                let seconds = (end - cursor).as_secs_f64();
                cursor = end;
                StagePart {
                    name: format!("{kind} {segment}"),
                    seconds,
                    bytes,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_splits_along_its_last_answer_and_adds_up() {
        let mut clock = StageClock::new();
        clock.delivered("a", 10);
        clock.delivered("b", 10);
        clock.fetched("b", 400);
        let started = Instant::now();
        clock.uploaded("b", started, 400);
        clock.accepted("b");
        clock.uploaded("a", started, 400);
        clock.accepted("a");
        let closed = Instant::now();
        let parts = clock.parts(StageKind::Fit, closed);
        let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "fit delivery",
                "fit fetch",
                "fit work",
                "fit upload",
                "fit close"
            ]
        );
        let total: f64 = parts.iter().map(|p| p.seconds).sum();
        let open = (closed - clock.opened).as_secs_f64();
        assert!((total - open).abs() < 1e-9, "{total} vs {open}");
        let bytes: Vec<u64> = parts.iter().map(|p| p.bytes).collect();
        assert_eq!(bytes, [20, 400, 0, 800, 0]);
        // "a" answered last and fetched nothing in the stage.
        assert_eq!(parts[1].seconds, 0.0);
    }

    #[test]
    fn a_stage_nobody_answered_is_all_close() {
        let clock = StageClock::new();
        let closed = Instant::now();
        let parts = clock.parts(StageKind::Evaluate, closed);
        assert_eq!(parts.len(), 5);
        assert!(parts[..4].iter().all(|p| p.seconds == 0.0));
        assert_eq!(parts[4].seconds, (closed - clock.opened).as_secs_f64());
    }

    #[test]
    fn the_residual_is_what_the_parts_miss() {
        let timing = RoundTiming {
            round: 1,
            attempt: 1,
            seconds: 1.0,
            parts: vec![
                StagePart {
                    name: "a".into(),
                    seconds: 0.25,
                    bytes: 0,
                },
                StagePart {
                    name: "b".into(),
                    seconds: 0.5,
                    bytes: 0,
                },
            ],
        };
        assert_eq!(timing.accounted(), 0.75);
        assert_eq!(timing.residual(), 0.25);
    }
}
