//! A scenario's data, loaded and split among its nodes, and the federation it
//! trains: what `cohort-sim run` and `cohort-sim provision` both start from.

use std::path::PathBuf;

use cohort_client::data::{
    DataError, Dataset, FeatureScaling, ScalingError, load_csv, train_holdout_split,
};

use crate::harness::{FederationPlan, pooled_training_scaling};
use crate::partition::{Partition, PartitionError};
use crate::scenario::Scenario;

/// Why the scenario's data could not be loaded or split.
#[derive(Debug, thiserror::Error)]
pub enum SharesError {
    /// The data file could not be loaded, or a node's rows taken from it.
    #[error("loading {path}: {source}")]
    Data {
        /// The data file.
        path: PathBuf,
        /// The data error.
        source: DataError,
    },
    /// The scenario's partitioner could not split the rows among its nodes.
    #[error("splitting the data among {nodes} nodes (`partition`): {source}")]
    Partition {
        /// Nodes in the scenario.
        nodes: usize,
        /// The partitioner's error.
        source: PartitionError,
    },
    /// No node's train/holdout split keeps a row back, so no round could be
    /// evaluated.
    #[error(
        "holdout = {holdout} leaves no node a held-out row: {nodes} nodes with at most {largest} rows each, \
         and each class of a node's rows is split on its own, so a class needs at least \
         {per_class} rows on a node to give one; use fewer nodes or a larger `holdout`"
    )]
    NoHoldout {
        /// The scenario's holdout fraction.
        holdout: f64,
        /// Nodes in the scenario.
        nodes: usize,
        /// The most rows any node has.
        largest: usize,
        /// Rows of one class a node needs for one held-out row.
        per_class: usize,
    },
    /// The nodes' pooled training rows give no usable scaling to declare.
    #[error("the scaling declared for secure aggregation or DP: {source}")]
    Scaling {
        /// Why the statistics do not combine.
        source: ScalingError,
    },
}

/// The whole data set, and each node's row indices in it.
#[derive(Debug, Clone)]
pub struct Shares {
    /// The data file the rows were loaded from.
    pub path: PathBuf,
    /// Every row of the data set.
    pub data: Dataset,
    /// Labels are 0..classes.
    pub classes: usize,
    /// Each node's row indices into `data`, in node order.
    pub parts: Partition,
}

impl Shares {
    /// Loads the scenario's data and splits it with its partitioner and seed.
    pub fn of(scenario: &Scenario) -> Result<Self, SharesError> {
        let (path, options) = scenario.data.file();
        let data = load_csv(&path, &options)
            .map_err(|source| SharesError::Data {
                path: path.clone(),
                source,
            })?
            .dataset;
        let classes = data
            .labels()
            .iter()
            .map(|&l| l as usize + 1)
            .max()
            .unwrap_or(0);
        let parts = scenario
            .partition
            .split(data.labels(), scenario.nodes, scenario.seed)
            .map_err(|source| SharesError::Partition {
                nodes: scenario.nodes,
                source,
            })?;
        Ok(Self {
            path,
            data,
            classes,
            parts,
        })
    }

    /// Node `i`'s rows as a data set of their own.
    pub fn node_data(&self, i: usize) -> Result<Dataset, SharesError> {
        let rows = self.parts.get(i).map_or(&[][..], Vec::as_slice);
        self.data.subset(rows).map_err(|source| SharesError::Data {
            path: self.path.clone(),
            source,
        })
    }

    /// The seed of node `i`'s train/holdout split.
    pub fn split_seed(scenario: &Scenario, i: usize) -> u64 {
        scenario.seed.wrapping_add(i as u64)
    }

    /// The federation `scenario` trains on this data, as `federation_id`.
    /// Under secure aggregation or DP it declares the scaling the nodes'
    /// pooled training rows give ([`pooled_training_scaling`]).
    pub fn plan(
        &self,
        scenario: &Scenario,
        federation_id: &str,
    ) -> Result<FederationPlan, SharesError> {
        let scaling = if scenario.secure_aggregation.is_some() || scenario.privacy.is_some() {
            Some(self.pooled_training_scaling(scenario)?)
        } else {
            None
        };
        Ok(FederationPlan {
            federation_id: federation_id.to_owned(),
            model: scenario.model_config(self.data.num_features() as u32, self.classes as u32),
            rounds: scenario.rounds_config(),
            training: scenario.training.clone(),
            privacy: scenario.privacy.clone(),
            secure_aggregation: scenario.secure_aggregation.clone(),
            strategy: scenario.strategy.clone(),
            scaling,
            poll_timeout_ms: 5_000,
        })
    }

    /// Node `i`'s (training, held-out) rows, split as its node will split them.
    fn node_split(&self, scenario: &Scenario, i: usize) -> Result<(Dataset, Dataset), SharesError> {
        train_holdout_split(
            &self.node_data(i)?,
            scenario.holdout,
            Self::split_seed(scenario, i),
        )
        .map_err(|source| SharesError::Data {
            path: self.path.clone(),
            source,
        })
    }

    /// Refuses a split that leaves every node's holdout empty: federated
    /// evaluation would have nothing to report, round after round.
    pub fn check_holdouts(&self, scenario: &Scenario) -> Result<(), SharesError> {
        for i in 0..scenario.nodes {
            let (_, holdout) = self.node_split(scenario, i)?;
            if !holdout.is_empty() {
                return Ok(());
            }
        }
        Err(SharesError::NoHoldout {
            holdout: scenario.holdout,
            nodes: scenario.nodes,
            largest: self.parts.iter().map(Vec::len).max().unwrap_or(0),
            // A class of r rows holds back round(r · holdout) of them.
            per_class: (0.5 / scenario.holdout).ceil() as usize,
        })
    }

    /// Every node's training split (as its node will make it), pooled into one scaling.
    fn pooled_training_scaling(&self, scenario: &Scenario) -> Result<FeatureScaling, SharesError> {
        let mut training = Vec::with_capacity(scenario.nodes);
        for i in 0..scenario.nodes {
            let (train, _) = self.node_split(scenario, i)?;
            training.push(train);
        }
        pooled_training_scaling(&training).map_err(|source| SharesError::Scaling { source })
    }
}
