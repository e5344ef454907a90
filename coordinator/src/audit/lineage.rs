//! Data lineage, answered from the audit log alone (what an auditor can check):
//! which rounds, nodes and data set versions shaped a model version, back to
//! the initial model; and which model versions a data set version or a node
//! influenced, directly or through every model trained on top of them.
//!
//! The log's `RoundCompleted` entries form a tree of model versions: each round
//! turns `model_in` into `model_out` with its contributors' data. A rollback
//! after an erasure request makes that tree branch; the lineage of a model is
//! always its own path back to the root, so a retrained model does not inherit
//! the lineage of the versions it replaced.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;

use super::{AuditEntry, AuditEvent, ContributorDataset};
use crate::store::records::DatasetRef;

/// Why a lineage question cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineageError {
    /// No `RoundCompleted` entry produced or started from this model version.
    #[error("model version {0} appears in no round of the audit log")]
    UnknownModel(String),
    /// A data set was named by something other than `ID` or `ID@VERSION`.
    #[error("{0:?} is not ID or ID@VERSION")]
    BadDatasetSpec(String),
}

/// One committed round as the log records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundStep {
    /// The audit entry that records it.
    pub seq: u64,
    /// When the entry was written, in Unix milliseconds.
    pub time_ms: u64,
    /// The round's number.
    pub round: u64,
    /// The attempt that completed it.
    pub attempt: u32,
    /// The model version it started from.
    pub model_in: String,
    /// The model version it committed.
    pub model_out: String,
    /// The nodes whose updates were aggregated.
    pub contributors: Vec<String>,
    /// The data set version each contributor trained on.
    pub datasets: Vec<ContributorDataset>,
}

/// Round 0: the feature scaling agreed from some nodes' statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScalingStep {
    /// The audit entry that records it.
    pub seq: u64,
    /// When the entry was written, in Unix milliseconds.
    pub time_ms: u64,
    /// The nodes whose statistics were combined.
    pub contributors: Vec<String>,
    /// The data set version each of them contributed.
    pub datasets: Vec<ContributorDataset>,
}

/// Where a model version came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelLineage {
    /// The version asked about.
    pub model_version: String,
    /// The model the chain starts from (no round produced it).
    pub initial_model: String,
    /// The feature scaling its rounds standardized with (absent in logs
    /// from before scaling was logged).
    pub scaling: Option<ScalingStep>,
    /// The rounds from the initial model to this one, oldest first.
    pub rounds: Vec<RoundStep>,
    /// Every node that contributed to a round on the path or to its scaling.
    pub nodes: BTreeSet<String>,
    /// Every data set version trained on along the path or used for its
    /// scaling.
    pub datasets: BTreeSet<DatasetRef>,
}

/// A model version influenced by what was asked about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InfluencedModel {
    /// The influenced version.
    pub model_version: String,
    /// The round that committed it.
    pub round: u64,
    /// Trained on the data (or by the node) itself, or standardized with a
    /// feature scaling it contributed to, rather than only starting from a
    /// model that was.
    pub direct: bool,
}

/// What to trace forward from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A data set, in one version or (with `version: None`) in all of them.
    Dataset {
        /// The data set's name on its node.
        dataset_id: String,
        /// The version; `None` for every version.
        version: Option<String>,
    },
    /// Everything a node contributed (by its certificate identity).
    Node(String),
}

impl Source {
    /// Parses `ID` or `ID@VERSION`.
    pub fn dataset(spec: &str) -> Result<Self, LineageError> {
        let bad = || LineageError::BadDatasetSpec(spec.to_owned());
        let (dataset_id, version) = match spec.split_once('@') {
            Some((id, version)) if !version.is_empty() => (id, Some(version.to_owned())),
            Some(_) => return Err(bad()),
            None => (spec, None),
        };
        if dataset_id.is_empty() {
            return Err(bad());
        }
        Ok(Self::Dataset {
            dataset_id: dataset_id.to_owned(),
            version,
        })
    }

    fn touches(&self, contributors: &[String], datasets: &[ContributorDataset]) -> bool {
        match self {
            Self::Node(node) => contributors.iter().any(|c| c == node),
            Self::Dataset {
                dataset_id,
                version,
            } => datasets.iter().any(|c| {
                &c.dataset.dataset_id == dataset_id
                    && version.as_ref().is_none_or(|v| &c.dataset.version == v)
            }),
        }
    }
}

/// The model-version tree of a log.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    /// Committed rounds in log order.
    steps: Vec<RoundStep>,
    /// Agreed feature scalings in log order.
    scalings: Vec<ScalingStep>,
}

