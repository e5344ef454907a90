//! [`Trainable`]: one model a node trains, behind one object-safe interface,
//! whether it is the federation's built-in dense model or the node's own
//! burn module. The node's round logic (fetch, train, clip, mask, report)
//! holds an `Arc<dyn Trainable>` and never asks which.

use std::fmt::Debug;

use cohort_proto::model::{ModelDescriptor, ParameterLayout};

use super::{
    Architecture, DpSgdConfig, Evaluation, LocalTrainingConfig, ModuleArchitecture, TrainOutcome,
    TrainingError, evaluate, per_row_losses, train_dp_sgd, train_local,
};
use crate::data::Dataset;
use crate::model::FederatedModel;

/// A model a node can train, evaluate and score row by row.
pub trait Trainable: Debug + Send + Sync {
    /// The model as the federation knows it.
    fn descriptor(&self) -> &ModelDescriptor;

    /// Labels it predicts: `0..num_classes`.
    fn num_classes(&self) -> usize;

    /// Whether `train` runs Cohort's DP-SGD ([`train_dp_sgd`]) when `dp` is
    /// set. A node under record-level privacy trains only a model that
    /// does: a custom loop's privacy is not Cohort's to account.
    fn runs_dp_sgd(&self) -> bool {
        false
    }

    /// One round of local training from `start` (plain SGD, or DP-SGD with
    /// noise from the operating system's generator when `dp` is set).
    ///
    /// # Errors
    /// As [`train_local`] and [`train_dp_sgd`].
    fn train(
        &self,
        start: &[f32],
        train: &Dataset,
        config: &LocalTrainingConfig,
        dp: Option<&DpSgdConfig>,
    ) -> Result<TrainOutcome, TrainingError>;

    /// Loss and accuracy of `parameters` on `data`.
    ///
    /// # Errors
    /// As [`evaluate`].
    fn evaluate(&self, parameters: &[f32], data: &Dataset) -> Result<Evaluation, TrainingError>;

    /// Each row's loss under `parameters`.
    ///
    /// # Errors
    /// As [`per_row_losses`].
    fn per_row_losses(&self, parameters: &[f32], data: &Dataset)
    -> Result<Vec<f64>, TrainingError>;
}

/// [`Trainable`] for any [`Architecture`], given its descriptor and classes.
#[derive(Debug)]
struct Described<A> {
    architecture: A,
    descriptor: ModelDescriptor,
    num_classes: usize,
}

impl<A: Architecture + Debug + Send + Sync> Trainable for Described<A> {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn runs_dp_sgd(&self) -> bool {
        true
    }

    fn train(
        &self,
        start: &[f32],
        train: &Dataset,
        config: &LocalTrainingConfig,
        dp: Option<&DpSgdConfig>,
    ) -> Result<TrainOutcome, TrainingError> {
        match dp {
            None => train_local(&self.architecture, start, train, config),
            Some(dp) => train_dp_sgd(
                &self.architecture,
                start,
                train,
                config,
                dp,
                &mut rand::rng(),
            ),
        }
    }

    fn evaluate(&self, parameters: &[f32], data: &Dataset) -> Result<Evaluation, TrainingError> {
        evaluate(&self.architecture, parameters, data)
    }

    fn per_row_losses(
        &self,
        parameters: &[f32],
        data: &Dataset,
    ) -> Result<Vec<f64>, TrainingError> {
        per_row_losses(&self.architecture, parameters, data)
    }
}

/// The built-in dense model of `layout`.
pub fn dense(layout: ParameterLayout) -> impl Trainable {
    let num_classes = layout.layers.last().map_or(0, |layer| layer.outputs);
    Described {
        descriptor: layout.descriptor(),
        architecture: layout,
        num_classes,
    }
}

/// A user's burn module, as its author describes it.
pub fn module<M: FederatedModel + Sync>(
    architecture: ModuleArchitecture<M>,
    descriptor: ModelDescriptor,
) -> impl Trainable {
    Described {
        num_classes: architecture.num_classes(),
        architecture,
        descriptor,
    }
}
