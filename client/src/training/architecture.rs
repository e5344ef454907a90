//! What training and evaluation need of a model besides its forward pass:
//! how to build it at a parameter vector, and whether data fits it. The
//! built-in dense models ([`ParameterLayout`]) and any burn module
//! ([`ModuleArchitecture`]) go through the same loop.

use burn::tensor::Device;
use cohort_proto::model::ParameterLayout;

use super::TrainingError;
use super::batch::check_fits;
use crate::data::Dataset;
use crate::model::{DenseNetwork, FederatedModel, ModelError, load};

/// A model family the training loop can build at any parameter vector.
pub trait Architecture {
    /// The burn module it builds.
    type Model: FederatedModel;

    /// The model at `parameters` (wire order) on `device`.
    ///
    /// # Errors
    /// [`ModelError`] for a vector that does not fit the model.
    fn build(&self, parameters: &[f32], device: &Device) -> Result<Self::Model, ModelError>;

    /// Refuses data the model cannot take; `purpose` names the use in the
    /// error.
    ///
    /// # Errors
    /// [`TrainingError`] for no rows, another width or a label out of range.
    fn check_fits(&self, data: &Dataset, purpose: &'static str) -> Result<(), TrainingError>;
}

impl Architecture for ParameterLayout {
    type Model = DenseNetwork;

    fn build(&self, parameters: &[f32], device: &Device) -> Result<DenseNetwork, ModelError> {
        DenseNetwork::from_parameters(self, parameters, device)
    }

    fn check_fits(&self, data: &Dataset, purpose: &'static str) -> Result<(), TrainingError> {
        let (Some(first), Some(last)) = (self.layers.first(), self.layers.last()) else {
            return Err(ModelError::EmptyLayout.into());
        };
        check_fits(data, first.inputs, last.outputs, purpose)
    }
}

/// A user's burn module: a prototype (its architecture; its parameters are
/// replaced by each vector it is built at) and the data it takes.
#[derive(Debug, Clone)]
pub struct ModuleArchitecture<M> {
    prototype: M,
    num_features: usize,
    num_classes: usize,
}

impl<M: FederatedModel> ModuleArchitecture<M> {
    /// Builds `prototype`'s architecture for rows of `num_features` features
    /// labelled `0..num_classes`.
    pub fn new(prototype: M, num_features: usize, num_classes: usize) -> Self {
        Self {
            prototype,
            num_features,
            num_classes,
        }
    }

    /// Labels it predicts.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }
}

impl<M: FederatedModel> Architecture for ModuleArchitecture<M> {
    type Model = M;

    fn build(&self, parameters: &[f32], device: &Device) -> Result<M, ModelError> {
        load(self.prototype.clone(), parameters, device)
    }

    fn check_fits(&self, data: &Dataset, purpose: &'static str) -> Result<(), TrainingError> {
        check_fits(data, self.num_features, self.num_classes, purpose)
    }
}