impl Lineage {
    /// Reads the model-version tree from a log's `RoundCompleted` and
    /// `ScalingAgreed` entries.
    pub fn from_entries(entries: &[AuditEntry]) -> Self {
        let scalings = entries
            .iter()
            .filter_map(|entry| match &entry.event {
                AuditEvent::ScalingAgreed {
                    contributors,
                    datasets,
                } => Some(ScalingStep {
                    seq: entry.seq,
                    time_ms: entry.time_ms,
                    contributors: contributors.clone(),
                    datasets: datasets.clone(),
                }),
                _ => None,
            })
            .collect();
        let steps = entries
            .iter()
            .filter_map(|entry| match &entry.event {
                AuditEvent::RoundCompleted {
                    round,
                    attempt,
                    model_in,
                    model_out,
                    contributors,
                    datasets,
                    ..
                } => Some(RoundStep {
                    seq: entry.seq,
                    time_ms: entry.time_ms,
                    round: *round,
                    attempt: *attempt,
                    model_in: model_in.clone(),
                    model_out: model_out.clone(),
                    contributors: contributors.clone(),
                    datasets: datasets.clone(),
                }),
                _ => None,
            })
            .collect();
        Self { steps, scalings }
    }

    /// The scaling in effect when `step` ran: the last one agreed before it.
    fn scaling_of(&self, step: &RoundStep) -> Option<&ScalingStep> {
        self.scalings.iter().rev().find(|s| s.seq < step.seq)
    }

    /// Every committed round, in log order.
    pub fn steps(&self) -> &[RoundStep] {
        &self.steps
    }

    /// The rounds, nodes and data set versions behind `model_version`.
    pub fn model(&self, model_version: &str) -> Result<ModelLineage, LineageError> {
        // A version produced twice (the same bytes) keeps its first producer.
        let mut producer: HashMap<&str, &RoundStep> = HashMap::new();
        for step in &self.steps {
            producer.entry(step.model_out.as_str()).or_insert(step);
        }
        let known = producer.contains_key(model_version)
            || self.steps.iter().any(|s| s.model_in == model_version);
        if !known {
            return Err(LineageError::UnknownModel(model_version.to_owned()));
        }
        let mut rounds = Vec::new();
        let mut seen = HashSet::new();
        let mut current = model_version;
        while let Some(step) = producer.get(current) {
            if !seen.insert(step.seq) {
                break; // a cycle cannot come from a sound log; stop rather than spin
            }
            rounds.push((*step).clone());
            current = &step.model_in;
        }
        rounds.reverse();
        let scaling = rounds.first().and_then(|r| self.scaling_of(r)).cloned();
        let nodes = rounds
            .iter()
            .flat_map(|r| r.contributors.iter())
            .chain(scaling.iter().flat_map(|s| s.contributors.iter()))
            .cloned()
            .collect();
        let datasets = rounds
            .iter()
            .flat_map(|r| r.datasets.iter())
            .chain(scaling.iter().flat_map(|s| s.datasets.iter()))
            .map(|d| d.dataset.clone())
            .collect();
        Ok(ModelLineage {
            model_version: model_version.to_owned(),
            initial_model: current.to_owned(),
            scaling,
            rounds,
            nodes,
            datasets,
        })
    }

    /// Every model version `source` influenced: those trained on it or with a
    /// feature scaling it contributed to, and every version trained on top of
    /// one of those. In log order.
    pub fn influenced_by(&self, source: &Source) -> Vec<InfluencedModel> {
        self.influenced_by_any(std::slice::from_ref(source))
    }

