//! A stage of a round as plain data: what is asked, of whom, until when, and
//! what has come back. Submissions are checked here, before anything is kept.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use cohort_proto::v1;

use super::secure::{SecAggRound, SecAggStep};
use super::timing::StageClock;
use crate::store::records::unix_ms;
use crate::strategy::FitResult;
use cohort_proto::scaling::{FeatureScaling, FeatureStats};

/// Which stage a task, a result or a submission belongs to: the one way the
/// coordinator names stages. Shown as the names tasks, errors and logs use
/// (`fit`, `secagg-masked-input`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StageKind {
    /// Round 0: the nodes' feature statistics.
    FeatureStats,
    /// Training in the clear: each node's new model.
    Fit,
    /// Federated evaluation of a round's new model.
    Evaluate,
    /// One step of secure aggregation.
    SecureAggregation(SecAggStep),
}

impl StageKind {
    /// The stage's name in tasks, errors and logs.
    pub fn name(self) -> &'static str {
        match self {
            StageKind::FeatureStats => "feature-statistics",
            StageKind::Fit => "fit",
            StageKind::Evaluate => "evaluate",
            StageKind::SecureAggregation(step) => step.name(),
        }
    }
}

impl fmt::Display for StageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a stage asks of its participants.
#[derive(Debug, Clone, PartialEq)]
pub enum StageTask {
    /// Send the feature statistics of the training split.
    FeatureStats,
    /// Train from `model_version` and send the new model.
    Fit {
        /// The global model to start from.
        model_version: String,
        /// Epochs, batch size, learning rate, seed and the strategy's additions.
        training: v1::TrainingConfig,
        /// The federation's feature scaling.
        scaling: FeatureScaling,
    },
    /// Score `model_version` on the held-out split.
    Evaluate {
        /// The model to score.
        model_version: String,
        /// The federation's feature scaling.
        scaling: FeatureScaling,
    },
    /// A stage of secure aggregation: each participant has its own task (the
    /// messages relayed to it).
    SecureAggregation {
        /// Which step of the protocol.
        step: SecAggStep,
        /// Each participant's task.
        tasks: BTreeMap<String, v1::task::Stage>,
    },
}

impl StageTask {
    /// The kind of stage this task opens.
    pub fn kind(&self) -> StageKind {
        match self {
            StageTask::FeatureStats => StageKind::FeatureStats,
            StageTask::Fit { .. } => StageKind::Fit,
            StageTask::Evaluate { .. } => StageKind::Evaluate,
            StageTask::SecureAggregation { step, .. } => StageKind::SecureAggregation(*step),
        }
    }

    /// The model version the stage is about, if any.
    pub fn model_version(&self) -> Option<&str> {
        match self {
            StageTask::FeatureStats | StageTask::SecureAggregation { .. } => None,
            StageTask::Fit { model_version, .. } | StageTask::Evaluate { model_version, .. } => {
                Some(model_version)
            }
        }
    }
}

/// A node's evaluation of a global model on its held-out split.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeEvaluation {
    /// Held-out rows scored.
    pub num_examples: u64,
    /// Mean loss over them.
    pub loss: f64,
    /// Accuracy over them.
    pub accuracy: f64,
}

/// A participant's answer to a stage, as kept until the stage closes.
#[derive(Debug, Clone)]
pub enum StageResult {
    /// Answers [`StageKind::FeatureStats`].
    FeatureStats(FeatureStats),
    /// Answers [`StageKind::Fit`].
    Fit(FitResult),
    /// Answers [`StageKind::Evaluate`].
    Evaluate(NodeEvaluation),
    /// A secure-aggregation message, taken in by the round's aggregator. Only the
    /// sender's certificate is kept, to relay with its key advertisement.
    SecureAggregation {
        /// The step it answers.
        step: SecAggStep,
        /// The sender's certificate (DER), with its key advertisement only.
        certificate: Option<Arc<[u8]>>,
    },
}

impl StageResult {
    /// The kind of stage this result answers.
    pub fn kind(&self) -> StageKind {
        match self {
            StageResult::FeatureStats(_) => StageKind::FeatureStats,
            StageResult::Fit(_) => StageKind::Fit,
            StageResult::Evaluate(_) => StageKind::Evaluate,
            StageResult::SecureAggregation { step, .. } => StageKind::SecureAggregation(*step),
        }
    }
}

