//! `[model]`: the architecture every node trains.

use cohort_proto::model::{ParameterLayout, SavedSpec};
use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// The `[model]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `logistic_regression` or `mlp`.
    pub kind: String,
    /// Width of a data row, label excluded.
    pub num_features: u32,
    /// Number of labels (at least 2).
    pub num_classes: u32,
    /// Widths of an MLP's hidden layers; empty for logistic regression.
    #[serde(default)]
    pub hidden_layers: Vec<u32>,
    /// Seed of the initial model's weights.
    #[serde(default)]
    pub init_seed: u64,
}

impl ModelConfig {
    /// The built-in dense architecture this section describes.
    pub fn spec(&self) -> SavedSpec {
        SavedSpec {
            kind: self.kind.clone(),
            num_features: self.num_features,
            num_classes: self.num_classes,
            hidden_layers: self.hidden_layers.clone(),
        }
    }

    /// The layout of the model's parameters, which the other sections' checks
    /// size against.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for `model` when the spec describes no model
    /// (unknown kind, zero width, hidden layers that do not fit the kind).
    pub fn validate(&self) -> Result<ParameterLayout, ConfigError> {
        ParameterLayout::of(&self.spec()).map_err(|e| invalid("model", e.to_string()))
    }
}