    /// As [`Lineage::influenced_by`], for the models any of `sources`
    /// influenced, in log order.
    pub fn influenced_by_any(&self, sources: &[Source]) -> Vec<InfluencedModel> {
        let mut reached: BTreeSet<&str> = BTreeSet::new();
        let mut out = Vec::new();
        let touched = |contributors: &[String], datasets: &[ContributorDataset]| {
            sources.iter().any(|s| s.touches(contributors, datasets))
        };
        // A round's model_in was committed before it, so one pass in log
        // order sees every ancestor before its descendants.
        for step in &self.steps {
            let direct = touched(&step.contributors, &step.datasets)
                || self
                    .scaling_of(step)
                    .is_some_and(|s| touched(&s.contributors, &s.datasets));
            if (direct || reached.contains(step.model_in.as_str()))
                && reached.insert(&step.model_out)
            {
                out.push(InfluencedModel {
                    model_version: step.model_out.clone(),
                    round: step.round,
                    direct,
                });
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::audit::AUDIT_SCHEMA;

    pub(crate) fn completed(
        seq: u64,
        round: u64,
        model_in: &str,
        model_out: &str,
        contributors: &[(&str, &str)],
    ) -> AuditEntry {
        AuditEntry {
            schema: AUDIT_SCHEMA,
            seq,
            time_ms: seq,
            event: AuditEvent::RoundCompleted {
                round,
                attempt: 1,
                strategy: "fedavg".into(),
                model_in: model_in.into(),
                model_out: model_out.into(),
                contributors: contributors.iter().map(|(n, _)| (*n).into()).collect(),
                epsilon_spent: None,
                datasets: contributors
                    .iter()
                    .map(|(node, version)| ContributorDataset {
                        node_id: (*node).into(),
                        dataset: DatasetRef {
                            dataset_id: "bc".into(),
                            version: (*version).into(),
                        },
                    })
                    .collect(),
                protection: Default::default(),
            },
        }
    }

    /// m0 -> m1 -> m2 -> m3, then a rollback to m1 and a retrain m1 -> m2'.
    fn branched() -> Lineage {
        Lineage::from_entries(&[
            completed(0, 1, "m0", "m1", &[("a", "v1"), ("b", "w1")]),
            completed(1, 2, "m1", "m2", &[("a", "v1")]),
            completed(2, 3, "m2", "m3", &[("b", "w2")]),
            completed(3, 2, "m1", "m2r", &[("a", "v2"), ("b", "w2")]),
        ])
    }

    #[test]
    fn a_model_traces_back_to_the_initial_model_along_its_own_branch() {
        let lineage = branched();
        let m3 = lineage.model("m3").unwrap();
        assert_eq!(m3.initial_model, "m0");
        let path: Vec<_> = m3.rounds.iter().map(|r| r.model_out.as_str()).collect();
        assert_eq!(path, ["m1", "m2", "m3"]);
        assert_eq!(m3.nodes, ["a", "b"].map(String::from).into());
        let versions: Vec<_> = m3.datasets.iter().map(|d| d.to_string()).collect();
        assert_eq!(versions, ["bc@v1", "bc@w1", "bc@w2"]);

        let retrained = lineage.model("m2r").unwrap();
        let versions: Vec<_> = retrained.datasets.iter().map(|d| d.to_string()).collect();
        assert_eq!(versions, ["bc@v1", "bc@v2", "bc@w1", "bc@w2"]);
        assert!(!retrained.rounds.iter().any(|r| r.model_out == "m2"));

        let initial = lineage.model("m0").unwrap();
        assert!(initial.rounds.is_empty() && initial.initial_model == "m0");
        assert_eq!(
            lineage.model("nope"),
            Err(LineageError::UnknownModel("nope".into()))
        );
    }

    #[test]
    fn the_feature_scaling_is_part_of_every_later_models_lineage() {
        let scaling = |seq: u64, version: &str| AuditEntry {
            schema: AUDIT_SCHEMA,
            seq,
            time_ms: seq,
            event: AuditEvent::ScalingAgreed {
                contributors: vec!["a".into()],
                datasets: vec![ContributorDataset {
                    node_id: "a".into(),
                    dataset: DatasetRef {
                        dataset_id: "bc".into(),
                        version: version.into(),
                    },
                }],
            },
        };
        // v0 only gave statistics; after a rollback the scaling is agreed
        // again on v1 and the retrained model owes nothing to v0.
        let lineage = Lineage::from_entries(&[
            scaling(0, "v0"),
            completed(1, 1, "m0", "m1", &[("b", "w1")]),
            completed(2, 2, "m1", "m2", &[("b", "w1")]),
            scaling(3, "v1"),
            completed(4, 1, "m0", "m1r", &[("b", "w1")]),
        ]);
        let influenced: Vec<_> = lineage
            .influenced_by(&Source::dataset("bc@v0").unwrap())
            .into_iter()
            .map(|m| (m.model_version, m.direct))
            .collect();
        assert_eq!(
            influenced,
            [("m1", true), ("m2", true)].map(|(m, d)| (m.to_owned(), d))
        );
        let m2 = lineage.model("m2").unwrap();
        assert_eq!(m2.scaling.as_ref().map(|s| s.seq), Some(0));
        assert!(m2.nodes.contains("a"));
        let retrained = lineage.model("m1r").unwrap();
        let versions: Vec<_> = retrained.datasets.iter().map(|d| d.to_string()).collect();
        assert_eq!(versions, ["bc@v1", "bc@w1"]);
    }

    #[test]
    fn a_data_set_version_or_node_reaches_every_later_model() {
        let lineage = branched();
        let names = |source: Source| -> Vec<(String, bool)> {
            lineage
                .influenced_by(&source)
                .into_iter()
                .map(|m| (m.model_version, m.direct))
                .collect()
        };
        let v1 = Source::dataset("bc@v1").unwrap();
        assert_eq!(
            names(v1),
            [("m1", true), ("m2", true), ("m3", false), ("m2r", false)]
                .map(|(m, d)| (m.to_owned(), d))
        );
        let w2 = Source::dataset("bc@w2").unwrap();
        assert_eq!(
            names(w2),
            [("m3", true), ("m2r", true)].map(|(m, d)| (m.to_owned(), d))
        );
        assert_eq!(names(Source::dataset("bc").unwrap()).len(), 4);
        assert_eq!(names(Source::dataset("other").unwrap()), []);
        assert_eq!(names(Source::Node("b".into())).len(), 4);
        for bad in ["", "@v1", "bc@"] {
            assert!(Source::dataset(bad).is_err(), "{bad:?}");
        }
    }
}