/// Why a submission was not taken. Each maps to one gRPC status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmissionError {
    /// No stage is open (between stages, or the round was interrupted).
    #[error("no {expected} stage is open")]
    NoOpenStage {
        /// The stage the submission answers.
        expected: StageKind,
    },
    /// The submission is for another round.
    #[error("submission is for round {submitted}, but round {current} is in progress")]
    StaleRound {
        /// The round the node named.
        submitted: u64,
        /// The round of the open stage.
        current: u64,
    },
    /// The submission answers another stage than the open one.
    #[error("a {submitted} result was sent, but the open stage is {open}")]
    WrongStage {
        /// The stage the submission answers.
        submitted: StageKind,
        /// The open stage.
        open: StageKind,
    },
    /// The sender is not a participant of the open stage.
    #[error("node {0} was not sampled for this stage")]
    NotSampled(String),
    /// The sender has already answered the open stage.
    #[error("node {node_id} already submitted a {stage} result for round {round}")]
    AlreadySubmitted {
        /// The sender.
        node_id: String,
        /// The open stage.
        stage: StageKind,
        /// Its round.
        round: u64,
    },
    /// The open stage's deadline has passed; it is about to close.
    #[error("the {stage} stage of round {round} closed at its deadline")]
    DeadlinePassed {
        /// The open stage.
        stage: StageKind,
        /// Its round.
        round: u64,
    },
    /// The result is about another model than the stage's.
    #[error("result is for model {submitted}, but the stage is about model {expected}")]
    WrongModel {
        /// The model the node named.
        submitted: String,
        /// The stage's model.
        expected: String,
    },
    /// The content was refused (by secure aggregation's checks).
    #[error("{0}")]
    Rejected(String),
}

/// A stage while it is open: its task, deadline and participants, and the
/// answers so far. Plain data with the checks beside it; the round engine
/// opens and closes it, the service submits to it (through
/// [`super::live::LiveRound`]).
#[derive(Debug, Clone)]
pub struct ActiveStage {
    /// The round it belongs to (0: the feature-statistics stage).
    pub round: u64,
    /// What it asks.
    pub task: StageTask,
    /// Past it, no submission is taken and the stage closes.
    pub deadline: SystemTime,
    /// Who is asked.
    pub participants: BTreeSet<String>,
    /// The answers so far, by participant.
    pub results: BTreeMap<String, StageResult>,
    /// Under secure aggregation, the round's aggregator, shared with the
    /// driver (`super::secure`): each message reaches it as it arrives.
    pub secure_aggregation: Option<Arc<Mutex<SecAggRound>>>,
    /// When it opened and how far each participant got: its timing
    /// (`super::timing`), which changes nothing it does.
    pub clock: StageClock,
}

/// The scaling as the protocol carries it.
pub fn scaling(s: &FeatureScaling) -> v1::FeatureScaling {
    v1::FeatureScaling {
        mean: s.mean.clone(),
        std: s.std.clone(),
    }
}

impl ActiveStage {
    /// A stage of `round` asking `task` of `participants` until `deadline`,
    /// with no answers yet.
    pub fn new(
        round: u64,
        task: StageTask,
        deadline: SystemTime,
        participants: impl IntoIterator<Item = String>,
    ) -> Self {
        Self {
            round,
            task,
            deadline,
            participants: participants.into_iter().collect(),
            results: BTreeMap::new(),
            secure_aggregation: None,
            clock: StageClock::new(),
        }
    }

    /// The kind of stage.
    pub fn kind(&self) -> StageKind {
        self.task.kind()
    }

    /// Every participant has answered.
    pub fn is_complete(&self) -> bool {
        self.results.len() == self.participants.len()
    }

    /// The participants that have not answered, sorted.
    pub fn waiting_for(&self) -> BTreeSet<String> {
        self.participants
            .iter()
            .filter(|node| !self.results.contains_key(*node))
            .cloned()
            .collect()
    }

