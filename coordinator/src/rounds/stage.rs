//! A stage of a round as plain data: what is asked, of whom, until when, and
//! what has come back. Submissions are checked here, before anything is kept.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use cohort_proto::v1;

use super::secure::{SecAggRound, SecAggStep};
use crate::strategy::FitResult;
use cohort_proto::scaling::{FeatureScaling, FeatureStats};

/// What a stage asks of its participants.
#[derive(Debug, Clone, PartialEq)]
pub enum StageKind {
    FeatureStats,
    Fit {
        model_version: String,
        training: v1::TrainingConfig,
        scaling: FeatureScaling,
    },
    Evaluate {
        model_version: String,
        scaling: FeatureScaling,
    },
    /// A stage of secure aggregation: each participant has its own task (the
    /// messages relayed to it).
    SecureAggregation {
        step: SecAggStep,
        tasks: BTreeMap<String, v1::task::Stage>,
    },
}

impl StageKind {
    pub fn name(&self) -> &'static str {
        match self {
            StageKind::FeatureStats => "feature-statistics",
            StageKind::Fit { .. } => "fit",
            StageKind::Evaluate { .. } => "evaluate",
            StageKind::SecureAggregation { step, .. } => step.name(),
        }
    }

    /// The model version the stage is about, if any.
    pub fn model_version(&self) -> Option<&str> {
        match self {
            StageKind::FeatureStats | StageKind::SecureAggregation { .. } => None,
            StageKind::Fit { model_version, .. } | StageKind::Evaluate { model_version, .. } => {
                Some(model_version)
            }
        }
    }
}

/// A node's evaluation of a global model on its held-out split.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeEvaluation {
    pub num_examples: u64,
    pub loss: f64,
    pub accuracy: f64,
}

#[derive(Debug, Clone)]
pub enum StageResult {
    FeatureStats(FeatureStats),
    Fit(FitResult),
    Evaluate(NodeEvaluation),
    /// A secure-aggregation message, taken in by the round's aggregator. Only the
    /// sender's certificate is kept, to relay with its key advertisement.
    SecureAggregation {
        step: SecAggStep,
        certificate: Option<std::sync::Arc<[u8]>>,
    },
}

impl StageResult {
    /// The name of the stage this result answers (as [`StageKind::name`]).
    pub fn stage_name(&self) -> &'static str {
        match self {
            StageResult::FeatureStats(_) => "feature-statistics",
            StageResult::Fit(_) => "fit",
            StageResult::Evaluate(_) => "evaluate",
            StageResult::SecureAggregation { step, .. } => step.name(),
        }
    }
}

/// Why a submission was not taken. Each maps to one gRPC status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmissionError {
    #[error("no {expected} stage is open")]
    NoOpenStage { expected: &'static str },
    #[error("submission is for round {submitted}, but round {current} is in progress")]
    StaleRound { submitted: u64, current: u64 },
    #[error("a {submitted} result was sent, but the open stage is {open}")]
    WrongStage {
        submitted: &'static str,
        open: &'static str,
    },
    #[error("node {0} was not sampled for this stage")]
    NotSampled(String),
    #[error("node {node_id} already submitted a {stage} result for round {round}")]
    AlreadySubmitted {
        node_id: String,
        stage: &'static str,
        round: u64,
    },
    #[error("the {stage} stage of round {round} closed at its deadline")]
    DeadlinePassed { stage: &'static str, round: u64 },
    #[error("result is for model {submitted}, but the stage is about model {expected}")]
    WrongModel { submitted: String, expected: String },
    /// The content was refused (by secure aggregation's checks).
    #[error("{0}")]
    Rejected(String),
}

#[derive(Debug, Clone)]
pub struct ActiveStage {
    pub round: u64,
    pub kind: StageKind,
    pub deadline: SystemTime,
    pub participants: BTreeSet<String>,
    pub results: BTreeMap<String, StageResult>,
    /// The aggregator of a secure-aggregation round, while one of its stages is open.
    pub secure_aggregation: Option<Box<SecAggRound>>,
}

/// The scaling as the protocol carries it.
pub fn scaling(s: &FeatureScaling) -> v1::FeatureScaling {
    v1::FeatureScaling {
        mean: s.mean.clone(),
        std: s.std.clone(),
    }
}

pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl ActiveStage {
    pub fn new(
        round: u64,
        kind: StageKind,
        deadline: SystemTime,
        participants: impl IntoIterator<Item = String>,
    ) -> Self {
        Self {
            round,
            kind,
            deadline,
            participants: participants.into_iter().collect(),
            results: BTreeMap::new(),
            secure_aggregation: None,
        }
    }

    /// Every participant has answered.
    pub fn is_complete(&self) -> bool {
        self.results.len() == self.participants.len()
    }

    /// The task for `node_id`, if it is a participant that has not answered.
    pub fn task_for(&self, node_id: &str) -> Option<v1::Task> {
        if !self.participants.contains(node_id) || self.results.contains_key(node_id) {
            return None;
        }
        let stage = match &self.kind {
            StageKind::SecureAggregation { tasks, .. } => tasks.get(node_id)?.clone(),
            StageKind::FeatureStats => v1::task::Stage::FeatureStats(v1::FeatureStatsTask {}),
            StageKind::Fit {
                model_version,
                training,
                scaling: s,
            } => v1::task::Stage::Fit(v1::FitTask {
                model_version: model_version.clone(),
                config: Some(*training),
                scaling: Some(scaling(s)),
            }),
            StageKind::Evaluate {
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
        })
    }

    /// Checks that `node_id` may submit `result` for `round` about `model_version`.
    pub fn check(
        &self,
        node_id: &str,
        round: u64,
        stage: &'static str,
        model_version: Option<&str>,
        now: SystemTime,
    ) -> Result<(), SubmissionError> {
        if round != self.round {
            return Err(SubmissionError::StaleRound {
                submitted: round,
                current: self.round,
            });
        }
        if stage != self.kind.name() {
            return Err(SubmissionError::WrongStage {
                submitted: stage,
                open: self.kind.name(),
            });
        }
        if let (Some(submitted), Some(expected)) = (model_version, self.kind.model_version())
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
                stage: self.kind.name(),
                round,
            });
        }
        if now > self.deadline {
            return Err(SubmissionError::DeadlinePassed {
                stage: self.kind.name(),
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
            StageResult::Fit(_) | StageResult::Evaluate(_) => self.kind.model_version(),
            StageResult::FeatureStats(_) | StageResult::SecureAggregation { .. } => None,
        };
        self.check(node_id, round, result.stage_name(), model, now)?;
        self.results.insert(node_id.to_owned(), result);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stats() -> StageResult {
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
            StageKind::FeatureStats,
            now + Duration::from_secs(5),
            ["a".to_string(), "b".to_string()],
        );
        assert!(stage.task_for("a").is_some());
        assert!(stage.task_for("c").is_none());
        stage.accept("a", 0, stats(), now).unwrap();
        assert!(stage.task_for("a").is_none());
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
        assert!(!stage.is_complete());
        stage.accept("b", 0, stats(), now).unwrap();
        assert!(stage.is_complete());
    }
}