    /// The task for `node_id`, if it is a participant that has not answered.
    pub fn task_for(&self, node_id: &str) -> Option<v1::Task> {
        if !self.participants.contains(node_id) || self.results.contains_key(node_id) {
            return None;
        }
        let stage = match &self.task {
            StageTask::SecureAggregation { tasks, .. } => tasks.get(node_id)?.clone(),
            StageTask::FeatureStats => v1::task::Stage::FeatureStats(v1::FeatureStatsTask {}),
            StageTask::Fit {
                model_version,
                training,
                scaling: s,
            } => v1::task::Stage::Fit(v1::FitTask {
                model_version: model_version.clone(),
                config: Some(*training),
                scaling: Some(scaling(s)),
            }),
            StageTask::Evaluate {
                model_version,
                scaling: s,
            } => v1::task::Stage::Evaluate(v1::EvaluateTask {
                model_version: model_version.clone(),
                scaling: Some(scaling(s)),
            }),
        };
        Some(v1::Task {
            round: self.round,
            deadline_unix_ms: unix_ms(self.deadline),
            stage: Some(stage),
            // Attached when the task is handed out (`service::poll`).
            signed_revocations: Vec::new(),
        })
    }

    /// Checks that `node_id` may submit a `kind` result for `round` about
    /// `model_version` at `now`.
    pub fn check(
        &self,
        node_id: &str,
        round: u64,
        kind: StageKind,
        model_version: Option<&str>,
        now: SystemTime,
    ) -> Result<(), SubmissionError> {
        if round != self.round {
            return Err(SubmissionError::StaleRound {
                submitted: round,
                current: self.round,
            });
        }
        if kind != self.kind() {
            return Err(SubmissionError::WrongStage {
                submitted: kind,
                open: self.kind(),
            });
        }
        if let (Some(submitted), Some(expected)) = (model_version, self.task.model_version())
            && submitted != expected
        {
            return Err(SubmissionError::WrongModel {
                submitted: submitted.to_owned(),
                expected: expected.to_owned(),
            });
        }
        if !self.participants.contains(node_id) {
            return Err(SubmissionError::NotSampled(node_id.to_owned()));
        }
        if self.results.contains_key(node_id) {
            return Err(SubmissionError::AlreadySubmitted {
                node_id: node_id.to_owned(),
                stage: self.kind(),
                round,
            });
        }
        if now > self.deadline {
            return Err(SubmissionError::DeadlinePassed {
                stage: self.kind(),
                round,
            });
        }
        Ok(())
    }

    /// Keeps a checked result.
    pub fn accept(
        &mut self,
        node_id: &str,
        round: u64,
        result: StageResult,
        now: SystemTime,
    ) -> Result<(), SubmissionError> {
        let model = match &result {
            StageResult::Fit(_) | StageResult::Evaluate(_) => self.task.model_version(),
            StageResult::FeatureStats(_) | StageResult::SecureAggregation { .. } => None,
        };
        self.check(node_id, round, result.kind(), model, now)?;
        self.results.insert(node_id.to_owned(), result);
        self.clock.accepted(node_id);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    /// A one-row feature-statistics answer.
    pub(crate) fn stats() -> StageResult {
        StageResult::FeatureStats(FeatureStats {
            count: 1,
            sum: vec![1.0],
            sum_of_squares: vec![1.0],
        })
    }

    #[test]
    fn submissions_are_checked() {
        let now = SystemTime::now();
        let mut stage = ActiveStage::new(
            0,
            StageTask::FeatureStats,
            now + Duration::from_secs(5),
            ["a".to_string(), "b".to_string()],
        );
        assert!(stage.task_for("a").is_some());
        assert!(stage.task_for("c").is_none());
        stage.accept("a", 0, stats(), now).unwrap();
        assert!(stage.task_for("a").is_none());
        assert_eq!(stage.waiting_for(), ["b".to_string()].into());
        assert!(matches!(
            stage.accept("a", 0, stats(), now),
            Err(SubmissionError::AlreadySubmitted { .. })
        ));
        assert_eq!(
            stage.accept("c", 0, stats(), now),
            Err(SubmissionError::NotSampled("c".into()))
        );
        assert!(matches!(
            stage.accept("b", 1, stats(), now),
            Err(SubmissionError::StaleRound { .. })
        ));
        assert!(matches!(
            stage.accept("b", 0, stats(), now + Duration::from_secs(6)),
            Err(SubmissionError::DeadlinePassed { .. })
        ));
        assert_eq!(
            stage.check("b", 0, StageKind::Fit, None, now),
            Err(SubmissionError::WrongStage {
                submitted: StageKind::Fit,
                open: StageKind::FeatureStats
            })
        );
        assert!(!stage.is_complete());
        stage.accept("b", 0, stats(), now).unwrap();
        assert!(stage.is_complete());
    }
}
